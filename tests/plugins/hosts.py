"""pytest fixtures for sandbox hosts (gonka_sim.hosts.host).

* ``sandbox_host_session`` (session): one host per pytest-xdist worker, index
  $GONKA_SANDBOX_IDX0 + worker number, state under $GONKA_SANDBOX_BASE. Stale hosts
  (owner process gone) are swept first; the host goes down at session end.
* ``sandbox_host`` (function): that host, reset to pristine before every test but the
  first, with HOME pointing at a temporary directory so the runner's ~/.ssh is out of reach.
* ``sandbox_host_factory`` (function): brings up extra hosts for fleet tests
  (``factory(2)`` -> two hosts) and downs them after the test.

Everything skips with the reason when the machine cannot run sandbox hosts (not root, a
tool missing). An atexit hook downs whatever is still up, in case the session ends
without running its finalizers.
"""

from __future__ import annotations

import atexit
import contextlib
import os
from pathlib import Path

import pytest

from gonka_sim.hosts import host as sandbox

FLEET_OFFSET = 50  # factory hosts use IDX0 + 50 + ...
FLEET_PER_WORKER = 8  # ... a block of 8 indexes per xdist worker

_live: set[sandbox.SandboxHost] = set()  # hosts to down at exit, whatever happens
_used: set[str] = set()  # session hosts that served a test already (need a reset)


@atexit.register
def _down_leftovers() -> None:
    for host in list(_live):
        with contextlib.suppress(Exception):
            host.down()


def worker_number() -> int:
    """0 for gw0 (or without xdist), 1 for gw1, ..."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    return int(worker[2:]) if worker.startswith("gw") and worker[2:].isdigit() else 0


def require_sandbox() -> None:
    """Skip the test when sandbox hosts cannot run here."""
    reasons = sandbox.missing_prerequisites()
    if reasons:
        pytest.skip("sandbox hosts unavailable: " + "; ".join(reasons))


def _private_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    monkeypatch.setenv("HOME", str(home))


def _up(name: str, idx: int, **kwargs) -> sandbox.SandboxHost:
    host = sandbox.SandboxHost.up(name, idx, **kwargs)
    _live.add(host)
    return host


def _down(host: sandbox.SandboxHost) -> None:
    try:
        host.down()
    finally:
        _live.discard(host)


@pytest.fixture(scope="session")
def sandbox_provision() -> list[Path]:
    """Extra trees copied into every sandbox host at start (a conftest may override this)."""
    return []


@pytest.fixture(scope="session")
def sandbox_host_session(sandbox_provision) -> sandbox.SandboxHost:
    """This worker's sandbox host, up for the whole session."""
    require_sandbox()
    base = sandbox.base_dir()
    idx = sandbox.first_index() + worker_number()
    sandbox.sweep(base)
    host = _up(f"s{idx}", idx, base=base, provision=sandbox_provision)
    try:
        yield host
    finally:
        _down(host)


@pytest.fixture
def sandbox_host(sandbox_host_session, monkeypatch, tmp_path) -> sandbox.SandboxHost:
    """The worker's sandbox host, pristine (reset unless this is its first test)."""
    _private_home(monkeypatch, tmp_path)
    host = sandbox_host_session
    if host.name in _used:
        host.reset()
    _used.add(host.name)
    return host


class HostFactory:
    """Brings up extra sandbox hosts in this worker's block of indexes; downs them on close()."""

    def __init__(self, base: Path, provision: list[Path] = ()):
        self.base = base
        self.provision = list(provision)
        self.hosts: list[sandbox.SandboxHost] = []
        self._next = sandbox.first_index() + FLEET_OFFSET + worker_number() * FLEET_PER_WORKER
        self._end = self._next + FLEET_PER_WORKER

    def reserve_index(self) -> int:
        """A free index of this worker's block (for hosts made by other means, e.g. the CLI)."""
        while self._next < self._end:
            idx, self._next = self._next, self._next + 1
            # Another run (another base) may use the same index right now: skip it.
            if not sandbox.index_in_use(idx) and not Path(f"/run/netns/{sandbox.PREFIX}f{idx}").exists():
                return idx
        raise RuntimeError(f"no free sandbox index left in this worker's block of {FLEET_PER_WORKER}")

    def __call__(self, count: int = 1, **kwargs) -> list[sandbox.SandboxHost]:
        """Bring up `count` hosts (keyword arguments go to SandboxHost.up)."""
        made = []
        for _ in range(count):
            idx = self.reserve_index()
            host = _up(f"f{idx}", idx, base=self.base, **{"provision": self.provision, **kwargs})
            self.hosts.append(host)
            made.append(host)
        return made

    def close(self) -> None:
        errors = []
        for host in self.hosts:
            try:
                _down(host)
            except Exception as e:  # down the others anyway
                errors.append(e)
        self.hosts.clear()
        if errors:
            raise errors[0]


@pytest.fixture
def sandbox_host_factory(monkeypatch, tmp_path, sandbox_provision) -> HostFactory:
    """Factory of extra sandbox hosts for fleet tests: ``hosts = sandbox_host_factory(2)``."""
    require_sandbox()
    _private_home(monkeypatch, tmp_path)
    factory = HostFactory(sandbox.base_dir(), sandbox_provision)
    try:
        yield factory
    finally:
        factory.close()
