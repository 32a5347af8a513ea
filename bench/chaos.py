"""Chaos convergence: full deploys hit by a fault at one of their changing steps, then rerun to completion.

Run as root from the repository root::

    python -m bench.chaos [--iterations 20] [--seed N] [--replay K] [--keep]

The first run is an uninterrupted reference deploy: it records the steps that change the server
(`last_run.json`), the irreversible ones among them (mkfs, mount, fstab, `keys add`, the
registration), and the state fingerprint the iterations are compared with.

Each iteration starts from a pristine sandbox host and a reset simulated world, starts
`fab deploy --yes` as a user would and, when the console shows the chosen step (`[CHECK]` just
before it, `[EXEC]` during it, `[OK]` just after it), applies one fault:

- ``deployer``: SIGKILL of the deployer process;
- ``ssh``: SIGKILL of the SSH session serving it (its sshd processes inside the host, by PID);
- ``command``: the next remote command fails once (the host's fault hook: it prints an error and
  exits 1 without running), whatever it is: a probe (the key probe among them) or an action;
- ``disk-full``: the data disk fills to the last block (as a model download bigger than the disk
  would); the operator frees the space before rerunning.

Steps are drawn as a random permutation of the changing steps (each equally likely; with fewer
iterations than steps, the irreversible ones are kept in), kinds in a shuffled balanced order,
moments uniformly. Then `fab deploy --yes` reruns until it succeeds (one rerun should do) and the
end state must be an uninterrupted deploy's (`state_problems`): `keys add` and mkfs at most once,
the mnemonic saved locally, one registration, one fstab line. The seed is printed first; every
plan follows from (seed, reference steps) alone, so ``--seed N --replay K`` repeats iteration K.
A table goes to stdout and every result, with how often each irreversible step was hit, to
bench/chaos_results.json.

The end-to-end test tests/e2e/test_chaos.py runs a few iterations with the same code.

At ~440 lines it stays one module: plans, one iteration and the run's main; the host side is in
`chaos_host`, the end-state checks in `chaos_checks`.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import re
import shutil
import signal
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the package importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


from bench.chaos_checks import fingerprint, fingerprint_problems, state_problems  # noqa: E402, F401
from bench.chaos_host import (  # noqa: E402, F401 - also this module's API (the e2e tests use chaos.<name>)
    DISK,
    EXIT_AFTER_KILL,
    FAIL_NEXT,
    FAULT_KINDS,
    FILLER,
    IRREVERSIBLE,
    JOIN,
    MAX_RERUNS,
    MOMENTS,
    MOUNT,
    PENDING_DIR,
    RESULTS,
    RUN_TIMEOUT,
    STATE_DIR,
    FabProcess,
    fs_created,
    instrument,
    kill_ssh_sessions,
    kill_started,
    mkfs_calls,
    mnemonic_address,
    server_key_address,
    sim_counters,
    ssh_session_pids,
)
from gonka_sim.hosts import lab as lablib  # noqa: E402


# ------------------------------------------------------------------------ fault plans
@dataclass(frozen=True)
class FaultPlan:
    """Iteration `iteration` applies `kind` at `step` (a changing step's name), `moment` it runs."""

    iteration: int
    kind: str
    step: str
    moment: str

    def trigger(self) -> str:
        """The console line that marks the moment (a regex)."""
        level = {"before": "CHECK", "during": "EXEC", "after": "OK"}[self.moment]
        return rf"\[{level}\] {re.escape(self.step)}$"


def fault_plans(seed: int, steps: list[str], irreversible: list[str], iterations: int) -> list[FaultPlan]:
    """The plans of a run, from the seed and the reference deploy's changing steps alone."""
    rng = random.Random(seed)
    order: list[str] = []
    while len(order) < iterations:
        block = list(steps)
        rng.shuffle(block)
        order += block
    order = order[:iterations]
    # with fewer iterations than steps, every irreversible step still gets its turn
    missing = [s for s in irreversible if s not in order and s in steps]
    spare = [i for i, s in enumerate(order) if s not in irreversible]
    for step, i in zip(missing, rng.sample(spare, min(len(spare), len(missing))), strict=False):
        order[i] = step
    kinds: list[str] = []
    while len(kinds) < iterations:
        block = list(FAULT_KINDS)
        rng.shuffle(block)
        kinds += block
    return [FaultPlan(i, kinds[i], order[i], rng.choice(MOMENTS)) for i in range(iterations)]


def chaos_seed(value: str | int | None = None) -> int:
    """The given seed, else $GONKA_CHAOS_SEED, else a fresh random one."""
    if value is None or value == "":
        value = os.environ.get("GONKA_CHAOS_SEED") or ""
    return int(value) if str(value).strip() else random.SystemRandom().randrange(1, 10**9)


def changing_steps(run: dict) -> list[str]:
    """Names of the steps a run changed something in (its last_run.json), in order."""
    return list(dict.fromkeys(s["name"] for s in run["steps"] if s["result"] == "done"))


def irreversible_steps(steps: list[str]) -> list[str]:
    return [s for s in steps if IRREVERSIBLE.search(s)]


# ----------------------------------------------------------------------------- one iteration
@dataclass
class IterationResult:
    iteration: int
    kind: str
    step: str
    moment: str
    hit: bool = False  # the console showed the moment and the fault was applied there
    hit_s: float | None = None
    phase: str = ""
    first_rc: int | None = None
    first_exit: str = ""  # how the faulted run ended (its ERROR line)
    killed_pids: list[int] = field(default_factory=list)  # sshd session processes killed in the host
    reruns: list[int | None] = field(default_factory=list)
    rerun_s: float = 0.0
    total_s: float = 0.0
    fs_created_kept: bool | None = None
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # observations that are not failures

    @property
    def ok(self) -> bool:
        return not self.problems


def deploy_args(node: Path) -> list[str]:
    return ["deploy", "--node", str(node), "--yes"]


def arm_command_failure(host) -> None:
    host.run(f"mkdir -p {Path(FAIL_NEXT).parent} && rm -f /var/lib/gonka-sim/failed-command && touch {FAIL_NEXT}")


def failed_command(host) -> str:
    r = host.run(["cat", "/var/lib/gonka-sim/failed-command"], check=False)
    return r.stdout.strip() if r.returncode == 0 else ""


def fill_data_disk(host) -> None:
    """Fill the data disk to its last block (the simulated server software's own filler)."""
    host.run(["python3", "-I", "-c", "import sys; sys.path.insert(0, '/usr/local/lib/gonka-sim'); "
              f"from gonkasim import simenv; simenv.fill_filesystem({MOUNT!r})"], timeout=120)


def data_disk_mounted(host) -> bool:
    return host.run(["findmnt", "-n", "--mountpoint", MOUNT], check=False).returncode == 0


def apply_fault(host, fab: FabProcess, plan: FaultPlan, res: IterationResult) -> None:
    """The fault of `plan`, now."""
    if plan.kind == "deployer":
        fab.kill()
    elif plan.kind == "ssh":
        res.killed_pids = kill_ssh_sessions(host)
        if not res.killed_pids:
            res.notes.append("no SSH session was open at that moment")
        time.sleep(0.2)
        if survivors := set(res.killed_pids) & set(ssh_session_pids(host)):
            res.problems.append(f"sshd session process(es) {sorted(survivors)} survived SIGKILL")
    elif plan.kind == "command":
        arm_command_failure(host)
    elif plan.kind == "disk-full":
        if not data_disk_mounted(host):  # nothing to fill yet: as soon as the disk is there
            fab.wait_for(rf"\[(OK|SKIP)\] \S+ mounted at {re.escape(MOUNT)}")
        if data_disk_mounted(host):
            fill_data_disk(host)
        else:
            res.notes.append("the data disk was never mounted in this run: nothing to fill")


def first_run_problems(fab: FabProcess, plan: FaultPlan, rc: int | None) -> list[str]:
    """A faulted run ends cleanly: one ERROR line and no traceback (or it absorbed the fault)."""
    out = fab.output
    if plan.kind == "deployer" or rc == 0:
        return []
    if rc is None:
        return [f"the {plan.kind} fault left the deployer running for {EXIT_AFTER_KILL:.0f} s"]
    problems = ["the faulted run printed a traceback"] if "Traceback" in out else []
    if "[ERROR]" not in out:
        problems.append(f"the faulted run ended (rc {rc}) without an ERROR line")
    if plan.kind == "ssh" and "rerun to continue" not in out:
        problems.append("the run whose SSH session died ended without 'rerun to continue'")
    return problems


def run_iteration(host, lab: lablib.Lab, seed, plan: FaultPlan, name: str = "chaos",
                  reference: dict | None = None) -> IterationResult:
    """One chaos iteration on a pristine host and world: deploy, fault, rerun, check."""
    t0 = time.monotonic()
    instrument(host)
    node = lab.write_node(host, name)
    res = IterationResult(plan.iteration, plan.kind, plan.step, plan.moment)
    fab = FabProcess(lab, *deploy_args(node))
    if fab.wait_for(plan.trigger()):
        res.hit, res.hit_s = True, round(fab.elapsed(), 2)
        res.phase = fab.position()[0]
        apply_fault(host, fab, plan, res)
    else:
        res.notes.append(f"the run never showed {plan.moment} {plan.step!r}")
    res.first_rc = fab.wait(EXIT_AFTER_KILL if plan.kind != "command" else RUN_TIMEOUT)
    errors = [t for _, t in fab.lines if "[ERROR]" in t]
    res.first_exit = (errors[0].split("[ERROR]", 1)[1].strip() if errors else "")[:200]
    res.problems += first_run_problems(fab, plan, res.first_rc)
    if plan.kind == "command" and res.hit:
        what = failed_command(host)
        res.notes.append(f"failed command: {what[:120]!r}" if what else "no command ran after the fault was armed")
        host.run(f"rm -f {FAIL_NEXT}")
    if plan.kind == "disk-full":
        host.run(["rm", "-f", FILLER])  # the operator frees the space, as the error says
    created = fs_created(host)
    t1 = time.monotonic()
    for _ in range(MAX_RERUNS):
        rerun = FabProcess(lab, *deploy_args(node))
        rc = rerun.wait(RUN_TIMEOUT)
        res.reruns.append(rc)
        if rc == 0:
            break
        errs = [t.split("[ERROR]", 1)[1].strip() for _, t in rerun.lines if "[ERROR]" in t]
        res.problems.append(f"rerun {len(res.reruns)} failed (rc {rc}): {(errs[0] if errs else rerun.output[-300:])[:300]}")
    res.rerun_s = round(time.monotonic() - t1, 2)
    if res.reruns[-1] != 0:
        res.problems.append(f"no convergence after {MAX_RERUNS} reruns")
    if created is not None:
        res.fs_created_kept = fs_created(host) == created
        if not res.fs_created_kept:
            res.problems.append(f"the filesystem was re-created by the rerun (created {created} -> {fs_created(host)})")
    res.problems += state_problems(host, lab, seed, name)
    if reference is not None:
        res.problems += fingerprint_problems(fingerprint(host, lab, name), reference)
    res.total_s = round(time.monotonic() - t0, 2)
    return res


def replay_hint(seed: int, plan: FaultPlan) -> str:
    return f"python -m bench.chaos --seed {seed} --replay {plan.iteration}"


def describe(res: IterationResult) -> str:
    """One line for logs and assertion messages."""
    where = (f"hit {res.moment} {res.step!r} at {res.hit_s} s (phase {res.phase or '-'})" if res.hit
             else f"never reached {res.moment} {res.step!r}")
    return (f"iteration {res.iteration}: {res.kind} fault, {where}; first run rc {res.first_rc}; "
            f"reruns {res.reruns} in {res.rerun_s} s")


def irreversible_hits(results: list[IterationResult], irreversible: list[str]) -> dict[str, int]:
    return {step: sum(1 for r in results if r.hit and r.step == step) for step in irreversible}


# ---------------------------------------------------------------------------- the world
@contextlib.contextmanager
def chaos_world(base: Path, idx: int, tmp: Path):
    """Seed, hub and package index on the runner, repos provisioned, one sandbox host up."""
    from gonka_sim.hosts import host as sandbox  # noqa: PLC0415
    from gonka_sim.network import repos  # noqa: PLC0415
    from gonka_sim.network.hub import HubServer, make_model_repo  # noqa: PLC0415
    from gonka_sim.network.pypi import PackageIndex, build_wheelhouse  # noqa: PLC0415
    from gonka_sim.network.seed import SANDBOX_MODEL_ID, SeedServer  # noqa: PLC0415

    provision = repos.provision_dir(tmp / "repos")
    sandbox.sweep(base)
    with SeedServer() as seed, HubServer(repos=[make_model_repo(SANDBOX_MODEL_ID)]) as hub, \
            PackageIndex(build_wheelhouse()) as pypi:
        host = sandbox.SandboxHost.up(f"c{idx}", idx, base=base, provision=[provision])
        try:
            yield host, seed, hub, pypi
        finally:
            host.down()


def reset_world(seed, hub) -> None:
    """Seed and hub back to defaults, governance models pointing at the hub's commits."""
    seed.wait_idle()
    seed.reset()
    hub.wait_idle()
    hub.reset()
    with seed.lock:
        for m in seed.knobs.models:
            repo = hub.repos.get(m.get("hf_repo") or m["id"])
            if repo is not None:
                m["hf_commit"] = repo.commit


def new_lab(tmp: Path, label: str, seed, hub, pypi) -> lablib.Lab:
    from gonka_sim.network import repos  # noqa: PLC0415

    work = tmp / label
    shutil.rmtree(work, ignore_errors=True)
    return lablib.Lab(workdir=work, seed=seed, hub=hub, pypi=pypi, prometheus_repo=repos.UPSTREAMS["prometheus"])


# ------------------------------------------------------------------------------------ main
def print_table(results: list[IterationResult]) -> None:
    head = f"{'#':>3} {'fault':<9} {'moment':<6} {'step':<44} {'hit s':>6} {'rc':>4} {'reruns':<8} " \
           f"{'rerun s':>7} {'total s':>7}  result"
    print(head)
    print("-" * len(head))
    for r in results:
        print(f"{r.iteration:>3} {r.kind:<9} {r.moment:<6} {r.step[:44]:<44} "
              f"{('-' if r.hit_s is None else f'{r.hit_s:.1f}'):>6} {str(r.first_rc):>4} "
              f"{','.join(map(str, r.reruns)):<8} {r.rerun_s:>7.1f} {r.total_s:>7.1f}  {'ok' if r.ok else 'FAIL'}")
        for p in r.problems:
            print(f"      - {p}")


def main(argv: list[str] | None = None) -> int:
    from gonka_sim.hosts import host as sandbox  # noqa: PLC0415

    p = argparse.ArgumentParser(description="Deploys hit by a fault at a changing step must converge on rerun.")
    p.add_argument("--iterations", type=int, default=20)
    p.add_argument("--seed", default=None, help="random seed (default: $GONKA_CHAOS_SEED or a fresh one)")
    p.add_argument("--replay", type=int, default=None, help="run only this iteration of the seed")
    p.add_argument("--idx", type=int, default=sandbox.first_index() + 45, help="sandbox host index")
    p.add_argument("--keep", action="store_true", help="keep every iteration's workdir (default: failed ones)")
    p.add_argument("--results", type=Path, default=RESULTS)
    args = p.parse_args(argv)
    if why := sandbox.missing_prerequisites():
        print("cannot run sandbox hosts: " + "; ".join(why), file=sys.stderr)
        return 2
    seed_value = chaos_seed(args.seed)
    print(f"chaos seed: {seed_value}  (replay: --seed {seed_value})", flush=True)
    tmp = Path(tempfile.mkdtemp(prefix="gonka-chaos-"))
    home = tmp / "home"
    home.mkdir()
    os.environ["HOME"] = str(home)  # the runner's ~/.ssh plays no part
    # a background job ignores SIGINT: let SIGTERM unwind too, so the host goes down
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        return _main(args, seed_value, tmp)
    finally:
        kill_started()


def reference_deploy(host, seed, hub, pypi, tmp: Path) -> tuple[dict, list[str], float] | None:
    """An uninterrupted deploy: (state fingerprint, changing steps, seconds); None when it fails."""
    reset_world(seed, hub)
    lab = new_lab(tmp, "reference", seed, hub, pypi)
    instrument(host)
    node = lab.write_node(host, "chaos")
    t0 = time.monotonic()
    ref = FabProcess(lab, *deploy_args(node))
    rc = ref.wait()
    if rc != 0:
        print(f"the reference deploy failed (rc {rc}):\n{ref.output[-3000:]}", file=sys.stderr)
        return None
    bad = state_problems(host, lab, seed, "chaos")
    if bad:
        print("the uninterrupted reference deploy does not pass the checks:\n  " + "\n  ".join(bad))
        return None
    steps = changing_steps(json.loads((lab.nodes / "chaos" / "last_run.json").read_text()))
    return fingerprint(host, lab, "chaos"), steps, time.monotonic() - t0


def _main(args, seed_value: int, tmp: Path) -> int:
    from gonka_sim.hosts import host as sandbox  # noqa: PLC0415

    results: list[IterationResult] = []
    t_start = time.monotonic()
    with chaos_world(sandbox.base_dir(), args.idx, tmp) as (host, seed, hub, pypi):
        ref = reference_deploy(host, seed, hub, pypi, tmp)
        if ref is None:
            return 1
        reference, steps, seconds = ref
        irreversible = irreversible_steps(steps)
        print(f"reference deploy: {seconds:.1f} s, {len(steps)} changing steps ({len(irreversible)} irreversible), "
              "state checks pass", flush=True)
        plans = fault_plans(seed_value, steps, irreversible, max(args.iterations, (args.replay or 0) + 1))
        todo = [plans[args.replay]] if args.replay is not None else plans[:args.iterations]
        for plan in todo:
            host.reset()
            reset_world(seed, hub)
            lab = new_lab(tmp, f"it{plan.iteration:02d}", seed, hub, pypi)
            res = run_iteration(host, lab, seed, plan, reference=reference)
            results.append(res)
            print(("ok   " if res.ok else "FAIL ") + describe(res), flush=True)
            for prob in res.problems:
                print(f"       - {prob}", flush=True)
            for note in res.notes:
                print(f"       (note: {note})", flush=True)
            if res.ok and not args.keep:
                shutil.rmtree(lab.workdir, ignore_errors=True)
            elif not res.ok:
                print(f"       workdir kept: {lab.workdir}; replay: {replay_hint(seed_value, plan)}", flush=True)
    total = time.monotonic() - t_start
    hits = irreversible_hits(results, irreversible)
    print()
    print(f"chaos seed {seed_value}, {len(results)} iteration(s), {sum(r.ok for r in results)} converged, "
          f"{total:.0f} s in all")
    print("irreversible steps hit: " + ", ".join(f"{k!r} x{v}" for k, v in hits.items()))
    print_table(results)
    args.results.write_text(json.dumps({
        "seed": seed_value, "seconds": round(total, 1), "reference_s": round(seconds, 1),
        "changing_steps": steps, "irreversible_steps": irreversible, "irreversible_hits": hits,
        "converged": sum(r.ok for r in results),
        "iterations": [asdict(r) for r in results],
    }, indent=1) + "\n")
    print(f"results: {args.results}")
    if all(r.ok for r in results) and not args.keep:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0 if all(r.ok for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
