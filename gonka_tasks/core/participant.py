"""The cold key's two records at the seed, read the way upstream's API serves them.

Upstream's public API (decentralized-api/internal/server/public/server.go, v0.2.13) answers
`GET /v1/participants/<address>` with the ACCOUNT (`{pubkey, balance, denom}`, any funded address
that has signed) and `GET /v2/participants/<address>` with the PARTICIPANT (`{"participant":
{address, inference_url, status, ...}}`). Registration is confirmed on the second; the first only
gives the cold account's balance. Errors come as `{"error": ...}`.

The parsers and texts here are pure; `lookup_*` make the HTTP calls.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

NGONKA_PER_GNK = 1_000_000_000
FEE_ALLOWANCE_NGONKA = 10 * NGONKA_PER_GNK
"""The fee allowance grant-ml-ops-permissions gives the warm key on the cold account since v0.2.12
(inference-chain/x/inference/module/commands.go: "The default fee allowance is 10 GNK")."""
DOCS_COLD_BALANCE_GNK = 100
"""What the v0.2.12 release notes ask the cold account to hold (gonka-docs network-updates.md)."""
DEFAULT_CHAIN_ID = "gonka-mainnet"
"""The chain id of upstream's node init script (inference-chain/scripts/init-docker.sh, CHAIN_ID)."""
STATUS_NAMES = {0: "UNSPECIFIED", 1: "ACTIVE", 2: "INACTIVE", 3: "INVALID", 4: "RAMPING", 5: "UNCONFIRMED"}


@dataclass(frozen=True)
class Participant:
    """The participant record (inference module) of an address."""

    address: str
    inference_url: str
    status: str
    """ParticipantStatus by name (the API writes the enum's number)."""


@dataclass(frozen=True)
class Account:
    """The cold account as `/v1/participants/<address>` tells it."""

    state: str
    """"present" (200), "no_pubkey" (exists, never signed: 404 with that message), "absent",
    or "unknown" (any other answer)."""
    balance: int | None = None
    denom: str = "ngonka"
    detail: str = ""

    @property
    def exists(self) -> bool:
        return self.state in ("present", "no_pubkey")


def error_text(body: object) -> str:
    """The message of an API error body: upstream's `{"error": ...}` (a string, or an echo error
    object with `message`), or an older `{"message": ...}`."""
    if not isinstance(body, dict):
        return ""
    value = body.get("error", body.get("message"))
    if isinstance(value, dict):
        value = value.get("message", "")
    return str(value or "")


def parse_participant(status: int, body: object) -> Participant | None:
    """The participant from a `/v2/participants/<address>` answer; None for a 404.

    Anything else but a 200 with a participant is a ValueError saying what came back."""
    if status == 404:
        return None
    part = body.get("participant") if isinstance(body, dict) else None
    if status != 200 or not isinstance(part, dict) or not part.get("address"):
        raise ValueError(f"HTTP {status}{': ' + error_text(body) if error_text(body) else ''}")
    raw = part.get("status", 0)
    name = STATUS_NAMES.get(raw, str(raw)) if isinstance(raw, int) else str(raw)
    url = part.get("inference_url", part.get("inferenceUrl", ""))
    return Participant(str(part["address"]), str(url or ""), name)


def parse_account(status: int, body: object) -> Account:
    """The cold account from a `/v1/participants/<address>` (or `/v2/accounts`) answer."""
    if status == 200 and isinstance(body, dict) and isinstance(body.get("balance"), int):
        return Account("present", body["balance"], str(body.get("denom") or "ngonka"))
    message = error_text(body)
    if status == 404 and "no public key" in message:
        return Account("no_pubkey", detail=message)
    if status == 404:
        return Account("absent", detail=message)
    return Account("unknown", detail=f"HTTP {status}{': ' + message if message else ''}")


def same_url(a: str, b: str) -> bool:
    """URLs equal but for a trailing slash (nothing else is normalised: the chain stores the text)."""
    return a.rstrip("/") == b.rstrip("/")


def gnk(ngonka: int) -> str:
    """ngonka as GNK, exact: 1500000000 -> '1.5'."""
    text = format(Decimal(ngonka) / NGONKA_PER_GNK, "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


def balance_text(account: Account) -> str:
    if account.balance is None:
        return "unknown"
    return f"{account.balance} {account.denom} ({gnk(account.balance)} GNK)" if account.denom == "ngonka" \
        else f"{account.balance} {account.denom}"


def submit_participant_command(cfg, consensus_key: str | None, chain_id: str) -> str:
    """`tx inference submit-new-participant` run with the cold key: it registers a participant, or
    changes an existing one's URL, validator key and worker key (msg_server_submit_new_participant.go;
    CLI in x/inference/module/autocli.go; flags as in the host docs' quickstart and FAQ)."""
    cold = cfg["COLD_KEY_NAME"]
    key = consensus_key or "<CONSENSUS_KEY: the node's validator key, `curl localhost:26657/status` in the node>"
    return (f"./inferenced tx inference submit-new-participant {cfg['PUBLIC_URL']} \\\n"
            f"    --validator-key {key} \\\n"
            f"    --from {cold} --keyring-backend file --unordered --timeout-duration 1m \\\n"
            f"    --node {cfg.seed_api_url}/chain-rpc/ --chain-id {chain_id}")


def participant_url(cfg) -> str:
    return f"{cfg.seed_api_url}/v2/participants/{cfg.cold_address}"


def account_url(cfg) -> str:
    return f"{cfg.seed_api_url}/v1/participants/{cfg.cold_address}"
