"""The deploy's phases, in order. Each phase is a plain function taking the `Run`.

`deploy` calls them in this order on one connection; each is also its own task. A phase never
trusts that an earlier one ran: it checks its own preconditions on the server.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass

from ..errors import DeployError, MissingPrerequisite


@dataclass(frozen=True)
class Phase:
    number: int
    name: str
    title: str
    run: Callable


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
    Phase(7, "verify", "checks of the running host", _lazy("verify", "verify")),
]


def phase_named(name: str) -> Phase:
    """Look a phase up by name or number (`--from 3`, `--only launch`)."""
    for p in PHASES:
        if name in (p.name, str(p.number), p.name.replace("-", "_")):
            return p
    names = ", ".join(f"{p.number}={p.name}" for p in PHASES)
    raise DeployError(f"unknown phase {name!r}", f"use one of {names}")


def deploy(run) -> None:
    """Phases in order, honouring --from/--only, then the final report.

    The model download is pipelined: the job starts in the background right after phase 2's
    checkout and tools, and is waited for only before launch (unless --no-pipeline). The keys
    are backed up right after phase 4 creates them.
    """
    from . import backup, model  # noqa: PLC0415

    selected = PHASES
    if run.opt("only"):
        selected = [phase_named(run.opt("only"))]
    elif run.opt("from_"):
        start = phase_named(run.opt("from_")).number
        selected = [p for p in selected if p.number >= start]
    pipelined = not run.opt("no_pipeline") and len(selected) > 1
    current = None
    try:
        for p in selected:
            current = p
            run.steps.phase = p.name
            run.remote.step = p.name
            run.log.info(f"=== phase {p.number}: {p.name} ({p.title})")
            if p.name == "download-model" and pipelined:
                model.ensure_download(run, wait=False)  # the image pull starts there too
                continue
            p.run(run)
            if p.name == "start-base" and not run.plan:
                backup.ensure_backup(run)
    except DeployError as e:
        if run.plan and current is not None and isinstance(e, MissingPrerequisite):
            # a later phase needs what earlier planned steps would create: the plan ends here
            run.log.info(f"PLAN stops at phase {current.number} ({current.name}): {e.message}; "
                         "the steps planned above come first")
            return
        if run.plan and current is not None:
            # a refusal the real run would meet too: the plan fails with it
            run.log.error(f"PLAN: the deploy would stop at phase {current.number} ({current.name})")
            raise
        if current is not None:
            write_report(run, failed=f"phase {current.number} ({current.name}): {e.message}")
        raise
    if not run.plan and len(selected) > 1:
        write_report(run, failed=None)


def write_report(run, *, failed: str | None) -> None:
    """Print the final report and save it as nodes/<KEY_NAME>/report.txt.

    On a terminal it is a box, with the grant command printed bare below it so that it can be
    copied as it is; elsewhere (and in the log) it is the usual lines.
    """
    from ..artefacts import warm_address, write_artefact  # noqa: PLC0415
    from ..report import after_join, grant_command, report_text  # noqa: PLC0415

    cfg = run.cfg
    addr = warm_address(cfg.artefacts)
    files = sorted({p.name for p in cfg.artefacts.iterdir()} | {"report.txt"}) if cfg.artefacts.exists() else []
    text = report_text(cfg, failed=failed, log_path=str(run.log.path), warm_address=addr, files=files,
                       verification=getattr(run, "verification", None), after=after_join(cfg))
    write_artefact(cfg.artefacts, "report.txt", text)
    run.log.panel(f"final report (also in {cfg.artefacts / 'report.txt'})", text, level="INFO" if failed else "OK",
                  style="red" if failed else "green", copyable=grant_command(cfg, addr))
