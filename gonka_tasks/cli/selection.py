"""Which node configs a task runs on: --node, --nodes, `fab -H`, and the kind of each.

Read from the config files before any of them is loaded: `fab -H host` picks the configs whose
SERVER_IP or SSH_HOST is that host; `--nodes` over a fleet splits network nodes from ML-node servers.
"""

from __future__ import annotations

import glob
from collections.abc import Iterable
from pathlib import Path

from dotenv import dotenv_values
from fabric import Connection

from gonka_tasks.config import resolve_node_path
from gonka_tasks.errors import DeployError
from gonka_tasks.session.target import parse_host_string


def host_string(c) -> str | None:
    """What `fab -H` said for this call (None when the task runs without -H)."""
    return getattr(c, "original_host", None) if isinstance(c, Connection) else None


def project_dir(c) -> Path:
    """The project this task runs from: where fab found its fabfile/tasks (`fab -r DIR`), else the cwd.
    Its nodes/ and logs/ hold every node's artefacts and logs."""
    prefix = getattr(c.config, "_project_prefix", None)  # set by invoke from the loaded collection's place
    return Path(prefix) if prefix else Path.cwd()


def peek(path: str, project: Path) -> dict[str, str]:
    """A node config's raw values, as written (no defaults, no validation); {} when unreadable."""
    try:
        values = dotenv_values(resolve_node_path(path, project / "nodes"), interpolate=False)
    except (OSError, UnicodeDecodeError):
        return {}
    return {k: v for k, v in values.items() if v is not None}


def _server_names(path: str, project: Path) -> set[str]:
    """SERVER_IP and SSH_HOST of a node config (what `fab -H` may name it by)."""
    values = peek(path, project)
    return {v.strip() for v in (values.get("SERVER_IP"), values.get("SSH_HOST")) if v and v.strip()}


def nodes_for_host(host: str, candidates: list[str] | None = None, project: Path | None = None) -> list[str]:
    """The node configs (default: the project's nodes/*.conf) whose SERVER_IP or SSH_HOST is the `fab -H` host."""
    _, name, _ = parse_host_string(host)
    project = project or Path.cwd()
    if candidates is None:
        candidates = [p for p in sorted(glob.glob(str(project / "nodes" / "*.conf"))) if not p.endswith("example.conf")]
    return [p for p in candidates if name in _server_names(p, project)]


def node_paths(node: Iterable[str] | None, nodes: str | None, host: str | None = None,
               project: Path | None = None) -> list[str]:
    """--node values plus the --nodes glob, in order, without repeats; with only `-H`, the matching configs."""
    out: list[str] = list(node or [])
    if host and not out and not nodes:
        out = nodes_for_host(host, project=project)
        if not out:
            raise DeployError(f"no node config in nodes/ has SERVER_IP or SSH_HOST {host}; give --node")
        if len(out) > 1:
            raise DeployError(f"-H {host} matches several node configs: {', '.join(out)}",
                              "name the one to use with --node")
        return out
    if nodes:
        matched = sorted(glob.glob(nodes))
        matched = [m for m in matched if not m.endswith("example.conf")]
        if not matched:
            raise DeployError(f"--nodes {nodes!r} matches no file")
        out += matched
    seen: set[str] = set()
    out = [p for p in out if not (p in seen or seen.add(p))]
    if host and len(out) > 1:
        # `fab -H a,b task --node A --node B` calls the task once per host: each call takes its own node
        out = nodes_for_host(host, out, project) or out
    return out


def kinds(paths: list[str], project: Path) -> tuple[list[str], list[str]]:
    """(network node configs, ML-node configs) of `paths`, each in order (NODE_KIND as written)."""
    net, ml = [], []
    for p in paths:
        kind = peek(p, project).get("NODE_KIND") or ""
        (ml if kind.strip().lower() == "mlnode" else net).append(p)
    return net, ml
