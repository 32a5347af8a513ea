"""Keeping internal ports off the internet: compose port mappings rewritten to bind one address.

Docker-published ports bypass host firewalls, and an ML node (5050, 8080), API callback (9100) or
admin port (9200) open to the internet gets a node hijacked. The mappings are edited in the
compose files themselves (line by line, comments kept), so the operator's own later
`docker compose -f docker-compose.yml -f docker-compose.mlnode.yml up -d` keeps the binding.
"""

from __future__ import annotations

import re

# - "9100:9100"   - '${PORT:-8080}:8080'   - 0.0.0.0:9200:9200/tcp
_MAPPING = re.compile(
    r"""^(?P<lead>\s*-\s*)(?P<q>["']?)(?:(?P<ip>\d{1,3}(?:\.\d{1,3}){3}):)?"""
    r"""(?P<host>\d+|\$\{[A-Za-z_][A-Za-z0-9_]*(?::?-\d+)?\})"""
    r""":(?P<cont>\d+)(?P<proto>/(?:tcp|udp))?(?P=q)(?P<tail>\s*(?:\#.*)?)$"""
)


def host_port(host: str, env: dict[str, str]) -> int | None:
    """The host port of a mapping, resolving ${VAR}, ${VAR:-default}, ${VAR-default} from env."""
    m = re.fullmatch(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::?-(\d+))?\}", host)
    value = (env.get(m.group(1)) or m.group(2)) if m else host
    # ASCII digits, length capped: int() rejects '²' (which isdigit() accepts) and 4300+ digit strings.
    return int(value) if value and re.fullmatch(r"[0-9]{1,10}", value) else None


def _wanted(port: int | None, ports: set[int], address: str, loopback_only: frozenset[int],
            at: dict[int, str] | None = None) -> str | None:
    """The address a mapping of `port` must listen on, or None when the port is not internal.
    `at`: ports with an address of their own (the PoC callback port on the private network)."""
    if port not in ports:
        return None
    if at and port in at:
        return at[port]
    return "127.0.0.1" if port in loopback_only else address


def bind_internal_ports(text: str, ports: set[int], address: str, env: dict[str, str],
                        loopback_only: frozenset[int] = frozenset(), at: dict[int, str] | None = None) -> str:
    """Compose text with every mapping of a host port in `ports` bound to `address` (or to loopback
    for `loopback_only` ports, e.g. the admin API, which must never leave the machine)."""
    out = []
    for line in text.splitlines(keepends=True):
        body = line.rstrip("\n")
        m = _MAPPING.match(body)
        want = _wanted(host_port(m.group("host"), env), ports, address, loopback_only, at) if m else None
        if m and want and m.group("ip") != want:
            q = m.group("q") or '"'
            body = (f"{m.group('lead')}{q}{want}:{m.group('host')}:{m.group('cont')}{m.group('proto') or ''}{q}"
                    f"{m.group('tail')}")
            line = body + ("\n" if line.endswith("\n") else "")
        out.append(line)
    return "".join(out)


def misbound_mappings(text: str, ports: set[int], address: str, env: dict[str, str],
                      loopback_only: frozenset[int] = frozenset(), at: dict[int, str] | None = None) -> list[str]:
    """Mappings of `ports` that do not listen where they should (every interface, or another address)."""
    found = []
    for line in text.splitlines():
        m = _MAPPING.match(line)
        want = _wanted(host_port(m.group("host"), env), ports, address, loopback_only, at) if m else None
        if m and want and m.group("ip") != want:
            found.append(line.strip())
    return found


def exposed_mappings(text: str, ports: set[int], env: dict[str, str]) -> list[str]:
    """Mappings of `ports` that would listen on every interface."""
    found = []
    for line in text.splitlines():
        m = _MAPPING.match(line)
        if m and host_port(m.group("host"), env) in ports and m.group("ip") in (None, "0.0.0.0"):
            found.append(line.strip())
    return found


P2P_CONTAINER_PORT = 26656  # CometBFT's P2P port inside the node container


def publish_p2p(text: str, port: int, env: dict[str, str]) -> str:
    """Compose text whose mappings of the node's P2P port (container 26656) publish host `port`.

    Upstream's docker-compose.yml has the literal `"5000:26656"`, so a P2P_PORT other than 5000
    only works when the file itself says so (kept across the operator's own `compose up`)."""
    out = []
    for line in text.splitlines(keepends=True):
        body = line.rstrip("\n")
        m = _MAPPING.match(body)
        if m and int(m.group("cont")) == P2P_CONTAINER_PORT and host_port(m.group("host"), env) != port:
            q = m.group("q") or '"'
            ip = f"{m.group('ip')}:" if m.group("ip") else ""
            body = (f"{m.group('lead')}{q}{ip}{port}:{m.group('cont')}{m.group('proto') or ''}{q}"
                    f"{m.group('tail')}")
            line = body + ("\n" if line.endswith("\n") else "")
        out.append(line)
    return "".join(out)


def p2p_mismatches(text: str, port: int, env: dict[str, str]) -> list[str]:
    """Mappings of the node's P2P port that publish another host port than `port`."""
    found = []
    for line in text.splitlines():
        m = _MAPPING.match(line)
        if m and int(m.group("cont")) == P2P_CONTAINER_PORT and host_port(m.group("host"), env) != port:
            found.append(line.strip())
    return found
