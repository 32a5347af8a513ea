"""Phase 7 and day 2 on sandbox hosts, as an operator sees them: `fab verify`, the final report's grant
command, `fab status` and `fab backup-keys` (issue 6's acceptance).

One deploy serves most tests of this module (a module fixture on the worker's session host); each
failure test breaks one thing on the deployed host, runs `fab verify`, and repairs it afterwards.
The status tests of fresh and half-deployed hosts run on extra hosts of their own.
"""

from __future__ import annotations

import contextlib
import json
import re
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from gonka_sim.hosts.host import SandboxHost
from gonka_sim.hosts.lab import Lab
from gonka_sim.network import repos
from gonka_tasks.config.address import cold_address
from tests.plugins import hosts as host_fixtures
from tests.plugins.world import World

# one group: under `pytest -n N --dist loadgroup` the module's deploy is made once, on one worker
pytestmark = [pytest.mark.sandbox, pytest.mark.xdist_group("verify_status")]

KEY = "sbx-v"
JOIN = "/mnt/ssd/gonka/deploy/join"
KNOBS = "/etc/gonka-sim/knobs.json"
PHASE_NAMES = ("prepare-server", "download-model", "configure", "start-base", "configure-chain", "launch", "verify")
# docker subcommands that only look: what `fab status` may call
READ_ONLY_DOCKER = {"ps", "exec", "inspect", "logs"}
# compose options that take a value (the verb is the first word that is neither an option nor its value)
_COMPOSE_VALUE_OPTS = {"-f", "--file", "-p", "--project-name", "--project-directory", "--env-file", "--profile",
                       "--ansi", "--progress", "--parallel"}

STAMP = r"\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\]"
TXT_LINE = re.compile(rf"^(?P<stamp>{STAMP}) (?P<result>PASS|WARN|FAIL) (?P<name>[^:]+): (?P<detail>.*)$")
TXT_SUMMARY = re.compile(rf"^{STAMP} verification: (\d+) PASS, (\d+) WARN, (\d+) FAIL in [\d.]+ s$")
CONSOLE_LINE = re.compile(rf"^{STAMP} (?:\S+\s*\| )?\[(?:OK|WARN|ERROR)\] verify "
                          r"(?P<result>PASS|WARN|FAIL) (?P<name>[^:]+): (?P<detail>.*)$")
STATUS_ROW = re.compile(rf"^{STAMP} (?:(?P<node>\S+)\s*\| )?\[INFO\] (?P<phase>{'|'.join(PHASE_NAMES)})\s+"
                        r"(?P<state>done|pending|broken|running)\s+(?P<detail>.*)$")


# ----------------------------------------------------------------------------- helpers
def docker_verb(argv: list[str]) -> str:
    """`compose -f a.yml ps -a` -> 'ps'; `exec node wget ...` -> 'exec'."""
    args = list(argv)
    if args and args[0] == "compose":
        args = args[1:]
    skip = False
    for a in args:
        if skip:
            skip = False
        elif a in _COMPOSE_VALUE_OPTS:
            skip = True
        elif not a.startswith("-"):
            return a
    return ""


def last_run(lab: Lab, key: str) -> dict:
    return json.loads((lab.nodes / key / "last_run.json").read_text())


SIM_LOGS = "/var/log/gonka-sim/{inferenced,nvidia-smi,systemctl,udevadm}.log"


@dataclass
class ServerMark:
    """How far the simulated components' call logs were before a run."""

    docker_calls: int
    other_logs: str


def mark(host: SandboxHost) -> ServerMark:
    return ServerMark(len(host.docker_calls()), host.run(f"wc -l {SIM_LOGS} 2>/dev/null; true").stdout)


