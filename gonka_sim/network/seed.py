"""Simulated Gonka seed node API (runner side): accounts, participants, governance models, chain RPC.

Written from upstream's public API of the decentralized-api (gonka v0.2.13,
`decentralized-api/internal/server/public/server.go` and its handlers) and the chain keeper
behind it (`inference-chain/x/inference/keeper`):

- Accounts and participants are separate, as on the chain. An account is an address with a
  balance and, once it has signed (or was made by a registration), a public key; a participant is
  the inference module's record (`types.Participant`). A funded account is not a participant.
- ``GET /v1/participants/<address>`` and ``GET /v2/accounts/<address>``: the ACCOUNT
  (``getAccountByAddress``): 200 ``{"pubkey", "balance", "denom"}``; 404 for no account and for an
  account without a public key; 400 for an address that is not bech32.
- ``GET /v2/participants/<address>``: the PARTICIPANT (``getParticipantByAddress``): 200
  ``{"participant": {...}}`` serialised by Go's encoding/json (snake_case, omitempty, the status
  enum as an integer: a new participant is ``status: 1`` ACTIVE, ``weight: -1``); 404 when absent.
- ``POST /v1/participants`` with ``{address, url, validator_key, pub_key, worker_key}``: 400 for a
  body that does not bind or lacks address/pub_key; otherwise the message
  ``MsgSubmitNewUnfundedParticipant`` is broadcast asynchronously and the answer is 200 with no
  body, whatever then happens on chain. The chain refuses it for an address whose account
  already exists (``account already exists``), a key that does not match the address, an
  invalid key or URL: no participant appears, and the caller is never told (see `failed_txs`).
- ``GET /v1/participants``: ``{"participants": [...], "block_height": N}``.
- ``GET /v1/governance/models``: ``{"models": [{"id", "hf_repo", "hf_commit", ...}, ...]}``.
- ``GET /chain-rpc/status`` (and JSON-RPC ``POST /chain-rpc/`` with method ``status``):
  CometBFT-shaped status whose height grows with time.
- Errors have upstream's shape (``middleware.TransparentErrorHandler``): ``{"error": <message>}``;
  chain query errors carry the text the SDK's query path gives them, e.g.
  ``rpc error: code = NotFound desc = account not found: key not found``.

Knobs (:class:`SeedKnobs`) model the failure cases the deployer must survive; counters record
what it sent. Everything is thread-safe (one lock per server).
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import ipaddress
import time
from typing import Any
from urllib.parse import unquote, urlsplit

from ..server.chainkeys import address_from_b64 as cold_address
from ..server.chainkeys import bech32_decode
from .epochs import EpochClock
from .httpbase import Knobs, Request, SimServer, route

__all__ = [
    "DEFAULT_MODEL_IDS",
    "SANDBOX_MODEL_ID",
    "Account",
    "FailedTx",
    "Participant",
    "SeedKnobs",
    "SeedServer",
    "is_private_url",
    "model_entry",
]

SANDBOX_MODEL_ID = "sandbox/tiny-model"
"""Model id of the tiny synthetic model the simulated hub serves by default."""

DEFAULT_MODEL_IDS = (
    "MiniMaxAI/MiniMax-M2.7",
    "moonshotai/Kimi-K2.6",
    "deepseek-ai/DeepSeek-V4-Flash-0731",
    SANDBOX_MODEL_ID,
)
"""Governance-approved models served by default (the 2026-08 list plus the sandbox model)."""


def model_entry(model_id: str, hf_commit: str = "", **extra: Any) -> dict[str, Any]:
    """One governance model record, shaped like the chain's ``Model`` (JSON field names)."""
    entry: dict[str, Any] = {
        "proposed_by": "gonka10d07y265gmmuvt4z0w9aw880jnsr700j2h5m33",
        "id": model_id,
        "units_of_compute_per_token": "1000",
        "hf_repo": model_id,
        "hf_commit": hf_commit,
        "model_args": [],
        "v_ram": "80",
        "throughput_per_nonce": "1000",
        "validation_threshold": {"value": "85", "exponent": -2},
    }
    entry.update(extra)
    return entry


