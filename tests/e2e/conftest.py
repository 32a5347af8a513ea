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
