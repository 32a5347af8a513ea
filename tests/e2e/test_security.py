"""Security and reliability guarantees, checked as an operator would on a sandbox host:

- the server's SSH host key is pinned on first use and a changed key is refused (never silently
  accepted), also when the expected key comes from the user's ~/.ssh/known_hosts;
- SSH failures end in one clear message: a closed port after bounded retries, a wrong key at once,
  a connection lost mid-phase with "rerun to continue" (and the rerun finishes the job);
- no internal port (ML node 5050/8080, API callback 9100, admin 9200, chain RPC 26657) listens on a
  public address after a deploy, also after the operator's own `docker compose ... up -d`;
- seed failures within the retry budget are absorbed, a seed that stays down fails the deploy cleanly;
- nothing the deploy produces holds KEYRING_PASSWORD, the warm key's mnemonic or HF_TOKEN.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import subprocess
import threading
import time
from pathlib import Path

import pytest

from gonka_sim.hosts.lab import PROJECT_ROOT, fab_command, make_project
from gonka_tasks.facts import parse_mnemonic

pytestmark = pytest.mark.sandbox

JOIN = "/mnt/ssd/gonka/deploy/join"
OPERATOR_UP = (f"cd {JOIN} && . ./config.env && "
               "docker compose -f docker-compose.yml -f docker-compose.mlnode.yml up -d")
INTERNAL_PORTS = (5050, 8080, 9100, 9200)
HF_TOKEN_FILE = "/mnt/ssd/hf/token"
# where a deploy writes on the server (the rest of the root is this machine's own, seen through the overlay)
REMOTE_SCAN = ["/etc", "/root", "/home", "/tmp", "/var/tmp", "/var/log", "/mnt/ssd", "/opt/gonka-deploy",
               "/usr/local/bin", "/srv"]
# Kill the session sshd of a login (a child of the host's pid 1, the listening sshd) while it runs a
# command. Between commands Fabric silently opens a new connection, so a kill there is no fault at all.
KILL_BUSY_SESSION = ("for s in $(pgrep -P 1 -f '^sshd: [a-z]+@'); do "
                     "if pgrep -P \"$s\" >/dev/null; then kill -KILL \"$s\" && echo \"killed $s\"; fi; done")


# ------------------------------------------------------------------------------ helpers
def output(r) -> str:
    return (r.stdout or "") + (r.stderr or "")


def assert_clean_failure(r, *needles: str) -> None:
    """Exit code 1, one ERROR with every needle, no traceback on the console."""
    text = output(r)
    assert r.returncode == 1, text[-3000:]
    assert "Traceback" not in text, text[-3000:]
    errors = "\n".join(ln for ln in text.splitlines() if "[ERROR]" in ln)
    for n in needles:
        assert n in errors, f"{n!r} not in the error lines:\n{errors}"


def new_host_key(tmp_path: Path, name: str) -> tuple[str, str]:
    """A fresh ed25519 key: (`type base64` for a known_hosts line, its SHA256 fingerprint)."""
    path = tmp_path / name
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True, timeout=30)
    pub = tmp_path / f"{name}.pub"
    return " ".join(pub.read_text().split()[:2]), sha256_fingerprint(pub)


def sha256_fingerprint(path: Path) -> str:
    """`ssh-keygen -lf` of a public key or known_hosts file (first key)."""
    out = subprocess.run(["ssh-keygen", "-l", "-f", str(path)], capture_output=True, text=True, check=True,
                         timeout=30).stdout
    return out.split()[1]


def host_key_line(host) -> str:
    """`type base64` of the sandbox host's real host key."""
    return " ".join(host.known_hosts.read_text().split()[1:3])


def listeners(host) -> dict[int, set[str]]:
    """{port: local addresses} of the TCP sockets listening inside the host."""
    out: dict[int, set[str]] = {}
    for line in host.run("ss -Hltn", timeout=30).stdout.splitlines():
        parts = line.split()
        if len(parts) >= 4:
            addr, _, port = parts[3].rpartition(":")
            if port.isdigit():
                out.setdefault(int(port), set()).add(addr.strip("[]"))
    return out


