"""The deployer's edits of files that git tracks in the gonka checkout, and how they survive a release change.

Two kinds of edits land in tracked files of `deploy/join`: the port bindings of the compose files
(internal ports on INTERNAL_BIND_ADDRESS, the admin port on loopback, the node's P2P port at
P2P_PORT) and node-config.json. Git refuses `checkout <next release>` over them, so every such write
is recorded on the server (`<state_dir>/tracked-writes.sha256`: the sha256 of what was written, per
path). Before a checkout, a modified tracked file is restored only when its content is exactly what
the deployer wrote (its recorded hash, or re-derivable from the committed file); anything else is
the operator's edit and stops the update, naming the files.
"""

from __future__ import annotations

import hashlib
import posixpath
import shlex

from gonka_tasks.core import render
from gonka_tasks.core.ports import bind_internal_ports, misbound_mappings, p2p_mismatches, publish_p2p

INTERNAL_FIXED = (9100, 9200)
ADMIN_PORTS = frozenset({9200})  # the admin API stays on loopback whatever INTERNAL_BIND_ADDRESS says
JOIN_REL = "deploy/join"
RECORD_NAME = "tracked-writes.sha256"


def internal_ports(cfg) -> set[int]:
    """Host ports that must not be open to the internet: ML node (PORT, INFERENCE_PORT), 9100, 9200."""
    return {int(cfg["PORT"]), int(cfg["INFERENCE_PORT"]), *INTERNAL_FIXED}


def binds_internal(cfg) -> bool:
    """False when INTERNAL_BIND_ADDRESS asks for every interface (the operator's explicit choice)."""
    return cfg["INTERNAL_BIND_ADDRESS"] not in ("0.0.0.0", "::")


CALLBACK_PORT = 9100  # the api's ML server: PoC batches from the ML nodes


def own_addresses(cfg) -> dict[int, str]:
    """Internal ports with an address of their own: a network node with a PRIVATE_IP takes its ML
    nodes' PoC callbacks (9100) on that address only (docs host/multiple-nodes)."""
    try:
        private, kind = cfg["PRIVATE_IP"], cfg["NODE_KIND"]
    except KeyError:
        return {}
    return {CALLBACK_PORT: private} if private and kind != "mlnode" else {}


def bound_text(cfg, text: str) -> str:
    """A compose file's text with every binding the deployer keeps applied."""
    env = render.config_env_values(cfg)
    if binds_internal(cfg):
        text = bind_internal_ports(text, internal_ports(cfg), cfg["INTERNAL_BIND_ADDRESS"], env, ADMIN_PORTS,
                                   own_addresses(cfg))
    return publish_p2p(text, int(cfg["P2P_PORT"]), env)


def binding_problems(cfg, text: str) -> list[str]:
    """Mappings of a compose file that differ from `bound_text`: misbound internal ports, another P2P port."""
    env = render.config_env_values(cfg)
    wrong = []
    if binds_internal(cfg):
        wrong += misbound_mappings(text, internal_ports(cfg), cfg["INTERNAL_BIND_ADDRESS"], env, ADMIN_PORTS,
                                   own_addresses(cfg))
    return wrong + p2p_mismatches(text, int(cfg["P2P_PORT"]), env)


# ------------------------------------------------------------------------- the record

def sha256(content: str | bytes) -> str:
    return hashlib.sha256(content.encode() if isinstance(content, str) else content).hexdigest()


def record_path(cfg) -> str:
    return f"{cfg.state_dir}/{RECORD_NAME}"


def relpath(cfg, path: str) -> str:
    """A server path as git names it in the checkout (deploy/join/docker-compose.yml)."""
    return posixpath.relpath(path, cfg.gonka_dir)


def record_command(cfg, path: str, content: str | bytes) -> str:
    """Shell command that records `content` as what the deployer wrote to `path` (one line per path)."""
    rec, rel = shlex.quote(record_path(cfg)), relpath(cfg, path)
    line = shlex.quote(f"{sha256(content)}  {rel}")
    keep_others = "{ f = $0; sub(/^[0-9a-f]+  /, \"\", f); if (f != p) print }"
    return (f"mkdir -p {shlex.quote(cfg.state_dir)} && touch {rec} && "
            f"{{ awk -v p={shlex.quote(rel)} {shlex.quote(keep_others)} {rec}; echo {line}; }} > {rec}.tmp && "
            f"mv -f {rec}.tmp {rec}")


def parse_record(text: str) -> dict[str, set[str]]:
    """path -> the hashes recorded for it (`<sha256>  <path>` lines; anything else is skipped)."""
    out: dict[str, set[str]] = {}
    for ln in text.splitlines():
        sha, sep, path = ln.partition("  ")
        if sep and len(sha) == 64 and path:
            out.setdefault(path, set()).add(sha)
    return out


def classify(dirty: list[str], current: dict[str, str], record: dict[str, set[str]],
             derivable: set[str]) -> tuple[list[str], list[str]]:
    """(ours, theirs) of the modified tracked files: ours when the current sha256 is one the deployer
    recorded for that path, or the content is re-derivable (`derivable`); the rest is the operator's."""
    ours, theirs = [], []
    for path in dirty:
        sha = current.get(path, "")
        (ours if (sha and sha in record.get(path, set())) or path in derivable else theirs).append(path)
    return ours, theirs
