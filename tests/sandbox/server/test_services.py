"""What the simulated containers do: chain files, restarts, API database, ML node, proxy, knobs."""

from __future__ import annotations

import json

import tomllib

from tests.sandbox.server import support
from tests.sandbox.server.support import wait_for

pytestmark = support.needs_sim_python
sim = support.sim  # fixtures
join = support.join

ALL = '"$DOCKER" compose -f docker-compose.yml -f docker-compose.mlnode.yml'
PEERS = "0123456789abcdef0123456789abcdef01234567@198.51.100.9:5000"


def up_node(sim, join):
    assert sim.sourced('"$DOCKER" compose up -d --no-deps node', join).returncode == 0
    sim.wait_ready("node")


def restart_node(sim, join):
    r = sim.sourced('"$DOCKER" compose restart node', join)
    assert r.returncode == 0, r.stderr
    assert " Container node  Restarting" in r.stderr and " Container node  Started" in r.stderr


def test_node_home_on_first_start(sim, join):
    up_node(sim, join)
    cfgdir = join / ".inference" / "config"
    cfg_text = (cfgdir / "config.toml").read_text()
    cfg = tomllib.loads(cfg_text)
    assert cfg["p2p"]["external_address"] == "tcp://198.51.100.7:5000"
    assert cfg["p2p"]["persistent_peers"] == "" and cfg["p2p"]["allow_duplicate_ip"] is True
    assert cfg["p2p"]["handshake_timeout"] == "30s" and cfg["rpc"]["laddr"] == "tcp://0.0.0.0:26657"
    assert cfg["priv_validator_laddr"] == "tcp://0.0.0.0:26658"
    assert "# Comma separated list of nodes to keep persistent connections to" in cfg_text
    app = tomllib.loads((cfgdir / "app.toml").read_text())
    assert app["pruning"] == "default" and app["state-sync"]["snapshot-interval"] == 1000
    assert tomllib.loads((cfgdir / "client.toml").read_text())["keyring-backend"] == "test"
    node_key = json.loads((cfgdir / "node_key.json").read_text())
    assert node_key["priv_key"]["type"] == "tendermint/PrivKeyEd25519"
    assert (join / ".inference" / "data").is_dir() and (cfgdir / "genesis.json").is_file()
    status = sim.get_json(f"http://{sim.ip('node')}:26657/status")["result"]
    assert len(status["node_info"]["id"]) == 40


def test_restart_keeps_peers_and_pruning_and_reapplies_external_address(sim, join):
    up_node(sim, join)
    cfgdir = join / ".inference" / "config"
    cfg = (cfgdir / "config.toml").read_text()
    cfg = cfg.replace('persistent_peers = ""', f'persistent_peers = "{PEERS}"')
    cfg = cfg.replace('external_address = "tcp://198.51.100.7:5000"', 'external_address = "tcp://1.2.3.4:1"')
    (cfgdir / "config.toml").write_text(cfg)
    app = (cfgdir / "app.toml").read_text()
    app = app.replace('pruning = "default"', 'pruning = "custom"')
    app = app.replace('pruning-keep-recent = "0"', 'pruning-keep-recent = "20000"')
    app = app.replace('pruning-interval = "0"', 'pruning-interval = "512"')
    (cfgdir / "app.toml").write_text(app)
    restart_node(sim, join)
    sim.wait_ready("node")
    after = tomllib.loads((cfgdir / "config.toml").read_text())
    assert after["p2p"]["persistent_peers"] == PEERS
    assert after["p2p"]["external_address"] == "tcp://198.51.100.7:5000"  # the start script wins
    assert tomllib.loads((cfgdir / "app.toml").read_text())["pruning-keep-recent"] == "20000"
    logs = sim.docker("logs", "node", cwd=join).stdout
    assert f"persistent_peers={PEERS}" in logs
    assert "strategy=custom keep-recent=20000 interval=512" in logs
    net = sim.get_json(f"http://{sim.ip('node')}:26657/net_info")["result"]
    assert net["n_peers"] == "1"


