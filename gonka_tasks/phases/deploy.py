"""`fab deploy` on a network node: the seven phases in order on one connection, --from/--only, the
model download pipelined beside phases 3-5, the keys backed up after phase 4, the final report."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from gonka_tasks.connectors.artefacts import warm_address, write_artefact
from gonka_tasks.connectors.seed import after_join
from gonka_tasks.core.report import grant_command, report_text
from gonka_tasks.errors import DeployError, MissingPrerequisite
from gonka_tasks.phases import backup, download_model
from gonka_tasks.phases.configure import configure
from gonka_tasks.phases.configure_chain import configure_chain
from gonka_tasks.phases.launch import launch
from gonka_tasks.phases.prepare_server import prepare_server
from gonka_tasks.phases.start_base import start_base
from gonka_tasks.phases.verify import verify


@dataclass(frozen=True)
class Phase:
    number: int
    name: str
    title: str
    run: Callable


PHASES: list[Phase] = [
    Phase(1, "prepare-server", "server preparation: admin keys, data disk, Prometheus", prepare_server),
    Phase(2, "download-model", "gonka repo and model weights", download_model.download_model),
    Phase(3, "configure", "config.env and node-config.json", configure),
    Phase(4, "start-base", "tmkms + node, warm key, registration", start_base),
    Phase(5, "configure-chain", "persistent peers and pruning", configure_chain),
    Phase(6, "launch", "all services with the ML node", launch),
    Phase(7, "verify", "checks of the running host", verify),
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
                download_model.ensure_download(run, wait=False)  # the image pull starts there too
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
    cfg = run.cfg
    addr = warm_address(cfg.artefacts)
    files = sorted({p.name for p in cfg.artefacts.iterdir()} | {"report.txt"}) if cfg.artefacts.exists() else []
    text = report_text(cfg, failed=failed, log_path=str(run.log.path), warm_address=addr, files=files,
                       verification=getattr(run, "verification", None), after=after_join(cfg))
    write_artefact(cfg.artefacts, "report.txt", text)
    run.log.panel(f"final report (also in {cfg.artefacts / 'report.txt'})", text, level="INFO" if failed else "OK",
                  style="red" if failed else "green", copyable=grant_command(cfg, addr))
