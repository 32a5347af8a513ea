"""Packet filtering of a sandbox host as Docker and netfilter-persistent program it, in the host's
own network namespace with the real iptables.

dockerd (Docker docs, "Packet filtering and firewalls"): at start it creates the filter chain
DOCKER-USER when missing and never touches its rules; a published port is a DNAT rule in the nat
table's DOCKER chain (PREROUTING, for packets addressed to the host) to the container's address,
and the forwarded packets pass DOCKER-USER before Docker's own accept rules, so an INPUT policy
or UFW rule never sees them ("Docker bypasses UFW"). A sim container's address is a loopback
address of the host (127.0.10.x, see simenv), so the DNAT'd packets come in through INPUT rather
than FORWARD: the first rules of INPUT send them (and only them: ``ctstate DNAT``, not from
``lo``) through DOCKER-USER and then accept them, as Docker's FORWARD rules do. Inside
DOCKER-USER, as on a real host, ``--dport`` sees the container port and ``-m conntrack
--ctorigdstport`` the published one. ``net.ipv4.conf.all.route_localnet=1`` lets the kernel route
the DNAT'd packets to the loopback address. Traffic from the host itself to a published port is
served by the 0.0.0.0 listener (Docker's userland proxy) and is not filtered, as with Docker.

netfilter-persistent (Debian's netfilter-persistent + iptables-persistent): ``save`` writes
``iptables-save`` to /etc/iptables/rules.v4, ``start``/``reload`` restore it, and the boot unit
restores it before dockerd starts; installing iptables-persistent saves the current rules
(its debconf autosave question answered with its default under noninteractive apt).

Only on a sandbox host: with $GONKA_SIM_ROOT set (unit tests on the runner) or daemon.json's
``"iptables": false``, nothing is programmed.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from . import simenv

IPT = "iptables"
WAIT = ["-w", "5"]  # xtables lock: concurrent docker calls program rules at the same time
HOOK = ["!", "-i", "lo", "-m", "conntrack", "--ctstate", "DNAT"]
RULES_V4 = "/etc/iptables/rules.v4"
NFP = "/usr/sbin/netfilter-persistent"
PLUGIN_V4 = "/usr/share/netfilter-persistent/plugins.d/15-ip4tables"
TABLES = ("filter", "nat", "mangle", "raw")


def enabled(daemon: dict) -> bool:
    """True on a sandbox host whose dockerd (configured by `daemon`, its daemon.json) programs iptables."""
    if os.environ.get("GONKA_SIM_ROOT") not in (None, "", "/") or shutil.which(IPT) is None:
        return False
    return daemon.get("iptables", True) is not False


def ipt(*args: str, check: bool = True, input: str | None = None, prog: str = IPT) -> subprocess.CompletedProcess:
    r = subprocess.run([prog, *WAIT, *args] if prog == IPT else [prog, *args], input=input, capture_output=True,
                       text=True, timeout=30, stdin=None if input is not None else subprocess.DEVNULL)
    if check and r.returncode:
        raise RuntimeError(f"{prog} {' '.join(args)}: {r.stderr.strip()}")
    return r


def _ensure_chain(table: str, chain: str) -> None:
    """Create the chain when missing; an existing one keeps its rules."""
    if ipt("-t", table, "-S", chain, check=False).returncode:
        ipt("-t", table, "-N", chain, check=False)


def _ensure_first(table: str, chain: str, rules: list[list[str]]) -> None:
    """`rules` as the first rules of `chain`, in order (re-inserted on top like dockerd does)."""
    for rule in rules:
        while ipt("-t", table, "-C", chain, *rule, check=False).returncode == 0:
            ipt("-t", table, "-D", chain, *rule, check=False)
    for pos, rule in enumerate(rules, 1):
        ipt("-t", table, "-I", chain, str(pos), *rule)


def dockerd_start(containers: list[dict], daemon: dict) -> None:
    """What dockerd programs when it starts: DOCKER-USER (never flushed), the hooks, the DNATs."""
    if not enabled(daemon):
        return
    with open("/proc/sys/net/ipv4/conf/all/route_localnet", "w") as f:
        f.write("1\n")
    _ensure_chain("filter", "DOCKER-USER")
    _ensure_first("filter", "INPUT", [[*HOOK, "-j", "DOCKER-USER"], [*HOOK, "-j", "ACCEPT"]])
    _ensure_chain("nat", "DOCKER")
    _ensure_first("nat", "PREROUTING", [["-m", "addrtype", "--dst-type", "LOCAL", "-j", "DOCKER"]])
    sync(containers, daemon)


def dnat_rules(containers: list[dict]) -> list[str]:
    """The nat DOCKER chain's rules for the running containers' published TCP ports."""
    rules = []
    for c in containers:
        if c.get("status") != "running":
            continue
        cip = c.get("ip")
        for ip, port, cport in c.get("listen", []):
            if ip == cip or ip.startswith("127."):  # the container's own address; loopback-only publish
                continue
            dest = "" if ip == "0.0.0.0" else f" -d {ip}/32"
            rules.append(f"-A DOCKER{dest} -p tcp -m tcp --dport {port} -j DNAT --to-destination {cip}:{cport}")
    return rules


def sync(containers: list[dict], daemon: dict) -> None:
    """Rewrite the nat DOCKER chain from the containers that run now (a stopped one loses its DNAT)."""
    if not enabled(daemon):
        return
    _ensure_chain("nat", "DOCKER")
    # --noflush: only the DOCKER chain named here is flushed and refilled, atomically
    text = "*nat\n:DOCKER - [0:0]\n" + "".join(r + "\n" for r in dnat_rules(containers)) + "COMMIT\n"
    ipt("--noflush", input=text, prog="iptables-restore")


# ----------------------------------------------------------------------------- netfilter-persistent


def persistent_installed() -> bool:
    return simenv.host_path(NFP).exists() and simenv.host_path(PLUGIN_V4).exists()


def save() -> None:
    """netfilter-persistent save: the kernel's rules into rules.v4."""
    out = ipt(prog="iptables-save").stdout
    path = simenv.host_path(RULES_V4)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(out)
    tmp.chmod(0o640)
    tmp.replace(path)


