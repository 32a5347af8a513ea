"""The deployer's edits of tracked compose files (port bindings, P2P port) and how an update tells
them from the operator's own edits."""

from __future__ import annotations

import subprocess
from types import SimpleNamespace

from gonka_sim.network import repos
from gonka_tasks.core import bindings
from gonka_tasks.core.ports import p2p_mismatches, publish_p2p

COMPOSE = (repos.TEMPLATES / "gonka/deploy/join/docker-compose.yml").read_text()
MLNODE = (repos.TEMPLATES / "gonka/deploy/join/docker-compose.mlnode.yml").read_text()


def cfg(**over):
    values = {"PORT": "8080", "INFERENCE_PORT": "5050", "INTERNAL_BIND_ADDRESS": "127.0.0.1", "P2P_PORT": "5000"}
    values.update(over)

    class Cfg(dict):
        state_dir = "/mnt/ssd/.gonka-deploy"
        gonka_dir = "/mnt/ssd/gonka"
    c = Cfg(values)
    return c


def env_stub(monkeypatch):
    monkeypatch.setattr(bindings.render, "config_env_values", lambda c: {"PORT": c["PORT"],
                                                                         "INFERENCE_PORT": c["INFERENCE_PORT"]})


def test_p2p_port_other_than_5000_rewrites_the_literal_mapping_only():
    new = publish_p2p(COMPOSE, 5001, {})
    assert '- "5001:26656" # chain P2P' in new and '"5000:26656"' not in new
    assert p2p_mismatches(COMPOSE, 5001, {}) == ['- "5000:26656" # chain P2P: the host port is a literal in this file']
    assert p2p_mismatches(new, 5001, {}) == [] and publish_p2p(new, 5001, {}) == new
    # nothing else moves: every other line is the same
    assert [a for a, b in zip(COMPOSE.splitlines(), new.splitlines(), strict=True) if a != b] == \
        ['      - "5000:26656" # chain P2P: the host port is a literal in this file']
    assert publish_p2p(COMPOSE, 5000, {}) == COMPOSE


def test_bound_text_binds_internal_ports_and_the_p2p_port(monkeypatch):
    env_stub(monkeypatch)
    c = cfg(P2P_PORT="5001")
    new = bindings.bound_text(c, COMPOSE)
    assert '"127.0.0.1:9100:9100"' in new and '"127.0.0.1:9200:9200"' in new and '"5001:26656"' in new
    assert '"${API_PORT:-8000}:80"' in new  # the public API stays public
    assert bindings.binding_problems(c, new) == [] and bindings.bound_text(c, new) == new
    assert len(bindings.binding_problems(c, COMPOSE)) == 2  # 9100 on every interface, P2P at 5000
    ml = bindings.bound_text(c, MLNODE)
    assert '"127.0.0.1:${PORT:-8080}:8080"' in ml and '"127.0.0.1:${INFERENCE_PORT:-5050}:5000"' in ml
    # INTERNAL_BIND_ADDRESS=0.0.0.0 is the operator's explicit choice: only the P2P port is kept
    open_all = cfg(P2P_PORT="5001", INTERNAL_BIND_ADDRESS="0.0.0.0")
    assert bindings.bound_text(open_all, COMPOSE) == publish_p2p(COMPOSE, 5001, {})


def test_update_restores_only_what_the_deployer_wrote():
    mine, other = "a" * 64, "b" * 64
    record = bindings.parse_record(f"{mine}  deploy/join/node-config.json\nnot a line\n")
    ours, theirs = bindings.classify(
        ["deploy/join/node-config.json", "deploy/join/nginx.conf", "deploy/join/docker-compose.yml"],
        {"deploy/join/node-config.json": mine, "deploy/join/nginx.conf": other,
         "deploy/join/docker-compose.yml": other},
        record, derivable={"deploy/join/docker-compose.yml"})
    assert ours == ["deploy/join/node-config.json", "deploy/join/docker-compose.yml"]
    assert theirs == ["deploy/join/nginx.conf"]
    # a file we wrote and the operator changed afterwards is theirs
    assert bindings.classify(["deploy/join/node-config.json"], {"deploy/join/node-config.json": other},
                             record, set()) == ([], ["deploy/join/node-config.json"])


def test_record_command_keeps_one_line_per_path(tmp_path):
    c = SimpleNamespace(state_dir=str(tmp_path / "state"), gonka_dir="/mnt/ssd/gonka")
    for content in ("one", "two"):
        subprocess.run(bindings.record_command(c, "/mnt/ssd/gonka/deploy/join/docker-compose.yml", content),
                       shell=True, check=True, timeout=10)
    subprocess.run(bindings.record_command(c, "/mnt/ssd/gonka/deploy/join/node-config.json", "[]\n"),
                   shell=True, check=True, timeout=10)
    rec = bindings.parse_record((tmp_path / "state" / bindings.RECORD_NAME).read_text())
    assert rec == {"deploy/join/docker-compose.yml": {bindings.sha256("two")},
                   "deploy/join/node-config.json": {bindings.sha256("[]\n")}}
