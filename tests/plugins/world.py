"""Pytest fixtures for the runner-side simulated world: seed API, Hugging Face hub, package index.

Servers are session-scoped and bind 0.0.0.0 on free ports, so sandbox hosts reach them at
``host.runner_ip`` (``server.url_for(host.runner_ip)``) and runner-side code at ``server.url``.
The function-scoped fixtures (``seed``, ``hub``, ``world``) reset knobs, counters and simulated
state before each test, so tests can change knobs freely.

Fixtures:
  seed_server / seed      SeedServer
  hub_server / hub        HubServer serving ``sandbox/tiny-model`` (8 MiB) and small synthetic
                          repos under the default governance model ids
  pypi_index              PackageIndex over the cached wheelhouse (skips if it cannot be built)
  world                   World(seed, hub) with governance hf_commit values matching the hub
"""

from __future__ import annotations

import dataclasses

import pytest

from gonka_sim.network.hub import HubServer, make_model_repo
from gonka_sim.network.pypi import PackageIndex, WheelhouseError, build_wheelhouse, pip_conf_text
from gonka_sim.network.seed import DEFAULT_MODEL_IDS, SANDBOX_MODEL_ID, SeedServer


def world_repos():
    """Repos the session hub serves: the sandbox model plus 1 MiB stand-ins for the real ids."""
    repos = [make_model_repo(SANDBOX_MODEL_ID)]
    repos += [
        make_model_repo(m, total_size=1024 * 1024, shards=1)
        for m in DEFAULT_MODEL_IDS
        if m != SANDBOX_MODEL_ID
    ]
    return repos


@pytest.fixture(scope="session")
def seed_server():
    with SeedServer() as server:
        yield server


@pytest.fixture
def seed(seed_server):
    """The session seed server, reset to defaults for this test."""
    seed_server.wait_idle()  # a straggler from the previous test must not count in this one
    seed_server.reset()
    return seed_server


@pytest.fixture(scope="session")
def hub_server():
    with HubServer(repos=world_repos()) as server:
        yield server


@pytest.fixture
def hub(hub_server):
    """The session hub, reset to defaults (knobs, counters, repo set) for this test."""
    hub_server.wait_idle()
    hub_server.reset()
    return hub_server


@pytest.fixture(scope="session")
def wheelhouse():
    """Path of the cached wheelhouse (built on first use; skips the test when that fails)."""
    try:
        return build_wheelhouse()
    except WheelhouseError as exc:
        pytest.skip(f"cannot build the sandbox wheelhouse (needs pip access to an index once): {exc}")


@pytest.fixture(scope="session")
def pypi_index(wheelhouse):
    with PackageIndex(wheelhouse) as server:
        yield server


@dataclasses.dataclass
class World:
    """The runner-side servers of one test, with helpers for what a host needs to reach them."""

    seed: SeedServer
    hub: HubServer
    request: pytest.FixtureRequest

    @property
    def pypi(self) -> PackageIndex:
        """The package index (session fixture, started on first use)."""
        return self.request.getfixturevalue("pypi_index")

    def seed_url(self, ip: str = "127.0.0.1") -> str:
        return self.seed.url_for(ip)

    def hf_endpoint(self, ip: str = "127.0.0.1") -> str:
        return self.hub.url_for(ip)

    def pip_conf(self, ip: str) -> str:
        """pip.conf text for a host reaching the runner at ``ip`` (e.g. ~/.config/pip/pip.conf)."""
        return pip_conf_text(self.pypi.index_url_for(ip))

    def align_models(self) -> None:
        """Set each governance model's hf_commit to the commit the hub serves for it."""
        with self.seed.lock:
            for m in self.seed.knobs.models:
                repo = self.hub.repos.get(m.get("hf_repo") or m["id"])
                if repo is not None:
                    m["hf_commit"] = repo.commit


@pytest.fixture
def world(seed, hub, request):
    """Seed + hub reset for this test, governance models pointing at the hub's commits."""
    w = World(seed=seed, hub=hub, request=request)
    w.align_models()
    return w
