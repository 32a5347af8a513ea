"""The seed API, asked from this machine: the participant and the cold account, the chain id, the
governance models. Each answer is parsed by the pure `core.participant`; HTTP goes through
`httpclient` (bounded retries, 429 honoured, errors naming the endpoint).

Upstream's public API (decentralized-api/internal/server/public/server.go, v0.2.13): `/v2/participants/<a>`
is the participant, `/v1/participants/<a>` the account, `/v1/governance/models` the approved models,
`/chain-rpc/status` the chain node's RPC status.
"""

from __future__ import annotations

from gonka_tasks.config import NodeConfig
from gonka_tasks.connectors.httpclient import HttpError, get_json, request
from gonka_tasks.core.participant import (
    DEFAULT_CHAIN_ID,
    Account,
    Participant,
    account_url,
    parse_account,
    parse_participant,
    participant_url,
)
from gonka_tasks.core.report import AfterJoin


def lookup_participant(cfg, attempts: int = 4) -> Participant | None:
    """The cold address's participant at the seed, None when it is not one (HttpError when the seed
    cannot be asked, ValueError for an answer that is neither)."""
    r = request(participant_url(cfg), attempts=attempts, what="participant lookup at the seed")
    return parse_participant(r.status, r.json())


def lookup_account(cfg, attempts: int = 3) -> Account:
    """The cold account at the seed (HttpError when the seed cannot be asked)."""
    r = request(account_url(cfg), attempts=attempts, what="cold account lookup at the seed")
    return parse_account(r.status, r.json())


def seed_chain_id(cfg, attempts: int = 1) -> str:
    """The chain id the seed's RPC reports (what grant-ml-ops-permissions detects), else the default."""
    try:
        r = request(f"{cfg.seed_api_url}/chain-rpc/status", attempts=attempts, timeout=5, what="seed chain id")
        data = r.json() if r.status == 200 else None
        if isinstance(data, dict) and isinstance(data.get("result"), dict):
            data = data["result"]
        network = (data.get("node_info") or {}).get("network") if isinstance(data, dict) else None
    except Exception:  # noqa: BLE001 - a report detail; the default is upstream's own chain id
        network = None
    return str(network) if network else DEFAULT_CHAIN_ID


def governance_models(cfg: NodeConfig, attempts: int = 3, timeout: float | None = None) -> tuple[int, object]:
    """(HTTP status, body) of the seed's governance models (HttpError when the seed cannot be asked)."""
    kw = {"timeout": timeout} if timeout else {}
    return get_json(f"{cfg.seed_api_url}/v1/governance/models", attempts=attempts, what="approved models", **kw)


def model_ids(status: int, data: object) -> list[str] | None:
    """The governance models' ids from the seed's answer; None when it holds no model list."""
    if status != 200 or not isinstance(data, dict) or not isinstance(data.get("models"), list):
        return None
    return [str(m["id"]) for m in data["models"] if isinstance(m, dict) and m.get("id")]


def after_join(cfg: NodeConfig) -> AfterJoin:
    """Ask the seed for the chain id, the cold account and the governance models (one try each:
    the report is written on failures too, when the seed may be what failed)."""
    out = AfterJoin(chain_id=seed_chain_id(cfg))
    try:
        out.account = lookup_account(cfg, attempts=1)
    except HttpError:
        out.account = None
    try:
        out.models = model_ids(*governance_models(cfg, attempts=1, timeout=5)) or []
    except HttpError:
        out.models = []
    return out