def is_loopback(addr: str) -> bool:
    return addr.startswith("127.") or addr == "::1"


def kill_ssh_session_mid_command(host, within_s: float) -> bool:
    """Kill the SSH session as soon as it runs a command; False if none was seen in time."""
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        if "killed" in host.run(KILL_BUSY_SESSION, check=False, timeout=30).stdout:
            return True
        time.sleep(0.05)
    return False


class FabProcess:
    """`fab ...` started in the background, its console read line by line as it runs."""

    def __init__(self, lab, *args: str):
        self.lines: list[str] = []
        self.err: list[str] = []
        self._new_line = threading.Condition()
        self.proc = subprocess.Popen([*fab_command(make_project(lab.workdir)), *args], cwd=lab.workdir, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                     env={**os.environ, "NO_COLOR": "1"})
        self._readers = [threading.Thread(target=self._read, args=(self.proc.stdout, self.lines), daemon=True),
                         threading.Thread(target=self._read, args=(self.proc.stderr, self.err), daemon=True)]
        for t in self._readers:
            t.start()

    def _read(self, stream, into: list[str]) -> None:
        for line in stream:
            with self._new_line:
                into.append(line)
                self._new_line.notify_all()

    def wait_for(self, pattern: str, timeout: float) -> bool:
        """Until a console line matches `pattern` (regex); False on timeout or exit."""
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        with self._new_line:
            while True:
                if any(rx.search(ln) for ln in self.lines):
                    return True
                left = deadline - time.monotonic()
                if left <= 0 or self.proc.poll() is not None:
                    return any(rx.search(ln) for ln in self.lines)
                self._new_line.wait(min(left, 0.2))

    def finish(self, timeout: float) -> subprocess.CompletedProcess:
        try:
            self.proc.wait(timeout)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()  # our own child, by its pid
                self.proc.wait(10)
            for t in self._readers:
                t.join(10)
        return subprocess.CompletedProcess(self.proc.args, self.proc.returncode, "".join(self.lines),
                                           "".join(self.err))


