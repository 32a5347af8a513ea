"""ML nodes of a network node, pure: the registration body, the admin API's answers parsed, the
epoch and its participants, and the decisions taken from them (register, update, wait, leave).

Shapes from decentralized-api v0.2.13: `apiconfig.InferenceNodeConfig` (the body of POST/PUT
`/admin/v1/nodes`), `GET /admin/v1/nodes` -> `[{"node": {...}, "state": {...}}]` (broker.go
NodeState: `current_status`, `intended_status`, `poc_current_status`, `admin_state:{enabled,epoch}`),
`GET /v1/epochs/latest` (`latest_epoch.index`, `phase`), `GET /v1/epochs/current/participants`
(`active_participants.participants[].{index, ml_nodes[].ml_nodes[].node_id}`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gonka_tasks.config import resolve_node_path
from gonka_tasks.errors import DeployError

INFERENCE_PHASE = "Inference"  # inference-chain types/epoch_params.go: the phase outside PoC
POC_STATES = {"POC"}
POC_ACTIVE = {"GENERATING", "VALIDATING"}


def registration(ml_cfg, args: list[str], hardware: list[dict] | None = None) -> dict:
    """The body of POST /admin/v1/nodes for an ML-node server: reached at its PRIVATE_IP, inference on
    INFERENCE_PORT (nginx 5000), PoC/management on PORT (8080), as docs host/multiple-nodes show."""
    body = {"id": ml_cfg["ML_NODE_ID"], "host": ml_cfg["PRIVATE_IP"],
            "inference_port": int(ml_cfg["INFERENCE_PORT"]), "poc_port": int(ml_cfg["PORT"]),
            "max_concurrent": int(ml_cfg["MAX_CONCURRENT"]), "models": {ml_cfg["MODEL"]: {"args": list(args)}}}
    if hardware:
        body["hardware"] = list(hardware)
    return body


@dataclass(frozen=True)
class Registered:
    """One entry of GET /admin/v1/nodes."""

    id: str
    host: str
    inference_port: int
    poc_port: int
    max_concurrent: int
    models: dict[str, list[str]]
    enabled: bool = True
    disabled_epoch: int | None = None  # admin_state.epoch: the epoch the last enable/disable was in
    current_status: str = ""
    intended_status: str = ""
    poc_status: str = ""
    failure_reason: str = ""
    extra: dict = field(default_factory=dict, compare=False)


def _int(v: Any, default: int = 0) -> int:
    return v if isinstance(v, int) and not isinstance(v, bool) else default


def parse_nodes(data: Any) -> list[Registered]:
    """GET /admin/v1/nodes' JSON -> entries; DeployError when it is not the list upstream returns."""
    if not isinstance(data, list):
        raise DeployError(f"the admin API's node list is not a JSON list (got {type(data).__name__})",
                          "check the network node's api version (v0.2.13 answers a list)")
    out = []
    for item in data:
        node = item.get("node") if isinstance(item, dict) else None
        if not isinstance(node, dict) or not isinstance(node.get("id"), str):
            continue
        state = item.get("state") if isinstance(item.get("state"), dict) else {}
        admin = state.get("admin_state") if isinstance(state.get("admin_state"), dict) else {}
        models = {}
        for mid, spec in (node.get("models") or {}).items() if isinstance(node.get("models"), dict) else []:
            args = spec.get("args") if isinstance(spec, dict) else None
            models[str(mid)] = [str(a) for a in args] if isinstance(args, list) else []
        out.append(Registered(
            id=node["id"], host=str(node.get("host") or ""), inference_port=_int(node.get("inference_port")),
            poc_port=_int(node.get("poc_port")), max_concurrent=_int(node.get("max_concurrent")), models=models,
            enabled=admin.get("enabled") is not False,
            disabled_epoch=_int(admin.get("epoch"), -1) if "epoch" in admin else None,
            current_status=str(state.get("current_status") or ""), intended_status=str(state.get("intended_status") or ""),
            poc_status=str(state.get("poc_current_status") or ""), failure_reason=str(state.get("failure_reason") or "")))
    return out


def find(nodes: list[Registered], node_id: str) -> Registered | None:
    return next((n for n in nodes if n.id == node_id), None)


