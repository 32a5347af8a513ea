"""The console: rich rendering on a terminal, the plain `[time] [LEVEL]` lines everywhere else.

Both modes are rendered into a StringIO: a stream that says it is a terminal gets the rich console
(as a pseudo-terminal does), any other the plain one. The recorded `fab demo` session kept in
tests/fixtures/ is checked here too, so that it is checked without root.
"""

from __future__ import annotations

import io
import re
from collections import defaultdict
from pathlib import Path
from types import SimpleNamespace

import pytest

from gonka_tasks.cli.fleet import NodeResult, run_fleet, show_summary, summary_table
from gonka_tasks.errors import DeployError
from gonka_tasks.operations import status as status_phase
from gonka_tasks.phases import common
from gonka_tasks.phases import download_model as model
from gonka_tasks.phases import verify as verify_phase
from gonka_tasks.session import console as consoles
from gonka_tasks.session.log import RunLog
from tests.doubles import make_run
from tests.helpers import FIXTURES

FIXTURE = FIXTURES / "demo-terminal.txt"
LINE = re.compile(r"^\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\] \[(INFO|CHECK|EXEC|OK|SKIP|WARN|ERROR|OUTPUT)\] ")
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
COLOUR = re.compile(r"\x1b\[[0-9;]*(3[0-7]|38;5;\d+|9[0-7])m")  # foreground colours (bold alone is no colour)
GRANT = ("./inferenced tx inference grant-ml-ops-permissions cold gonka1warm \\\n"
         "    --from cold --keyring-backend file --gas 2000000 \\\n"
         "    --node http://seed:8000/chain-rpc/")
REPORT = f"Deployment of n1 completed.\n\nTHE ONE THING LEFT TO DO:\n\n{GRANT}\n\nIt fails until registered.\n"


class Terminal(io.StringIO):
    """What a pseudo-terminal looks like to the console: a stream that is a TTY."""

    def isatty(self) -> bool:
        return True


@pytest.fixture(autouse=True)
def terminal_env(monkeypatch):
    """A colour terminal of known width, unless a test says otherwise."""
    monkeypatch.setenv("TERM", "xterm-256color")
    monkeypatch.setenv("COLUMNS", "120")
    monkeypatch.delenv("NO_COLOR", raising=False)


def screen(raw: str) -> list[str]:
    """The lines a terminal shows, ANSI codes dropped, every progress redraw its own line."""
    return [ln for ln in re.split(r"\r\n|\r|\n", ANSI.sub("", raw))]


def file_lines(path: Path) -> list[str]:
    return path.read_text().splitlines()


# ------------------------------------------------------------------------- choosing
def test_choose_rich_only_on_a_terminal(monkeypatch):
    assert isinstance(consoles.choose(Terminal()), consoles.RichConsole)
    assert isinstance(consoles.choose(io.StringIO()), consoles.PlainConsole)  # a pipe, CI, cron
    monkeypatch.setenv("TERM", "dumb")
    plain = consoles.choose(Terminal())
    assert isinstance(plain, consoles.PlainConsole) and not plain.colour
    shared = Terminal()
    shared.plain_only = True  # nodes running in parallel
    assert isinstance(consoles.choose(shared), consoles.PlainConsole)


def test_term_dumb_gives_the_plain_lines(tmp_path, monkeypatch):
    monkeypatch.setenv("TERM", "dumb")
    out = Terminal()
    log = RunLog(tmp_path / "x.log", console=out)
    log.table("parameters", ("parameter", "value"), [("KEY_NAME", "n1")], text="parameters:\nKEY_NAME  n1")
    log.warn("careful")
    log.close()
    assert out.getvalue().splitlines() == file_lines(tmp_path / "x.log")
    assert "\x1b" not in out.getvalue()


