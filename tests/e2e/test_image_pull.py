"""The image pull job: started in phase 2 next to the model download, waited for by the phases that
start containers, its failure named (image and registry error), its finished layers kept."""

from __future__ import annotations

import json

import pytest

from tests.e2e.test_prepare_server import fab, wait_pull_job

pytestmark = pytest.mark.sandbox

KNOBS = "/etc/gonka-sim/knobs.json"
MLNODE = "ghcr.io/gonka-ai/mlnode:3.0.13"


def pulls(host) -> list[str]:
    return [c["argv"][1] for c in host.docker_calls() if c["argv"][:1] == ["pull"]]


@pytest.mark.slow  # a refused pull and its rerun: with the slow set (CI runs it)
def test_a_refused_image_is_named_and_a_rerun_finishes_the_pull(lab, sandbox_host):
    host = sandbox_host
    host.write_file(KNOBS, json.dumps({"pull_fail": {"gonka-ai/mlnode": "denied: requested access to the resource is "
                                                                       "denied"}, "registry_bps": 2_000_000_000}))
    node = str(lab.write_node(host, "sbx-pull"))
    r, out = fab(lab, "deploy", "--node", node, "--yes", ok=False)
    assert r.returncode == 1
    assert f"image pull failed: {MLNODE}: denied: requested access to the resource is denied" in out, out[-3000:]
    assert "FAILED: phase 6 (launch)" in out or "FAILED: phase 4 (start-base)" in out
    state = json.loads(host.read_text("/var/lib/gonka-deploy/pull/state.json"))
    assert state["state"] == "failed" and state["images"][MLNODE]["state"] == "failed"
    assert pulls(host).count(MLNODE) == 1  # a refusal is not retried

    host.write_file(KNOBS, json.dumps({"registry_bps": 2_000_000_000}))
    fab(lab, "deploy", "--node", node, "--yes")
    done = [i for i, s in wait_pull_job(host)["images"].items() if s["state"] == "done"]
    assert MLNODE in done
    # images pulled by the first run are not pulled again
    assert all(pulls(host).count(i) == 1 for i in set(pulls(host)) if i != MLNODE)


@pytest.mark.slow
def test_a_connection_reset_during_a_pull_is_retried_keeping_finished_layers(lab, sandbox_host):
    host = sandbox_host
    host.write_file(KNOBS, json.dumps({"pull_cut_after_layers": {"gonka-ai/mlnode": 3}, "registry_bps": 4_000_000_000}))
    node = str(lab.write_node(host, "sbx-cut"))
    fab(lab, "prepare-server", "--node", node, "--yes")
    fab(lab, "download-model", "--node", node, "--yes")
    state = wait_pull_job(host)
    assert state["images"][MLNODE]["layers_done"] == state["images"][MLNODE]["layers_total"] == 6
    assert pulls(host).count(MLNODE) == 2  # cut once, retried once
    # every layer crossed the wire once: the retry fetched only the 3 layers the cut left
    counters = json.loads(host.read_text("/var/lib/gonka-sim/counters.json"))
    assert counters["registry_bytes:gonka-ai/mlnode"] == state["images"][MLNODE]["bytes_total"] > 0
