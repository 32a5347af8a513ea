"""The chaos run's hands on a sandbox host: `fab` started in the background and read line by line,
the host's SSH sessions killed by PID, mkfs counted, the simulated software's counters read, and
the paths every part of the chaos run agrees on."""

from __future__ import annotations

import contextlib
import difflib
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the package importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


from gonka_sim.hosts import lab as lablib  # noqa: E402
from gonka_tasks import facts  # noqa: E402

MOUNT = "/mnt/ssd"
JOIN = f"{MOUNT}/gonka/deploy/join"
STATE_DIR = f"{MOUNT}/.gonka-deploy"
PENDING_DIR = "/var/lib/gonka-deploy"  # keys add's output until it is saved locally (system disk)
DISK = "/dev/vdc"
COMPOSE_FILES = ("docker-compose.yml", "docker-compose.mlnode.yml")
MKFS_LOG = "/var/log/gonka-sim/mkfs-calls.log"
FAULT_KINDS = ("deployer", "ssh", "command", "disk-full")
MOMENTS = ("before", "during", "after")
# steps that cannot be undone: formatting, mounting and fstab, the key, the registration
IRREVERSIBLE = re.compile(r"^(ext4 filesystem on |/etc/fstab entry for |\S+ mounted at |warm key |participant registered)")
MAX_RERUNS = 3  # one should do; more are recorded as a problem
FAIL_NEXT = "/var/lib/gonka-sim/fail-next-command"  # armed: the host's fault hook fails the next SSH command
FILLER = f"{MOUNT}/.gonka-sim-filler"
RUN_TIMEOUT = 300.0
EXIT_AFTER_KILL = 120.0  # a deployer whose SSH session died must give up within this
RESULTS = Path(__file__).resolve().parent / "chaos_results.json"

TIMESTAMP_RE = re.compile(r"\d{8}-\d{6}")
PHASE_RE = re.compile(r"=== phase (\d+): (\S+)")
STEP_RE = re.compile(r"\[(CHECK|EXEC)\] (.*)")


# ---------------------------------------------------------------------- fab in the background
class FabProcess:
    """`fab ARGS` started in the lab's workdir, its console read line by line as it comes."""

    def __init__(self, lab: lablib.Lab, *args: str, env: dict | None = None):
        self.args = args
        self.started = time.monotonic()
        self.lines: list[tuple[float, str]] = []
        self._cond = threading.Condition()
        full_env = {**os.environ, "NO_COLOR": "1", **(env or {})}
        self.proc = subprocess.Popen([*lablib.fab_command(lablib.make_project(lab.workdir)), *args], cwd=lab.workdir, env=full_env, text=True,
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


def mnemonic_address(mnemonic: str) -> str:
    """The address the simulated `inferenced` gives the key of this mnemonic."""
    from gonka_sim.server import chainkeys as ck  # noqa: PLC0415

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