def test_bad_pruning_or_broken_toml_stops_the_node(sim, join):
    up_node(sim, join)
    app_path = join / ".inference/config/app.toml"
    good = app_path.read_text()
    app_path.write_text(good.replace('pruning = "default"', 'pruning = "custom"').replace(
        'pruning-keep-recent = "0"', 'pruning-keep-recent = "100"').replace('pruning-interval = "0"',
                                                                            'pruning-interval = "5"'))
    restart_node(sim, join)
    wait_for(lambda: sim.state("node") and (sim.root / "var/lib/gonka-sim/run/node.exit").exists(), what="exit")
    r = sim.docker("ps", "-a", "--format", "{{.Names}} {{.State}} {{.Status}}", cwd=join)
    assert "node exited Exited (1)" in r.stdout
    assert "'pruning-interval' must not be less than 10" in sim.docker("logs", "node", cwd=join).stdout
    app_path.write_text(good + "\n[broken\n")
    assert sim.sourced('"$DOCKER" compose start node', join).returncode == 0
    wait_for(lambda: "While parsing config" in sim.docker("logs", "node", cwd=join).stdout, what="toml error")
    app_path.write_text(good)
    assert sim.sourced('"$DOCKER" compose start node', join).returncode == 0
    sim.wait_ready("node")


def test_missing_genesis_is_fatal(sim, join):
    (join.parent.parent / "genesis" / "genesis.json").unlink()
    assert sim.sourced('"$DOCKER" compose up -d --no-deps node', join).returncode == 0
    wait_for(lambda: "couldn't read GenesisDoc" in sim.log("node"), what="genesis error")
    # like docker, the missing bind source became a directory
    assert (join.parent.parent / "genesis" / "genesis.json").is_dir()


def test_api_reads_node_config_once(sim, join):
    assert sim.sourced('"$DOCKER" compose up -d --no-deps api', join).returncode == 0
    sim.wait_ready("api")
    admin = f"http://127.0.0.1:{sim.port(9200)}/admin/v1/nodes"
    nodes = sim.get_json(admin)
    assert [n["node"]["id"] for n in nodes] == ["node1"]
    assert nodes[0]["node"]["host"] == "inference" and nodes[0]["state"]["current_status"] == "FAILED"
    assert (join / ".dapi" / "gonka.db").is_file()
    cfg = json.loads((join / "node-config.json").read_text())
    cfg[0]["id"] = "renamed"
    (join / "node-config.json").write_text(json.dumps(cfg))
    assert sim.sourced('"$DOCKER" compose restart api', join).returncode == 0
    sim.wait_ready("api")
    assert [n["node"]["id"] for n in sim.get_json(admin)] == ["node1"]
    assert "node config file not re-read" in sim.docker("logs", "api", cwd=join).stdout
    # the admin listens on loopback only; 9100 on all interfaces
    assert sim.state("api")["listen"][-1][0] == "127.0.0.1"
    assert ["0.0.0.0", sim.port(9100), 9100] in sim.state("api")["listen"]