def assert_read_only(lab: Lab, key: str, host: SandboxHost, before: ServerMark, *, docker_used: bool = True) -> None:
    """The last fab run changed nothing: no "run" command of the deployer, only looking docker calls,
    no call of the other simulated tools (inferenced, systemctl, ...)."""
    changing = [c for c in last_run(lab, key)["commands"] if c["kind"] == "run"]
    assert changing == [], changing
    verbs = [(docker_verb(c["argv"]), " ".join(c["argv"])[:100]) for c in host.docker_calls()[before.docker_calls:]]
    if docker_used:
        assert verbs, "the run made no docker call at all"
    assert [v for v in verbs if v[0] not in READ_ONLY_DOCKER] == [], verbs
    assert mark(host).other_logs == before.other_logs


def status_rows(stdout: str) -> dict[str | None, dict[str, tuple[str, str]]]:
    """{node prefix or None: {phase: (state, detail)}} from the tables `fab status` printed."""
    out: dict[str | None, dict[str, tuple[str, str]]] = {}
    for line in stdout.splitlines():
        m = STATUS_ROW.match(line)
        if m:
            out.setdefault(m["node"], {})[m["phase"]] = (m["state"], m["detail"])
    return out


def write_knobs(host: SandboxHost, **knobs) -> None:
    host.write_file(KNOBS, json.dumps(knobs))


def compose_in_join(host: SandboxHost, args: str, timeout: float = 120) -> None:
    """A compose command as the operator would type it on the server (config.env sourced)."""
    host.run(f"cd {JOIN} && . ./config.env && docker compose -f docker-compose.yml -f docker-compose.mlnode.yml "
             f"{args}", timeout=timeout)


def wait_listening(host: SandboxHost, address: str, timeout: float = 15) -> None:
    """Wait until `ss` shows a listener on address:port (a container binds its ports as it starts)."""
    deadline = time.monotonic() + timeout
    while address not in host.run("ss -Hltn").stdout:
        assert time.monotonic() < deadline, f"nothing listens on {address} after {timeout} s"
        time.sleep(0.3)


@dataclass
class Verification:
    """One `fab verify` run: its process result and the checks, which txt, json and console agree on."""

    proc: object
    checks: dict[str, tuple[str, str]]
    txt: str
    json_text: str
    seconds: float

    def result(self, name: str) -> str:
        return self.checks[name][0]

    def detail(self, name: str) -> str:
        return self.checks[name][1]

    def failing(self) -> list[str]:
        return [n for n, (res, _) in self.checks.items() if res == "FAIL"]


def verification_files(lab: Lab, key: str) -> tuple[str, str, list[tuple[str, str, str]], dict]:
    art = lab.nodes / key
    txt = (art / "verification.txt").read_text()
    json_text = (art / "verification.json").read_text()
    lines = txt.splitlines()
    assert lines, "verification.txt is empty"
    parsed = []
    for ln in lines[:-1]:
        m = TXT_LINE.match(ln)
        assert m, f"not a timestamped check line: {ln!r}"
        parsed.append((m["name"], m["result"], m["detail"]))
    assert TXT_SUMMARY.match(lines[-1]), lines[-1]
    return txt, json_text, parsed, json.loads(json_text)


def run_verify(lab: Lab, node: Path, key: str = KEY) -> Verification:
    """`fab verify`, then check that verification.txt, verification.json and the console say the same."""
    t0 = time.monotonic()
    proc = lab.fab("verify", "--node", str(node), timeout=300)
    seconds = time.monotonic() - t0
    txt, json_text, parsed, doc = verification_files(lab, key)
    from_json = [(c["name"], c["result"], c["detail"]) for c in doc["checks"]]
    assert parsed == from_json, (parsed, from_json)
    counts = {k: sum(1 for _, res, _ in parsed if res == k) for k in ("PASS", "WARN", "FAIL")}
    assert doc["counts"] == counts
    summary = TXT_SUMMARY.match(txt.splitlines()[-1])
    assert tuple(int(x) for x in summary.groups()) == (counts["PASS"], counts["WARN"], counts["FAIL"])
    console = [(m["name"], m["result"], m["detail"]) for m in map(CONSOLE_LINE.match, proc.stdout.splitlines()) if m]
    assert console == parsed, (console, parsed)
    names = [n for n, _, _ in parsed]
    assert len(names) == len(set(names)), names
    # exit code 0 exactly when nothing failed
    assert proc.returncode == (1 if counts["FAIL"] else 0), proc.stdout[-3000:]
    return Verification(proc, {n: (res, d) for n, res, d in parsed}, txt, json_text, seconds)


