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


def bind_internal_ports(text: str, ports: set[int], address: str, env: dict[str, str]) -> str:
    """Compose text with every mapping of a host port in `ports` bound to `address`."""
    out = []
    for line in text.splitlines(keepends=True):
        body = line.rstrip("\n")
        m = _MAPPING.match(body)
        if m and host_port(m.group("host"), env) in ports and m.group("ip") in (None, "0.0.0.0"):
            q = m.group("q") or '"'
            body = (f"{m.group('lead')}{q}{address}:{m.group('host')}:{m.group('cont')}{m.group('proto') or ''}{q}"
                    f"{m.group('tail')}")
            line = body + ("\n" if line.endswith("\n") else "")
        out.append(line)
    return "".join(out)


def exposed_mappings(text: str, ports: set[int], env: dict[str, str]) -> list[str]:
    """Mappings of `ports` that would listen on every interface."""
    found = []
    for line in text.splitlines():
        m = _MAPPING.match(line)
        if m and host_port(m.group("host"), env) in ports and m.group("ip") in (None, "0.0.0.0"):
            found.append(line.strip())
    return found
