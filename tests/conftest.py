"""Shared fixtures: sandbox hosts (tests/plugins/hosts.py) and the simulated Gonka world (world.py)."""

from __future__ import annotations

import pytest

pytest_plugins = ["tests.plugins.hosts", "tests.plugins.world"]


@pytest.fixture(scope="session")
def sandbox_provision(tmp_path_factory):
    """Every sandbox host gets the local gonka and prometheus repos under /srv/git."""
    from gonka_sim.network import repos  # noqa: PLC0415

    return [repos.provision_dir(tmp_path_factory.mktemp("repos"))]