# ----------------------------------------------------------------------------- the deployed host
@dataclass
class Deployed:
    host: SandboxHost
    lab: Lab
    node: Path
    seed: object
    deploy: object
    seconds: float

    @property
    def art(self) -> Path:
        return self.lab.nodes / KEY


@pytest.fixture(scope="module")
def deployed(sandbox_host_session, seed_server, hub_server, pypi_index, tmp_path_factory):
    """The worker's host, reset, with one full `fab deploy` done; shared by this module's tests.

    The seed is not reset between these tests (that would drop the registration): tests that
    change a seed knob put it back.
    """
    host = sandbox_host_session
    if host.name in host_fixtures._used:
        host.reset()
    host_fixtures._used.add(host.name)  # the next function-scoped user resets it
    seed_server.wait_idle()
    seed_server.reset()
    hub_server.wait_idle()
    hub_server.reset()
    World(seed=seed_server, hub=hub_server, request=None).align_models()
    work = tmp_path_factory.mktemp("verify-status")
    with pytest.MonkeyPatch.context() as mp:
        (work / "home").mkdir()
        mp.setenv("HOME", str(work / "home"))  # the runner's ~/.ssh out of reach
        lab = Lab(workdir=work / "work", seed=seed_server, hub=hub_server, pypi=pypi_index,
                  prometheus_repo=repos.UPSTREAMS["prometheus"])
        node = lab.write_node(host, KEY)
        t0 = time.monotonic()
        r = lab.fab("deploy", "--node", str(node), "--yes")
        seconds = time.monotonic() - t0
        assert r.returncode == 0, r.stdout[-4000:]
        print(f"\n[timing] deploy {seconds:.1f} s")
        yield Deployed(host, lab, node, seed_server, r, seconds)


def test_deploy_report_grant_command_uses_the_real_values(deployed):
    lab, art = deployed.lab, deployed.art
    values = lab.values(KEY)
    warm = (art / "warm_address.txt").read_text().strip()
    assert re.fullmatch(r"gonka1[02-9ac-hj-np-z]{38,}", warm), warm
    report = (art / "report.txt").read_text()
    assert report.startswith(f"Deployment of {KEY} on {values['SERVER_IP']} completed")
    one_line = re.sub(r"\s+", " ", report.replace("\\\n", " "))
    cold, seed = values["COLD_KEY_NAME"], values["SEED_API_URL"].rstrip("/")
    grant = (f"./inferenced tx inference grant-ml-ops-permissions {cold} {warm} --from {cold} "
             f"--keyring-backend file --gas auto --gas-adjustment 1.5 --gas-prices 10ngonka "
             f"--node {seed}/chain-rpc/")
    assert grant in one_line
    # the cold account's balance as the seed's /v1 tells it, the participant link on /v2
    cold_addr = cold_address(values["ACCOUNT_PUBKEY"])
    assert f"participant:  {seed}/v2/participants/{cold_addr}" in report
    assert "balance 0 ngonka (0 GNK)" in report and "TOP IT UP" in report
    # the after-join commands with this node's values, the served model's intent among them
    assert (f"./inferenced tx collateral deposit-collateral <DEPOSIT>ngonka --from {cold} --keyring-backend file "
            f"--node {seed}/chain-rpc/ --chain-id gonka-mainnet") in one_line
    assert f"declare-poc-intent {values['MODEL']} --from {cold}" in one_line
    # the report went to the console too, and names the files that are really there
    assert "LEFT TO DO, on your own machine with the cold key" in deployed.deploy.stdout
    for name in ("warm_key.txt", "warm_address.txt", "verification.txt", "verification.json", "backup"):
        assert (art / name).exists() and re.search(rf"^\s+{re.escape(name)}\s+\S", report, re.M), name
    # the deploy backed the keys up after phase 4, and said so
    assert "backup of the keys" in deployed.deploy.stdout
    assert len([p for p in (art / "backup").iterdir() if p.is_dir()]) == 1


