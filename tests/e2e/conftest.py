"""End-to-end fixtures: a Lab around this test's sandbox host and the simulated world, which writes
node configs and runs `fab` as a user would."""

from __future__ import annotations

import pytest

from gonka_sim.hosts.lab import Lab
from gonka_sim.network import repos


@pytest.fixture
def lab(sandbox_host, world, pypi_index, tmp_path):
    """Node configs in tmp_path/work/nodes, logs in tmp_path/work/logs; the host is pristine."""
    return Lab(workdir=tmp_path / "work", seed=world.seed, hub=world.hub, pypi=pypi_index,
               prometheus_repo=repos.UPSTREAMS["prometheus"])


@pytest.fixture
def demo_lock():
    """`fab demo` always brings up the host `demo` at index 42: one demo at a time on this machine,
    whichever worker (or test run) starts it."""
    import fcntl  # noqa: PLC0415
    import tempfile  # noqa: PLC0415
    from pathlib import Path  # noqa: PLC0415

    with open(Path(tempfile.gettempdir()) / "gonka-demo-tests.lock", "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        yield