class CmdlineSampler:
    """Every 0.2 s: every process's command line inside the host and on this machine (unique lines)."""

    def __init__(self, host):
        self.host = host
        self.seen: set[str] = set()
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self) -> CmdlineSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(30)

    def _loop(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(Exception):
                r = self.host.run("for f in /proc/[0-9]*/cmdline; do tr '\\0' ' ' < \"$f\"; echo; done 2>/dev/null",
                                  check=False, timeout=10)
                self.seen.update(r.stdout.splitlines())
            for f in Path("/proc").glob("[0-9]*/cmdline"):
                with contextlib.suppress(OSError):
                    self.seen.add(f.read_bytes().replace(b"\0", b" ").decode("utf-8", "replace"))
            self.samples += 1
            self._stop.wait(0.2)


# ------------------------------------------------------------------------ 1. host key pinning
def test_host_key_pinned_on_first_use_a_changed_key_refused_and_repinned(lab, sandbox_host, tmp_path):
    host = sandbox_host
    node = lab.write_node(host, "pin-a")
    pin = lab.nodes / "pin-a" / "known_hosts"
    pin.unlink()  # the lab pre-pins; this test wants the first connection
    real_fp = sha256_fingerprint(host.known_hosts)

    r = lab.fab("validate", "--node", str(node), "--yes", timeout=120)
    assert r.returncode == 0, output(r)[-3000:]
    assert host_key_line(host) in pin.read_text() and host.ip in pin.read_text()
    assert pin.stat().st_mode & 0o777 == 0o600
    assert real_fp in r.stdout and "pinned" in r.stdout

    # the server "changed": the pin holds another key for its address
    other, other_fp = new_host_key(tmp_path, "impostor")
    pin.write_text(f"{host.ip} {other}\n")
    r = lab.fab("validate", "--node", str(node), "--yes", timeout=120)
    assert_clean_failure(r, other_fp, real_fp, "--accept-new-host-key", str(pin))
    assert pin.read_text() == f"{host.ip} {other}\n", "a refused key must leave the pin as it was"

    r = lab.fab("validate", "--node", str(node), "--yes", "--accept-new-host-key", timeout=120)
    assert r.returncode == 0, output(r)[-3000:]
    assert other_fp in r.stdout and real_fp in r.stdout  # says what it replaced with what
    assert pin.read_text().split()[1:3] == host_key_line(host).split()
    r = lab.fab("validate", "--node", str(node), "--yes", timeout=120)
    assert r.returncode == 0, output(r)[-3000:]


def test_users_known_hosts_entry_is_trusted_and_checked(lab, sandbox_host, tmp_path):
    host = sandbox_host
    node = lab.write_node(host, "pin-b")
    pin = lab.nodes / "pin-b" / "known_hosts"
    pin.unlink()
    user_file = Path(os.environ["HOME"]) / ".ssh" / "known_hosts"
    assert str(user_file).startswith(str(tmp_path)), "HOME must be the test's own"
    user_file.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    user_file.write_text(f"{host.ip} {host_key_line(host)}\n")

    r = lab.fab("validate", "--node", str(node), "--yes", timeout=120)
    assert r.returncode == 0, output(r)[-3000:]
    assert not pin.exists(), "a host the user's known_hosts knows is not pinned again"

    other, other_fp = new_host_key(tmp_path, "stale")
    user_file.write_text(f"{host.ip} {other}\n")
    r = lab.fab("validate", "--node", str(node), "--yes", timeout=120)
    assert_clean_failure(r, other_fp, sha256_fingerprint(host.known_hosts), str(user_file), "ssh-keygen -R",
                         "--accept-new-host-key")
    assert user_file.read_text() == f"{host.ip} {other}\n", "the user's own file is never edited"


# ------------------------------------------------------------------------ 2. SSH resilience
def test_closed_ssh_port_is_retried_then_named_with_the_fix(lab, sandbox_host):
    host = sandbox_host
    node = lab.write_node(host, "port-a", SSH_PORT="2222")
    t0 = time.monotonic()
    r = lab.fab("validate", "--node", str(node), "--yes", timeout=120)
    took = time.monotonic() - t0
    assert_clean_failure(r, f"{host.ip}:2222", "SSH_PORT")
    attempts = r.stdout.count("[CHECK] SSH connection")
    assert 2 <= attempts <= 6, r.stdout[-3000:]
    assert r.stdout.count("retrying in") == attempts - 1
    assert took < 40, f"retries took {took:.1f} s"


def test_wrong_ssh_key_is_not_retried_and_named(lab, sandbox_host, tmp_path):
    host = sandbox_host
    key = tmp_path / "not_authorized"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True, timeout=30)
    node = lab.write_node(host, "auth-a", SSH_KEY=str(key))
    r = lab.fab("validate", "--node", str(node), "--yes", timeout=120)
    assert_clean_failure(r, "authentication failed", str(key))
    assert r.stdout.count("[CHECK] SSH connection") == 1, r.stdout[-3000:]


# ------------------------------------------------------------- 3. no internal port on the internet
def assert_bound(host, internal_ok) -> dict[int, set[str]]:
    """Internal ports listen only where `internal_ok` allows; 26657 not public; P2P and API public."""
    ports = listeners(host)
    for p in INTERNAL_PORTS:
        assert ports.get(p) and all(internal_ok(a) for a in ports[p]), (p, ports.get(p))
    assert all(is_loopback(a) for a in ports.get(26657, set())), ports.get(26657)
    for p in (5000, 8000):  # P2P and the API port: public on purpose
        assert ports.get(p, set()) & {"0.0.0.0", "*", "::"}, (p, ports.get(p))
    return ports