def test_verify_after_deploy_passes_and_files_agree(deployed):
    v = run_verify(deployed.lab, deployed.node)
    print(f"\n[timing] verify (all pass) {v.seconds:.1f} s")
    assert v.failing() == [], v.txt
    expected = {"registration", "node RPC", "dashboard", "proxy health", "admin API nodes", "CUDA", "PyTorch CUDA",
                "containers", "logs"}
    assert expected <= set(v.checks), v.txt
    for name in expected:
        assert v.result(name) == "PASS", v.txt
    assert "in sync" in v.detail("node RPC")
    assert "H100" in v.detail("CUDA")
    # the deploy's own phase 7 wrote the same kind of files: the new run replaced them
    doc = json.loads(v.json_text)
    assert doc["node"] == KEY and doc["server"] == deployed.host.ip


@contextlib.contextmanager
def port_forward(target: tuple[str, int]):
    """A TCP forwarder on this machine (127.0.0.1:<port> -> target), standing for a NAT's port forward."""
    import socket  # noqa: PLC0415
    import threading  # noqa: PLC0415

    lsock = socket.socket()
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(16)
    stop = threading.Event()

    def pipe(a, b):
        with contextlib.suppress(OSError):
            while data := a.recv(65536):
                b.sendall(data)
        for s in (a, b):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)

    def serve():
        lsock.settimeout(0.2)
        while not stop.is_set():
            try:
                client, _ = lsock.accept()
            except OSError:
                continue
            upstream = socket.create_connection(target, timeout=5)
            threading.Thread(target=pipe, args=(client, upstream), daemon=True).start()
            threading.Thread(target=pipe, args=(upstream, client), daemon=True).start()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield lsock.getsockname()[1]
    finally:
        stop.set()
        thread.join()
        lsock.close()


def test_verify_checks_the_public_url_as_well_as_the_server(deployed):
    """Behind NAT, PUBLIC_URL is not SERVER_IP:API_PORT: verify asks both; a public path that does
    not lead to the proxy is a FAIL naming the URL."""
    node, ip = deployed.node, deployed.host.ip
    original = node.read_text()
    try:
        with port_forward((ip, 8000)) as port:
            node.write_text(original + f"PUBLIC_URL=http://127.0.0.1:{port}\n")
            v = run_verify(deployed.lab, node)
            assert v.result("public URL") == "PASS" and f"http://127.0.0.1:{port}/health HTTP 200" in v.detail("public URL")
            assert v.result("proxy health") == "PASS"  # the server itself, as before
        node.write_text(original + f"PUBLIC_URL=http://127.0.0.1:{port}\n")  # the forward is gone now
        v = run_verify(deployed.lab, node)
        assert v.result("public URL") == "FAIL" and f"http://127.0.0.1:{port}/health" in v.detail("public URL")
    finally:
        node.write_text(original)
    v = run_verify(deployed.lab, node)
    assert "public URL" not in v.checks  # PUBLIC_URL is the server's own address: asked once