def restore() -> None:
    """netfilter-persistent start/reload: rules.v4 into the kernel (the tables it names are replaced)."""
    path = simenv.host_path(RULES_V4)
    if path.exists():
        ipt(input=path.read_text(), prog="iptables-restore")


def flush_all() -> None:
    """Empty tables, ACCEPT policies: the kernel's state at boot."""
    for table in TABLES:
        ipt("-t", table, "-F", check=False)
        ipt("-t", table, "-X", check=False)
    for chain in ("INPUT", "FORWARD", "OUTPUT"):
        ipt("-P", chain, "ACCEPT", check=False)


def postinst(package: str) -> None:
    """Package scripts the simulated apt runs after unpacking."""
    if package == "iptables-persistent" and os.environ.get("GONKA_SIM_ROOT") in (None, "", "/") \
            and shutil.which("iptables-save"):
        save()


def boot_tables() -> bool:
    """The host's boot, up to dockerd: empty kernel tables, then netfilter-persistent (when installed).
    False where the host has no firewall to program."""
    if os.environ.get("GONKA_SIM_ROOT") not in (None, "", "/") or shutil.which(IPT) is None:
        return False
    flush_all()
    if persistent_installed():
        restore()
    return True


def netfilter_persistent_main(argv: list[str] | None = None) -> int:
    """/usr/sbin/netfilter-persistent {start|restart|reload|force-reload|save|flush}."""
    argv = list(sys.argv[1:] if argv is None else argv)
    simenv.log_call("netfilter-persistent", argv)
    verb = argv[0] if argv else ""
    if not Path(simenv.host_path(PLUGIN_V4)).exists():
        return 0  # no plugin installed: nothing to do, as the real script
    try:
        if verb == "save":
            print("run-parts: executing /usr/share/netfilter-persistent/plugins.d/15-ip4tables save")
            save()
        elif verb in ("start", "restart", "reload", "force-reload"):
            print("run-parts: executing /usr/share/netfilter-persistent/plugins.d/15-ip4tables start")
            restore()
        elif verb == "flush":
            flush_all()
        else:
            print("Usage: /usr/sbin/netfilter-persistent {start|restart|reload|force-reload|save|flush}",
                  file=sys.stderr)
            return 1
    except (OSError, RuntimeError) as e:
        print(f"netfilter-persistent: {e}", file=sys.stderr)
        return 1
    return 0
