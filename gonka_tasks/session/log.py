"""The run log: console + `logs/<KEY_NAME>_<timestamp>.log`, the seed's levels, secret redaction.

Every line is `[YYYY-MM-DD HH:MM:SS] [LEVEL] message`. Command output goes out as OUTPUT lines,
indented. Whatever prints a secret (a command echo, its output, an error, an exception), the
value is replaced by `***` before it reaches the file or the console.

The file always gets those plain lines. The console is chosen once per run (`console.choose`):
the same lines without a terminal; on a terminal, coloured lines plus live progress bars,
tables and panels (`progress`, `table`, `panel`), whose plain text still goes to the file.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shlex
import sys
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TextIO

from gonka_tasks.config.secretnames import MASK, MIN_SECRET_LEN
from gonka_tasks.session import console as consoles

LEVELS = ("INFO", "CHECK", "EXEC", "OK", "SKIP", "WARN", "ERROR", "OUTPUT")


class Redactor:
    """Replaces every registered secret (and its quoted/escaped forms) with `***`."""

    def __init__(self, secrets: Iterable[str] = ()):
        self._patterns: list[re.Pattern[str]] = []
        self._lock = threading.Lock()
        for s in secrets:
            self.add(s)

    def add(self, secret: str | None) -> None:
        """Register a secret. Multi-word secrets (a mnemonic) match with any whitespace between words."""
        if not secret or len(secret.strip()) < MIN_SECRET_LEN:
            return
        forms = {secret, shlex.quote(secret), json.dumps(secret)[1:-1]}
        pats = [re.escape(f) for f in forms]
        words = secret.split()
        if len(words) > 1:
            pats.append(r"\s+".join(re.escape(w) for w in words))
        with self._lock:
            # longest first so a quoted form is masked whole, not around its inner part
            self._patterns.extend(re.compile(p) for p in sorted(pats, key=len, reverse=True))

    def __call__(self, text: str) -> str:
        with self._lock:
            patterns = list(self._patterns)
        for p in patterns:
            text = p.sub(MASK, text)
        return text


def log_path(logs_dir: Path, key_name: str, when: float | None = None) -> Path:
    """`logs/<KEY_NAME>_<YYYYmmdd-HHMMSS>.log` (never the same name twice in one directory)."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(when))
    path = logs_dir / f"{key_name}_{stamp}.log"
    n = 1
    while path.exists():
        n += 1
        path = logs_dir / f"{key_name}_{stamp}-{n}.log"
    return path


def _at_level(level: str):
    """A RunLog method that logs one message at `level`."""
    def log_at(self, m: str) -> None:
        self.event(level, m)
    log_at.__name__ = level.lower()
    log_at.__doc__ = f"One {level} line."
    return log_at


class RunLog:
    """One run's log for one node: writes each event to the log file and the console."""

    def __init__(self, path: Path | None = None, *, secrets: Iterable[str] = (), console: TextIO | None = None,
                 prefix: str = "", quiet_levels: Iterable[str] = ()):
        self.path = path
        self.redact = Redactor(secrets)
        self.prefix = prefix
        self.quiet_levels = set(quiet_levels)
        self._console = console if console is not None else sys.stdout
        self.console = consoles.choose(self._console)
        self._lock = threading.Lock()
        self._file: TextIO | None = None
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            self._file = os.fdopen(fd, "a", encoding="utf-8")
        self.counts = dict.fromkeys(LEVELS, 0)

    def add_secret(self, value: str | None) -> None:
        """Register a value found at run time (a mnemonic) so that it never reaches the log."""
        self.redact.add(value)

    def event(self, level: str, message: str, *, console: bool = True) -> None:
        """Log one event (to the file always, to the console unless told not to); OUTPUT is indented."""
        if level not in LEVELS:
            raise ValueError(f"unknown log level {level}")
        text = self.redact(str(message))
        lines = [f"    {ln}" for ln in text.splitlines()] if level == "OUTPUT" else text.splitlines() or [""]
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        with self._lock:
            self.counts[level] += 1
            for ln in lines:
                line = f"[{stamp}] [{level}] {ln}"
                if self._file:
                    self._file.write(line + "\n")
                if console and level not in self.quiet_levels:
                    self._write_console(level, stamp, ln)
            if self._file:
                self._file.flush()

    def _write_console(self, level: str, stamp: str, line: str) -> None:
        self.console.line(stamp, self.prefix, level, line)

    @property
    def rich(self) -> bool:
        """True on a terminal: bars, tables and panels replace the plain lines on the console."""
        return self.console.rich

    @contextlib.contextmanager
    def progress(self, what: str, *, total: float | None = None, unit: str = "s") -> Iterator:
        """A progress display for a wait: yields `update(done, total, detail, line=None)`.

        `line` is the periodic INFO line the caller logs as it goes: always to the file, to the
        console only where there is no bar (so without a terminal the output is as it always was).
        """
        with self.console.progress(self.redact(what), total=total, unit=unit) as bar:
            def update(done=None, total=None, detail=None, *, line: str | None = None) -> None:
                bar(done, total, None if detail is None else self.redact(str(detail)))
                if line:
                    self.event("INFO", line, console=not self.rich)
            yield update

    def table(self, title: str, columns: Sequence[str], rows: Sequence[Sequence[str]], *, text: str | None = None,
              level: str = "INFO", styles: Mapping[str, str] | None = None, caption: str = "") -> None:
        """A table: `text` (its plain form, as the log always had it) is logged at `level` (console too
        without a terminal); on a terminal the console shows a rich table instead. `text=None`: the
        caller logged the lines itself."""
        if text is not None:
            self.event(level, text, console=not self.rich)
        if self.rich and level not in self.quiet_levels:
            rows = [[self.redact(str(c)) for c in r] for r in rows]
            with self._lock:
                self.console.table(self.redact(title), columns, rows, styles=styles, caption=self.redact(caption))

    def panel(self, title: str, text: str, *, level: str = "INFO", style: str = "", copyable: str = "") -> None:
        """`title:` and `text` logged at `level` (console too without a terminal); on a terminal a box
        instead, with `copyable` (a block of `text`, e.g. a command) printed bare below it."""
        self.event(level, f"{title}:\n{text}", console=not self.rich)
        if self.rich and level not in self.quiet_levels:
            with self._lock:
                self.console.panel(self.redact(title), self.redact(text), style=style,
                                   copyable=self.redact(copyable))

    def file_only(self, text: str) -> None:
        """Write detail (e.g. a traceback of an internal error) to the log file only, redacted."""
        if self._file:
            with self._lock:
                self._file.write(self.redact(text).rstrip() + "\n")
                self._file.flush()

    # one method per level: log.info("..."), log.check("..."), ...
    info = _at_level("INFO")
    check = _at_level("CHECK")
    exec = _at_level("EXEC")
    ok = _at_level("OK")
    skip = _at_level("SKIP")
    warn = _at_level("WARN")
    error = _at_level("ERROR")

    def output(self, m: str, *, console: bool = True) -> None:
        if m and m.strip():
            self.event("OUTPUT", m.rstrip("\n"), console=console)

    def close(self) -> None:
        with self._lock:
            if self._file:
                self._file.close()
                self._file = None