def test_internal_ports_stay_off_the_internet(lab, sandbox_host, world):
    host = sandbox_host
    node = lab.write_node(host, "exp-a")
    r = lab.fab("deploy", "--node", str(node), "--yes")
    assert r.returncode == 0, output(r)[-4000:]
    assert_bound(host, is_loopback)

    # the operator's own restart keeps the binding (it lives in the compose files)
    host.run(OPERATOR_UP, timeout=300)
    assert_bound(host, is_loopback)

    r = lab.fab("verify", "--node", str(node), timeout=300)
    assert r.returncode == 0, output(r)[-4000:]
    verification = (lab.nodes / "exp-a" / "verification.txt").read_text()
    assert re.search(r"PASS exposure", verification), verification

    # a multi-server setup: the internal ports move to a private address (the host's own stands for one)
    values = lab.values("exp-a")
    node = lab.write_node(host, "exp-a", KEYRING_PASSWORD=values["KEYRING_PASSWORD"],
                          ACCOUNT_PUBKEY=values["ACCOUNT_PUBKEY"], INTERNAL_BIND_ADDRESS=host.ip)
    r = lab.fab("deploy", "--node", str(node), "--yes")
    assert r.returncode == 0, output(r)[-4000:]
    time.sleep(1)  # recreated containers bind their ports just after compose reports them started
    ports = assert_bound(host, lambda a: a == host.ip or is_loopback(a))
    assert all(host.ip in ports[p] for p in (5050, 8080, 9100)), ports
    assert all(a.startswith("127.") for a in ports[9200]), ports  # the admin API never leaves the machine


