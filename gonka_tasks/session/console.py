"""The console side of the run log: plain `[time] [LEVEL]` lines, or rich rendering on a terminal.

`choose(stream)` picks the kind once per run. `PlainConsole` when the stream is not a terminal
(CI, pipes, cron), TERM is dumb, or the stream is shared by nodes running in parallel;
`RichConsole` otherwise. Both offer the same operations besides event lines:

* `progress(what, total, unit)`: a context manager giving `update(done, total, detail)`;
* `table(title, columns, rows, styles=...)`;
* `panel(title, text, copyable=...)`.

The plain kind writes the text the log file holds (callers pass it); the log file itself is
written by `RunLog` and never sees rich output. NO_COLOR (non-empty) turns colour off in both.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TextIO

# rich styles of the levels and of the states tables show (status, verify, fleet summary)
LEVEL_STYLES = {
    "CHECK": "cyan", "EXEC": "blue", "OK": "green", "SKIP": "bright_black",
    "WARN": "yellow", "ERROR": "bold red", "OUTPUT": "dim",
}
STATE_STYLES = {
    "PASS": "bold green", "WARN": "bold yellow", "FAIL": "bold red",
    "done": "green", "pending": "yellow", "running": "cyan", "broken": "bold red",
    "ok": "green", "FAILED": "bold red",
}
# the plain console's colours on a terminal (parallel fleets): the seed's ANSI codes
_ANSI = {
    "CHECK": "\033[36m", "EXEC": "\033[34m", "OK": "\033[32m", "SKIP": "\033[90m",
    "WARN": "\033[33m", "ERROR": "\033[31;1m", "OUTPUT": "\033[2m",
}
COPY_NOTE = "(printed below this box, to copy as it is)"

Update = Callable[..., None]
Rows = Sequence[Sequence[str]]


def no_color(environ: Mapping[str, str] | None = None) -> bool:
    """NO_COLOR set to a non-empty value (https://no-color.org)."""
    return bool((os.environ if environ is None else environ).get("NO_COLOR", ""))


def is_terminal(stream) -> bool:
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty and isatty())
    except ValueError:  # a closed stream
        return False


def wants_rich(stream, environ: Mapping[str, str] | None = None) -> bool:
    """Rich rendering only on a real terminal that is not dumb and not shared by parallel nodes."""
    env = os.environ if environ is None else environ
    if getattr(stream, "plain_only", False) or env.get("TERM", "").lower() in ("dumb", "unknown"):
        return False
    return is_terminal(stream)


def choose(stream: TextIO, environ: Mapping[str, str] | None = None) -> PlainConsole | RichConsole:
    """The console for `stream`, chosen once: rich on a terminal, plain lines otherwise."""
    env = os.environ if environ is None else environ
    if wants_rich(stream, env):
        return RichConsole(stream, no_color=no_color(env))
    colour = is_terminal(stream) and env.get("TERM", "").lower() != "dumb" and not no_color(env)
    return PlainConsole(stream, colour=colour)