def test_backup_keys_match_the_server_byte_for_byte(deployed):
    host, lab = deployed.host, deployed.lab
    listing = f"cd {JOIN} && find .tmkms .inference -printf '%y %m %s %p\\n' | sort"
    before = host.run(listing).stdout
    backups = deployed.art / "backup"
    old = {p.name for p in backups.iterdir()}
    t0 = time.monotonic()
    r = lab.fab("backup-keys", "--node", str(deployed.node))
    print(f"\n[timing] backup-keys {time.monotonic() - t0:.1f} s")
    assert r.returncode == 0, r.stdout[-3000:]
    new = [backups / n for n in {p.name for p in backups.iterdir()} - old]
    assert len(new) == 1, new
    dest = new[0]
    assert re.fullmatch(r"\d{8}-\d{6}(-\d+)?", dest.name)
    assert str(dest) in r.stdout
    # every key file of the server and the API's state (config and database), and nothing else
    server_files = host.run(
        f"cd {JOIN} && find .tmkms .inference/keyring-file .inference/config/node_key.json -type f | sort").stdout.split()
    server_files += host.run(f"cd {JOIN} && for f in .dapi/api-config.yaml .dapi/gonka.db .dapi/gonka.db-wal "
                             ".dapi/gonka.db-shm; do [ -f $f ] && echo $f; done; true").stdout.split()
    assert ".dapi/gonka.db" in server_files  # the api has run: its database is there
    assert ".inference/config/node_key.json" in server_files
    assert any(f.startswith(".tmkms/") for f in server_files)
    assert any(f.startswith(".inference/keyring-file/") for f in server_files)
    local_files = sorted(str(p.relative_to(dest)) for p in dest.rglob("*") if p.is_file())
    assert local_files == sorted(server_files)
    for rel in server_files:
        assert (dest / rel).read_bytes() == host.read_file(f"{JOIN}/{rel}"), rel
        assert (dest / rel).stat().st_mode & 0o777 == 0o600, rel
    for d in [dest, *(p for p in dest.rglob("*") if p.is_dir())]:
        assert d.stat().st_mode & 0o777 == 0o700, d
    assert backups.stat().st_mode & 0o777 == 0o700
    # nothing on the server changed, let alone was deleted
    assert host.run(listing).stdout == before
    assert [c for c in last_run(lab, KEY)["commands"] if c["kind"] == "run"] == []
    # the key archive travels on the command's output and is never logged
    log = Path(last_run(lab, KEY)["log"]).read_text()
    node_key = host.read_file(f"{JOIN}/.inference/config/node_key.json").decode()
    priv = json.loads(node_key)["priv_key"]["value"]
    assert priv not in log and priv not in r.stdout


def test_status_of_the_deployed_host_is_all_done_and_read_only(deployed):
    host, lab = deployed.host, deployed.lab
    before = mark(host)
    t0 = time.monotonic()
    r = lab.fab("status", "--node", str(deployed.node))
    print(f"\n[timing] status (full host) {time.monotonic() - t0:.1f} s")
    assert r.returncode == 0, r.stdout[-3000:]
    rows = status_rows(r.stdout)
    assert list(rows) == [None], r.stdout
    table = rows[None]
    assert list(table) == list(PHASE_NAMES), r.stdout
    assert {p: s for p, (s, _) in table.items()} == dict.fromkeys(PHASE_NAMES, "done"), r.stdout
    warm = (deployed.art / "warm_address.txt").read_text().strip()
    assert f"warm key:    {warm}" in r.stdout
    assert re.search(r"participant: gonka1\S+ registered", r.stdout), r.stdout
    assert re.search(r"chain: +height \d+, in sync", r.stdout), r.stdout
    assert "sandbox/tiny-model present" in r.stdout
    assert_read_only(lab, KEY, host, before)


# ----------------------------------------------------------------------------- failures
def test_ml_node_without_gpu_fails_cuda_and_torch(deployed):
    write_knobs(deployed.host, no_gpu=True)
    try:
        v = run_verify(deployed.lab, deployed.node)
    finally:
        write_knobs(deployed.host)
    print(f"\n[timing] verify (no GPU) {v.seconds:.1f} s")
    assert sorted(v.failing()) == ["CUDA", "PyTorch CUDA"], v.txt
    assert "nvidia-smi failed" in v.detail("CUDA") and "NVIDIA driver" in v.detail("CUDA"), v.detail("CUDA")
    assert "False" in v.detail("PyTorch CUDA"), v.detail("PyTorch CUDA")


def test_node_catching_up_warns_with_the_gap_to_the_seed(deployed):
    write_knobs(deployed.host, catching_up=True)
    try:
        v = run_verify(deployed.lab, deployed.node)
    finally:
        write_knobs(deployed.host)
    print(f"\n[timing] verify (catching up) {v.seconds:.1f} s")
    assert v.failing() == [], v.txt
    assert v.result("node RPC") == "WARN", v.txt
    m = re.search(r"height (\d+), catching up, (\d+) blocks behind the seed \((\d+)\)", v.detail("node RPC"))
    assert m, v.detail("node RPC")
    height, gap, top = map(int, m.groups())
    assert gap == top - height and gap > 0
    assert abs(top - deployed.seed.height()) < 100