# ----------------------------------------- 2, 5 and 6: a deploy under faults, then a secret audit
def test_faulty_deploy_recovers_fails_cleanly_and_leaks_no_secret(lab, sandbox_host, world):
    """One deploy story under faults, then an audit of everything it produced.

    1. seed answers 503 twice (within the retry budget), the SSH session is killed in phase 4:
       the run ends with "connection lost during <step>; rerun to continue", no traceback;
    2. the rerun (one more seed 503) completes;
    3. with the seed down, a rerun fails cleanly naming the seed endpoint, its last status and what to try;
    4. zero occurrences of KEYRING_PASSWORD, the mnemonic or HF_TOKEN in the logs, the consoles,
       nodes/<KEY>/ (but the two 0600 secret files), the docker argv log, the remote shell history,
       the command lines of every process seen during the runs (host and runner) and the git tree.
    """
    host = sandbox_host
    core = secrets.token_urlsafe(18)
    password = f"audit {core} $'\"`!"
    hf_token = "hf_" + secrets.token_urlsafe(24)
    node = lab.write_node(host, "aud-a", KEYRING_PASSWORD=password, HF_TOKEN=hf_token)
    host.write_file("/etc/gonka-sim/knobs.json", '{"slow_start": {"node": 8}}')  # phase 4 long enough to cut
    seed = world.seed
    seed.configure(fail_next_n=2)
    seed_url = seed.url_for(host.runner_ip)
    runs = []
    with CmdlineSampler(host) as sampler:
        fab = FabProcess(lab, "deploy", "--node", str(node), "--yes")
        try:
            assert fab.wait_for(r"=== phase 4", 300), "".join(fab.lines)[-3000:]
            assert fab.wait_for(r"\[EXEC\] docker compose up -d tmkms node", 60)
            assert kill_ssh_session_mid_command(host, within_s=60), "no remote command caught in flight"
        finally:
            first = fab.finish(timeout=180)
        runs.append(first)
        assert_clean_failure(first, "connection lost during", "rerun to continue")
        seed.wait_idle()
        failed = [rec for rec in seed.log if rec.status == 503]
        # answered to this deploy: the deployer on this machine, or the preflight's reach check on the server
        assert len(failed) == 2 and all(rec.client in (host.runner_ip, host.ip) for rec in failed), failed
        assert "cannot check MODEL" not in first.stdout, "two 503s are within the retry budget"

        host.write_file("/etc/gonka-sim/knobs.json", "{}")
        seed.configure(fail_next_n=1)
        second = lab.fab("deploy", "--node", str(node), "--yes")
        runs.append(second)
        assert second.returncode == 0, output(second)[-4000:]

        seed.configure(fail_next_n=100000)
        t0 = time.monotonic()
        third = lab.fab("deploy", "--node", str(node), "--yes", timeout=300)
        runs.append(third)
        took = time.monotonic() - t0
    assert_clean_failure(third, seed_url, "HTTP 503")
    assert "try again later" in third.stdout, third.stdout[-2000:]
    assert took < 120, f"the seed's failure budget took {took:.0f} s"
    assert sampler.samples >= 10
    assert any("container-init" in ln for ln in sampler.seen), "the host's processes were sampled"
    assert any(" deploy --node " in ln for ln in sampler.seen), "the runner's processes were sampled"
    assert core in (lab.nodes / "aud-a.conf").read_text(), "the needle matches the secret as stored"

    art = lab.nodes / "aud-a"
    for name in ("warm_key.txt", "config.env"):
        assert (art / name).stat().st_mode & 0o777 == 0o600, name
    mnemonic = parse_mnemonic((art / "warm_key.txt").read_text())
    assert mnemonic
    words = mnemonic.split()
    needles = {"KEYRING_PASSWORD": [password, core], "HF_TOKEN": [hf_token],
               "mnemonic": [" ".join(words[i:i + 3]) for i in range(len(words) - 2)]}

    haystacks: dict[str, str] = {f"console of run {i + 1}": output(r) for i, r in enumerate(runs)}
    for f in sorted((lab.workdir / "logs").rglob("*")):
        if f.is_file():
            haystacks[str(f)] = f.read_text(errors="replace")
    for f in sorted(art.rglob("*")):
        if f.is_file() and f.name not in ("warm_key.txt", "config.env"):
            haystacks[str(f)] = f.read_bytes().decode("utf-8", "replace")
    names = {Path(k).name for k in haystacks}
    assert {"verification.txt", "last_run.json", "report.txt"} <= names, names
    haystacks["docker calls"] = "\n".join(" ".join(c.get("argv", [])) + " " + str(c.get("cwd", ""))
                                          for c in host.docker_calls())
    haystacks["/var/log/gonka-sim/docker.log"] = host.run("cat /var/log/gonka-sim/docker.log", check=False).stdout
    haystacks["remote shell history"] = host.run("cat /root/.*history 2>/dev/null", check=False).stdout
    haystacks["remote sshd log"] = host.run("cat /var/log/sshd.log 2>/dev/null", check=False).stdout
    haystacks["command lines (host and runner)"] = "\n".join(sorted(sampler.seen))
    leaks = [f"{label} in {where}" for where, text in haystacks.items()
             for label, values in needles.items() if any(v in text for v in values)]
    # the server: only the two files meant to hold a secret (0600); the (simulated) docker engine's own
    # state, /var/lib/gonka-sim = /var/lib/docker, holds the containers' environment by design
    secret_files = {f"{JOIN}/config.env", HF_TOKEN_FILE}
    assert host.run(["stat", "-c", "%a", *sorted(secret_files)]).stdout.split() == ["600", "600"]
    all_values = [v for values in needles.values() for v in values]
    found = host.run(["grep", "-rlF", "-f", "/dev/stdin", *REMOTE_SCAN], input="\n".join(all_values) + "\n",
                     check=False, timeout=120).stdout.split()
    assert secret_files <= set(found), f"the scan must find the secret files themselves: {found}"
    for f in set(found) - secret_files:
        text = host.read_file(f).decode("utf-8", "replace")
        leaks += [f"{label} in {f} on the server" for label, values in needles.items() if any(v in text for v in values)]
    if (PROJECT_ROOT / ".git").exists():  # tracked and untracked-but-not-ignored files of the checkout
        g = subprocess.run(["git", "grep", "-lF", "--untracked", *[a for v in all_values for a in ("-e", v)]],
                           cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=60)
        leaks += [f"a secret in {f} in the git tree" for f in g.stdout.split()]
    assert not leaks, leaks