def plain_table(columns: Sequence[str], rows: Rows) -> str:
    """Columns padded to their widest cell, a dashed rule under the header (the plain form of a table)."""
    cells = [list(columns), *[[str(c) for c in r] for r in rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(columns))]
    lines = ["  ".join(c.ljust(widths[i]) for i, c in enumerate(r)).rstrip() for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


class PlainConsole:
    """`[time] [LEVEL] message` lines, as the log file has them; tables and panels as their text."""

    rich = False

    def __init__(self, stream: TextIO, *, colour: bool = False):
        self.stream = stream
        self.colour = colour

    def line(self, stamp: str, prefix: str, level: str, text: str) -> None:
        """One event line: `[stamp] prefix[LEVEL] text` (the level coloured on a terminal)."""
        lvl = f"[{level}]"
        if self.colour and level in _ANSI:
            lvl = f"{_ANSI[level]}{lvl}\033[0m"
        self.write(f"[{stamp}] {prefix}{lvl} {text}")

    def write(self, text: str) -> None:
        """Text as it is, ending with a newline."""
        self.stream.write(text + "\n")
        self.stream.flush()

    @contextlib.contextmanager
    def progress(self, what: str, total: float | None = None, unit: str = "s") -> Iterator[Update]:
        """No bar without a terminal: the caller's periodic INFO lines say how far it got."""
        yield lambda done=None, total=None, detail=None: None

    def table(self, title: str, columns: Sequence[str], rows: Rows, *, styles: Mapping[str, str] | None = None,
              caption: str = "", text: str | None = None) -> None:
        """`text` when given (the table as the log shows it), else the title and a padded table."""
        self.write(text if text is not None else "\n".join(
            x for x in (title, plain_table(columns, rows), caption) if x))

    def panel(self, title: str, text: str, *, style: str = "", copyable: str = "") -> None:
        self.write(f"{title}:\n{text.rstrip()}")


class RichConsole:
    """Rich rendering on a terminal: coloured event lines, live progress bars, tables and panels."""

    rich = True

    def __init__(self, stream: TextIO, *, no_color: bool = False, width: int | None = None):
        from rich.console import Console  # noqa: PLC0415 - rich loads only when a terminal needs it

        # markup/emoji/highlight off: log text is shown as it is, never interpreted
        self.console = Console(file=stream, force_terminal=True, no_color=no_color, width=width,
                               markup=False, emoji=False, highlight=False)

    def line(self, stamp: str, prefix: str, level: str, text: str) -> None:
        from rich.text import Text  # noqa: PLC0415

        self.console.print(Text.assemble(f"[{stamp}] {prefix}", (f"[{level}]", LEVEL_STYLES.get(level, "")),
                                         f" {text}"), soft_wrap=True)

    def write(self, text: str) -> None:
        """Text as it is (no wrapping, no box): what must stay copyable."""
        from rich.text import Text  # noqa: PLC0415

        self.console.print(Text(text), soft_wrap=True)

    @contextlib.contextmanager
    def progress(self, what: str, total: float | None = None, unit: str = "s") -> Iterator[Update]:
        """A live bar from the first update until the block ends; the last state stays on screen."""
        from rich.progress import Progress  # noqa: PLC0415

        bar = Progress(*_columns(unit), console=self.console, refresh_per_second=4,
                       redirect_stdout=False, redirect_stderr=False)
        task = bar.add_task(what, total=total, detail="", limit=_limit(total))

        def update(done: float | None = None, total: float | None = None, detail: str | None = None) -> None:
            fields = {} if detail is None else {"detail": detail}
            if total is not None:
                fields["limit"] = _limit(total)
            bar.update(task, completed=done, total=total, **fields)
            if not bar.live.is_started:  # started here, not before: no empty first frame
                bar.start()
        try:
            yield update
        finally:
            if bar.live.is_started:
                bar.stop()

    def table(self, title: str, columns: Sequence[str], rows: Rows, *, styles: Mapping[str, str] | None = None,
              caption: str = "", text: str | None = None) -> None:
        """A boxed table; a cell whose whole value is a key of `styles` (PASS, done, ...) gets that style."""
        from rich.table import Column, Table  # noqa: PLC0415
        from rich.text import Text  # noqa: PLC0415

        styles = STATE_STYLES if styles is None else styles
        # long values (paths, URLs) fold onto more lines: never cut off with an ellipsis
        t = Table(*(Column(c, overflow="fold") for c in columns), header_style="bold")
        for row in rows:
            t.add_row(*(Text(str(c), style=styles.get(str(c), "")) for c in row))
        # title and caption on lines of their own: a table's would wrap at the table's width
        if title:
            self.console.print(Text(title, style="bold"), soft_wrap=True)
        self.console.print(t)
        if caption:
            self.console.print(Text(caption), soft_wrap=True)

    def panel(self, title: str, text: str, *, style: str = "", copyable: str = "") -> None:
        """`text` in a box; `copyable` (a block of it) is printed below the box instead, bare, so that
        a mouse selection copies exactly the command."""
        from rich.panel import Panel  # noqa: PLC0415
        from rich.text import Text  # noqa: PLC0415

        body = text.rstrip()
        if copyable and copyable in body:
            body = body.replace(copyable, COPY_NOTE)
        self.console.print(Panel(Text(body), title=title, title_align="left", border_style=style or "none"))
        if copyable:
            self.write(copyable)


def _columns(unit: str) -> list:
    """Bytes: size, rate and ETA; anything else: seconds of the wait's time budget."""
    from rich.progress import (  # noqa: PLC0415
        BarColumn,
        DownloadColumn,
        SpinnerColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    head = [SpinnerColumn(), TextColumn("{task.description}"), BarColumn()]
    if unit == "bytes":
        return [*head, DownloadColumn(), TransferSpeedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
                TextColumn("{task.fields[detail]}")]
    return [*head, TimeElapsedColumn(), TextColumn("{task.fields[limit]}  {task.fields[detail]}")]


def _limit(total: float | None) -> str:
    return f"of {total:.0f} s" if total else ""