def differences(want: dict, got: Registered) -> list[str]:
    """What the registered node has otherwise than `registration()` says (empty: nothing to do)."""
    out = []
    for key, have in (("host", got.host), ("inference_port", got.inference_port), ("poc_port", got.poc_port),
                      ("max_concurrent", got.max_concurrent)):
        if want[key] != have:
            out.append(f"{key} {have!r} -> {want[key]!r}")
    wmodels = {m: list(s.get("args") or []) for m, s in want["models"].items()}
    if wmodels != got.models:
        out.append(f"models {got.models} -> {wmodels}")
    return out


def only_model_changes(diffs: list[str]) -> bool:
    return bool(diffs) and all(d.startswith("models ") for d in diffs)


@dataclass(frozen=True)
class Epoch:
    index: int
    phase: str
    block_height: int = 0


def parse_epoch(data: Any) -> Epoch:
    """GET /v1/epochs/latest -> Epoch; DeployError on another shape."""
    latest = data.get("latest_epoch") if isinstance(data, dict) else None
    if not isinstance(latest, dict) or not isinstance(data.get("phase"), str):
        raise DeployError("the network node's /v1/epochs/latest answer has no latest_epoch/phase",
                          "check the network node's api version (v0.2.13 answers them)")
    return Epoch(_int(latest.get("index")), data["phase"], _int(data.get("block_height")))


def poc_reason(epoch: Epoch, node: Registered | None) -> str:
    """Why a node's model cannot change now (its PoC timeslot), or "" when it can.

    Conservative: a PoC phase of the epoch, or the node itself in PoC, both count."""
    if epoch.phase != INFERENCE_PHASE:
        return f"the epoch {epoch.index} is in its {epoch.phase} phase"
    if node is not None and (node.current_status in POC_STATES or node.intended_status in POC_STATES
                             or node.poc_status in POC_ACTIVE):
        return (f"ML node {node.id} is in PoC (status {node.current_status or '?'}, "
                f"PoC {node.poc_status or '?'})")
    return ""


def node_in_epoch(data: Any, participant: str, node_id: str) -> bool | None:
    """Whether the epoch's participants list `node_id` under `participant` (None: the participant is
    not among them, or the answer has no participants)."""
    active = data.get("active_participants") if isinstance(data, dict) else None
    parts = active.get("participants") if isinstance(active, dict) else None
    if not isinstance(parts, list):
        return None
    me = next((p for p in parts if isinstance(p, dict) and p.get("index") == participant), None)
    if me is None:
        return None
    for group in me.get("ml_nodes") or []:
        for n in (group.get("ml_nodes") or []) if isinstance(group, dict) else []:
            if isinstance(n, dict) and n.get("node_id") == node_id:
                return True
    return False


# ---------------------------------------------------------------------------------- configs
def network_path_of(ml_cfg) -> Path:
    """The network node config an ML-node config names (NETWORK_NODE: a bare name or a path)."""
    return resolve_node_path(ml_cfg["NETWORK_NODE"], ml_cfg.project_dir / "nodes")


def same_file(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve()
    except OSError:
        return False


def health_word(code_and_body: str) -> str:
    """`<status>\\n<body>` of the ML node's /health (mlnode health.py) -> healthy | unhealthy | unreachable."""
    status, _, body = (code_and_body or "").partition("\n")
    if status.strip() == "200" and '"healthy"' in body:
        return "healthy"
    if status.strip() in ("", "000"):
        return "unreachable"
    return f"unhealthy (HTTP {status.strip()})"


TABLE_COLUMNS = ("id", "host", "ports", "models", "enabled", "status", "PoC", "health", "config")


def table_rows(nodes: list[Registered], health: dict[str, str], configs: dict[str, str]) -> list[tuple[str, ...]]:
    """One row per registered node, then the configured ML nodes the API does not list."""
    rows = []
    for n in nodes:
        status = n.current_status + (f" ({n.failure_reason[:60]})" if n.failure_reason else "")
        enabled = "yes" if n.enabled else f"no (since epoch {n.disabled_epoch})"
        rows.append((n.id, n.host, f"{n.inference_port}/{n.poc_port}", ", ".join(n.models) or "-", enabled,
                     status or "-", n.poc_status or "-", health.get(n.id, "-"), configs.get(n.id, "-")))
    listed = {n.id for n in nodes}
    for nid, conf in sorted(configs.items()):
        if nid not in listed:
            rows.append((nid, "-", "-", "-", "-", "NOT REGISTERED", "-", health.get(nid, "-"), conf))
    return rows
