"""The two kinds of node config: a network node (chain + API, maybe its own ML node) and an ML-node
server (`NODE_KIND=mlnode`: only `docker-compose.mlnode.yml`, registered with its network node).

Pure: which keys each kind needs, which it refuses or ignores, and the values an ML-node server
derives from its config file's name. Follows gonka-docs `host/multiple-nodes.md`.
"""

from __future__ import annotations

import ipaddress
import re

NETWORK, MLNODE = "network", "mlnode"
KINDS = (NETWORK, MLNODE)
# required on a network node only: an ML-node server holds no key and registers nothing on chain
NETWORK_REQUIRED = frozenset({"KEY_NAME", "KEYRING_PASSWORD", "ACCOUNT_PUBKEY"})
# an ML-node server must not carry the network node's secrets (they would sit in a second place)
MLNODE_REFUSED = ("KEYRING_PASSWORD", "ACCOUNT_PUBKEY")
# chain and API settings that do nothing on an ML-node server: a warning names them
MLNODE_IGNORED = ("KEY_NAME", "COLD_KEY_NAME", "PUBLIC_URL", "P2P_EXTERNAL_ADDRESS", "API_PORT", "API_SSL_PORT",
                  "P2P_PORT", "SEED_NODE_RPC_URL", "SEED_NODE_P2P_URL", "RPC_SERVER_URL_1", "RPC_SERVER_URL_2",
                  "PERSISTENT_PEERS", "PRUNING_KEEP_RECENT", "PRUNING_INTERVAL", "RPC_TIMEOUT",
                  "REGISTRATION_TIMEOUT", "CHAIN_DATA_GB", "ML_NODE_HOST", "ML_INFERENCE_PORT", "ML_POC_PORT",
                  "INTERNAL_BIND_ADDRESS")
_IMAGE = re.compile(r"^[a-z0-9][a-z0-9._/:-]*(?:@sha256:[0-9a-f]{64})?$")


def kind_of(values: dict[str, str]) -> str:
    return (values.get("NODE_KIND") or NETWORK).strip().lower()


def node_id_from_name(stem: str) -> str:
    """An ML node id from a config file name (`gpu-2.conf` -> `gpu-2`): letters, digits, . _ - only."""
    out = re.sub(r"[^A-Za-z0-9_.-]+", "-", stem).strip("-.") or "mlnode"
    return out if out[0].isalnum() else f"n{out}"


def apply_kind(raw: dict[str, str], values: dict[str, str], stem: str) -> tuple[dict[str, str], list[str]]:
    """The defaulted values of an ML-node config completed from its name; warnings for ignored keys.

    KEY_NAME (the folder of its artefacts and logs) and ML_NODE_ID default to the file's name; its ML
    ports are published on PRIVATE_IP (INTERNAL_BIND_ADDRESS), never on every interface."""
    if kind_of(values) != MLNODE:
        return values, []
    out = dict(values)
    name = node_id_from_name(stem)
    out["KEY_NAME"] = name
    if not (raw.get("ML_NODE_ID") or "").strip():
        out["ML_NODE_ID"] = name
    if out.get("PRIVATE_IP"):
        out["INTERNAL_BIND_ADDRESS"] = out["PRIVATE_IP"]
    ignored = [k for k in MLNODE_IGNORED if (raw.get(k) or "").strip()]
    warnings = [f"{', '.join(ignored)}: not used on an ML-node server (NODE_KIND=mlnode); "
                f"remove {'them' if len(ignored) > 1 else 'it'} from the config"] if ignored else []
    return out, warnings


def is_private_ip(v: str) -> bool:
    try:
        ip = ipaddress.ip_address(v)
    except ValueError:
        return False
    return ip.is_private and not (ip.is_loopback or ip.is_link_local or ip.is_unspecified)


def kind_problems(raw: dict[str, str], values: dict[str, str]) -> list[str]:
    """`KEY: what is wrong` lines about NODE_KIND and the keys that depend on it (no secret shown)."""
    problems: list[str] = []
    kind = kind_of(values)
    if kind not in KINDS:
        return [f"NODE_KIND: must be {' or '.join(KINDS)} (got '{values.get('NODE_KIND', '')[:40]}')"]
    pip = values.get("PRIVATE_IP", "")
    if pip and not is_private_ip(pip):
        problems.append(f"PRIVATE_IP: must be this server's address on the private network (10.x, 172.16-31.x, "
                        f"192.168.x, fc00::/7), not a public, loopback or link-local one (got '{pip[:60]}')")
    image = values.get("MLNODE_IMAGE", "")
    if image and not _IMAGE.match(image):
        problems.append(f"MLNODE_IMAGE: not an image reference like ghcr.io/gonka-ai/mlnode:3.0.14 (got '{image[:80]}')")
    if kind == NETWORK:
        if values.get("NETWORK_NODE"):
            problems.append("NETWORK_NODE: only for an ML-node server; set NODE_KIND=mlnode or remove NETWORK_NODE")
        return problems
    if not values.get("NETWORK_NODE", "").strip():
        problems.append("NETWORK_NODE: required for NODE_KIND=mlnode: the network node's config (a name such as "
                        "node1, or a path)")
    if not pip:
        problems.append("PRIVATE_IP: required for NODE_KIND=mlnode: the address at which the network node reaches "
                        "this server on the private network")
    for k in MLNODE_REFUSED:
        if (raw.get(k) or "").strip():
            problems.append(f"{k}: an ML-node server holds no keys; remove {k} from this config (it belongs in the "
                            "network node's config only)")
    return problems
