"""The simulated docker/compose CLI as a state machine (runs on the runner in a temp GONKA_SIM_ROOT)."""

from __future__ import annotations

import json
import socket
import time

import pytest

from tests.sandbox.server import support
from tests.sandbox.server.support import wait_for

pytestmark = support.needs_sim_python
sim = support.sim  # fixtures
join = support.join

UP_BASE = '"$DOCKER" compose up tmkms node -d --no-deps'
ALL = '"$DOCKER" compose -f docker-compose.yml -f docker-compose.mlnode.yml'


def ps_json(sim, join, *extra):
    r = sim.docker("compose", "ps", "--format", "json", *extra, cwd=join)
    assert r.returncode == 0, r.stderr
    return {row["Service"]: row for row in map(json.loads, r.stdout.splitlines())}


def test_up_base_services_then_ps_and_call_log(sim, join):
    r = sim.sourced(UP_BASE, join)
    assert r.returncode == 0, r.stderr
    for line in (" Container tmkms  Started", " Container node  Started", " Network join_default  Created"):
        assert line in r.stderr
    rows = ps_json(sim, join)
    assert set(rows) == {"tmkms", "node"}
    node = rows["node"]
    assert node["Name"] == "node" and node["State"] == "running" and node["Status"].startswith("Up ")
    assert node["Project"] == "join" and node["ExitCode"] == 0 and node["Health"] == ""
    pubs = {(p["URL"], p["PublishedPort"], p["TargetPort"]) for p in node["Publishers"]}
    assert ("0.0.0.0", sim.port(5000), 26656) in pubs and ("::", sim.port(5000), 26656) in pubs
    assert ("", 0, 26657) in pubs  # the RPC port is not published
    calls = sim.docker_calls()
    assert calls[0]["argv"] == ["compose", "up", "tmkms", "node", "-d", "--no-deps"]
    assert calls[0]["cwd"] == str(join) and isinstance(calls[0]["t"], float)
    assert sim.counters()["container_starts"] == 2


def test_node_status_shows_consensus_key_once_tmkms_connects(sim, join):
    assert sim.sourced('"$DOCKER" compose up node -d --no-deps', join).returncode == 0
    sim.wait_ready("node")
    url = f"http://{sim.ip('node')}:26657/status"
    first = sim.get_json(url)["result"]
    assert first["validator_info"]["pub_key"] is None
    assert first["node_info"]["network"] == "gonka-mainnet" and first["node_info"]["moniker"] == "node-a"
    assert sim.sourced('"$DOCKER" compose up tmkms -d --no-deps', join).returncode == 0
    status = wait_for(lambda: (s := sim.get_json(url)["result"])["validator_info"]["pub_key"] and s,
                      what="pub_key")
    pk = status["validator_info"]["pub_key"]
    assert pk["type"] == "tendermint/PubKeyEd25519" and len(pk["value"]) == 44
    assert isinstance(status["sync_info"]["latest_block_height"], str)
    assert status["sync_info"]["catching_up"] is False
    h1 = int(status["sync_info"]["latest_block_height"])
    time.sleep(1.1)
    assert int(sim.get_json(url)["result"]["sync_info"]["latest_block_height"]) > h1
    # 26657 is not published: nothing answers on the host's loopback
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", 26657), timeout=0.5).close()
    # the documented check: docker exec node wget -qO- http://localhost:26657/status
    r = sim.docker("exec", "node", "wget", "-qO-", "http://localhost:26657/status", cwd=join)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["result"]["validator_info"]["pub_key"]["value"] == pk["value"]


def test_tmkms_key_is_created_once(sim, join):
    assert sim.sourced(UP_BASE, join).returncode == 0
    sim.wait_ready("tmkms")
    key = join / ".tmkms" / "secrets" / "priv_validator_key.softsign"
    before = key.read_text()
    assert (key.stat().st_mode & 0o777) == 0o600
    assert sim.docker("restart", "tmkms", cwd=join).returncode == 0
    assert sim.sourced('"$DOCKER" compose up tmkms -d --force-recreate', join).returncode == 0
    sim.wait_ready("tmkms")
    assert key.read_text() == before


