"""Chaos convergence: full deploys killed at a random moment, then rerun to completion.

Run as root from the repository root::

    python -m bench.chaos [--iterations 20] [--seed N] [--span S] [--replay K] [--keep]

Each iteration starts from a pristine sandbox host and a reset simulated world, starts
`fab deploy --yes` as a user would, and after a random delay within the typical deploy
duration kills either the deployer process (SIGKILL) or the SSH session serving it (the sshd
session processes inside the host, by PID; killed between two commands, the connection is
simply reopened by Fabric for the next one and the run may still succeed: a note, not a
failure). It then reruns `fab deploy --yes` until it succeeds (it should need exactly one
rerun) and checks that the end state is the one an uninterrupted deploy leaves (see
`state_problems`). The random seed is printed first; every
iteration's kill point is derived from (seed, iteration) alone, so
``--seed N --replay K --span S`` repeats iteration K of an earlier run (same kill kind and
delay; the moment still depends on timing). A table goes to stdout and every result to
bench/chaos_results.json.

The first run is an uninterrupted reference deploy: it measures the deploy duration (the span
the kill delays are drawn from, unless --span is given) and records the state fingerprint the
iterations are compared with.

The end-to-end test tests/e2e/test_chaos.py runs a few iterations with the same code.
"""

from __future__ import annotations

import argparse
import contextlib
import difflib
import importlib.util
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the package importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import tomlkit  # noqa: E402

from gonka_tasks import facts  # noqa: E402
from gonka_tasks.address import cold_address  # noqa: E402
from gonka_tasks.sandbox import lab as lablib  # noqa: E402

MOUNT = "/mnt/ssd"
JOIN = f"{MOUNT}/gonka/deploy/join"
STATE_DIR = f"{MOUNT}/.gonka-deploy"
DISK = "/dev/vdc"
COMPOSE_FILES = ("docker-compose.yml", "docker-compose.mlnode.yml")
MKFS_LOG = "/var/log/gonka-sim/mkfs-calls.log"
DEFAULT_SPAN = 25.0  # seconds of a fresh sandbox deploy (measured: 20-25 s)
KILL_KINDS = ("deployer", "ssh")
MAX_RERUNS = 3  # one should do; more are recorded as a problem
RUN_TIMEOUT = 300.0
EXIT_AFTER_KILL = 120.0  # a deployer whose SSH session died must give up within this
RESULTS = Path(__file__).resolve().parent / "chaos_results.json"
SIM_LIB = lablib.PROJECT_ROOT / "gonka_tasks/sandbox/server_root/usr/local/lib/gonka-sim"

TIMESTAMP_RE = re.compile(r"\d{8}-\d{6}")
PHASE_RE = re.compile(r"=== phase (\d+): (\S+)")
STEP_RE = re.compile(r"\[(CHECK|EXEC)\] (.*)")


# ------------------------------------------------------------------------- kill plans
@dataclass(frozen=True)
class KillPlan:
    """Where iteration `iteration` kills: `kind` at `fraction` of the deploy span."""

    iteration: int
    kind: str
    fraction: float

    def delay(self, span: float) -> float:
        return round(self.fraction * span, 2)


def kill_plan(seed: int, iteration: int) -> KillPlan:
    """The kill point of one iteration, from the seed and its number only (replayable)."""
    rng = random.Random(seed * 1_000_003 + iteration)
    return KillPlan(iteration, rng.choice(KILL_KINDS), round(rng.uniform(0.02, 0.98), 4))


def chaos_seed(value: str | int | None = None) -> int:
    """The given seed, else $GONKA_CHAOS_SEED, else a fresh random one."""
    if value is None or value == "":
        value = os.environ.get("GONKA_CHAOS_SEED") or ""
    return int(value) if str(value).strip() else random.SystemRandom().randrange(1, 10**9)