def _default_models() -> list[dict[str, Any]]:
    return [model_entry(m) for m in DEFAULT_MODEL_IDS]


@dataclasses.dataclass
class SeedKnobs(Knobs):
    """Seed behaviour knobs (plus the common fault knobs of :class:`Knobs`)."""

    registration_closed: bool = False
    """The chain refuses new unfunded participants (its open-registration permission check fails).
    As upstream, POST /v1/participants still answers 200: the message fails on chain."""
    reject_private_urls: bool = False
    """The chain refuses participant URLs on private/loopback/link-local/CGN addresses (upstream's
    ValidateBasic, `utils.ValidateURLWithSSRFProtection`); the POST still answers 200. Off by
    default because sandbox hosts live on private 10.200.x.y addresses."""
    post_status: int = 0
    """If non-zero, POST /v1/participants answers this status with ``{"error": post_message}``
    before broadcasting anything (the API itself failing, e.g. a broken chain connection)."""
    post_message: str = "simulated seed error"
    registration_visible_after: float = 0.0
    """Seconds after a registration landed before its account and participant can be read."""
    hide_registrations: bool = False
    """Registrations land (a second one fails on chain) but are never readable: the
    "register-new-participant exits 0 but never shows up" case."""
    lose_registrations: bool = False
    """POST answers 200 but the message never lands (a lost transaction): a retry works."""
    initial_balance: int = 0
    """Balance (ngonka) of an account created by a registration (upstream: 0)."""
    denom: str = "ngonka"
    models: list[dict[str, Any]] = dataclasses.field(default_factory=_default_models)
    """Governance-approved model records (see :func:`model_entry`)."""
    network: str = "gonka-mainnet"
    base_height: int = 1_000_000
    block_time_s: float = 1.0
    """Seconds per simulated block: ``latest_block_height`` grows by one each period."""
    chain_halted: bool = False
    """Freeze the height (it resumes from wall time when cleared)."""
    catching_up: bool = False


@dataclasses.dataclass
class Account:
    """An account as the simulated chain's auth and bank modules hold it."""

    address: str
    pub_key: str
    """Base64 secp256k1 key; "" until the account has signed a transaction."""
    balance: int = 0


@dataclasses.dataclass
class Participant:
    """A participant as the inference module stores it (`types.Participant`)."""

    address: str
    url: str
    validator_key: str
    pub_key: str
    worker_key: str
    registered_at: float
    """time.monotonic() of the registration landing on chain."""
    join_height: int = 0
    join_time_ms: int = 0
    weight: int = -1
    status: int = 1
    """ParticipantStatus enum: 1 ACTIVE (what a new participant gets), 2 INACTIVE, 3 INVALID, ..."""

    def as_json(self) -> dict[str, Any]:
        """`QueryGetParticipantResponse.participant` as Go's encoding/json writes it (omitempty)."""
        fields = {
            "index": self.address,
            "address": self.address,
            "weight": self.weight,
            "join_time": self.join_time_ms,
            "join_height": self.join_height,
            "inference_url": self.url,
            "status": self.status,
            "validator_key": self.validator_key,
            "worker_public_key": self.worker_key,
        }
        out = {k: v for k, v in fields.items() if v not in ("", 0)}
        # NewCurrentEpochStats: two zero Decimals, each `{}` under omitempty
        out["current_epoch_stats"] = {"invalidLLR": {}, "inactiveLLR": {}}
        return out


@dataclasses.dataclass(frozen=True)
class FailedTx:
    """A registration message the chain refused after the POST had answered 200."""

    address: str
    reason: str


