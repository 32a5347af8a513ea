"""apt-get on a fresh server: the simulated apt-get takes apt's locks the way apt does, and the
deployer's install script waits for them (the lists lock included) instead of failing."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from gonka_tasks.core import aptget
from tests.sandbox.server import support

pytestmark = support.needs_sim_python
sim = support.sim  # fixture
APT = support.BIN / "apt-get"

HOLD = r"""
import ctypes, fcntl, os, sys, time
libc = ctypes.CDLL(None)
libc.prctl(15, b"unattended-upgr", 0, 0, 0)  # PR_SET_NAME: how apt names the holder
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o640)
fcntl.lockf(fd, fcntl.LOCK_EX)
print("held", flush=True)
time.sleep(float(sys.argv[2]))
"""


@pytest.fixture
def hold(sim):
    """Hold one of apt's lock files for a while, as unattended-upgrades does on a fresh server."""
    procs = []

    def start(path: str, seconds: float) -> subprocess.Popen:
        real = sim.root / path.lstrip("/")
        real.parent.mkdir(parents=True, exist_ok=True)
        p = subprocess.Popen([sys.executable, "-c", HOLD, str(real), str(seconds)], stdout=subprocess.PIPE, text=True)
        assert p.stdout.readline().strip() == "held"
        procs.append(p)
        return p

    yield start
    for p in procs:
        p.kill()
        p.wait()


def bash(sim, script: str, timeout: float = 60) -> subprocess.CompletedProcess:
    # the sim's apt-get first on PATH, as on a sandbox host
    return sim.run(["bash", "-c", script], env={"PATH": f"{support.BIN}:{os.environ.get('PATH', '/usr/bin:/bin')}"},
                   timeout=timeout)


def test_a_held_frontend_lock_fails_at_once_without_a_timeout_and_names_the_holder(sim, hold):
    p = hold("/var/lib/dpkg/lock-frontend", 30)
    r = sim.run([str(APT), "install", "-y", "pipx"])
    assert r.returncode == 100
    assert f"E: Could not get lock /var/lib/dpkg/lock-frontend. It is held by process {p.pid} (unattended-upgr)" in r.stderr
    assert "Unable to acquire the dpkg frontend lock" in r.stderr


def test_install_waits_for_the_frontend_lock_with_a_timeout(sim, hold):
    hold("/var/lib/dpkg/lock-frontend", 1.5)
    t0 = time.monotonic()
    r = sim.run([str(APT), "-o", "DPkg::Lock::Timeout=30", "install", "-y", "pipx"])
    assert r.returncode == 0, r.stderr
    assert time.monotonic() - t0 >= 1.2
    assert "Waiting for cache lock" in r.stderr


def test_update_never_waits_for_the_lists_lock(sim, hold):
    hold("/var/lib/apt/lists/lock", 30)
    t0 = time.monotonic()
    r = sim.run([str(APT), "-o", "DPkg::Lock::Timeout=30", "update", "-qq"])
    assert r.returncode == 100 and time.monotonic() - t0 < 5
    assert "Unable to lock directory /var/lib/apt/lists/" in r.stderr


def test_the_install_script_waits_for_both_locks_then_installs(sim, hold):
    (sim.root / "usr" / "bin").mkdir(parents=True)
    (sim.root / "usr/bin/pipx").write_text("#!/bin/sh\necho pipx\n")
    assert sim.run([str(APT), "purge", "-y", "pipx"]).returncode == 0
    assert not (sim.root / "usr/bin/pipx").exists()  # a host without pipx
    hold("/var/lib/apt/lists/lock", 2)
    hold("/var/lib/dpkg/lock-frontend", 3)
    r = bash(sim, aptget.install_script(["pipx"], wait_s=60, pause_s=1))
    assert r.returncode == 0, r.stderr
    assert "waiting for the package lock (Could not get lock /var/lib/apt/lists/lock" in r.stderr
    assert (sim.root / "usr/bin/pipx").exists()


def test_the_install_script_stops_at_once_on_other_errors_and_at_the_deadline(sim, hold):
    r = bash(sim, aptget.install_script(["no-such-package"], wait_s=60, pause_s=1))
    assert r.returncode == 1 and "E: Unable to locate package no-such-package" in r.stderr
    hold("/var/lib/apt/lists/lock", 30)
    t0 = time.monotonic()
    r = bash(sim, aptget.install_script(["pipx"], wait_s=2, pause_s=1))
    assert r.returncode == 1 and "Unable to lock directory" in r.stderr and time.monotonic() - t0 < 10
