"""Helpers shared by the phases: compose command lines, waiting with progress, preconditions."""

from __future__ import annotations

import posixpath
import time
from collections.abc import Callable

from gonka_tasks import facts
from gonka_tasks.core import bindings, shell
from gonka_tasks.core.shell import COMPOSE_ALL, COMPOSE_BASE, COMPOSE_MLNODE, IMAGE_OVERRIDE, q
from gonka_tasks.errors import DeployError, MissingPrerequisite


def compose_files(run) -> tuple[str, ...]:
    """The compose files this node runs: both on a network node; on an ML-node server the ML node's
    file only (docs host/multiple-nodes), plus the image override when MLNODE_IMAGE is set."""
    if not run.cfg.is_mlnode:
        return COMPOSE_ALL
    return COMPOSE_MLNODE + ((IMAGE_OVERRIDE,) if run.cfg["MLNODE_IMAGE"] else ())


def compose(run, args: str, files: tuple[str, ...] = COMPOSE_BASE, *, source_env: bool = True) -> str:
    """`docker compose` in this run's deploy/join (shell.compose)."""
    return shell.compose(run.cfg.join_dir, args, files, source_env=source_env)


def api_shell(run, script: str) -> str:
    """A shell script in this run's api container (shell.api_shell)."""
    return shell.api_shell(run.cfg.join_dir, script)


def services_of(texts) -> list[str]:
    """Services of several compose files that run by default, in file order (FactError if unreadable)."""
    services: list[str] = []
    for text in texts:
        services += [s for s in facts.compose_services(text) if s not in services]
    return services


def expected_services(run, files: tuple[str, ...] = COMPOSE_ALL) -> list[str]:
    """Services of the deploy's compose files, read from the server in one round trip."""
    r = run.remote.probe_many({name: f"cat {q(run.cfg.join_dir + '/' + name)}" for name in files})
    return services_of(r[name].stdout for name in files)


class Snapshot:
    """A phase's read-only probes, gathered in ONE round trip on first use and again after `refresh()`.

    Checks read their facts from it; a step that changes the server passes `refresh=snap.refresh`
    so its re-check asks again. A rerun where everything is done costs one round trip per phase.
    """

    def __init__(self, run, probes: dict[str, str], what: str = ""):
        self.run, self.probes, self.what = run, probes, what
        self._results = None

    def __getitem__(self, name: str):
        if self._results is None:
            self._results = self.run.remote.probe_many(self.probes, what=self.what)
            self.what = ""  # name it in the log once
        return self._results[name]

    def refresh(self) -> None:
        self._results = None


def wait_until(run, what: str, probe: Callable[[], tuple[bool, str]], *, deadline_s: float,
               interval_s: float = 2.0, report_every_s: float = 10.0,
               hint: str = "check the container logs (`docker compose logs`) and rerun",
               first_pause_s: float = 0.2) -> str:
    """Poll `probe` until it says done; show progress; DeployError after the deadline.

    Polls start fast (0.2 s) and back off to `interval_s`: quick answers cost no idle waiting,
    slow ones do not hammer the server. A wait that is over at the first probe shows nothing; a
    longer one gets a bar of its time budget on a terminal and an INFO line every
    `report_every_s` in the log (and on the console without a terminal).
    """
    t0 = time.monotonic()
    last_report = t0
    pause = min(first_pause_s, interval_s)
    done, detail = probe()
    if done:
        return detail
    with run.log.progress(f"waiting for {what}", total=deadline_s) as update:
        while not done:
            now = time.monotonic()
            if now - t0 > deadline_s:
                raise DeployError(f"{what}: not ready after {deadline_s:.0f} s ({detail})", hint)
            line = None
            if now - last_report >= report_every_s:
                line = f"waiting for {what}: {detail} ({now - t0:.0f} s)"
                last_report = now
            update(now - t0, detail=detail, line=line)
            time.sleep(pause)
            pause = min(interval_s, pause * 1.6)
            done, detail = probe()
        update(deadline_s, detail=detail)  # a full bar: done (the elapsed time stays on it)
    return detail


def require(ok: bool, message: str, hint: str) -> None:
    """A phase's precondition on the server: stop with what to run first."""
    if not ok:
        raise MissingPrerequisite(message, hint)


def human(n: float) -> str:
    """Bytes for people: decimal units, one decimal."""
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1000
    return f"{n:.1f} TB"


def write_tracked(run, path: str, content: str, *, mode: int = 0o644, what: str) -> None:
    """Write a file of the gonka checkout and record its hash, so a later release change may restore it."""
    run.remote.write_file(path, content, mode=mode, what=what)
    run.remote.run(bindings.record_command(run.cfg, path, content), what=f"record the deployer's {posixpath.basename(path)}")