def test_up_is_idempotent_and_recreates_on_config_change(sim, join):
    assert sim.sourced(UP_BASE, join).returncode == 0
    starts = sim.counters()["container_starts"]
    again = sim.sourced(UP_BASE, join)
    assert again.returncode == 0
    assert " Container node  Running" in again.stderr and "Started" not in again.stderr
    assert sim.counters()["container_starts"] == starts
    pid = sim.state("node")["pid"]
    cfg = (join / "config.env").read_text().replace("198.51.100.7:5000", "198.51.100.8:5000")
    (join / "config.env").write_text(cfg)
    r = sim.sourced('"$DOCKER" compose up -d --no-deps node', join)
    assert " Container node  Recreate" in r.stderr and " Container node  Started" in r.stderr
    assert sim.state("node")["pid"] != pid
    sim.wait_ready("node")
    assert 'external_address = "tcp://198.51.100.8:5000"' in (join / ".inference/config/config.toml").read_text()


def test_down_stops_and_removes(sim, join):
    assert sim.sourced(UP_BASE, join).returncode == 0
    # `up -d` returns once the containers started; the node writes its config on its first start
    wait_for(lambda: (join / ".inference/config/config.toml").is_file(), what="node's first start")
    pids = [sim.state(n)["pid"] for n in ("tmkms", "node")]
    r = sim.sourced('"$DOCKER" compose down', join)
    assert r.returncode == 0, r.stderr
    assert " Container node  Removed" in r.stderr and " Network join_default  Removed" in r.stderr
    assert sim.state("node") is None and sim.state("tmkms") is None
    for pid in pids:
        wait_for(lambda pid=pid: not _alive(pid), what=f"pid {pid} gone")
    assert ps_json(sim, join, "-a") == {}
    assert (join / ".tmkms").is_dir() and (join / ".inference/config/config.toml").is_file()


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] not in "ZX"


def test_fail_start_knob_leaves_an_exited_container(sim, join):
    sim.knobs(fail_start=["node"])
    r = sim.sourced(UP_BASE, join)
    assert r.returncode == 0  # like docker: the container starts, then exits
    wait_for(lambda: ps_json(sim, join, "-a")["node"]["State"] == "exited", what="node exited")
    row = ps_json(sim, join, "-a")["node"]
    assert row["ExitCode"] == 1 and row["Status"].startswith("Exited (1)")
    assert "node" not in ps_json(sim, join)  # plain ps shows running containers only
    assert "fail_start" in sim.docker("logs", "node", cwd=join).stdout
    r = sim.docker("inspect", "--format", "{{.State.Status}} {{.State.ExitCode}} {{.RestartCount}}", "node", cwd=join)
    assert r.stdout.strip() == "exited 1 0"
    r = sim.docker("exec", "node", "true", cwd=join)
    assert r.returncode == 1 and "is not running" in r.stderr


def test_docker_fail_knob_matches_words_in_order(sim, join):
    sim.knobs(docker_fail={"pattern": "compose up", "rc": 17, "times": 1})
    r = sim.sourced(UP_BASE, join)
    assert r.returncode == 17 and "Error response from daemon" in r.stderr
    assert sim.state("node") is None
    assert sim.sourced(UP_BASE, join).returncode == 0  # only the first call failed
    sim.knobs(docker_fail=[{"pattern": "compose ps", "rc": 3}])
    assert sim.docker("compose", "ps", cwd=join).returncode == 3
    assert sim.docker("ps", cwd=join).returncode == 0


def test_published_port_in_use_fails_like_docker(sim, join):
    blocker = socket.socket()
    blocker.bind(("0.0.0.0", sim.port(5000)))
    blocker.listen(1)
    try:
        r = sim.sourced(UP_BASE, join)
    finally:
        blocker.close()
    assert r.returncode == 1
    assert "address already in use" in r.stderr and "Error response from daemon" in r.stderr
    assert sim.state("node")["status"] == "created"


