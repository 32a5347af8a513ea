"""Private LANs between sandbox hosts: one shared L2 segment, like the private network of a rack.

A LAN numbered N is a network namespace ``gsl-N`` holding a bridge ``br0``. A host that joins it
gets a second interface ``eth1`` with 10.201.N.IDX/24 (IDX: the host's index), whose peer
``gsp-NAME`` is a port of that bridge. The bridge lives in its own namespace, not on the runner:
the runner's netfilter (Docker's FORWARD policy, br_netfilter) never sees the LAN's frames, and
ip_forward stays off everywhere. Hosts on a LAN reach each other; the runner does not reach the
LAN at all (a real private network is not reachable from the operator's machine either).

The host's namespace going away deletes its veth pair; the LAN namespace is deleted with the last
port (`leave`). Names are machine-wide: two sandboxes (bases) that choose the same LAN number
share the segment, so pick LAN numbers from your own block of indexes.
"""

from __future__ import annotations

import contextlib
import re
import subprocess
from pathlib import Path

LAN_PREFIX = "gsl-"
PORT_PREFIX = "gsp-"
BRIDGE = "br0"
TOOL_TIMEOUT = 30.0


class LanError(RuntimeError):
    """A LAN could not be made or joined."""


def check_lan(lan: int) -> int:
    if isinstance(lan, bool) or not isinstance(lan, int) or not 0 <= lan <= 255:
        raise ValueError(f"lan {lan!r}: a LAN number 0..255 (third octet of 10.201.LAN.0/24)")
    return lan


def netns_of(lan: int) -> str:
    return f"{LAN_PREFIX}{check_lan(lan)}"


def address(lan: int, idx: int) -> str:
    """A host's private address on LAN `lan`."""
    return f"10.201.{check_lan(lan)}.{idx}"


def _ip(*argv: str, input: str | None = None, check: bool = True) -> str:
    r = subprocess.run(["ip", *argv], input=input, capture_output=True, text=True, timeout=TOOL_TIMEOUT,
                       stdin=None if input is not None else subprocess.DEVNULL)
    if check and r.returncode:
        raise LanError(f"ip {' '.join(argv)} exited {r.returncode}: {r.stderr.strip()}")
    return r.stdout


def ensure(lan: int) -> str:
    """The LAN's namespace with its bridge up (made on first use); returns the namespace name."""
    ns = netns_of(lan)
    if not Path(f"/run/netns/{ns}").exists():
        # another process may make it at the same moment: "exists" is fine
        r = subprocess.run(["ip", "netns", "add", ns], capture_output=True, text=True, timeout=TOOL_TIMEOUT)
        if r.returncode and not Path(f"/run/netns/{ns}").exists():
            raise LanError(f"ip netns add {ns}: {r.stderr.strip()}")
    if not _ip("-n", ns, "-o", "link", "show", BRIDGE, check=False).strip():
        _ip("-n", ns, "link", "add", BRIDGE, "type", "bridge", check=False)
    _ip("-n", ns, "-batch", "-", input=f"link set lo up\nlink set {BRIDGE} up\n")
    return ns


def join(lan: int, host_netns: str, name: str, idx: int) -> str:
    """Give the host (its namespace `host_netns`) an eth1 on the LAN; returns its private address."""
    ns = ensure(lan)
    port = PORT_PREFIX + name
    if Path(f"/sys/class/net/{port}").exists():
        _ip("link", "del", port, check=False)  # a leftover of a half-made host of this name
    _ip("link", "add", port, "type", "veth", "peer", "name", "eth1", "netns", host_netns)
    _ip("link", "set", port, "netns", ns)
    _ip("-n", ns, "link", "set", port, "master", BRIDGE, "up")
    ip = address(lan, idx)
    _ip("-n", host_netns, "-batch", "-", input=f"addr add {ip}/24 dev eth1\nlink set eth1 up\n")
    return ip


def ports(lan: int) -> list[str]:
    """The bridge ports of the LAN (one per joined host); [] when the LAN is gone."""
    ns = netns_of(lan)
    if not Path(f"/run/netns/{ns}").exists():
        return []
    out = _ip("-n", ns, "-o", "link", "show", "master", BRIDGE, check=False)
    return [m.group(1) for m in re.finditer(r"^\d+:\s+([^:@\s]+)", out, re.M)]


def leave(lan: int | None, name: str) -> None:
    """Remove the host's port (if its namespace did not take it along) and the LAN once empty."""
    if lan is None:
        return
    ns = netns_of(lan)
    if not Path(f"/run/netns/{ns}").exists():
        return
    port = PORT_PREFIX + name
    with contextlib.suppress(LanError):
        if port in ports(lan):
            _ip("-n", ns, "link", "del", port, check=False)
    if not ports(lan):
        _ip("netns", "del", ns, check=False)
