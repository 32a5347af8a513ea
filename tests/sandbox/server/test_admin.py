"""The api container's admin API for ML nodes, as upstream v0.2.13 answers it (gonkasim/dapi.py;
decentralized-api internal/server/admin/node_handlers.go, broker/node_admin_commands.go)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

from gonka_sim.network.seed import SeedServer, model_entry

from .support import join, sim, wait_for, write_config_env  # noqa: F401

MODEL = "Qwen/Qwen3-235B"


def call(method: str, url: str, body=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data, {"Content-Type": "application/json"}, method=method)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def node(nid: str, host: str = "10.201.9.2", **over):
    return {"id": nid, "host": host, "inference_port": 5050, "poc_port": 8080, "max_concurrent": 500,
            "models": {MODEL: {"args": ["--tensor-parallel-size", "4"]}, "not/governed": {"args": []}}, **over}


def test_admin_node_routes_follow_upstream(sim, join):  # noqa: F811
    with SeedServer(host="127.0.0.1") as seed:
        seed.knobs.models = [model_entry(MODEL)]
        write_config_env(join, sim, SEED_API_URL=seed.url)
        assert sim.sourced('"$DOCKER" compose up -d --no-deps api', join).returncode == 0
        sim.wait_ready("api")
        admin = f"http://127.0.0.1:{sim.port(9200)}/admin/v1/nodes"
        status, body = call("POST", admin, node("ml1"))
        assert status == 200 and list(body["models"]) == [MODEL]  # non-governance model dropped
        status, body = call("POST", admin, {**node("ml2"), "max_concurrent": 0, "inference_port": 70000})
        assert status == 400 and "max_concurrent must be greater than 0" in body["message"]
        assert "inference_port must be between 1 and 65535" in body["message"]
        status, body = call("POST", admin + "/batch", [node("ml2", "10.201.9.3"), node("ml3", "10.201.9.2")])
        assert status == 206 and [n["id"] for n in body["nodes"]] == ["ml2"]
        assert "duplicate inference host+port" in body["errors"][0]
        # PUT upserts by the body's id; a non-governance model is a 500 on update
        status, body = call("PUT", admin + "/whatever", {**node("ml1"), "max_concurrent": 800,
                                                         "models": {MODEL: {"args": []}}})
        assert status == 200 and body["max_concurrent"] == 800
        assert call("PUT", admin + "/ml1", node("ml1"))[0] == 500
        seed.set_phase("poc")
        assert call("POST", admin + "/ml2/disable") == (200, {"message": "node disabled successfully", "node_id": "ml2"})
        assert call("POST", admin + "/nope/enable")[0] == 404
        nodes = {n["node"]["id"]: n for n in call("GET", admin)[1]}
        assert nodes["ml2"]["state"]["admin_state"] == {"enabled": False, "epoch": 1}
        assert nodes["ml1"]["state"]["admin_state"]["enabled"] is True
        assert call("DELETE", admin + "/ml2") == (200, True) and call("DELETE", admin + "/ml2") == (200, False)
        # the registry survives a restart; the admin state does not (broker memory)
        call("POST", admin + "/ml1/disable")
        assert sim.sourced('"$DOCKER" compose restart api', join).returncode == 0
        sim.wait_ready("api")
        nodes = {n["node"]["id"]: n for n in call("GET", admin)[1]}
        assert sorted(nodes) == ["ml1", "node1"]  # node1: imported from node-config.json at first start
        assert nodes["ml1"]["state"]["admin_state"]["enabled"] is True and nodes["ml1"]["node"]["max_concurrent"] == 800