def test_slow_start_and_health(sim, join):
    sim.knobs(slow_start={"proxy": 1.5})
    r = sim.sourced('"$DOCKER" compose up -d --no-deps proxy', join)
    assert r.returncode == 0, r.stderr
    row = ps_json(sim, join)["proxy"]
    assert row["State"] == "running" and row["Health"] == "starting"
    assert "(health: starting)" in row["Status"]
    wait_for(lambda: ps_json(sim, join)["proxy"]["Health"] == "healthy", what="healthy proxy")
    status, body = sim.get(f"http://127.0.0.1:{sim.port(8000)}/health")
    assert status == 200


def test_logs_and_inspect(sim, join):
    sim.knobs(log_inject={"node": "ERR injected failure line"})
    assert sim.sourced(UP_BASE, join).returncode == 0
    sim.wait_ready("node")
    logs = sim.docker("logs", "node", cwd=join).stdout
    assert "ERR injected failure line" in logs and "starting node" in logs
    assert len(sim.docker("logs", "--tail", "2", "node", cwd=join).stdout.splitlines()) == 2
    clog = sim.docker("compose", "logs", "--tail", "1", "node", "tmkms", cwd=join).stdout.splitlines()
    assert {line.split("|")[0].strip() for line in clog} == {"node", "tmkms"}
    doc = json.loads(sim.docker("inspect", "node", cwd=join).stdout)[0]
    assert doc["Name"] == "/node" and doc["State"]["Status"] == "running" and doc["RestartCount"] == 0
    assert "P2P_EXTERNAL_ADDRESS=tcp://198.51.100.7:5000" in doc["Config"]["Env"]
    assert doc["Config"]["Labels"]["com.docker.compose.project"] == "join"
    r = sim.docker("inspect", "nope", cwd=join)
    assert r.returncode == 1 and "No such object: nope" in r.stderr
    table = sim.docker("ps", "--format", "{{.Names}}\\t{{.Status}}", cwd=join).stdout.splitlines()
    assert sorted(line.split("\t")[0] for line in table) == ["node", "tmkms"]


def test_run_passes_stdin_and_the_service_environment(sim, join):
    r = sim.sourced('"$DOCKER" compose run --rm --no-deps -T api sh -c \'cat; echo "$KEY_NAME|$DAPI_API__PUBLIC_URL"\'',
                    join, input="from stdin\n")
    assert r.returncode == 0, r.stderr
    assert r.stdout == "from stdin\nnode-a|http://198.51.100.7:8000\n"
    assert sim.state("api") is None  # one-off container, removed
    r = sim.sourced('"$DOCKER" compose run --rm --no-deps -T api sh -c "exit 7"', join)
    assert r.returncode == 7
    r = sim.sourced('"$DOCKER" compose run --rm --no-deps -T api no-such-program', join)
    assert r.returncode == 127 and "executable file not found" in r.stderr


def test_errors_look_like_docker(sim, join):
    r = sim.docker("frobnicate", cwd=join)
    assert r.returncode == 1 and "is not a docker command" in r.stderr
    r = sim.docker("compose", "frobnicate", cwd=join)
    assert r.returncode == 1 and 'unknown docker command: "compose frobnicate"' in r.stderr
    r = sim.docker("compose", "up", "-d", "nosuch", cwd=join)
    assert r.returncode == 1 and "no such service: nosuch" in r.stderr
    r = sim.docker("compose", "exec", "-T", "node", "true", cwd=join)
    assert r.returncode == 1 and 'service "node" is not running' in r.stderr
    r = sim.docker("compose", "up", "-d", "--bogus", cwd=join)
    assert r.returncode == 1 and "unknown flag: --bogus" in r.stderr
    r = sim.docker("compose", "ps", cwd=sim.tmp)
    assert r.returncode == 1 and "no configuration file provided" in r.stderr
    assert sim.docker("--version").stdout.startswith("Docker version 27.")
    assert sim.docker("compose", "version").stdout.startswith("Docker Compose version v2.")
    assert "nvidia" in sim.docker("info", "--format", "{{json .Runtimes}}").stdout