def test_participant_missing_at_the_seed_fails_registration(deployed):
    seed = deployed.seed
    seed.knobs.hide_registrations = True
    try:
        v = run_verify(deployed.lab, deployed.node)
    finally:
        seed.knobs.hide_registrations = False
    print(f"\n[timing] verify (not registered) {v.seconds:.1f} s")
    assert v.failing() == ["registration"], v.txt
    detail = v.detail("registration")
    assert "not listed at the seed" in detail and "404" in detail, detail
    assert re.search(r"gonka1\S+", detail)


def test_participant_registered_with_another_url_fails_registration_naming_both(deployed):
    seed, values = deployed.seed, deployed.lab.values(KEY)
    cold = cold_address(values["ACCOUNT_PUBKEY"])
    with seed.lock:
        p = seed.participants[cold]
        right, p.url = p.url, "http://203.0.113.99:8000"
    try:
        v = run_verify(deployed.lab, deployed.node)
    finally:
        with seed.lock:
            p.url = right
    assert v.failing() == ["registration"], v.txt
    detail = v.detail("registration")
    public = values.get("PUBLIC_URL") or f"http://{values['SERVER_IP']}:{values.get('API_PORT') or 8000}"
    assert "http://203.0.113.99:8000" in detail and public in detail, detail
    assert "submit-new-participant" in detail, detail


def test_exited_container_fails_containers_and_status_shows_launch_broken(deployed):
    host, lab = deployed.host, deployed.lab
    host.run("docker stop bridge", timeout=60)
    try:
        v = run_verify(lab, deployed.node)
        before = mark(host)
        s = lab.fab("status", "--node", str(deployed.node))
        assert_read_only(lab, KEY, host, before)
    finally:
        host.run("docker start bridge", timeout=60)
    print(f"\n[timing] verify (container exited) {v.seconds:.1f} s")
    assert v.failing() == ["containers"], v.txt
    assert re.search(r"not running: bridge \(exited, exit \d+\)", v.detail("containers")), v.detail("containers")
    assert s.returncode == 0, s.stdout[-3000:]
    table = status_rows(s.stdout)[None]
    assert table["launch"][0] == "broken" and "bridge" in table["launch"][1], s.stdout
    assert "bridge exited" in s.stdout


def test_error_in_a_container_log_is_quoted_with_secrets_masked(deployed):
    host, lab = deployed.host, deployed.lab
    password = lab.values(KEY)["KEYRING_PASSWORD"]
    line = f"ERROR keyring: cannot unlock the file keyring with passphrase {password} (bad MAC)"
    write_knobs(host, log_inject={"bridge": line})
    try:
        host.run("docker restart bridge", timeout=60)
        v = run_verify(lab, deployed.node)
    finally:
        write_knobs(host)
        # a new container starts with an empty log: the line must not haunt the other tests
        compose_in_join(host, "up -d --no-deps --force-recreate bridge")
    print(f"\n[timing] verify (error in log) {v.seconds:.1f} s")
    assert v.failing() == [], v.txt
    assert v.result("logs") == "WARN", v.txt
    assert "error in bridge: 'ERROR keyring: cannot unlock the file keyring with passphrase *** (bad MAC)'" \
        in v.detail("logs"), v.detail("logs")
    log = Path(last_run(lab, KEY)["log"]).read_text()
    for where, text in (("verification.txt", v.txt), ("verification.json", v.json_text),
                        ("console", v.proc.stdout), ("log", log)):
        assert password not in text, where
        assert json.dumps(password)[1:-1] not in text, where
    assert "passphrase ***" in v.json_text and "passphrase ***" in v.proc.stdout


LOOPBACK_MAPPING = '"127.0.0.1:${INFERENCE_PORT:-5050}:5000"'


