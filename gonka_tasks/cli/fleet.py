"""Running one task on several nodes: a thread pool, one connection and log per node, a summary.

One host's failure never stops the others; the exit code is non-zero when any host failed.
Nodes running in parallel write plain prefixed lines (no live bars from several threads); on a
terminal the fleet summary, and for `status` the phases of every node, end the run as tables.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from gonka_tasks.phases.deploy import PHASES
from gonka_tasks.session import console as consoles


@dataclass
class NodeResult:
    path: str
    code: int
    seconds: float
    changed: list[str]
    failure: str
    status_rows: list = field(default_factory=list)  # (phase, state, detail) when the task was `status`


class _PrefixedConsole:
    """Console lines of parallel nodes, each prefixed with its node name (one writer at a time)."""

    _lock = threading.Lock()

    def __init__(self, stream, *, plain_only: bool = False) -> None:
        self.stream = stream
        self.plain_only = plain_only  # several nodes at once: `console.choose` picks plain lines

    def write(self, text: str) -> None:
        with self._lock:
            self.stream.write(text)

    def flush(self) -> None:
        self.stream.flush()

    def isatty(self) -> bool:
        return self.stream.isatty()


def run_fleet(paths: list[str], one: Callable, *, parallel: int = 1, console=None) -> int:
    """Run `one(path, console, prefix)` for each node path; print a summary when there are several."""
    console = console or sys.stdout
    if len(paths) == 1:
        code, _ = one(paths[0])
        return code
    shared = _PrefixedConsole(console, plain_only=parallel > 1)
    width = max(len(_name(p)) for p in paths)

    def job(path: str) -> NodeResult:
        t0 = time.monotonic()
        code, run = one(path, shared, f"{_name(path).ljust(width)} | ")
        changed = run.steps.changed_phases if run else []
        failure = ""
        if code and run is not None:
            failure = _last_error(run)
        elif code:
            failure = "invalid node config"
        rows = list(getattr(run, "status_rows", None) or [])
        return NodeResult(path, code, time.monotonic() - t0, changed, failure, rows)

    with ThreadPoolExecutor(max_workers=max(1, parallel)) as pool:
        results = list(pool.map(job, paths))
    show_summary(consoles.choose(console), results)
    return 1 if any(r.code for r in results) else 0


def show_summary(out, results: list[NodeResult]) -> None:
    """The fleet summary (plain: the text it always was); on a terminal also the fleet's status."""
    if out.rich and any(r.status_rows for r in results):
        phases = [p for p, _, _ in next(r.status_rows for r in results if r.status_rows)]
        rows = [(_name(r.path), *({p: s for p, s, _ in r.status_rows}.get(p, "?") for p in phases))
                for r in results]
        out.table("status of the fleet", ("node", *phases), rows)
    ok = sum(1 for r in results if r.code == 0)
    out.table(f"fleet summary: {ok}/{len(results)} nodes ok", SUMMARY_COLUMNS, summary_rows(results),
              text=summary_table(results))


def _name(path: str) -> str:
    base = path.rsplit("/", 1)[-1]
    return base[:-5] if base.endswith(".conf") else base


def _last_error(run) -> str:
    err = getattr(run, "last_error", "") or ""
    return err.splitlines()[0][:140] if err else "failed (see its log)"


def _phase_numbers(names: list[str]) -> str:
    """Changed phases as their numbers (`1,2,3,...`), '-' when nothing changed; a stage that is no
    numbered phase (an ML-node server's `ml-node`) by its name."""
    numbers = {p.name: str(p.number) for p in PHASES}
    return ",".join(numbers.get(n, n) for n in names) or "-"


SUMMARY_COLUMNS = ("node", "result", "phases changed", "time", "failure")


def summary_rows(results: list[NodeResult]) -> list[tuple[str, ...]]:
    return [(_name(r.path), "ok" if r.code == 0 else "FAILED", _phase_numbers(r.changed), f"{r.seconds:.1f}s",
             r.failure) for r in results]


def summary_table(results: list[NodeResult]) -> str:
    """node | result | phases changed | time | failure, as plain text."""
    rows = [SUMMARY_COLUMNS, *summary_rows(results)]
    widths = [max(len(row[i]) for row in rows) for i in range(5)]
    lines = ["  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    ok = sum(1 for r in results if r.code == 0)
    return "\n".join(["", f"fleet summary: {ok}/{len(results)} nodes ok", *lines])