def test_prerequisite_faults_answer_as_docker_does(sim, join):
    """The preflight's sandbox variants: no compose plugin, daemon down, no NVIDIA runtime."""
    sim.knobs(no_compose_plugin=True)
    r = sim.docker("compose", "version", "--short", cwd=join)
    assert r.returncode != 0 and "'compose' is not a docker command" in r.stderr
    sim.knobs(docker_daemon_down=True)
    r = sim.docker("version", "--format", "{{.Server.Version}}", cwd=join)
    assert r.returncode != 0 and "Is the docker daemon running?" in r.stderr
    assert sim.docker("--version", cwd=join).returncode == 0  # the client alone still answers
    sim.knobs()
    daemon_json = sim.root / "etc" / "docker" / "daemon.json"
    daemon_json.write_text("{}\n")  # no NVIDIA runtime registered; dockerd reads it when it (re)starts
    assert sim.run([str(support.BIN / "systemctl"), "restart", "docker"]).returncode == 0
    runtimes = json.loads(sim.docker("info", "--format", "{{json .Runtimes}}", cwd=join).stdout)
    assert "nvidia" not in runtimes and "runc" in runtimes
    r = sim.sourced(f"{ALL} up -d", join)
    assert r.returncode != 0 and 'could not select device driver "nvidia"' in r.stderr
    # the toolkit's own fix: register the runtime, then restart dockerd (before the restart it is not seen)
    r = sim.run([str(support.BIN / "nvidia-ctk"), "runtime", "configure", "--runtime=docker"])
    assert r.returncode == 0 and "It is recommended that docker daemon be restarted." in r.stdout
    assert "nvidia" not in json.loads(sim.docker("info", "--format", "{{json .Runtimes}}", cwd=join).stdout)
    assert sim.run([str(support.BIN / "systemctl"), "restart", "docker"]).returncode == 0
    assert "nvidia" in json.loads(sim.docker("info", "--format", "{{json .Runtimes}}", cwd=join).stdout)


def test_manifest_inspect_gives_layer_sizes_or_the_registry_error(sim, join):
    r = sim.docker("manifest", "inspect", "-v", "ghcr.io/gonka-ai/mlnode:3.0.13", cwd=join)
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["Descriptor"]["platform"] == {"architecture": "amd64", "os": "linux"}
    assert sum(la["size"] for la in doc["SchemaV2Manifest"]["layers"]) > 10 ** 10
    multi = json.loads(sim.docker("manifest", "inspect", "-v", "nginx:1.28.0", cwd=join).stdout)
    assert isinstance(multi, list) and {m["Descriptor"]["platform"]["architecture"] for m in multi} == {"amd64", "arm64"}
    sim.knobs(registry_unreachable=True, docker_daemon_down=True)  # a client-side call: no daemon needed
    r = sim.docker("manifest", "inspect", "-v", "ghcr.io/product-science/api:0.2.13", cwd=join)
    assert r.returncode != 0 and 'Get "https://ghcr.io/v2/"' in r.stderr and "no such host" in r.stderr


def test_pull_takes_the_registry_time_keeps_finished_layers_and_names_the_error(sim, join):
    img = "ghcr.io/product-science/api:0.2.13"
    r = sim.docker("image", "inspect", img, cwd=join)
    assert r.returncode == 1 and f"No such image: {img}" in r.stderr
    # 6 layers of 60 MB at 200 MB/s: 1.8 s; the connection drops after 2 new layers once
    sim.knobs(image_sizes={img: 360_000_000}, registry_bps=200_000_000, pull_cut_after_layers={"product-science/api": 2})
    t0 = time.monotonic()
    r = sim.docker("pull", img, cwd=join)
    assert r.returncode == 1 and "connection reset by peer" in r.stderr
    assert r.stdout.count("Pull complete") == 2
    r = sim.docker("pull", img, cwd=join)  # the retry skips what is there
    assert r.returncode == 0, r.stderr
    assert r.stdout.count("Already exists") == 2 and r.stdout.count("Pull complete") == 4
    assert 1.5 < time.monotonic() - t0 < 6
    assert sim.docker("image", "inspect", "--format", "{{.Id}}", img, cwd=join).stdout.startswith("sha256:")
    sim.knobs(pull_fail={"product-science/proxy": "denied"})
    r = sim.docker("pull", "ghcr.io/product-science/proxy:0.2.13", cwd=join)
    assert r.returncode == 1 and r.stderr.strip() == "Error response from daemon: denied"