@contextlib.contextmanager
def port_opened_by_hand(host: SandboxHost):
    """The operator "fixes" the ML node's port in the compose file and recreates the container; undone after."""
    compose_file = f"{JOIN}/docker-compose.mlnode.yml"
    original = host.read_text(compose_file)
    assert LOOPBACK_MAPPING in original, original
    host.write_file(compose_file, original.replace(LOOPBACK_MAPPING, '"0.0.0.0:${INFERENCE_PORT:-5050}:5000"'))
    try:
        compose_in_join(host, "up -d --no-deps inference")
        wait_listening(host, "0.0.0.0:5050")
        yield compose_file
    finally:
        host.write_file(compose_file, original)
        compose_in_join(host, "up -d --no-deps inference")
        wait_listening(host, "127.0.0.1:5050")


def test_port_on_all_interfaces_warns(deployed):
    with port_opened_by_hand(deployed.host):
        v = run_verify(deployed.lab, deployed.node)
    print(f"\n[timing] verify (port on 0.0.0.0) {v.seconds:.1f} s")
    assert v.failing() == [], v.txt
    assert v.result("port 5050") == "WARN", v.txt
    assert v.detail("port 5050").startswith("listens on 0.0.0.0:"), v.detail("port 5050")
    assert "exposure" not in v.checks
    assert not [n for n in v.checks if n.startswith("port ") and n != "port 5050"], v.txt


def test_published_node_rpc_is_checked_from_outside_and_warned_about(deployed):
    host = deployed.host
    compose_file = f"{JOIN}/docker-compose.yml"
    original = host.read_text(compose_file)
    p2p = '      - "5000:26656" # chain P2P: the host port is a literal in this file\n'
    assert p2p in original
    host.write_file(compose_file, original.replace(p2p, p2p + '      - "26657:26657"\n'))
    try:
        compose_in_join(host, "up -d --no-deps node")
        wait_listening(host, "0.0.0.0:26657")
        v = run_verify(deployed.lab, deployed.node)
    finally:
        host.write_file(compose_file, original)
        compose_in_join(host, "up -d --no-deps node")
    print(f"\n[timing] verify (node RPC published) {v.seconds:.1f} s")
    assert v.failing() == [], v.txt
    names = list(v.checks)
    assert names.index("node RPC (published)") == names.index("node RPC") + 1, names
    assert v.result("node RPC (published)") == "PASS", v.txt
    assert re.fullmatch(rf"http://{re.escape(host.ip)}:26657/status answers: chain \S+, height \d+",
                        v.detail("node RPC (published)")), v.detail("node RPC (published)")
    assert v.result("port 26657") == "WARN", v.txt
    assert "0.0.0.0:26657" not in host.run("ss -Hltn").stdout


def test_launch_closes_a_port_opened_by_hand(deployed):
    host = deployed.host
    with port_opened_by_hand(host) as compose_file:
        r = deployed.lab.fab("launch", "--node", str(deployed.node), "--yes")
        assert r.returncode == 0, r.stdout[-3000:]
        assert LOOPBACK_MAPPING in host.read_text(compose_file)  # the file is put back...
        time.sleep(2)
        assert "0.0.0.0:5050" not in host.run("ss -Hltn").stdout  # ... and the container recreated


# ----------------------------------------------------------------------------- status elsewhere
@pytest.fixture
def fleet_lab(seed_server, hub_server, pypi_index, tmp_path):
    """A lab for extra hosts; the seed is left as it is (the module's deployed host is registered there)."""
    World(seed=seed_server, hub=hub_server, request=None).align_models()
    return Lab(workdir=tmp_path / "work", seed=seed_server, hub=hub_server, pypi=pypi_index,
               prometheus_repo=repos.UPSTREAMS["prometheus"])