_PRIVATE_NETS = [
    ipaddress.ip_network(n)
    for n in (
        "127.0.0.0/8",
        "10.0.0.0/8",
        "172.16.0.0/12",
        "192.168.0.0/16",
        "169.254.0.0/16",
        "0.0.0.0/8",
        "100.64.0.0/10",
        "::1/128",
        "fc00::/7",
        "fe80::/10",
        "::ffff:0:0/96",
    )
]


def is_private_url(url: str) -> bool:
    """True when the URL's host is a literal private/loopback/link-local address or ``localhost``.

    Host names are not resolved (sandbox hosts have no DNS); only literals and localhost count.
    """
    host = urlsplit(url).hostname or ""
    if host.lower() in ("localhost", "localhost.localdomain") or host.lower().endswith(".localhost"):
        return True
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return False
    return any(ip in net for net in _PRIVATE_NETS if net.version == ip.version)


class SeedServer(SimServer):
    """Simulated seed node API. See the module docstring for endpoints.

    Public state (read under ``server.lock`` when racing with requests):
      ``accounts``: dict address -> :class:`Account`;
      ``participants``: dict address -> :class:`Participant`;
      ``posts``: list of every POST /v1/participants body (parsed JSON, or the raw text if not JSON),
      in arrival order, accepted or not;
      ``failed_txs``: the registrations the chain refused after a 200 (:class:`FailedTx`);
      ``requests`` / ``log``: per-path counts and request records (from :class:`SimServer`).
    """

    knobs_class = SeedKnobs
    knobs: SeedKnobs

    def __init__(
        self,
        host: str = "0.0.0.0",
        port: int = 0,
        knobs: SeedKnobs | None = None,
        hrp: str = "gonka",
    ):
        self.hrp = hrp
        super().__init__(host, port, knobs)
        self._routes = [
            ("POST", r"/v1/participants/?", self._post_participant),
            ("GET", r"/v1/participants/?", self._list_participants),
            ("GET", r"/v1/participants/([^/]+)/?", self._get_account),
            ("GET", r"/v2/accounts/([^/]+)/?", self._get_account),
            ("GET", r"/v2/participants/([^/]+)/?", self._get_participant),
            ("GET", r"/v1/governance/models/?", self._models),
            # epochs on a clock the tests drive (epochs.py): advance_epoch(), set_phase()
            ("GET", r"/v1/epochs/latest/?", self._epoch_latest),
            ("GET", r"/v1/epochs/(current|\d+)/participants/?", self._epoch_participants),
            ("POST", r"/gonka-sim/v1/ml-nodes/?", self._ml_nodes_report),
            ("GET", r"/chain-rpc/status/?", self._status),
            ("POST", r"/chain-rpc/?", self._jsonrpc),
        ]

    def _reset_state(self) -> None:
        self.accounts: dict[str, Account] = {}
        self.participants: dict[str, Participant] = {}
        self.posts: list[Any] = []
        self.failed_txs: list[FailedTx] = []
        self._t0 = time.monotonic()
        self._frozen_height: int | None = None
        self.epochs = EpochClock(first_index=1, height=self.height)

    # -- Python-side helpers for tests -----------------------------------------------------------

    def register(self, pub_key: str, url: str = "http://203.0.113.10:8000", **fields: str) -> Participant:
        """Store a participant and its account directly (as if registered earlier); returns it."""
        address = cold_address(pub_key, self.hrp)
        p = Participant(
            address=address,
            url=url,
            validator_key=fields.get("validator_key", ""),
            pub_key=pub_key,
            worker_key=fields.get("worker_key", ""),
            registered_at=time.monotonic() - self.knobs.registration_visible_after,
            join_height=self.height(),
            join_time_ms=int(time.time() * 1000),
        )
        with self.lock:
            acct = self.accounts.setdefault(address, Account(address, pub_key, self.knobs.initial_balance))
            acct.pub_key = acct.pub_key or pub_key
            self.participants[address] = p
        return p

    def fund_account(self, pub_key: str, balance: int = 100_000_000_000, *, signed: bool = True) -> Account:
        """An account holding `balance` ngonka that is NOT a participant ("funded but never
        registered"). `signed`: it has sent a transaction, so the chain knows its public key;
        without, ``/v1/participants/<address>`` answers 404 "account has no public key"."""
        address = cold_address(pub_key, self.hrp)
        acct = Account(address, pub_key if signed else "", balance)
        with self.lock:
            self.accounts[address] = acct
        return acct

    def advance_epoch(self) -> int:
        """The next epoch's PoC happened (see epochs.EpochClock); returns the new epoch's index."""
        return self.epochs.advance_epoch()

    def set_phase(self, phase: str) -> str:
        """Put the current epoch in a phase: "poc", "validate", "inference" or an EpochPhase name."""
        return self.epochs.set_phase(phase)

    def _epoch_latest(self, req: Request) -> None:
        req.handler.send_json(200, self.epochs.latest())

    def _epoch_participants(self, req: Request, which: str) -> None:
        status, body = self.epochs.participants_json(which)
        req.handler.send_json(status, body)

    def _ml_nodes_report(self, req: Request) -> None:
        try:
            self.epochs.report(req.json())
        except (ValueError, UnicodeDecodeError, AttributeError) as exc:
            self._error(req, 400, str(exc))
            return
        req.handler.send_json(200, {"ok": True})

    def is_visible(self, address: str) -> bool:
        """Whether GET /v2/participants/<address> would answer 200 now."""
        with self.lock:
            p = self.participants.get(address)
            return p is not None and self._visible(p)

    def height(self) -> int:
        """Current simulated block height."""
        k = self.knobs
        with self.lock:
            if k.chain_halted:
                if self._frozen_height is None:
                    self._frozen_height = self._live_height()
                return self._frozen_height
            self._frozen_height = None
            return self._live_height()

    def _live_height(self) -> int:
        k = self.knobs
        return k.base_height + int((time.monotonic() - self._t0) / max(k.block_time_s, 1e-6))

    def _visible(self, p: Participant) -> bool:
        k = self.knobs
        return not k.hide_registrations and time.monotonic() >= p.registered_at + k.registration_visible_after

    def _account(self, address: str) -> Account | None:
        """The account as a query sees it: one made by a registration shares its visibility."""
        acct = self.accounts.get(address)
        p = self.participants.get(address)
        if acct is not None and p is not None and not self._visible(p):
            return None
        return acct

    # -- HTTP ------------------------------------------------------------------------------------

    def handle(self, req: Request) -> None:
        hit = route(self._routes, req)
        if hit is None:
            self._error(req, 404, "Not Found")  # echo's route miss through TransparentErrorHandler
            return
        fn, groups = hit
        fn(req, *groups)

    def _error(self, req: Request, status: int, message: Any) -> None:
        req.handler.send_json(status, {"error": message})

    def _query_error(self, req: Request, status: int, grpc_code: str, message: str, sdk_error: str) -> None:
        """A chain query error as the API relays it: the keeper's gRPC status wrapped by the SDK's
        ABCI query path (gRPCErrorToSDKError, then back to a status), mapped by grpcErrorToHTTP."""
        self._error(req, status, f"rpc error: code = {grpc_code} desc = {message}: {sdk_error}")

    def _post_participant(self, req: Request) -> None:
        k = self.knobs
        try:
            body = req.json()
        except (ValueError, UnicodeDecodeError) as exc:
            with self.lock:
                self.posts.append(req.body.decode("utf-8", "replace"))
            # ctx.Bind's HTTPError wrapped in another one: its JSON form is {"message": ...}
            self._error(req, 400, {"message": f"Syntax error: offset={getattr(exc, 'pos', 0) + 1}, error={exc}"})
            return
        with self.lock:
            self.posts.append(body)
        if not isinstance(body, dict):
            got = {list: "array", str: "string", int: "number", float: "number", bool: "bool"}.get(type(body), "null")
            if body is not None:
                self._error(req, 400, {"message": "Unmarshal type error: expected=public_entities."
                                                  f"SubmitUnfundedNewParticipantDto, got={got}, field=, offset=1"})
                return
            body = {}
        fields = ("address", "url", "validator_key", "pub_key", "worker_key")
        for name in fields:
            if body.get(name) is not None and not isinstance(body[name], str):
                self._error(req, 400, {"message": "Unmarshal type error: expected=string, got=number, "
                                                  f"field={name}, offset=1"})
                return
        msg = {name: body.get(name) or "" for name in fields}
        if not msg["address"] or not msg["pub_key"]:
            self._error(req, 400, "Address and PubKey are required")
            return
        if k.post_status:
            self._error(req, k.post_status, k.post_message)
            return
        if not k.lose_registrations:
            self._deliver(msg)
        # SendTransactionAsyncNoRetry: broadcast (sync mode) and answer; what the chain does with
        # the message afterwards never reaches the caller
        req.handler.send_body(200, b"", "application/json")

    def _check_basic(self, msg: dict[str, str]) -> str | None:
        """MsgSubmitNewUnfundedParticipant.ValidateBasic (CheckTx): the first problem, or None."""
        try:
            hrp, payload = bech32_decode(msg["address"])
            if hrp != self.hrp or len(payload) != 20:
                raise ValueError(f"invalid Bech32 prefix; expected {self.hrp}, got {hrp}")
        except ValueError as exc:
            return f"invalid address ({exc}): invalid address"
        url = msg["url"].strip()
        if url and self.knobs.reject_private_urls and is_private_url(url):
            return f"url {url} resolves to a private IP address"
        try:
            if len(base64.b64decode(msg["pub_key"], validate=True)) != 33:
                raise ValueError("a compressed secp256k1 key is 33 bytes")
        except ValueError as exc:
            return f"invalid pub key: {exc}: invalid pubkey"
        for name, what in (("validator_key", "validator key"), ("worker_key", "worker key")):
            key = msg[name].strip()
            if not key:
                continue
            try:
                raw = base64.b64decode(key, validate=True)
            except ValueError:
                raw = b""
            if len(raw) != 32:
                return f"invalid {what}: invalid ED25519 public key: expected 32 bytes, got {len(raw)}: invalid pubkey"
        return None

    def _deliver(self, msg: dict[str, str]) -> None:
        """The message on chain: CheckTx, then the msg server (msg_server_submit_new_unfunded_participant.go)."""
        k = self.knobs
        address = msg["address"]
        reason = self._check_basic(msg)
        with self.lock:
            if reason is None and k.registration_closed:
                reason = "registration is closed"
            if reason is None and address in self.accounts:
                reason = "account already exists"
            if reason is None and cold_address(msg["pub_key"], self.hrp) != address:
                reason = "public key does not match address"
            if reason is not None:
                self.failed_txs.append(FailedTx(address, reason))
                return
            self.accounts[address] = Account(address, msg["pub_key"], k.initial_balance)
            self.participants[address] = Participant(
                address=address,
                url=msg["url"],
                validator_key=msg["validator_key"],
                pub_key=msg["pub_key"],
                worker_key=msg["worker_key"],
                registered_at=time.monotonic(),
                join_height=self.height(),
                join_time_ms=int(time.time() * 1000),
            )

    def _get_account(self, req: Request, raw_address: str) -> None:
        """query_inference_participant.go (AccountByAddress) behind get_participants_handler.go."""
        address = unquote(raw_address)
        try:
            hrp, payload = bech32_decode(address)
            if hrp != self.hrp or len(payload) != 20:
                raise ValueError("not an account address")
        except ValueError:
            self._query_error(req, 400, "InvalidArgument", "invalid address", "invalid request")
            return
        with self.lock:
            acct = self._account(address)
            answer = None if acct is None else {"pubkey": acct.pub_key, "balance": acct.balance,
                                                "denom": self.knobs.denom}
        if answer is None:
            self._query_error(req, 404, "NotFound", "account not found", "key not found")
        elif not answer["pubkey"]:
            self._query_error(req, 404, "NotFound", "account has no public key", "key not found")
        else:
            req.handler.send_json(200, answer)

    def _get_participant(self, req: Request, raw_address: str) -> None:
        """query_participant.go (Participant) behind getParticipantByAddress."""
        address = unquote(raw_address)
        with self.lock:
            p = self.participants.get(address)
            body = {"participant": p.as_json()} if p is not None and self._visible(p) else None
        if body is None:
            self._query_error(req, 404, "NotFound", "not found", "key not found")
            return
        req.handler.send_json(200, body)

    def _list_participants(self, req: Request) -> None:
        with self.lock:
            rows = [
                {"id": p.address, "url": p.url, "coins_owed": 0, "refunds_owed": 0,
                 "balance": self.accounts[p.address].balance if p.address in self.accounts else 0,
                 "voting_power": 0, "reputation": 0}
                for p in self.participants.values()
                if self._visible(p)
            ]
        req.handler.send_json(200, {"participants": rows, "block_height": self.height()})

    def _models(self, req: Request) -> None:
        with self.lock:
            models = [dict(m) for m in self.knobs.models]
        req.handler.send_json(200, {"models": models})

    def status_result(self) -> dict[str, Any]:
        """The ``result`` object of CometBFT ``/status`` for the current simulated chain."""
        k = self.knobs
        h = self.height()
        digest = hashlib.sha256(f"{k.network}:{h}".encode()).hexdigest().upper()
        val_key = base64.b64encode(hashlib.sha256(b"sandbox-seed-validator").digest()).decode()
        now = time.strftime("%Y-%m-%dT%H:%M:%S.000000000Z", time.gmtime())
        return {
            "node_info": {
                "protocol_version": {"p2p": "8", "block": "11", "app": "0"},
                "id": hashlib.sha1(b"sandbox-seed-node").hexdigest(),
                "listen_addr": "tcp://0.0.0.0:26656",
                "network": k.network,
                "version": "0.38.17",
                "channels": "40202122233038606100",
                "moniker": "seed",
                "other": {"tx_index": "on", "rpc_address": "tcp://0.0.0.0:26657"},
            },
            "sync_info": {
                "latest_block_hash": digest,
                "latest_app_hash": hashlib.sha256(digest.encode()).hexdigest().upper(),
                "latest_block_height": str(h),
                "latest_block_time": now,
                "earliest_block_hash": hashlib.sha256(b"genesis").hexdigest().upper(),
                "earliest_app_hash": "",
                "earliest_block_height": "1",
                "earliest_block_time": "2025-08-01T00:00:00.000000000Z",
                "catching_up": bool(k.catching_up),
            },
            "validator_info": {
                "address": hashlib.sha256(val_key.encode()).hexdigest()[:40].upper(),
                "pub_key": {"type": "tendermint/PubKeyEd25519", "value": val_key},
                "voting_power": "0",
            },
        }

    def _status(self, req: Request) -> None:
        req.handler.send_json(200, {"jsonrpc": "2.0", "id": -1, "result": self.status_result()})

    def _jsonrpc(self, req: Request) -> None:
        try:
            call = req.json()
        except (ValueError, UnicodeDecodeError):
            call = None
        if not isinstance(call, dict):
            req.handler.send_json(
                200, {"jsonrpc": "2.0", "id": -1, "error": {"code": -32700, "message": "Parse error"}}
            )
            return
        cid = call.get("id", -1)
        if call.get("method") == "status":
            req.handler.send_json(200, {"jsonrpc": "2.0", "id": cid, "result": self.status_result()})
            return
        req.handler.send_json(
            200,
            {"jsonrpc": "2.0", "id": cid, "error": {"code": -32601, "message": "Method not found"}},
        )