def test_no_color_keeps_the_layout_without_colour(tmp_path, monkeypatch):
    monkeypatch.setenv("NO_COLOR", "1")
    out = Terminal()
    log = RunLog(tmp_path / "x.log", console=out)
    log.ok("fine")
    log.table("verify n1", ("result", "check", "detail"), [("PASS", "rpc", "in sync"), ("FAIL", "gpu", "none")])
    assert "┃ result" in ANSI.sub("", out.getvalue()) and "│ FAIL" in ANSI.sub("", out.getvalue())
    assert not COLOUR.search(out.getvalue())
    monkeypatch.delenv("NO_COLOR")
    coloured = Terminal()
    RunLog(None, console=coloured).table("verify", ("result",), [("PASS",)])
    assert COLOUR.search(coloured.getvalue())


# ------------------------------------------------------------------------- both modes
def _everything(log: RunLog) -> None:
    log.info("starting")
    log.table("parameters of n1", ("parameter", "value"), [("KEY_NAME", "n1"), ("KEYRING_PASSWORD", "s3cr3t-pw")],
              text="parameters:\nKEY_NAME          n1\nKEYRING_PASSWORD  s3cr3t-pw", styles={})
    log.panel("final report (also in nodes/n1/report.txt)", REPORT, level="OK", style="green", copyable=GRANT)


def test_plain_mode_is_the_seed_format(tmp_path):
    out = io.StringIO()
    log = RunLog(tmp_path / "x.log", secrets=["s3cr3t-pw"], console=out)
    _everything(log)
    log.close()
    lines = out.getvalue().splitlines()
    assert all(LINE.match(ln) for ln in lines)
    assert lines == file_lines(tmp_path / "x.log")
    assert any(ln.endswith("[INFO] parameters:") for ln in lines)
    assert any(ln.endswith("[OK] ./inferenced tx inference grant-ml-ops-permissions cold gonka1warm \\") for ln in lines)
    assert "s3cr3t-pw" not in out.getvalue()


def test_rich_mode_tables_and_panel_with_a_plain_log_file(tmp_path):
    out = Terminal()
    log = RunLog(tmp_path / "x.log", secrets=["s3cr3t-pw"], console=out)
    _everything(log)
    log.close()
    shown = screen(out.getvalue())
    assert shown[0].endswith("[INFO] starting")
    assert any(ln.startswith("┏━") for ln in shown) and any("┃ parameter" in ln for ln in shown)
    assert any(ln.startswith("│ KEYRING_PASSWORD") and "***" in ln for ln in shown)
    assert any(ln.startswith("╭─ final report") for ln in shown) and any(ln.startswith("╰─") for ln in shown)
    assert any(ln.startswith("│") and consoles.COPY_NOTE in ln for ln in shown)
    # the grant command: below the box, bare, exactly as the report has it
    i = shown.index(GRANT.splitlines()[0])
    assert shown[i:i + 3] == GRANT.splitlines()
    assert not any("[INFO] parameters:" in ln or "[OK] final report" in ln for ln in shown)
    assert "s3cr3t-pw" not in out.getvalue()
    # the log file is what it always was
    lines = file_lines(tmp_path / "x.log")
    assert all(LINE.match(ln) for ln in lines)
    assert lines[1].endswith("[INFO] parameters:") and lines[3].endswith("KEYRING_PASSWORD  ***")
    assert any(ln.endswith(f"[OK] {GRANT.splitlines()[0]}") for ln in lines)


def test_plain_table_and_panel_without_a_log():
    out = io.StringIO()
    plain = consoles.choose(out)
    plain.table("t", ("a", "bb"), [("1", "2")])
    plain.panel("title", "body\n")
    assert out.getvalue() == "t\na  bb\n-  --\n1  2\ntitle:\nbody\n"


# ------------------------------------------------------------------------- progress
def _wait(log: RunLog) -> str:
    answers = iter([(False, "height 1"), (False, "height 2"), (False, "height 3"), (True, "in sync")])
    return common.wait_until(SimpleNamespace(log=log), "node sync", lambda: next(answers), deadline_s=60,
                             interval_s=0.05, report_every_s=0, first_pause_s=0.01)


