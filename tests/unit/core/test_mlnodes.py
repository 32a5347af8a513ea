"""ML nodes on their own servers: the config kind, the admin API's answers, the PoC guard, the
DOCKER-USER fence and its persistence, all pure."""

from __future__ import annotations

import pytest

from gonka_tasks.config import load
from gonka_tasks.connectors import adminapi
from gonka_tasks.core import firewall, mlnodes, render
from gonka_tasks.errors import ConfigError, DeployError

PUBKEY = "A4Rb1r0Yq+5wZ8s0J9q8M3n2vJ8yQ2kz9o3V0wKkq1Xx"


def write(tmp_path, name: str, text: str):
    (tmp_path / "nodes").mkdir(exist_ok=True)
    p = tmp_path / "nodes" / name
    p.write_text(text)
    return p


def test_an_mlnode_config_needs_no_keys_and_derives_its_id_and_bind_address(tmp_path):
    p = write(tmp_path, "gpu-2.conf", "NODE_KIND=mlnode\nSERVER_IP=203.0.113.7\nNETWORK_NODE=node1\n"
                                      "PRIVATE_IP=10.0.0.22\nAPI_PORT=8001\n")
    cfg = load(p, tmp_path)
    assert cfg.is_mlnode and cfg["ML_NODE_ID"] == "gpu-2" and cfg.key_name == "gpu-2"
    assert cfg["INTERNAL_BIND_ADDRESS"] == "10.0.0.22"
    assert any("API_PORT" in w and "not used on an ML-node server" in w for w in cfg.warnings)


def test_an_mlnode_config_refuses_keys_and_names_missing_fields(tmp_path):
    p = write(tmp_path, "gpu.conf", "NODE_KIND=mlnode\nSERVER_IP=203.0.113.7\nKEYRING_PASSWORD=abcdefghijklmnop\n"
                                    "PRIVATE_IP=8.8.8.8\n")
    with pytest.raises(ConfigError) as e:
        load(p, tmp_path)
    text = str(e.value)
    assert "NETWORK_NODE: required for NODE_KIND=mlnode" in text
    assert "KEYRING_PASSWORD: an ML-node server holds no keys" in text
    assert "PRIVATE_IP: must be this server's address on the private network" in text
    assert "abcdefghijklmnop" not in text


def test_network_node_with_private_ip_gets_callback_there():
    class Cfg:
        values = {"PRIVATE_IP": "10.0.0.5"}
    assert render.poc_callback_url(Cfg()) == "http://10.0.0.5:9100"
    Cfg.values = {"PRIVATE_IP": ""}
    assert render.poc_callback_url(Cfg()) == "http://api:9100"


def test_callback_port_binds_to_the_private_ip_admin_stays_on_loopback():
    from gonka_tasks.core.ports import bind_internal_ports
    text = '    ports:\n      - "9100:9100"\n      - "9200:9200"\n      - "${PORT:-8080}:8080"\n'
    out = bind_internal_ports(text, {9100, 9200, 8080}, "127.0.0.1", {}, frozenset({9200}), {9100: "10.0.0.5"})
    assert '"10.0.0.5:9100:9100"' in out and '"127.0.0.1:9200:9200"' in out and '"127.0.0.1:${PORT:-8080}:8080"' in out


def test_admin_answers_parse_and_registration_differences():
    ans = adminapi.parse_answer('[{"node":{"id":"gpu-2","host":"10.0.0.22","inference_port":5050,"poc_port":8080,'
                                '"max_concurrent":500,"models":{"M/A":{"args":["--tensor-parallel-size","4"]}}},'
                                '"state":{"current_status":"INFERENCE","poc_current_status":"IDLE",'
                                '"admin_state":{"enabled":false,"epoch":41}}}]\n200')
    assert ans.status == 200
    nodes = mlnodes.parse_nodes(ans.data)
    got = mlnodes.find(nodes, "gpu-2")
    assert got and not got.enabled and got.disabled_epoch == 41
    want = {"id": "gpu-2", "host": "10.0.0.22", "inference_port": 5050, "poc_port": 8080, "max_concurrent": 500,
            "models": {"M/A": {"args": ["--tensor-parallel-size", "4"]}}}
    assert mlnodes.differences(want, got) == []
    want["models"] = {"M/B": {"args": []}}
    assert mlnodes.only_model_changes(mlnodes.differences(want, got))
    assert adminapi.parse_answer("curl: (7) Failed to connect").status == 0
    with pytest.raises(DeployError):
        mlnodes.parse_nodes({"nodes": []})
    with pytest.raises(DeployError):
        adminapi.admin_path("a;rm -rf /")


def test_poc_guard_and_epoch_participants():
    node = mlnodes.Registered("n1", "h", 5050, 8080, 1, {}, current_status="INFERENCE", poc_status="IDLE")
    assert mlnodes.poc_reason(mlnodes.parse_epoch({"latest_epoch": {"index": 7}, "phase": "Inference"}), node) == ""
    assert "PoCGenerate" in mlnodes.poc_reason(mlnodes.Epoch(7, "PoCGenerate"), node)
    busy = mlnodes.Registered("n1", "h", 5050, 8080, 1, {}, current_status="POC", poc_status="GENERATING")
    assert "in PoC" in mlnodes.poc_reason(mlnodes.Epoch(7, "Inference"), busy)
    data = {"active_participants": {"participants": [
        {"index": "gonka1me", "ml_nodes": [{"ml_nodes": [{"node_id": "n1"}, {"node_id": "n2"}]}]}]}}
    assert mlnodes.node_in_epoch(data, "gonka1me", "n1") is True
    assert mlnodes.node_in_epoch(data, "gonka1me", "n3") is False
    assert mlnodes.node_in_epoch(data, "gonka1other", "n1") is None


def test_fence_rules_are_checked_ordered_and_persisted_with_other_rules_kept():
    wanted = firewall.fence_rules("10.0.0.5", [8080, 5050])
    assert len(wanted) == 4 and wanted[0].endswith("-j RETURN") and "--ctdir ORIGINAL" in wanted[1]
    chain = "-N DOCKER-USER\n" + "".join(f"-A DOCKER-USER {w}\n" for w in wanted) + "-A DOCKER-USER -j RETURN\n"
    assert firewall.fence_state(chain, wanted)[0]
    assert not firewall.fence_state(chain, firewall.fence_rules("10.0.0.6", [8080, 5050]))[0]
    late = "-N DOCKER-USER\n-A DOCKER-USER -s 1.2.3.4/32 -j DROP\n" + "".join(f"-A DOCKER-USER {w}\n" for w in wanted)
    assert not firewall.fence_state(late, wanted)[0]
    existing = "*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -p tcp --dport 22 -j ACCEPT\nCOMMIT\n"
    text = firewall.persisted(existing, wanted)
    assert "-A INPUT -p tcp --dport 22 -j ACCEPT" in text and ":DOCKER-USER - [0:0]" in text
    assert firewall.persisted_ok(text, wanted) and firewall.persisted(text, wanted) == text
    assert firewall.persisted_ok(firewall.persisted("", wanted), wanted)
    assert "iptables -I DOCKER-USER 1 -s 10.0.0.5/32" in firewall.apply_script(wanted)


def test_health_words():
    assert mlnodes.health_word('200\n{"status": "healthy"}') == "healthy"
    assert mlnodes.health_word("000\n") == "unreachable"
    assert mlnodes.health_word('503\n{"status": "unhealthy"}').startswith("unhealthy")
