"""The deploy's phases, in order. Each phase is a plain function taking the `Run`.

`deploy` calls them in this order on one connection; each is also its own task. A phase never
trusts that an earlier one ran: it checks its own preconditions on the server.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass

from ..errors import DeployError, NotImplementedPhase


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


def _lazy(module: str, func: str) -> Callable:
    """Import a phase module on first use (fab --list stays fast)."""
    def phase(run) -> None:
        mod = importlib.import_module(f"{__name__}.{module}")
        return getattr(mod, func)(run)
    return phase


PHASES: list[Phase] = [
    Phase(1, "prepare-server", "server preparation: admin keys, data disk, Prometheus", _lazy("server", "prepare_server")),
    Phase(2, "download-model", "gonka repo and model weights", _lazy("model", "download_model")),
    Phase(3, "configure", "config.env and node-config.json", _lazy("configure", "configure")),
    Phase(4, "start-base", "tmkms + node, warm key, registration", _lazy("services", "start_base")),
    Phase(5, "configure-chain", "persistent peers and pruning", _lazy("chain", "configure_chain")),
    Phase(6, "launch", "all services with the ML node", _lazy("launch", "launch")),
    Phase(7, "verify", "checks of the running host", _not_built("verify")),
]


def phase_named(name: str) -> Phase:
    """Look a phase up by name or number (`--from 3`, `--only launch`)."""
    for p in PHASES:
        if name in (p.name, str(p.number), p.name.replace("-", "_")):
            return p
    names = ", ".join(f"{p.number}={p.name}" for p in PHASES)
    raise DeployError(f"unknown phase {name!r}", f"use one of {names}")


def deploy(run) -> None:
    """Phases in order, honouring --from/--only. The model download is pipelined: started in the
    background right after phase 2's checkout, waited for only before launch (unless --no-pipeline)."""
    from . import model  # noqa: PLC0415

    selected = PHASES
    if run.opt("only"):
        selected = [phase_named(run.opt("only"))]
    elif run.opt("from_"):
        start = phase_named(run.opt("from_")).number
        selected = [p for p in selected if p.number >= start]
    pipelined = not run.opt("no_pipeline") and len(selected) > 1
    for p in selected:
        run.log.info(f"=== phase {p.number}: {p.name} ({p.title})")
        if p.name == "download-model" and pipelined:
            model.ensure_download(run, wait=False)
            continue
        p.run(run)
    if not run.plan:
        run.log.ok("deploy finished" + ("" if any(p.name == "verify" for p in selected) else " (verify not run)"))