def test_wait_plain_logs_the_periodic_lines(tmp_path):
    out = io.StringIO()
    log = RunLog(tmp_path / "x.log", console=out)
    assert _wait(log) == "in sync"
    waits = [ln for ln in out.getvalue().splitlines() if "waiting for node sync" in ln]
    assert len(waits) == 3 and all(LINE.match(ln) for ln in waits)
    assert re.search(r"\[INFO\] waiting for node sync: height 1 \(\d+ s\)$", waits[0])


def test_wait_on_a_terminal_is_a_bar_and_the_log_keeps_its_lines(tmp_path):
    out = Terminal()
    log = RunLog(tmp_path / "x.log", console=out)
    _wait(log)
    log.close()
    shown = screen(out.getvalue())
    bars = [ln for ln in shown if "waiting for node sync" in ln]
    assert bars and all("━" in ln and re.search(r"\d:\d\d:\d\d of 60 s", ln) for ln in bars)
    assert "in sync" in bars[-1]
    assert not any("[INFO] waiting for" in ln for ln in shown)
    assert sum("[INFO] waiting for node sync: height" in ln for ln in file_lines(tmp_path / "x.log")) == 3


def test_wait_that_is_over_at_once_shows_nothing(tmp_path):
    out = Terminal()
    log = RunLog(None, console=out)
    assert common.wait_until(SimpleNamespace(log=log), "x", lambda: (True, "up"), deadline_s=5) == "up"
    assert out.getvalue() == ""


def test_wait_past_its_deadline_still_fails(tmp_path):
    log = RunLog(None, console=Terminal())
    with pytest.raises(DeployError, match="not ready after 0 s"):
        common.wait_until(SimpleNamespace(log=log), "x", lambda: (False, "no"), deadline_s=0.05, interval_s=0.02,
                          first_pause_s=0.02)


def _download(log: RunLog, monkeypatch) -> None:
    mb = 1_000_000
    states = iter([{"state": "running", "total": 50 * mb, "done": 0}, {"state": "running", "total": 50 * mb, "done": 10 * mb},
                   {"state": "running", "total": 50 * mb, "done": 30 * mb}, {"state": "complete", "total": 50 * mb}])
    monkeypatch.setattr(model, "poll_job", lambda run: (True, next(states)))
    model.wait_download(SimpleNamespace(log=log), "python3", poll_s=0.05, report_s=0, files="2 of 3 files to fetch")


def test_download_on_a_terminal_shows_bytes_rate_eta_and_files(tmp_path, monkeypatch):
    out = Terminal()
    log = RunLog(tmp_path / "x.log", console=out)
    _download(log, monkeypatch)
    log.close()
    shown = screen(out.getvalue())
    bars = [ln for ln in shown if ln.lstrip(" ⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏").startswith("model download ")]
    assert bars and all("━" in ln and "2 of 3 files to fetch" in ln for ln in bars)
    assert any(re.search(r"\d+\.\d/50\.0 MB", ln) for ln in bars)
    assert re.search(r"50\.0/50\.0 MB \d+(\.\d)? [kMG]B/s ETA 0:00:00 ", bars[-1])  # the last frame stays
    assert shown[-2].endswith("[OK] model download complete: 50.0 MB")
    logged = file_lines(tmp_path / "x.log")
    assert any(re.search(r"\[INFO\] model download: 30\.0 MB / 50\.0 MB \(60%\), .*/s", ln) for ln in logged)
    assert not any("[INFO] model download:" in ln for ln in shown)


def test_download_without_a_terminal_logs_progress_lines(tmp_path, monkeypatch):
    out = io.StringIO()
    log = RunLog(tmp_path / "x.log", console=out)
    _download(log, monkeypatch)
    lines = out.getvalue().splitlines()
    assert all(LINE.match(ln) for ln in lines)
    assert [ln.split("] ", 2)[2].split(" (")[0] for ln in lines[:3]] == [
        "model download: 0 B / 50.0 MB", "model download: 10.0 MB / 50.0 MB", "model download: 30.0 MB / 50.0 MB"]
    assert lines[-1].endswith("[OK] model download complete: 50.0 MB")


# ------------------------------------------------------------------------- status and verify
def _node_run(tmp_path, out):
    return make_run(tmp_path, console=out)


