"""Running one task on several nodes: a thread pool, one connection and log per node, a summary.

One host's failure never stops the others; the exit code is non-zero when any host failed.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass


@dataclass
class NodeResult:
    path: str
    code: int
    seconds: float
    changed: list[str]
    failure: str


class _PrefixedConsole:
    """Console lines of parallel nodes, each prefixed with its node name (one writer at a time)."""

    _lock = threading.Lock()

    def __init__(self, stream) -> None:
        self.stream = stream

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
    shared = _PrefixedConsole(console)
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
        return NodeResult(path, code, time.monotonic() - t0, changed, failure)

    with ThreadPoolExecutor(max_workers=max(1, parallel)) as pool:
        results = list(pool.map(job, paths))
    console.write(summary_table(results) + "\n")
    console.flush()
    return 1 if any(r.code for r in results) else 0


def _name(path: str) -> str:
    base = path.rsplit("/", 1)[-1]
    return base[:-5] if base.endswith(".conf") else base


def _last_error(run) -> str:
    err = getattr(run, "last_error", "") or ""
    return err.splitlines()[0][:140] if err else "failed (see its log)"


def _phase_numbers(names: list[str]) -> str:
    """Changed phases as their numbers (`1,2,3,...`), '-' when nothing changed."""
    from .phases import phase_named  # noqa: PLC0415

    return ",".join(str(phase_named(n).number) for n in names) or "-"


def summary_table(results: list[NodeResult]) -> str:
    """node | result | phases changed | time | failure."""
    rows = [("node", "result", "phases changed", "time", "failure")]
    for r in results:
        rows.append((_name(r.path), "ok" if r.code == 0 else "FAILED", _phase_numbers(r.changed),
                     f"{r.seconds:.1f}s", r.failure))
    widths = [max(len(row[i]) for row in rows) for i in range(5)]
    lines = ["  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    ok = sum(1 for r in results if r.code == 0)
    return "\n".join(["", f"fleet summary: {ok}/{len(results)} nodes ok", *lines])
