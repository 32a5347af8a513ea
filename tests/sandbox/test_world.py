"""The runner-side world as a sandbox host sees it: at runner_ip, over the veth, with no internet.

These need root (they bring up a sandbox host); they skip with the reason otherwise.
"""

from __future__ import annotations

import hashlib
import json
import shlex

import pytest

from gonka_sim.network.pypi import pip_conf_text
from gonka_sim.network.seed import SANDBOX_MODEL_ID
from gonka_tasks.config.address import cold_address
from tests.helpers import pubkey_b64

pytestmark = pytest.mark.sandbox


def test_host_registers_with_seed_at_runner_ip(sandbox_host, seed):
    host = sandbox_host
    key = pubkey_b64("sandbox-world")
    body = {"address": cold_address(key), "url": f"http://{host.ip}:8000", "validator_key": "",
            "pub_key": key, "worker_key": ""}  # fmt: skip
    base = seed.url_for(host.runner_ip)
    r = host.run(
        f"curl -sS -o /dev/null -w '%{{http_code}}' -X POST -H 'Content-Type: application/json' "
        f"--data-binary @- {base}/v1/participants",
        input=json.dumps(body),
        timeout=20,
    )
    assert r.stdout == "200"
    r = host.run(f"curl -sS -f {base}/v1/participants/{cold_address(key)}", timeout=20)  # the account
    assert json.loads(r.stdout)["pubkey"] == key
    r = host.run(f"curl -sS -f {base}/v2/participants/{cold_address(key)}", timeout=20)  # the participant
    assert json.loads(r.stdout)["participant"]["inference_url"] == f"http://{host.ip}:8000"
    r = host.run(f"curl -sS -f {base}/chain-rpc/status", timeout=20)
    assert json.loads(r.stdout)["result"]["node_info"]["network"] == "gonka-mainnet"
    seed.wait_idle()
    assert {rec.client for rec in seed.log} == {host.ip}  # came over the veth, not loopback


def test_host_installs_hf_with_pipx_and_downloads_model(sandbox_host, hub, pypi_index):
    host = sandbox_host
    ip = host.runner_ip
    host.write_file("/root/.config/pip/pip.conf", pip_conf_text(pypi_index.index_url_for(ip)))
    r = host.run("pipx install huggingface_hub </dev/null", timeout=300, check=False)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    pypi_index.wait_idle()
    assert any(
        rec.client == host.ip and rec.path.startswith("/files/huggingface_hub-") for rec in pypi_index.log
    )
    env = {
        "HF_ENDPOINT": hub.url_for(ip),
        "HF_HOME": "/mnt/hf",
        "HF_HUB_DISABLE_UPDATE_CHECK": "1",
        "HF_HUB_DISABLE_TELEMETRY": "1",
    }
    exports = " ".join(f"{k}={shlex.quote(v)}" for k, v in env.items())
    r = host.run(
        f"{exports} /root/.local/bin/hf download {SANDBOX_MODEL_ID} --revision main </dev/null",
        timeout=300,
        check=False,
    )
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    repo = hub.repo(SANDBOX_MODEL_ID)
    snap = f"/mnt/hf/hub/models--sandbox--tiny-model/snapshots/{repo.commit}"
    assert host.read_file("/mnt/hf/hub/models--sandbox--tiny-model/refs/main").decode() == repo.commit
    for entry in repo.files.values():
        got = host.read_file(f"{snap}/{entry.path}")
        assert hashlib.sha256(got).hexdigest() == hashlib.sha256(entry.blob.content()).hexdigest(), entry.path
    hub.wait_idle()
    # LFS files were fetched through the CDN listener at the address the host used.
    cdn = [rec for rec in hub.log if rec.listener == "cdn"]
    assert cdn and all(rec.client == host.ip for rec in cdn)
