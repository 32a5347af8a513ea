"""The seed's epochs, phases and participants on a clock the tests drive (gonka_sim/network/epochs.py)."""

from __future__ import annotations

import json
import urllib.request

import pytest

from gonka_sim.network.epochs import EpochClock, should_be_operational
from gonka_sim.network.seed import SeedServer


def get(url: str):
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def post(url: str, body) -> int:
    req = urllib.request.Request(url, json.dumps(body).encode(), {"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=5) as r:
        return r.status


def test_should_be_operational_follows_the_broker():
    assert should_be_operational({"enabled": True, "epoch": 4}, 5, "PoCGenerate")
    assert not should_be_operational({"enabled": True, "epoch": 5}, 5, "PoCGenerate")
    assert should_be_operational({"enabled": True, "epoch": 5}, 5, "Inference")
    assert should_be_operational({"enabled": False, "epoch": 5}, 5, "Inference")  # active till the epoch ends
    assert not should_be_operational({"enabled": False, "epoch": 5}, 6, "PoCGenerate")


def test_a_disabled_node_leaves_at_the_next_epoch_an_enabled_one_joins():
    clock = EpochClock(first_index=7)
    node = {"models": ["m"], "healthy": True}
    clock.report({"address": "gonka1a", "url": "http://a:8000", "nodes": [
        {**node, "id": "ml1", "admin_state": {"enabled": True, "epoch": 7}},
        {**node, "id": "ml2", "admin_state": {"enabled": False, "epoch": 7}},
        {**node, "id": "ml3", "healthy": False, "admin_state": {"enabled": True, "epoch": 7}}]})
    assert clock.members() == {}
    assert clock.advance_epoch() == 8
    assert clock.members() == {"gonka1a": ["ml1"]}
    with pytest.raises(ValueError, match="phase"):
        clock.set_phase("lunch")
    assert clock.set_phase("poc") == "PoCGenerate"


def test_seed_serves_epochs_and_participants():
    with SeedServer(host="127.0.0.1") as seed:
        status, latest = get(seed.url + "/v1/epochs/latest")
        assert status == 200 and latest["latest_epoch"]["index"] == 1 and latest["phase"] == "Inference"
        seed.set_phase("poc")
        assert get(seed.url + "/v1/epochs/latest")[1]["phase"] == "PoCGenerate"
        assert post(seed.url + "/gonka-sim/v1/ml-nodes", {"address": "gonka1x", "url": "http://x", "nodes": [
            {"id": "n1", "models": ["m"], "healthy": True, "admin_state": {"enabled": True, "epoch": 1}}]}) == 200
        assert seed.advance_epoch() == 2
        status, body = get(seed.url + "/v1/epochs/current/participants")
        assert status == 200 and body["active_participants"]["epoch_id"] == 2
        [p] = body["active_participants"]["participants"]
        assert p["index"] == "gonka1x" and p["ml_nodes"][0]["ml_nodes"][0]["node_id"] == "n1"
        assert get(seed.url + "/v1/epochs/0/participants")[0] == 400
        assert get(seed.url + "/v1/epochs/latest")[1]["phase"] == "Inference"
