"""Chaos convergence, CI size: deploys killed at a random moment converge on one rerun.

Each test is one iteration of the benchmark in bench/chaos.py on a pristine sandbox host:
`fab deploy --yes` killed after a random delay (SIGKILL of the deployer, or of the SSH session
inside the host), then rerun until done; the end state must be an uninterrupted deploy's
(services, warm key and its mnemonic, one registration, TOML edits, one fstab line, volume.txt,
mkfs and `keys add` once, no *.tmp leftovers).

Environment: GONKA_CHAOS_ITERATIONS (default 5), GONKA_CHAOS_SEED (default: random, printed
and shared by all xdist workers of a run), GONKA_CHAOS_SPAN (seconds the kill delays are drawn
from, default 25: a fresh sandbox deploy). The full run is `python -m bench.chaos --iterations 20`.
"""

from __future__ import annotations

import hashlib
import os

import pytest

from bench import chaos

pytestmark = pytest.mark.sandbox

ITERATIONS = int(os.environ.get("GONKA_CHAOS_ITERATIONS") or 5)
SPAN = float(os.environ.get("GONKA_CHAOS_SPAN") or chaos.DEFAULT_SPAN)


@pytest.fixture(autouse=True)
def _no_stray_fab():
    """A test that fails half-way leaves no `fab` of its own running."""
    yield
    chaos.kill_started()


def run_seed() -> int:
    """$GONKA_CHAOS_SEED, else one seed per test run (the same in every xdist worker)."""
    if os.environ.get("GONKA_CHAOS_SEED"):
        return chaos.chaos_seed()
    uid = os.environ.get("PYTEST_XDIST_TESTRUNUID")
    if uid:
        return int(hashlib.sha256(uid.encode()).hexdigest()[:8], 16) % 10**9
    return chaos.chaos_seed()


SEED = run_seed()


@pytest.mark.parametrize("iteration", range(ITERATIONS))
def test_killed_deploy_converges(iteration, lab, sandbox_host, world):
    plan = chaos.kill_plan(SEED, iteration)
    replay = (f"replay: GONKA_CHAOS_SEED={SEED} GONKA_CHAOS_SPAN={SPAN:g} pytest tests/e2e/test_chaos.py::"
              f"test_killed_deploy_converges[{iteration}]  or  {chaos.replay_hint(SEED, plan, SPAN)}")
    print(f"chaos seed {SEED}: {plan.kind} kill at {plan.delay(SPAN)} s\n{replay}")
    res = chaos.run_iteration(sandbox_host, lab, world.seed, plan, SPAN)
    print(chaos.describe(res))
    for note in res.notes:
        print(f"note: {note}")
    assert res.ok, "\n".join([f"chaos seed {SEED}: {chaos.describe(res)}", *res.problems, replay])