def test_status_of_fresh_and_half_deployed_hosts_one_and_two_at_a_time(sandbox_host_factory, fleet_lab):
    lab = fleet_lab
    t0 = time.monotonic()
    fresh, half = sandbox_host_factory(2)
    print(f"\n[timing] two extra hosts up {time.monotonic() - t0:.1f} s")
    nf, nh = lab.write_node(fresh, "sbx-fresh"), lab.write_node(half, "sbx-half")

    # a fresh host: everything pending, nothing touched
    before = mark(fresh)
    t0 = time.monotonic()
    r = lab.fab("status", "--node", str(nf))
    print(f"[timing] status (fresh host) {time.monotonic() - t0:.1f} s")
    assert r.returncode == 0, r.stdout[-3000:]
    table = status_rows(r.stdout)[None]
    assert {p: s for p, (s, _) in table.items()} == dict.fromkeys(PHASE_NAMES, "pending"), r.stdout
    assert "not registered" in r.stdout and "RPC not answering" in r.stdout
    assert_read_only(lab, "sbx-fresh", fresh, before, docker_used=False)
    assert fresh.run("findmnt -n /mnt/ssd", check=False).returncode != 0
    assert fresh.run("test -e /mnt/ssd/gonka", check=False).returncode != 0

    # a half-deployed host: disk, repo and model there, nothing configured or started; meanwhile
    # `fab verify` on the fresh host fails cleanly (every check answers, nothing is changed)
    before_verify = mark(fresh)
    t0 = time.monotonic()
    with ThreadPoolExecutor(max_workers=1) as pool:
        pending_verify = pool.submit(run_verify, lab, nf, "sbx-fresh")
        for phase in ("prepare-server", "download-model"):
            p = lab.fab(phase, "--node", str(nh), "--yes")
            assert p.returncode == 0, p.stdout[-3000:]
        print(f"[timing] prepare-server + download-model {time.monotonic() - t0:.1f} s")
        v = pending_verify.result(timeout=300)
    print(f"[timing] verify (fresh host) {v.seconds:.1f} s")
    assert {"registration", "node RPC", "dashboard", "CUDA", "PyTorch CUDA", "containers"} <= set(v.failing()), v.txt
    assert "no services found in the compose files" in v.detail("containers")
    assert_read_only(lab, "sbx-fresh", fresh, before_verify, docker_used=False)
    state = {
        "fstab": half.read_text("/etc/fstab"),
        "tree": half.run("find /mnt/ssd -path /mnt/ssd/lost+found -prune -o -printf '%y %m %s %T@ %p\\n' | sort").stdout,
    }
    before = mark(half)
    r = lab.fab("status", "--node", str(nh))
    assert r.returncode == 0, r.stdout[-3000:]
    table = status_rows(r.stdout)[None]
    states = {p: s for p, (s, _) in table.items()}
    assert states == {"prepare-server": "done", "download-model": "done", "configure": "pending",
                      "start-base": "pending", "configure-chain": "pending", "launch": "pending",
                      "verify": "pending"}, r.stdout
    assert "model sandbox/tiny-model present" in table["download-model"][1]
    assert_read_only(lab, "sbx-half", half, before)
    assert half.read_text("/etc/fstab") == state["fstab"]
    assert half.run("find /mnt/ssd -path /mnt/ssd/lost+found -prune -o -printf '%y %m %s %T@ %p\\n' | sort"
                    ).stdout == state["tree"]

    # both at once: one table per host, each line tagged with its node, and a fleet summary
    t0 = time.monotonic()
    r = lab.fab("status", "--node", str(nf), "--node", str(nh), "--parallel", "2")
    print(f"[timing] status (two hosts) {time.monotonic() - t0:.1f} s")
    assert r.returncode == 0, r.stdout[-3000:]
    both = status_rows(r.stdout)
    assert set(both) == {"sbx-fresh", "sbx-half"}, r.stdout
    # the fresh host's failed verify shows as its last run
    assert {p: s for p, (s, _) in both["sbx-fresh"].items()} == {**dict.fromkeys(PHASE_NAMES, "pending"),
                                                                  "verify": "broken"}
    assert re.match(r"last run \S+ \S+: \d+ PASS, \d+ WARN, [1-9]\d* FAIL", both["sbx-fresh"]["verify"][1])
    assert {p: s for p, (s, _) in both["sbx-half"].items()} == states
    assert "fleet summary: 2/2 nodes ok" in r.stdout
