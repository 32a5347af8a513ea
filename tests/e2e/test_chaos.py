"""Chaos convergence, CI size: deploys hit by a fault at an irreversible step converge on rerun.

Each test is one iteration of the benchmark in bench/chaos.py on a pristine sandbox host: `fab
deploy --yes` gets one fault when the console shows the step (the deployer or its SSH session
killed, the next remote command failing once, the data disk filling), then reruns until done;
the end state must be an uninterrupted deploy's (services, warm key and its mnemonic saved
locally, one registration, TOML edits, one fstab line, volume.txt, mkfs and `keys add` once, no
*.tmp leftovers).

The plans below put each new fault kind on the steps where it hurts most. GONKA_CHAOS_ITERATIONS
(default 0) adds that many random plans (GONKA_CHAOS_SEED to repeat a run); the full run is
`python -m bench.chaos --iterations 20`.
"""

from __future__ import annotations

import hashlib
import os

import pytest

from bench import chaos

pytestmark = [pytest.mark.sandbox, pytest.mark.slow]  # about 4 min: scripts/test runs it in CI (CI=true) or with RUN_SLOW=1

NAME = "chaos"
KEY_STEP, REGISTER_STEP = f"warm key {NAME}", "participant registered at the seed"
MKFS_STEP, FSTAB_STEP = f"ext4 filesystem on {chaos.DISK}", f"/etc/fstab entry for {chaos.MOUNT}"
MOUNT_STEP = f"{chaos.DISK} mounted at {chaos.MOUNT}"
FIXED = [
    ("command", KEY_STEP, "before"),      # the key probe itself fails once
    ("ssh", KEY_STEP, "during"),          # the connection drops while keys add runs
    ("disk-full", KEY_STEP, "before"),    # the data disk is full when the key is to be made
    ("deployer", MKFS_STEP, "during"),    # killed while formatting
    ("command", FSTAB_STEP, "during"),    # the fstab write fails once, after the mount
    ("disk-full", REGISTER_STEP, "during"),
]
RANDOM = int(os.environ.get("GONKA_CHAOS_ITERATIONS") or 0)


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
IRREVERSIBLE = [MKFS_STEP, MOUNT_STEP, FSTAB_STEP, KEY_STEP, REGISTER_STEP]
PLANS = [chaos.FaultPlan(i, kind, step, moment) for i, (kind, step, moment) in enumerate(FIXED)]
PLANS += [chaos.FaultPlan(len(FIXED) + p.iteration, p.kind, p.step, p.moment)
          for p in chaos.fault_plans(SEED, IRREVERSIBLE, IRREVERSIBLE, RANDOM)]


def test_the_irreversible_steps_are_the_ones_the_benchmark_counts():
    assert chaos.irreversible_steps([*IRREVERSIBLE, "Prometheus repository", "pruning in app.toml"]) == IRREVERSIBLE


@pytest.mark.parametrize("plan", PLANS, ids=[f"{p.kind}-{p.moment}-{p.step}" for p in PLANS])
def test_faulted_deploy_converges(plan, lab, sandbox_host, world):
    print(f"chaos seed {SEED}: {plan}")
    res = chaos.run_iteration(sandbox_host, lab, world.seed, plan, name=NAME)
    print(chaos.describe(res))
    for note in res.notes:
        print(f"note: {note}")
    assert res.hit, f"the fault never landed: {chaos.describe(res)}"
    assert res.ok, "\n".join([f"chaos seed {SEED}: {chaos.describe(res)}", *res.problems])
    assert len(res.reruns) == 1, f"more than one rerun needed: {res.reruns}"
