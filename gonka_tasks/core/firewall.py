"""The fence around an ML-node server's ports: only the network node's private address reaches them.

Docker publishes ports with DNAT rules of its own, before UFW's INPUT rules ever see the packet, so
the place for a filter is the `DOCKER-USER` chain (docs.docker.com, "Packet filtering and
firewalls"). That chain sees packets after DNAT: their destination port is the container's, not the
published one, so the rules match the original destination port with `-m conntrack
--ctorigdstport`. Only packets of the original direction are dropped (`--ctdir ORIGINAL`): the
answers to the network node go back out. Every rule carries COMMENT, so ours are found and replaced
without touching anyone else's. Persisted in `/etc/iptables/rules.v4` (iptables-persistent), merged
with what the file already holds.
"""

from __future__ import annotations

import re
import shlex

CHAIN = "DOCKER-USER"
COMMENT = "gonka-deploy:mlnode-fence"
RULES_V4 = "/etc/iptables/rules.v4"


def fence_rules(allow_ip: str, ports: list[int]) -> list[str]:
    """Rule specs (without `-A CHAIN`), in chain order: per published port, accept the network node,
    then drop every other new packet to it."""
    out = []
    for port in ports:
        match = f"-p tcp -m conntrack --ctorigdstport {int(port)}"
        out.append(f"-s {allow_ip}/32 {match} -m comment --comment {COMMENT} -j RETURN")
        out.append(f"{match} --ctdir ORIGINAL -m comment --comment {COMMENT} -j DROP")
    return out


_PORT = re.compile(r"--ctorigdstport (\d+)")
_SRC = re.compile(r"-s (\S+)")
_TARGET = re.compile(r"-j (\S+)\s*$")


def rule_key(line: str) -> tuple[str, str, str]:
    """(source, port, target) of a rule line as `iptables -S` prints it or as `fence_rules` writes it."""
    src, port, target = _SRC.search(line), _PORT.search(line), _TARGET.search(line)
    return (src.group(1) if src else "", port.group(1) if port else "", target.group(1) if target else "")


def ours(chain_text: str) -> list[str]:
    """Our rule lines in `iptables -S DOCKER-USER` output, in chain order."""
    return [ln.strip() for ln in chain_text.splitlines() if ln.startswith(f"-A {CHAIN} ") and COMMENT in ln]


def fence_state(chain_text: str, wanted: list[str]) -> tuple[bool, str]:
    """(in place, detail): our rules are the first of the chain, exactly the wanted ones, in order."""
    rules = [ln.strip() for ln in chain_text.splitlines() if ln.startswith(f"-A {CHAIN} ")]
    mine = ours(chain_text)
    if not rules and not chain_text.strip():
        return False, f"no {CHAIN} chain yet"
    if [rule_key(r) for r in mine] != [rule_key(w) for w in wanted]:
        return False, f"{len(mine)} of our rules in {CHAIN}, {len(wanted)} wanted"
    if rules[:len(mine)] != mine:
        return False, f"our rules are not the first of {CHAIN}"
    return True, f"{len(wanted)} rules at the top of {CHAIN}"


def apply_script(wanted: list[str]) -> str:
    """Shell: drop our old rules (by number, no server text is evaluated), insert the wanted ones at the
    top in order. The chain is created when dockerd has not made it yet (Docker keeps it)."""
    lines = [f"iptables -N {CHAIN} 2>/dev/null || true",
             f"while n=$(iptables -L {CHAIN} --line-numbers -n | awk {shlex.quote('/' + COMMENT + '/ {print $1; exit}')}) "
             f"&& [ -n \"$n\" ]; do iptables -D {CHAIN} \"$n\"; done"]
    lines += [f"iptables -I {CHAIN} {i} {spec}" for i, spec in enumerate(wanted, 1)]
    return "set -e; " + "; ".join(lines)


def persisted(existing: str, wanted: list[str]) -> str:
    """rules.v4 with our rules (and only them) in its filter table's DOCKER-USER chain, everything else
    kept as it was; a new file holds just the chain. Loaded at boot before dockerd, which keeps the chain."""
    ours_lines = [f"-A {CHAIN} {spec}" for spec in wanted]
    kept = [ln for ln in existing.splitlines() if COMMENT not in ln]
    if not any(ln.strip() == "*filter" for ln in kept):
        kept += ["*filter", "COMMIT"]
    out: list[str] = []
    in_filter = False
    for ln in kept:
        s = ln.strip()
        if s.startswith("*"):
            in_filter = s == "*filter"
            out.append(ln)
            if in_filter and not any(x.startswith(f":{CHAIN} ") for x in kept):
                out.append(f":{CHAIN} - [0:0]")
            continue
        if in_filter and (s == "COMMIT" or s.startswith("-A ")):
            out += ours_lines
            ours_lines = []
        out.append(ln)
    return "\n".join(out).strip("\n") + "\n"


def persisted_ok(text: str, wanted: list[str]) -> bool:
    have = [ln.strip() for ln in text.splitlines() if COMMENT in ln]
    return [rule_key(h) for h in have] == [rule_key(w) for w in wanted] and f":{CHAIN} " in text
