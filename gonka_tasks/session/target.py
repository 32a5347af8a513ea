"""Where a run connects: the node config's SSH target, completed from ~/.ssh/config and `fab -H`.

Pure: the config, Fabric's parsed SSH config and the `-H` string in, a `Target` or a `DeployError` out.
"""

from __future__ import annotations

import getpass
from dataclasses import dataclass

from gonka_tasks.config import NodeConfig
from gonka_tasks.errors import DeployError


@dataclass
class Target:
    """Where to connect: from the node config (SSH_HOST, else SERVER_IP), unless `fab -H` names it.

    `alias` is what SSH is asked for (maybe a ~/.ssh/config alias); `host`, `user`, `port` and
    `jump` are what that resolves to, for the parameter table and the checks.
    """

    host: str
    user: str
    port: int
    alias: str = ""
    jump: str = ""

    def __post_init__(self) -> None:
        self.alias = self.alias or self.host

    def __str__(self) -> str:
        via = f" via {self.jump}" if self.jump else ""
        named = f" ({self.alias})" if self.alias != self.host else ""
        return f"{self.user}@{self.host}:{self.port}{named}{via}"


def parse_host_string(s: str) -> tuple[str | None, str, int | None]:
    """`[user@]host[:port]` (IPv6 in brackets) -> (user, host, port)."""
    user = None
    if "@" in s:
        user, s = s.rsplit("@", 1)
    port = None
    if s.startswith("["):
        host, _, rest = s[1:].partition("]")
        if rest.startswith(":") and rest[1:].isdigit():
            port = int(rest[1:])
    elif s.count(":") == 1:
        host, _, p = s.partition(":")
        port = int(p) if p.isdigit() else None
    else:
        host = s
    return user, host, port


def resolve_target(cfg: NodeConfig, host_string: str | None, ssh_config=None, fabric_user: str = "") -> Target:
    """The config's SSH_HOST (else SERVER_IP), SSH_USER, SSH_PORT, completed from ~/.ssh/config.

    `ssh_config` is Fabric's parsed SSH config (`-S`, ~/.ssh/config); an empty SSH_USER/SSH_PORT
    takes its User/Port for the host, else `fabric_user` (a user set in Fabric's own config), else
    root and 22. `-H` may repeat the target, not contradict it.
    """
    alias = cfg.ssh_host
    entry = ssh_config.lookup(alias) if ssh_config is not None else {}
    target = Target(host=entry.get("hostname", alias), user=cfg.ssh_user or entry.get("user") or fabric_user or "root",
                    port=cfg.ssh_port or int(entry.get("port") or 22), alias=alias, jump=entry.get("proxyjump", ""))
    if not host_string:
        return target
    user, host, port = parse_host_string(host_string)
    clashes = []
    if host not in (alias, target.host, cfg.server_ip):
        clashes.append(f"host {host!r} vs SSH_HOST/SERVER_IP {alias!r}")
    if user is not None and user != target.user:
        clashes.append(f"user {user!r} vs SSH_USER {target.user!r}")
    if port is not None and port != target.port:
        clashes.append(f"port {port} vs SSH_PORT {target.port}")
    if clashes:
        raise DeployError(f"-H {host_string} contradicts {cfg.path}: " + "; ".join(clashes),
                          "drop -H (the node config names the server) or fix the node config")
    return target


def configured_user(fabric_config) -> str:
    """The login user set in Fabric's config (fabric.yaml, FABRIC_USER), not its default: the local user."""
    user = getattr(fabric_config, "user", "") if fabric_config is not None else ""
    try:
        local = getpass.getuser()
    except (KeyError, OSError):
        local = ""
    return user if user and user != local else ""