# ---------------------------------------------------------------------- fab in the background
class FabProcess:
    """`fab ARGS` started in the lab's workdir, its console read line by line as it comes."""

    def __init__(self, lab: lablib.Lab, *args: str, env: dict | None = None):
        self.args = args
        self.started = time.monotonic()
        self.lines: list[tuple[float, str]] = []
        self._cond = threading.Condition()
        full_env = {**os.environ, "NO_COLOR": "1", **(env or {})}
        self.proc = subprocess.Popen([*lablib.fab_command(), *args], cwd=lab.workdir, env=full_env, text=True,
                                     stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     errors="replace")
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        _live.add(self)

    def _read(self) -> None:
        for line in self.proc.stdout:
            with self._cond:
                self.lines.append((time.monotonic() - self.started, line.rstrip("\n")))
                self._cond.notify_all()
        with self._cond:
            self._cond.notify_all()

    @property
    def output(self) -> str:
        with self._cond:
            return "\n".join(text for _, text in self.lines)

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def running(self) -> bool:
        return self.proc.poll() is None

    def wait_for(self, pattern: str, timeout: float = RUN_TIMEOUT) -> bool:
        """Until a console line matches `pattern` (True), or the process ended / timeout (False)."""
        rx = re.compile(pattern)
        seen = 0
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for _, text in self.lines[seen:]:
                    if rx.search(text):
                        return True
                seen = len(self.lines)
                if (self.proc.poll() is not None and not self._reader.is_alive()) or time.monotonic() > deadline:
                    return False
                self._cond.wait(0.05)

    def position(self) -> tuple[str, str]:
        """The phase (`N name`) and step the console showed last."""
        phase = step = ""
        with self._cond:
            for _, text in self.lines:
                if m := PHASE_RE.search(text):
                    phase, step = f"{m.group(1)} {m.group(2)}", ""
                elif m := STEP_RE.search(text):
                    step = m.group(2)
        return phase, step

    def finished_within(self, seconds: float) -> bool:
        """Sleep up to `seconds`; True when the process ended meanwhile."""
        try:
            self.proc.wait(max(seconds - self.elapsed(), 0))
        except subprocess.TimeoutExpired:
            return False
        return True

    def kill(self) -> None:
        """SIGKILL of the deployer process (the one this object started)."""
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.proc.pid, signal.SIGKILL)

    def wait(self, timeout: float = RUN_TIMEOUT) -> int | None:
        """Exit code, or None when it did not end in time (it is then killed)."""
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            self.proc.wait(10)
            rc = None
        self._reader.join(10)
        _live.discard(self)
        return rc


_live: set[FabProcess] = set()  # started and not yet waited for: killed if the harness stops


def kill_started() -> None:
    """SIGKILL every `fab` this process started and has not waited for (on an aborted run)."""
    for fab in list(_live):
        fab.kill()
        with contextlib.suppress(Exception):
            fab.proc.wait(10)
        _live.discard(fab)


# ------------------------------------------------------------------------- the host side
def ssh_session_pids(host) -> list[int]:
    """PIDs of the sshd processes serving connections in the host (not the listener, pid 1)."""
    out = host.run(["ps", "-eo", "pid=,comm="], timeout=15).stdout
    pids = []
    for line in out.splitlines():
        parts = line.split(None, 1)
        if len(parts) == 2 and parts[1].strip() in ("sshd", "sshd-session") and parts[0] != "1":
            pids.append(int(parts[0]))
    return pids


def kill_ssh_sessions(host) -> list[int]:
    """Kill every SSH session of the host (SIGKILL, by PID, inside the host): the connection drops."""
    pids = ssh_session_pids(host)
    if pids:
        host.run(["kill", "-9", *map(str, pids)], check=False, timeout=15)
    return pids


MKFS_WRAPPER = f"""#!/bin/sh
# chaos harness: count mkfs.ext4 calls, then run the real one
echo "$(date +%s) $*" >> {MKFS_LOG}
exec /usr/sbin/mkfs.ext4 "$@"
"""


