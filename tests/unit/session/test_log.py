"""The run log: line format, levels, and secrets masked whatever prints them."""

from __future__ import annotations

import io
import re

import pytest

from gonka_tasks.errors import DeployError, RemoteCommandError
from gonka_tasks.session.log import RunLog, log_path
from gonka_tasks.session.run import Run, Target, guarded
from tests.helpers import PASSWORD, conf_text, write_node

LINE = re.compile(r"^\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\] \[(INFO|CHECK|EXEC|OK|SKIP|WARN|ERROR|OUTPUT)\]")
MNEMONIC = ("abandon ability able about above absent absorb abstract absurd abuse access accident "
            "account accuse achieve acid acoustic acquire across act action actor actress actual")


def test_log_path_format(tmp_path):
    p = log_path(tmp_path, "node-a")
    assert re.fullmatch(r"node-a_\d{8}-\d{6}\.log", p.name)


def test_every_line_matches_the_seed_format(tmp_path):
    console = io.StringIO()
    log = RunLog(tmp_path / "x.log", console=console)
    for level in ("info", "check", "exec", "ok", "skip", "warn", "error"):
        getattr(log, level)(f"{level} message")
    log.output("line one\nline two")
    log.close()
    lines = (tmp_path / "x.log").read_text().splitlines()
    assert len(lines) == 9
    assert all(LINE.match(ln) for ln in lines)
    assert lines[-1].endswith("[OUTPUT]     line two")
    assert all(LINE.match(ln) for ln in console.getvalue().splitlines())


def test_log_file_is_private(tmp_path):
    log = RunLog(tmp_path / "x.log", console=io.StringIO())
    log.info("x")
    assert (tmp_path / "x.log").stat().st_mode & 0o777 == 0o600


def test_secrets_masked_on_every_path(tmp_path):
    cfg = __import__("gonka_tasks.config", fromlist=["load"]).load(write_node(tmp_path, conf_text()))
    console = io.StringIO()
    log = RunLog(tmp_path / "run.log", secrets=cfg.secrets, console=console)
    log.add_secret(MNEMONIC)
    # command echo, command output, error message, exception
    log.exec(f"echo {PASSWORD}")
    log.output(f"output with {PASSWORD} and\n{MNEMONIC}")
    log.output(MNEMONIC.replace(" ", "\n"))  # the words on separate lines
    log.error(str(RemoteCommandError("keys add", f"printf {PASSWORD!r}", 1, f"tail {MNEMONIC}")))
    run = Run(cfg=cfg, log=log, target=Target("h", "root", 22))

    def boom(_run):
        raise RuntimeError(f"exploded with {PASSWORD} / {MNEMONIC}")
    assert guarded(run, boom) == 1

    def fail(_run):
        raise DeployError(f"failed: {PASSWORD}", hint=f"mnemonic was {MNEMONIC}")
    run2 = Run(cfg=cfg, log=RunLog(tmp_path / "run.log", secrets=cfg.secrets, console=console),
               target=Target("h", "root", 22))
    run2.log.add_secret(MNEMONIC)
    assert guarded(run2, fail) == 1
    text = (tmp_path / "run.log").read_text() + console.getvalue()
    assert "***" in text
    for needle in (PASSWORD, MNEMONIC, "'secret'", "abandon ability able"):
        assert needle not in text
    assert "abandon\nability" not in text


@pytest.mark.parametrize("short", ["", "ab"])
def test_tiny_secrets_do_not_mask_everything(tmp_path, short):
    log = RunLog(None, secrets=[short], console=io.StringIO())
    assert log.redact("about a b") == "about a b"


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_the_log_file_is_the_same_with_a_terminal_console(tmp_path, monkeypatch):
    """Tables, panels and progress change only the console: the file holds the same plain lines."""
    monkeypatch.setenv("TERM", "xterm-256color")

    def events(log: RunLog) -> None:
        log.info("start")
        log.table("parameters", ("k", "v"), [("a", "1")], text="parameters:\na  1")
        with log.progress("waiting for x", total=10) as update:
            update(1, detail="not yet", line="waiting for x: not yet (1 s)")
        log.panel("final report", "done\n\ncmd \\\n  --flag", level="OK", copyable="cmd \\\n  --flag")
        log.close()
    events(RunLog(tmp_path / "plain.log", console=io.StringIO()))
    tty = _Terminal()
    events(RunLog(tmp_path / "tty.log", console=tty))
    strip = [re.sub(r"^\[[^]]*\] ", "", ln) for ln in (tmp_path / "plain.log").read_text().splitlines()]
    assert strip == [re.sub(r"^\[[^]]*\] ", "", ln) for ln in (tmp_path / "tty.log").read_text().splitlines()]
    assert all(LINE.match(ln) for ln in (tmp_path / "tty.log").read_text().splitlines())
    assert "╭─ final report" in tty.getvalue() and "[INFO] parameters:" not in tty.getvalue()
