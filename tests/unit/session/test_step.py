"""The step engine: CHECK -> SKIP | EXEC -> OK, errors stop, plan mode never acts."""

from __future__ import annotations

import io

import pytest

from gonka_tasks.errors import DeployError, RemoteCommandError
from gonka_tasks.session.log import RunLog
from gonka_tasks.session.run import Run, Target, guarded
from gonka_tasks.session.step import Steps
from tests.helpers import conf_text, write_node


def _log(tmp_path):
    return RunLog(tmp_path / "s.log", console=io.StringIO())


def _levels(tmp_path):
    return [ln.split("] [")[1].split("]")[0] for ln in (tmp_path / "s.log").read_text().splitlines()]


def test_done_check_skips_and_never_acts(tmp_path):
    calls = []
    steps = Steps(_log(tmp_path))
    assert steps.run("disk mounted", lambda: (True, "at /mnt/ssd"), lambda: calls.append(1)) == "skip"
    assert calls == []
    assert _levels(tmp_path) == ["CHECK", "SKIP"]


def test_not_done_runs_then_rechecks(tmp_path):
    state = {"done": False}
    steps = Steps(_log(tmp_path))
    assert steps.run("make it", lambda: state["done"], lambda: state.update(done=True)) == "done"
    assert _levels(tmp_path) == ["CHECK", "EXEC", "OK"]
    assert steps.changed == ["make it"]


def test_action_that_does_not_stick_is_an_error(tmp_path):
    steps = Steps(_log(tmp_path))
    with pytest.raises(DeployError, match="still not done"):
        steps.run("stubborn", lambda: False, lambda: None)


def test_failing_action_logs_error_and_exits_1(tmp_path):
    cfg = __import__("gonka_tasks.config", fromlist=["load"]).load(write_node(tmp_path, conf_text()))
    log = _log(tmp_path)
    run = Run(cfg=cfg, log=log, target=Target("h", "root", 22))

    def act():
        raise RemoteCommandError("mkfs", "mkfs.ext4 /dev/vdc", 1, "mkfs: device busy")

    code = guarded(run, lambda r: r.steps.run("format", lambda: False, act))
    assert code == 1
    text = (tmp_path / "s.log").read_text()
    assert "[ERROR] mkfs failed (exit code 1)" in text
    assert "mkfs.ext4 /dev/vdc" in text and "device busy" in text
    assert "Traceback" not in text


def test_plan_mode_checks_but_never_acts(tmp_path):
    calls, checks = [], []
    steps = Steps(_log(tmp_path), plan=True)

    def check():
        checks.append(1)
        return False
    assert steps.run("format disk", check, lambda: calls.append(1)) == "planned"
    assert steps.run("mounted", lambda: True, lambda: calls.append(1)) == "skip"
    assert calls == [] and checks == [1]
    assert "PLAN would run: format disk" in (tmp_path / "s.log").read_text()