def _show_status(run, monkeypatch) -> None:
    probe = SimpleNamespace(ok=False, out="", stdout="")
    monkeypatch.setattr(status_phase, "gather", lambda run: {"r": defaultdict(lambda: probe), "registered": None})
    monkeypatch.setattr(status_phase, "phase_states", lambda run, g: [
        ("prepare-server", "done", "/dev/vdc at /mnt/ssd"), ("launch", "broken", "stopped: api")])
    status_phase.status(run)
    run.log.close()


def test_status_plain_is_the_text_it_was(tmp_path, monkeypatch):
    out = io.StringIO()
    _show_status(_node_run(tmp_path, out), monkeypatch)
    body = [ln.split("] [INFO] ", 1)[1] for ln in out.getvalue().splitlines()]
    assert body[:5] == ["status of node-a (198.51.100.7):", "phase           state    detail",
                        "--------------  -------  ------", "prepare-server  done     /dev/vdc at /mnt/ssd",
                        "launch          broken   stopped: api"]
    assert body[7].startswith("containers:  none")


def test_status_on_a_terminal_is_a_coloured_table(tmp_path, monkeypatch):
    out = Terminal()
    run = _node_run(tmp_path, out)
    _show_status(run, monkeypatch)
    shown = screen(out.getvalue())
    assert shown[0].startswith("status of node-a (198.51.100.7)")
    assert any(re.match(r"│ launch +│ broken +│ stopped: api +│", ln) for ln in shown)
    assert any(ln.startswith("containers:  none") for ln in shown)  # the facts under the table
    assert "\x1b[1;31mbroken" in out.getvalue()
    logged = file_lines(tmp_path / "run.log")  # the text the log always had: title, 3+3 table lines, 6 facts
    assert len(logged) == 13 and logged[0].endswith("[INFO] status of node-a (198.51.100.7):")
    assert logged[2].endswith("[INFO] --------------  -------  ------")


def _verify(run, monkeypatch):
    monkeypatch.setattr(verify_phase, "run_checks", lambda run: [
        verify_phase.Check("registration", "PASS", "listed"), verify_phase.Check("logs", "WARN", "2 errors"),
        verify_phase.Check("CUDA", "FAIL", "no GPU")])
    with pytest.raises(DeployError, match="1 PASS, 1 WARN, 1 FAIL"):
        verify_phase.verify(run)
    run.log.close()


def test_verify_plain_lines_and_coloured_table(tmp_path, monkeypatch):
    out = io.StringIO()
    _verify(_node_run(tmp_path / "plain", out), monkeypatch)
    assert [ln.split("] ", 1)[1] for ln in out.getvalue().splitlines()] == [
        "[OK] verify PASS registration: listed", "[WARN] verify WARN logs: 2 errors", "[ERROR] verify FAIL CUDA: no GPU"]
    tty = Terminal()
    run = _node_run(tmp_path / "tty", tty)
    _verify(run, monkeypatch)
    shown = screen(tty.getvalue())
    assert any(re.match(r"│ FAIL +│ CUDA +│ no GPU +│", ln) for ln in shown)
    for result, colour in (("PASS", "32"), ("WARN", "33"), ("FAIL", "31")):
        assert f"\x1b[1;{colour}m{result}" in tty.getvalue()
    assert not any("verify PASS" in ln for ln in shown)
    assert file_lines(tmp_path / "tty" / "run.log")[-1].endswith("[ERROR] verify FAIL CUDA: no GPU")
    assert run.log.counts["ERROR"] == 1 and run.log.counts["OK"] == 1


# ------------------------------------------------------------------------- fleet
def _results() -> list[NodeResult]:
    rows = [("prepare-server", "done", ""), ("launch", "pending", ""), ("verify", "broken", "")]
    return [NodeResult("nodes/a.conf", 0, 1.5, ["launch"], "", rows),
            NodeResult("nodes/b.conf", 1, 2.0, [], "connection refused", rows[:2] + [("verify", "done", "")])]


def test_fleet_summary_plain_is_the_text_it_was():
    out = io.StringIO()
    show_summary(consoles.choose(out), _results())
    assert out.getvalue() == summary_table(_results()) + "\n"


