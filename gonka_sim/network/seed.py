"""Simulated Gonka seed node API (runner side): participant registration, governance models, chain RPC.

It speaks the formats the deployer meets on the real network (see the project's Gonka notes):

- ``POST /v1/participants`` with ``{address, url, validator_key, pub_key, worker_key}``: what
  ``inferenced register-new-participant`` sends. The participant's address is derived from
  ``pub_key`` the real way (the simulated chain's own key code, `gonka_sim.server.chainkeys`). Answers 200 with an empty
  body on success, or an error status with ``{"message": ...}`` (echo's error shape).
- ``GET /v1/participants/<address>``: 200 ``{"pubkey", "balance", "denom"}`` once registered
  (and visible), 404 before.
- ``GET /v1/participants``: ``{"participants": [...], "block_height": N}``.
- ``GET /v1/governance/models``: ``{"models": [{"id", "hf_repo", "hf_commit", ...}, ...]}``.
- ``GET /chain-rpc/status`` (and JSON-RPC ``POST /chain-rpc/`` with method ``status``):
  CometBFT-shaped status whose height grows with time.

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
from .httpbase import Knobs, Request, SimServer, route

__all__ = [
    "DEFAULT_MODEL_IDS",
    "SANDBOX_MODEL_ID",
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
    """POST /v1/participants answers 400 "registration is closed"."""
    reject_private_urls: bool = False
    """Reject participant URLs on private/loopback/link-local/CGN addresses (real chains do since
    v0.2.8). Off by default because sandbox hosts live on private 10.200.x.y addresses."""
    post_status: int = 0
    """If non-zero, POST /v1/participants answers this status (and stores nothing)."""
    post_message: str = "simulated seed error"
    registration_visible_after: float = 0.0
    """Seconds after a successful POST before GET /v1/participants/<address> returns 200."""
    hide_registrations: bool = False
    """Registrations are stored (duplicates are refused) but never become visible: the
    "register-new-participant exits 0 but never shows up" case."""
    lose_registrations: bool = False
    """POST answers 200 but stores nothing (a lost transaction): GET stays 404, a retry works."""
    initial_balance: int = 0
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
class Participant:
    """A registered participant as the simulated chain stores it."""

    address: str
    url: str
    validator_key: str
    pub_key: str
    worker_key: str
    registered_at: float
    """time.monotonic() of the accepted POST."""
    balance: int = 0


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
      ``participants``: dict address -> :class:`Participant`;
      ``posts``: list of every POST /v1/participants body (parsed JSON, or the raw text if not JSON),
      in arrival order, accepted or not;
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
            ("GET", r"/v1/participants/([^/]+)/?", self._get_participant),
            ("GET", r"/v1/governance/models/?", self._models),
            ("GET", r"/chain-rpc/status/?", self._status),
            ("POST", r"/chain-rpc/?", self._jsonrpc),
        ]

    def _reset_state(self) -> None:
        self.participants: dict[str, Participant] = {}
        self.posts: list[Any] = []
        self._t0 = time.monotonic()
        self._frozen_height: int | None = None

    # -- Python-side helpers for tests -----------------------------------------------------------

    def register(self, pub_key: str, url: str = "http://203.0.113.10:8000", **fields: str) -> Participant:
        """Store a participant directly (as if registered earlier); returns it."""
        address = cold_address(pub_key, self.hrp)
        p = Participant(
            address=address,
            url=url,
            validator_key=fields.get("validator_key", ""),
            pub_key=pub_key,
            worker_key=fields.get("worker_key", ""),
            registered_at=time.monotonic() - self.knobs.registration_visible_after,
            balance=self.knobs.initial_balance,
        )
        with self.lock:
            self.participants[address] = p
        return p

    def is_visible(self, address: str) -> bool:
        """Whether GET /v1/participants/<address> would answer 200 now."""
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

    # -- HTTP ------------------------------------------------------------------------------------

    def handle(self, req: Request) -> None:
        hit = route(self._routes, req)
        if hit is None:
            req.handler.send_json(404, {"message": "Not Found"})
            return
        fn, groups = hit
        fn(req, *groups)

    def _error(self, req: Request, status: int, message: str) -> None:
        req.handler.send_json(status, {"message": message})

    def _post_participant(self, req: Request) -> None:
        k = self.knobs
        try:
            body = req.json()
        except (ValueError, UnicodeDecodeError):
            with self.lock:
                self.posts.append(req.body.decode("utf-8", "replace"))
            self._error(req, 400, "Invalid request body")
            return
        with self.lock:
            self.posts.append(body)
        if not isinstance(body, dict):
            self._error(req, 400, "Invalid request body")
            return
        if k.post_status:
            self._error(req, k.post_status, k.post_message)
            return
        if k.registration_closed:
            self._error(req, 400, "registration is closed")
            return
        pub_key = body.get("pub_key") or ""
        if not pub_key:
            self._error(req, 400, "Address and PubKey are required")
            return
        try:
            address = cold_address(pub_key, self.hrp)
            if len(base64.b64decode(pub_key, validate=True)) != 33:  # strict where upstream is not known
                raise ValueError("a compressed secp256k1 key is 33 bytes")
        except ValueError as exc:
            self._error(req, 400, f"invalid pub_key: {exc}")
            return
        given = body.get("address") or ""
        if given and given != address:
            self._error(req, 400, f"address {given} does not match pub_key (derived {address})")
            return
        url = body.get("url") or ""
        if not url:
            self._error(req, 400, "url is required")
            return
        if k.reject_private_urls and is_private_url(url):
            self._error(req, 400, f"invalid url {url!r}: resolves to a private IP")
            return
        with self.lock:
            if address in self.participants:
                self._error(req, 400, f"account already exists: {address}")
                return
            if not k.lose_registrations:
                self.participants[address] = Participant(
                    address=address,
                    url=url,
                    validator_key=str(body.get("validator_key") or ""),
                    pub_key=pub_key,
                    worker_key=str(body.get("worker_key") or ""),
                    registered_at=time.monotonic(),
                    balance=k.initial_balance,
                )
        # The real API answers 200 with no content.
        req.handler.send_body(200, b"", "application/json")

    def _get_participant(self, req: Request, raw_address: str) -> None:
        address = unquote(raw_address)
        try:
            hrp, payload = bech32_decode(address)
            if hrp != self.hrp or len(payload) != 20:
                raise ValueError(f"not a {self.hrp} account address")
        except ValueError as exc:
            self._error(req, 400, f"invalid address: {exc}")
            return
        with self.lock:
            p = self.participants.get(address)
            visible = p is not None and self._visible(p)
        if not visible:
            self._error(req, 404, "account not found")
            return
        req.handler.send_json(200, {"pubkey": p.pub_key, "balance": p.balance, "denom": self.knobs.denom})

    def _list_participants(self, req: Request) -> None:
        with self.lock:
            rows = [
                {"id": p.address, "url": p.url, "balance": p.balance, "status": "ACTIVE"}
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