def test_full_stack(sim, join):
    support.write_config_env(join, sim, API_PORT="8000")
    r = sim.sourced(f"{ALL} up -d", join)
    assert r.returncode == 0, r.stderr
    for name in ("tmkms", "node", "api", "proxy", "explorer", "join-mlnode-308-1", "join-inference-1"):
        sim.wait_ready(name)
    rows = {json.loads(x)["Service"]: json.loads(x)
            for x in sim.docker("compose", "-f", "docker-compose.yml", "-f", "docker-compose.mlnode.yml", "ps",
                                "--format", "json", cwd=join).stdout.splitlines()}
    assert rows["mlnode-308"]["Name"] == "join-mlnode-308-1"
    assert all(r["State"] == "running" for r in rows.values())
    # the ML node's health, through the inference nginx on 8080
    health = sim.get_json(f"http://127.0.0.1:{sim.port(8080)}/health")
    assert health["status"] == "healthy" and health["gpu"]["count"] == 1
    assert sim.get_json(f"http://127.0.0.1:{sim.port(8080)}/v3.0.8/health")["status"] == "healthy"
    status, page = sim.get(f"http://127.0.0.1:{sim.port(8000)}/")
    assert status == 200 and "<html" in page
    assert sim.get(f"http://127.0.0.1:{sim.port(8000)}/health")[0] == 200
    assert sim.get_json(f"http://127.0.0.1:{sim.port(8000)}/v1/status")["key_name"] == "node-a"
    report = sim.get_json(f"http://127.0.0.1:{sim.port(9200)}/admin/v1/setup/report")
    checks = {c["id"]: c for c in report["checks"]}
    assert report["overall_status"] in ("PASS", "FAIL", "UNAVAILABLE")
    assert all(c["status"] in ("PASS", "FAIL", "UNAVAILABLE") and c["message"] for c in report["checks"])
    assert checks["mlnode_node1"]["status"] == "PASS"
    assert checks["cold_key_configured"]["status"] == "PASS"
    assert checks["warm_key_in_keyring"]["status"] == "FAIL"  # no keys add in this test
    assert checks["block_sync"]["status"] == "PASS"
    assert report["summary"]["total_checks"] == len(report["checks"])
    # torch and nvidia-smi inside the ML node
    torch = sim.docker("compose", "-f", "docker-compose.yml", "-f", "docker-compose.mlnode.yml", "exec", "-T",
                       "mlnode-308", "python3", "-c", "import torch; print(torch.cuda.is_available())", cwd=join)
    assert torch.returncode == 0 and torch.stdout == "True\n", torch.stderr
    smi = sim.docker("compose", "-f", "docker-compose.yml", "-f", "docker-compose.mlnode.yml", "exec", "-T",
                     "mlnode-308", "nvidia-smi", cwd=join)
    assert smi.returncode == 0 and "NVIDIA H100 80GB HBM3" in smi.stdout
    # torch is only importable in the ML node
    other = sim.docker("exec", "api", "python3", "-c", "import torch", cwd=join)
    assert other.returncode == 1 and "No module named 'torch'" in other.stderr
    # the model cache is mounted where HF_HOME says, and container paths in commands reach the volumes
    assert sim.state("join-mlnode-308-1")["volumes"][0][:2] == [str(sim.tmp / "hf"), "/root/.cache"]
    (sim.tmp / "hf" / "hub" / "models--Org--Name").mkdir(parents=True)
    ls = sim.docker("compose", "-f", "docker-compose.mlnode.yml", "exec", "-T", "mlnode-308", "sh", "-c",
                    "ls /root/.cache/hub", cwd=join)
    assert ls.stdout == "models--Org--Name\n", ls.stderr
    client = sim.docker("exec", "node", "cat", "/root/.inference/config/client.toml", cwd=join)
    assert 'keyring-backend = "test"' in client.stdout
    # ML node down: nginx answers 502
    assert sim.docker("stop", "join-mlnode-308-1", cwd=join).returncode == 0
    assert sim.get(f"http://127.0.0.1:{sim.port(8080)}/health")[0] == 502


def test_no_gpu_knob(sim, join):
    sim.knobs(no_gpu=True)
    assert sim.sourced(f"{ALL} up -d --no-deps mlnode-308 inference", join).returncode == 0
    sim.wait_ready("join-mlnode-308-1")
    sim.wait_ready("join-inference-1")
    smi = sim.sourced(f"{ALL} exec -T mlnode-308 nvidia-smi", join)
    assert smi.returncode == 9 and "couldn't communicate with the NVIDIA driver" in smi.stdout
    torch = sim.sourced(f"{ALL} exec -T mlnode-308 python3 -c 'import torch; print(torch.cuda.is_available())'", join)
    assert torch.stdout == "False\n" and "Found no NVIDIA driver" in torch.stderr
    health = sim.get_json(f"http://127.0.0.1:{sim.port(8080)}/health")
    assert health["gpu"] == {"available": False, "count": 0, "devices": []}


def test_catching_up_knob(sim, join):
    sim.knobs(catching_up=True)
    up_node(sim, join)
    sync = sim.get_json(f"http://{sim.ip('node')}:26657/status")["result"]["sync_info"]
    assert sync["catching_up"] is True
    sim.knobs()
    sync = sim.get_json(f"http://{sim.ip('node')}:26657/status")["result"]["sync_info"]
    assert sync["catching_up"] is False


def test_host_tools(sim):
    bin_ = support.BIN
    q = sim.run([str(bin_ / "nvidia-smi"), "--query-gpu=name,memory.total", "--format=csv,noheader,nounits"])
    assert q.stdout == "NVIDIA H100 80GB HBM3, 81559\n"
    sim.knobs(gpu_count=2)
    assert len(sim.run([str(bin_ / "nvidia-smi"), "-L"]).stdout.splitlines()) == 2
    assert sim.run([str(bin_ / "systemctl"), "is-active", "docker"]).stdout == "active\n"
    r = sim.run([str(bin_ / "systemctl"), "restart", "ssh"])
    assert r.returncode == 1 and "System has not been booted with systemd" in r.stderr
    assert sim.run([str(bin_ / "udevadm"), "settle"]).returncode == 0
