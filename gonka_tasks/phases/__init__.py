"""The deploy's phases, in order. Each phase is a plain function taking the `Run`.

`deploy` calls them in this order on one connection; each is also its own task. A phase never
trusts that an earlier one ran: it checks its own preconditions on the server.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ..errors import NotImplementedPhase


@dataclass(frozen=True)
class Phase:
    number: int
    name: str
    title: str
    run: Callable


def _not_built(name: str) -> Callable:
    def phase(run) -> None:
        raise NotImplementedPhase(name)
    return phase


PHASES: list[Phase] = [
    Phase(1, "prepare-server", "server preparation: admin keys, data disk, Prometheus", _not_built("prepare-server")),
    Phase(2, "download-model", "gonka repo and model weights", _not_built("download-model")),
    Phase(3, "configure", "config.env and node-config.json", _not_built("configure")),
    Phase(4, "start-base", "tmkms + node, warm key, registration", _not_built("start-base")),
    Phase(5, "configure-chain", "persistent peers and pruning", _not_built("configure-chain")),
    Phase(6, "launch", "all services with the ML node", _not_built("launch")),
    Phase(7, "verify", "checks of the running host", _not_built("verify")),
]


def phase_named(name: str) -> Phase:
    """Look a phase up by name or number (`--from 3`, `--only launch`)."""
    for p in PHASES:
        if name in (p.name, str(p.number), p.name.replace("-", "_")):
            return p
    names = ", ".join(f"{p.number}={p.name}" for p in PHASES)
    from ..errors import DeployError
    raise DeployError(f"unknown phase {name!r}", f"use one of {names}")