def instrument(host) -> None:
    """Count mkfs.ext4 calls in the host (a wrapper earlier on PATH); call after every reset."""
    host.write_file("/usr/local/sbin/mkfs.ext4", MKFS_WRAPPER, mode=0o755)
    host.run(f"mkdir -p {Path(MKFS_LOG).parent} && : > {MKFS_LOG}")


def mkfs_calls(host) -> int:
    r = host.run(["cat", MKFS_LOG], check=False)
    return len([ln for ln in r.stdout.splitlines() if ln.strip()])


def fs_created(host) -> str | None:
    """The ext4 'Filesystem created' time of the data disk, or None when it has no ext4."""
    r = host.run(f"dumpe2fs -h {DISK} 2>/dev/null | sed -n 's/^Filesystem created: *//p'", check=False)
    return r.stdout.strip() or None


def sim_counters(host) -> dict:
    r = host.run(["cat", "/var/lib/gonka-sim/counters.json"], check=False)
    try:
        return json.loads(r.stdout) if r.returncode == 0 and r.stdout.strip() else {}
    except ValueError:
        return {}


def _load_chainkeys():
    """The simulated chain's key derivation (mnemonic -> address), loaded from the sim's source."""
    spec = importlib.util.spec_from_file_location("_gonka_sim_chainkeys", SIM_LIB / "gonkasim" / "chainkeys.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def mnemonic_address(mnemonic: str) -> str:
    """The address the simulated `inferenced` gives the key of this mnemonic."""
    ck = _load_chainkeys()
    return ck.address(ck.compressed_pubkey(ck.private_key(mnemonic)))


def server_key_address(host) -> str:
    """`inferenced keys show $KEY_NAME -a` in the api container, as an operator would run it."""
    script = "printf \"%s\\n\" \"$KEYRING_PASSWORD\" | inferenced keys show \"$KEY_NAME\" -a --keyring-backend file"
    r = host.run(f"cd {JOIN} && . ./config.env && docker compose run --rm --no-deps -T api sh -c '{script}'",
                 check=False, timeout=60)
    return r.stdout.strip() if r.returncode == 0 else ""


def _services(host, workdir: str, files: tuple[str, ...]) -> tuple[list[str], dict[str, str]]:
    """(services the compose files define, {service: state} of `docker compose ps -a`)."""
    expected: list[str] = []
    for name in files:
        r = host.run(["cat", f"{workdir}/{name}"], check=False)
        if r.returncode == 0:
            with contextlib.suppress(facts.FactError):
                expected += [s for s in facts.compose_services(r.stdout) if s not in expected]
    fs = " ".join(f"-f {f}" for f in files)
    r = host.run(f"cd {workdir} && docker compose {fs} ps -a --format json", check=False, timeout=60)
    try:
        states = {c.service: c.state for c in facts.parse_compose_ps(r.stdout)}
    except facts.FactError:
        states = {}
    return expected, states


def _changed_lines(a: str, b: str) -> list[str]:
    return [ln for ln in difflib.unified_diff(a.splitlines(), b.splitlines(), lineterm="", n=0)
            if ln.startswith(("+", "-")) and not ln.startswith(("+++", "---"))]


# ------------------------------------------------------------------------------ the checks
def state_problems(host, lab: lablib.Lab, seed, name: str) -> list[str]:
    """What differs from the end state of an uninterrupted deploy of node `name` ([] = converged)."""
    problems: list[str] = []
    values = lab.values(name)
    art = lab.nodes / values["KEY_NAME"]

    # every service of both compose files runs, Prometheus too
    for workdir, files in ((JOIN, COMPOSE_FILES), (f"{MOUNT}/prometheus", ("docker-compose.yml",))):
        expected, states = _services(host, workdir, files)
        if not expected:
            problems.append(f"no compose services found in {workdir}")
        bad = {s: states.get(s, "missing") for s in expected if states.get(s) != "running"}
        if bad:
            problems.append(f"services not running in {workdir}: {bad}")

    # the data disk: formatted once, one fstab line, volume.txt = the filesystem's UUID, mounted
    volume = (art / "volume.txt").read_text().strip() if (art / "volume.txt").exists() else ""
    uuid = host.run(["blkid", "-s", "UUID", "-o", "value", DISK], check=False).stdout.strip()
    if not volume or volume != uuid:
        problems.append(f"volume.txt {volume!r} != blkid UUID {uuid!r}")
    fstab = host.run(["cat", "/etc/fstab"], check=False).stdout
    entries = facts.fstab_entries_for(fstab, MOUNT)
    if len(entries) != 1 or f"UUID={uuid}" not in entries[0].split():
        problems.append(f"fstab entries for {MOUNT}: {entries}")
    source = host.run(["findmnt", "-n", "-o", "SOURCE", "--mountpoint", MOUNT], check=False).stdout.strip()
    if source != DISK:
        problems.append(f"{MOUNT} mounted from {source or 'nothing'}, want {DISK}")
    if (n := mkfs_calls(host)) != 1:
        problems.append(f"mkfs.ext4 ran {n} times")

    # the warm key: created once, saved 0600 with the mnemonic of the server's key
    counters = sim_counters(host)
    if counters.get("keys_add") != 1:
        problems.append(f"keys add ran {counters.get('keys_add', 0)} times")
    server_addr = server_key_address(host)
    local_addr = (art / "warm_address.txt").read_text().strip() if (art / "warm_address.txt").exists() else ""
    if not server_addr or server_addr != local_addr:
        problems.append(f"server key address {server_addr!r} != warm_address.txt {local_addr!r}")
    key_file = art / "warm_key.txt"
    if not key_file.exists():
        problems.append("warm_key.txt missing")
    else:
        if key_file.stat().st_mode & 0o777 != 0o600:
            problems.append(f"warm_key.txt mode {key_file.stat().st_mode & 0o777:o}, want 600")
        text = key_file.read_text()
        mnemonic = facts.parse_mnemonic(text)
        if not mnemonic:
            problems.append("warm_key.txt holds no mnemonic")
        elif mnemonic_address(mnemonic) != server_addr:
            problems.append(f"warm_key.txt mnemonic is of {mnemonic_address(mnemonic)}, not the server key {server_addr}")
        if f"address: {server_addr}" not in text:
            problems.append("warm_key.txt address line differs from the server key")

    # one registration at the seed, under the cold address
    seed.wait_idle()
    cold = cold_address(values["ACCOUNT_PUBKEY"])
    posts = [p for p in seed.posts if isinstance(p, dict) and p.get("pub_key") == values["ACCOUNT_PUBKEY"]]
    if cold not in seed.participants or not seed.is_visible(cold):
        problems.append(f"participant {cold} not registered at the seed")
    if len(posts) != 1:
        problems.append(f"{len(posts)} registration POSTs at the seed for {cold}, want 1")

    # peers and pruning set; the diff against the backups shows only those keys
    cfg_dir = f"{JOIN}/.inference/config"
    want = {"config.toml": [f'persistent_peers = "{values["PERSISTENT_PEERS"]}"'],
            "app.toml": ['pruning = "custom"', f'pruning-keep-recent = "{values.get("PRUNING_KEEP_RECENT") or 20000}"',
                         f'pruning-interval = "{values.get("PRUNING_INTERVAL") or 512}"']}
    for fname, lines in want.items():
        now = host.run(["cat", f"{cfg_dir}/{fname}"], check=False).stdout
        orig = host.run(["cat", f"{cfg_dir}/{fname}.gonka-deploy.orig"], check=False).stdout
        try:
            tomlkit.parse(now)
        except Exception as e:  # tomlkit raises several types
            problems.append(f"{fname} is not valid TOML: {e}")
        added = sorted(d[1:] for d in _changed_lines(orig, now) if d.startswith("+"))
        if added != sorted(lines):
            problems.append(f"{fname} changes vs its backup: {added}, want {sorted(lines)}")

    # configuration uploaded whole, nothing pending, no temp files anywhere
    local_env = (art / "config.env").read_text() if (art / "config.env").exists() else None
    remote_env = host.run(["cat", f"{JOIN}/config.env"], check=False)
    if local_env is None or remote_env.stdout != local_env:
        problems.append("config.env on the server differs from nodes/<KEY_NAME>/config.env")
    mode = host.run(["stat", "-c", "%a", f"{JOIN}/config.env"], check=False).stdout.strip()
    if mode != "600":
        problems.append(f"config.env on the server has mode {mode}, want 600")
    leftovers = host.run(f"ls -A {STATE_DIR} 2>/dev/null | grep -E 'pending|\\.rc$' || true", check=False).stdout.split()
    if leftovers:
        problems.append(f"leftover markers in {STATE_DIR}: {leftovers}")
    remote_tmp = host.run(f"find {MOUNT} /etc -name '*.tmp' 2>/dev/null || true", check=False, timeout=60).stdout.split()
    if remote_tmp:
        problems.append(f"*.tmp left on the server: {remote_tmp[:5]}")
    local_tmp = [str(p.relative_to(lab.workdir)) for d in ("nodes", "logs") if (lab.workdir / d).is_dir()
                 for p in (lab.workdir / d).rglob("*.tmp")]
    if local_tmp:
        problems.append(f"*.tmp left locally: {local_tmp[:5]}")
    return problems


def fingerprint(host, lab: lablib.Lab, name: str) -> dict:
    """A host-independent summary of a deployed node, to compare with an uninterrupted deploy."""
    art = lab.nodes / lab.values(name)["KEY_NAME"]
    _, states = _services(host, JOIN, COMPOSE_FILES)
    _, prom = _services(host, f"{MOUNT}/prometheus", ("docker-compose.yml",))
    listing = host.run(f"ls -A {JOIN} {STATE_DIR} {MOUNT}", check=False).stdout
    return {
        "artefacts": sorted(p.name for p in art.iterdir()) if art.is_dir() else [],
        "services": sorted(f"{s}={st}" for s, st in {**states, **prom}.items()),
        # backups are named by time: compare which files have one, not when it was made
        "server files": sorted({TIMESTAMP_RE.sub("<time>", n) for n in listing.split()}),
    }


def fingerprint_problems(got: dict, reference: dict | None) -> list[str]:
    if not reference:
        return []
    out = []
    for key, want in reference.items():
        if got.get(key) != want:
            if isinstance(want, list):
                extra, missing = sorted(set(got.get(key, [])) - set(want)), sorted(set(want) - set(got.get(key, [])))
                out.append(f"{key} differ from the uninterrupted deploy: extra {extra}, missing {missing}")
            else:
                out.append(f"{key}: {got.get(key)!r}, uninterrupted deploy: {want!r}")
    return out


# ----------------------------------------------------------------------------- one iteration
@dataclass
class IterationResult:
    iteration: int
    kind: str
    planned_s: float
    killed_s: float | None = None  # None: the deploy finished before the kill
    phase: str = ""
    step: str = ""
    killed_rc: int | None = None
    killed_exit: str = ""  # how the killed run ended (its ERROR line)
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


def run_iteration(host, lab: lablib.Lab, seed, plan: KillPlan, span: float, name: str = "chaos",
                  reference: dict | None = None) -> IterationResult:
    """One chaos iteration on a pristine host and world: deploy, kill, rerun, check."""
    t0 = time.monotonic()
    instrument(host)
    node = lab.write_node(host, name)
    res = IterationResult(plan.iteration, plan.kind, plan.delay(span))
    fab = FabProcess(lab, *deploy_args(node))
    if not fab.finished_within(plan.delay(span)):
        res.phase, res.step = fab.position()
        res.killed_s = round(fab.elapsed(), 2)
        if plan.kind == "deployer":
            fab.kill()
        else:
            res.killed_pids = kill_ssh_sessions(host)
            if not res.killed_pids:
                res.problems.append("no SSH session found to kill")
            time.sleep(0.2)
            if survivors := set(res.killed_pids) & set(ssh_session_pids(host)):
                res.problems.append(f"sshd session process(es) {sorted(survivors)} survived SIGKILL")
        res.killed_rc = fab.wait(EXIT_AFTER_KILL)
        if res.killed_rc is None:
            res.problems.append(f"the deployer did not exit within {EXIT_AFTER_KILL:.0f} s after its SSH session died")
        last = [t for _, t in fab.lines if "[ERROR]" in t]
        res.killed_exit = (last[0].split("[ERROR]", 1)[1].strip() if last else "")[:160]
        if plan.kind == "ssh" and res.killed_rc is not None:
            if "Traceback" in fab.output:
                res.problems.append("the run whose SSH session died printed a traceback")
            if res.killed_rc == 0:  # it had nothing left that needed the connection
                res.notes.append("the run whose SSH session died still succeeded")
            elif "rerun to continue" not in fab.output:
                res.problems.append(f"the run whose SSH session died ended without 'rerun to continue': "
                                    f"{res.killed_exit or fab.output[-300:]}")
    else:
        res.killed_rc = fab.wait()
        res.phase = "finished"
    created = fs_created(host)
    t1 = time.monotonic()
    for _ in range(MAX_RERUNS):
        rerun = FabProcess(lab, *deploy_args(node))
        rc = rerun.wait(RUN_TIMEOUT)
        res.reruns.append(rc)
        if rc == 0:
            break
        errors = [t.split("[ERROR]", 1)[1].strip() for _, t in rerun.lines if "[ERROR]" in t]
        res.problems.append(f"rerun {len(res.reruns)} failed (rc {rc}): {(errors[0] if errors else rerun.output[-300:])[:300]}")
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


def replay_hint(seed: int, plan: KillPlan, span: float) -> str:
    return f"python -m bench.chaos --seed {seed} --replay {plan.iteration} --span {span:g}"


def describe(res: IterationResult) -> str:
    """One line for logs and assertion messages."""
    where = f"killed at {res.killed_s} s in phase {res.phase or '-'} ({res.step or '-'})" if res.killed_s is not None \
        else "finished before the kill"
    return (f"iteration {res.iteration}: {res.kind} kill planned at {res.planned_s} s, {where}; killed run rc "
            f"{res.killed_rc}; reruns {res.reruns} in {res.rerun_s} s")


# ---------------------------------------------------------------------------- the world
@contextlib.contextmanager
def chaos_world(base: Path, idx: int, tmp: Path):
    """Seed, hub and package index on the runner, repos provisioned, one sandbox host up."""
    from gonka_tasks.sandbox import host as sandbox  # noqa: PLC0415
    from gonka_tasks.sandbox import repos  # noqa: PLC0415
    from gonka_tasks.sandbox.hub import HubServer, make_model_repo  # noqa: PLC0415
    from gonka_tasks.sandbox.pypi import PackageIndex, build_wheelhouse  # noqa: PLC0415
    from gonka_tasks.sandbox.seed import SANDBOX_MODEL_ID, SeedServer  # noqa: PLC0415

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
    from gonka_tasks.sandbox import repos  # noqa: PLC0415

    work = tmp / label
    shutil.rmtree(work, ignore_errors=True)
    return lablib.Lab(workdir=work, seed=seed, hub=hub, pypi=pypi, prometheus_repo=repos.UPSTREAMS["prometheus"])


# ------------------------------------------------------------------------------------ main
def print_table(results: list[IterationResult]) -> None:
    head = f"{'#':>3} {'kind':<8} {'plan s':>6} {'kill s':>6}  {'phase':<18} {'step':<38} {'rc':>4} {'reruns':<8} " \
           f"{'rerun s':>7} {'total s':>7}  result"
    print(head)
    print("-" * len(head))
    for r in results:
        print(f"{r.iteration:>3} {r.kind:<8} {r.planned_s:>6.1f} {('-' if r.killed_s is None else f'{r.killed_s:.1f}'):>6}  "
              f"{r.phase[:18]:<18} {r.step[:38]:<38} {str(r.killed_rc):>4} {','.join(map(str, r.reruns)):<8} "
              f"{r.rerun_s:>7.1f} {r.total_s:>7.1f}  {'ok' if r.ok else 'FAIL'}")
        for p in r.problems:
            print(f"      - {p}")


def main(argv: list[str] | None = None) -> int:
    from gonka_tasks.sandbox import host as sandbox  # noqa: PLC0415

    p = argparse.ArgumentParser(description="Deploys killed at random moments must converge on rerun.")
    p.add_argument("--iterations", type=int, default=20)
    p.add_argument("--seed", default=None, help="random seed (default: $GONKA_CHAOS_SEED or a fresh one)")
    p.add_argument("--span", type=float, default=None,
                   help="seconds the kill delays are drawn from (default: measured by a reference deploy)")
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


def _main(args, seed_value: int, tmp: Path) -> int:
    from gonka_tasks.sandbox import host as sandbox  # noqa: PLC0415

    results: list[IterationResult] = []
    reference: dict | None = None
    span = args.span
    t_start = time.monotonic()
    with chaos_world(sandbox.base_dir(), args.idx, tmp) as (host, seed, hub, pypi):
        if span is None or args.replay is None:
            reset_world(seed, hub)
            lab = new_lab(tmp, "reference", seed, hub, pypi)
            instrument(host)
            node = lab.write_node(host, "chaos")
            t0 = time.monotonic()
            ref = FabProcess(lab, *deploy_args(node))
            rc = ref.wait()
            measured = time.monotonic() - t0
            if rc != 0:
                print(f"the reference deploy failed (rc {rc}):\n{ref.output[-3000:]}", file=sys.stderr)
                return 1
            bad = state_problems(host, lab, seed, "chaos")
            if bad:
                print("the uninterrupted reference deploy does not pass the checks:\n  " + "\n  ".join(bad))
                return 1
            reference = fingerprint(host, lab, "chaos")
            print(f"reference deploy: {measured:.1f} s, state checks pass", flush=True)
            span = span or round(measured, 1)
        print(f"kill delays drawn from 0-{span:g} s", flush=True)
        todo = [args.replay] if args.replay is not None else list(range(args.iterations))
        for i in todo:
            plan = kill_plan(seed_value, i)
            host.reset()
            reset_world(seed, hub)
            lab = new_lab(tmp, f"it{i:02d}", seed, hub, pypi)
            res = run_iteration(host, lab, seed, plan, span, reference=reference)
            results.append(res)
            print(("ok   " if res.ok else "FAIL ") + describe(res), flush=True)
            for prob in res.problems:
                print(f"       - {prob}", flush=True)
            for note in res.notes:
                print(f"       (note: {note})", flush=True)
            if res.ok and not args.keep:
                shutil.rmtree(lab.workdir, ignore_errors=True)
            elif not res.ok:
                print(f"       workdir kept: {lab.workdir}; replay: {replay_hint(seed_value, plan, span)}", flush=True)
    total = time.monotonic() - t_start
    print()
    print(f"chaos seed {seed_value}, span {span:g} s, {len(results)} iteration(s), "
          f"{sum(r.ok for r in results)} converged, {total:.0f} s in all")
    print_table(results)
    args.results.write_text(json.dumps({
        "seed": seed_value, "span_s": span, "seconds": round(total, 1),
        "converged": sum(r.ok for r in results),
        "iterations": [asdict(r) for r in results],
    }, indent=1) + "\n")
    print(f"results: {args.results}")
    if all(r.ok for r in results) and not args.keep:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0 if all(r.ok for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
