"""`fab demo` as an operator sees it: on a terminal (a pseudo-terminal made by util-linux `script`)
progress bars, tables and the report panel; without one, the plain `[time] [LEVEL]` lines.

`GONKA_RECORD_FIXTURE=1` also saves the terminal recording as tests/fixtures/demo-terminal.txt
(machine paths replaced by placeholders), which tests/unit/session/test_console.py checks without root.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from gonka_sim.hosts import host as sandbox
from gonka_sim.hosts.lab import PROJECT_ROOT, fab_command, make_project
from tests.unit.session.test_console import ANSI, FIXTURE, LINE, check_terminal_recording

pytestmark = [pytest.mark.sandbox, pytest.mark.slow, pytest.mark.xdist_group("demo"), pytest.mark.usefixtures("demo_lock")]  # demos: in CI and with RUN_SLOW=1; one demo host at a time

DEMO_LINE = re.compile(r"^\[demo\] ")
# the right edge of a table row or panel line, with the colour codes around it
RIGHT_BORDER = re.compile(r"(?:\x1b\[[0-9;]*m)*(?P<edge>[│┃╮])(?:\x1b\[[0-9;]*m)*$")


@pytest.fixture
def demo_project():
    """A project of its own for the demo; the demo is always brought down at the end.

    A short directory (not pytest's tmp_path): the paths the console shows stay on one line, so
    that the recording's paths can be replaced whole."""
    missing = sandbox.missing_prerequisites()
    if missing:
        pytest.skip("sandbox hosts unavailable: " + "; ".join(missing))
    top = Path(tempfile.mkdtemp(prefix="gsdemo-"))
    project = make_project(top / "work")
    env = {**os.environ, "GONKA_DEMO_BASE": str(top / "hosts"), "TERM": "xterm-256color",
           "COLUMNS": "120", "LINES": "40"}
    env.pop("NO_COLOR", None)
    try:
        yield project, env
    finally:
        subprocess.run([*fab_command(project), "demo", "--down"], cwd=project, env=env, capture_output=True,
                       timeout=120, check=False)
        shutil.rmtree(top, ignore_errors=True)


def _logs(project: Path) -> list[str]:
    return [ln for p in sorted((project / "logs").glob("demo_*.log")) for ln in p.read_text().splitlines()]


def _sanitise(raw: str, project: Path, env: dict) -> str:
    """The recording without machine paths (and without `script`'s own header and footer lines).

    A placeholder is shorter than the path it replaces: a box line gets the difference back
    before its right border, so that the boxes stay aligned."""
    marks = ((str(project), "<work>"), (env["GONKA_DEMO_BASE"], "<hosts>"), (str(PROJECT_ROOT), "<repo>"))
    out = []
    for line in raw.splitlines(keepends=True):
        if line.startswith(("Script started", "Script done")):
            continue
        body = line.rstrip("\r\n")
        new = body
        for path, mark in marks:
            new = new.replace(path, mark)
        lost = len(body) - len(new)
        if lost:
            new = RIGHT_BORDER.sub(lambda m, n=lost: ("─" if m["edge"] == "╮" else " ") * n + m[0], new, count=1)
        out.append(new + line[len(body):])
    return "".join(out)


def test_demo_on_a_terminal_shows_bars_tables_and_the_report_panel(demo_project):
    if not shutil.which("script"):
        pytest.skip("util-linux `script` is not installed")
    project, env = demo_project
    rec = project.parent / "terminal.txt"
    cmd = shlex.join([*fab_command(project), "demo"])
    r = subprocess.run(["script", "-q", "-e", "-c", cmd, str(rec)], cwd=project, env=env, stdin=subprocess.DEVNULL,
                       capture_output=True, timeout=900)
    raw = rec.read_text(encoding="utf-8", errors="replace")
    assert r.returncode == 0, ANSI.sub("", raw)[-3000:]
    check_terminal_recording(raw)
    # the log file stays plain lines whatever the console showed
    logged = _logs(project)
    assert logged and all(LINE.match(ln) for ln in logged)
    assert any(ln.endswith("[INFO] parameters:") for ln in logged)
    assert any("[OK] verify PASS registration:" in ln for ln in logged)
    assert any(re.search(r"\[OK\] \./inferenced tx inference grant-ml-ops-permissions", ln) for ln in logged)
    if os.environ.get("GONKA_RECORD_FIXTURE"):
        FIXTURE.parent.mkdir(exist_ok=True)
        FIXTURE.write_text(_sanitise(raw, project, env), encoding="utf-8")


def test_demo_without_a_terminal_gives_plain_lines(demo_project):
    project, env = demo_project
    r = subprocess.run([*fab_command(project), "demo"], cwd=project, env=env, stdin=subprocess.DEVNULL,
                       capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-2000:]
    assert "\x1b" not in r.stdout
    lines = [ln for ln in r.stdout.splitlines() if ln]
    assert lines and all(LINE.match(ln) or DEMO_LINE.match(ln) for ln in lines), \
        [ln for ln in lines if not (LINE.match(ln) or DEMO_LINE.match(ln))][:5]
    assert any(ln.endswith("[INFO] parameters:") for ln in lines)
    assert any(ln.endswith("[INFO] final report (also in " + str(project / "nodes/demo/report.txt") + "):")
               or "[OK] final report (also in" in ln for ln in lines)
    assert any(re.search(r"\[OK\] \./inferenced tx inference grant-ml-ops-permissions", ln) for ln in lines)
    assert not any(ch in r.stdout for ch in "┏╭━")