def test_fleet_summary_and_status_on_a_terminal_are_tables():
    out = Terminal()
    show_summary(consoles.choose(out), _results())
    shown = screen(out.getvalue())
    assert shown[0].startswith("status of the fleet")
    assert any(re.match(r"│ a +│ done +│ pending +│ broken +│", ln) for ln in shown)  # one row per node
    assert any(ln.startswith("fleet summary: 1/2 nodes ok") for ln in shown)
    assert any(re.match(r"│ b +│ FAILED +│ - +│ 2\.0s +│ connection refused +│", ln) for ln in shown)


def test_parallel_nodes_write_plain_lines_on_a_terminal(tmp_path):
    out = Terminal()

    def one(path, console=None, prefix=""):
        log = RunLog(None, console=console, prefix=prefix)
        log.table("parameters", ("k", "v"), [("a", "1")], text="parameters:\na  1")
        return 0, SimpleNamespace(steps=SimpleNamespace(changed_phases=[]), status_rows=None)
    assert run_fleet(["nodes/a.conf", "nodes/b.conf"], one, parallel=2, console=out) == 0
    shown = screen(out.getvalue())
    assert sum(bool(re.match(r"^\[[\d: -]+\] [ab] \| \[INFO\] parameters:$", ln)) for ln in shown) == 2
    assert any(ln.startswith("fleet summary: 2/2 nodes ok") for ln in shown) and any("┃ node" in ln for ln in shown)


# ------------------------------------------------------------------------- the recording
def check_terminal_recording(raw: str) -> None:
    """What `fab demo` on a terminal must show: progress bars, tables, the report panel, a bare grant command."""
    assert COLOUR.search(raw), "no colour at all"
    shown = screen(raw)
    bars = [ln for ln in shown if "waiting for" in ln and "━" in ln]
    assert bars and any(re.search(r"\d:\d\d:\d\d of \d+ s", ln) for ln in bars), "no progress bar"
    assert any(ln.startswith("parameters of demo") for ln in shown), "no parameters table"
    assert any(ln.startswith("┃ parameter ") for ln in shown) and any(ln.startswith("┏━") for ln in shown)
    assert any(ln.startswith("┃ result ") for ln in shown), "no verify table"
    assert any(re.match(r"│ PASS +│ registration +│", ln) for ln in shown)
    assert any(ln.startswith("╭─ final report") for ln in shown), "no report panel"
    assert any(ln.startswith("│ Deployment of demo on 10.200.42.2 completed") for ln in shown)
    grant = [i for i, ln in enumerate(shown) if "grant-ml-ops-permissions" in ln]
    assert len(grant) == 1, "the grant command once, below the panel"
    i = grant[0]
    assert shown[i].startswith("./inferenced tx inference grant-ml-ops-permissions sandbox-cold gonka1")
    assert shown[i + 1].startswith("    --from sandbox-cold --keyring-backend file")
    assert shown[i + 2].startswith("    --gas auto --gas-adjustment 1.5 --gas-prices 10ngonka")
    assert shown[i + 3].startswith("    --node http://10.200.42.1:")
    assert not any("[INFO] parameters:" in ln or "final report (also" in ln and "[OK]" in ln for ln in shown)


def test_recorded_demo_session_shows_bars_tables_and_the_panel():
    raw = FIXTURE.read_text(encoding="utf-8")
    check_terminal_recording(raw)
    assert "/tmp/" not in raw and "/work/" not in raw  # machine paths replaced by placeholders


def test_long_values_fold_instead_of_being_cut(monkeypatch):
    monkeypatch.setenv("COLUMNS", "60")
    out = Terminal()
    path = "/srv/a/very/long/path/" + "x" * 70 + "/client_ed25519"
    RunLog(None, console=out).table("parameters", ("parameter", "value"), [("SSH_KEY", path)], styles={})
    shown = "".join(ln.strip("│ ") for ln in screen(out.getvalue()) if ln.startswith("│"))
    assert "…" not in out.getvalue() and path in shown.replace("SSH_KEY", "")
