"""`fab demo`: the README's main job on a machine without a server; it must leave nothing behind."""

from __future__ import annotations

import os
import subprocess

import pytest

from gonka_sim.hosts import host as sandbox
from gonka_sim.hosts.lab import fab_command, make_project

pytestmark = [pytest.mark.sandbox, pytest.mark.slow, pytest.mark.xdist_group("demo"), pytest.mark.usefixtures("demo_lock")]  # a whole demo: in CI and with RUN_SLOW=1; one demo host at a time


def test_demo_deploys_and_leaves_nothing_behind(tmp_path):
    missing = sandbox.missing_prerequisites()
    if missing:
        pytest.skip("sandbox hosts unavailable: " + "; ".join(missing))
    base = tmp_path / "hosts"
    netns_before = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    r = subprocess.run([*fab_command(make_project(tmp_path)), "demo"], cwd=tmp_path, capture_output=True, text=True, timeout=900,
                       env={**os.environ, "GONKA_DEMO_BASE": str(base), "NO_COLOR": "1"})
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-2000:]
    assert "deploy finished with exit code 0" in r.stdout
    assert "Deployment of demo on 10.200.42.2 completed" in r.stdout
    assert (tmp_path / "nodes" / "demo" / "warm_key.txt").exists()
    # nothing left: no namespace, loop device, world process or state
    assert "gs-demo" not in subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert str(base) not in subprocess.run(["losetup", "-a"], capture_output=True, text=True).stdout
    assert not (tmp_path / ".sandbox-demo").exists()
    procs = subprocess.run(["pgrep", "-af", "gonka_sim.demo serve"], capture_output=True, text=True)
    assert str(tmp_path) not in procs.stdout
    assert subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout.count("gs-demo") == \
        netns_before.count("gs-demo")
