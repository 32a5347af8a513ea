"""The chain node's RPC `/status`: network, height, catching up, validator key."""

from __future__ import annotations

from dataclasses import dataclass

from gonka_tasks.facts.base import FactError, load_json

# the node's RPC, asked inside its container (26657 is not published to the host)
RPC_STATUS_PROBE = "docker exec node wget -qO- -T 5 http://localhost:26657/status"


@dataclass
class RpcStatus:
    network: str
    height: int
    catching_up: bool
    validator_pubkey: str


def parse_rpc_status(text: str) -> RpcStatus:
    """CometBFT `/status` JSON (with or without the JSON-RPC `result` envelope)."""
    data = load_json(text, "RPC status")
    if isinstance(data, dict) and isinstance(data.get("result"), dict):
        data = data["result"]
    if not isinstance(data, dict):
        raise FactError("RPC status: not an object")
    sync = data.get("sync_info")
    if not isinstance(sync, dict):
        raise FactError("RPC status: no sync_info")
    try:
        height = int(str(sync.get("latest_block_height", "0")))
    except ValueError:
        raise FactError("RPC status: latest_block_height is not a number") from None
    vinfo = data.get("validator_info") if isinstance(data.get("validator_info"), dict) else {}
    pub = vinfo.get("pub_key") if isinstance(vinfo.get("pub_key"), dict) else {}
    ninfo = data.get("node_info") if isinstance(data.get("node_info"), dict) else {}
    catching = sync.get("catching_up", False)
    return RpcStatus(network=str(ninfo.get("network", "")), height=height,
                     catching_up=catching is True or str(catching).lower() == "true",
                     validator_pubkey=str(pub.get("value", "") or ""))
