"""Model recipes that load and a model cache the ML node finds (issue 13, items 3 and 4), on sandbox
hosts with 4 simulated 80 GB GPUs: the deployer derives --tensor-parallel-size from the governance
entry's v_ram and the probed GPUs, refuses a model that cannot fit before any download, and leaves
refs/main in the cache so that the simulated ML node (written from upstream mlnode's
`is_model_exist`) finds the weights offline; the opposite is shown by verify.
"""

from __future__ import annotations

import json
import time

import pytest

from gonka_sim.network.hub import make_model_repo
from gonka_sim.network.seed import model_entry

pytestmark = pytest.mark.sandbox

BIG = "sandbox/big-model"
KNOBS = "/etc/gonka-sim/knobs.json"
HUB = f"/mnt/ssd/hf/hub/models--{BIG.replace('/', '--')}"
H100 = "NVIDIA H100 80GB HBM3"


def big_world(world, v_ram: int):
    """A governance model needing `v_ram` GB whose index states 160 GB of weights (a 2 MiB download)."""
    repo = world.hub.add_repo(make_model_repo(BIG, total_size=2 << 20, shards=2, nominal_total_size=160 * 10 ** 9))
    with world.seed.lock:
        world.seed.knobs.models.append(model_entry(BIG, hf_commit=repo.commit, v_ram=str(v_ram)))
    return repo


def four_gpus(host, **more) -> None:
    host.write_file(KNOBS, json.dumps({"gpu_count": 4, "gpu_memory_mib": 81559, **more}))


def checks(lab, key: str) -> dict[str, dict]:
    data = json.loads((lab.nodes / key / "verification.json").read_text())
    return {c["name"]: c for c in data["checks"]}


@pytest.mark.slow  # a whole deploy and a model load: with the slow set (CI runs it)
def test_a_model_bigger_than_one_gpu_loads_with_tensor_parallel_and_is_found_offline(lab, sandbox_host, world):
    host = sandbox_host
    repo = big_world(world, v_ram=200)
    four_gpus(host)
    node = lab.write_node(host, "big", MODEL=BIG)
    r = lab.fab("deploy", "--node", str(node), "--yes")
    out = r.stdout + r.stderr
    assert r.returncode == 0, out[-4000:]
    nc = json.loads((lab.nodes / "big" / "node-config.json").read_text())[0]
    assert nc["models"][BIG]["args"] == ["--tensor-parallel-size", "4"]
    assert nc["hardware"] == [{"type": f"{H100} | 79GB", "count": 4}]
    assert "--tensor-parallel-size 4 (derived): 1 vLLM instance(s) on 4 GPU(s)" in out
    c = checks(lab, "big")
    assert c["ML node inference"]["result"] == "PASS", c["ML node inference"]
    assert c["ML node model cache"]["result"] == "PASS", c["ML node model cache"]
    # the ML node found the weights offline: refs/main written, one download only
    assert host.read_text(f"{HUB}/refs/main").strip() == repo.commit
    world.hub.wait_idle()
    assert world.hub.bytes_served == repo.total_size


def test_a_model_that_cannot_fit_is_refused_before_the_download(lab, sandbox_host, world):
    big_world(world, v_ram=400)
    four_gpus(sandbox_host)
    node = lab.write_node(sandbox_host, "toobig", MODEL=BIG)
    r = lab.fab("deploy", "--node", str(node), "--yes")
    out = r.stdout + r.stderr
    assert r.returncode == 1, out[-3000:]
    for words in (f"{BIG} does not fit the server's GPUs", "v_ram 400 GB", f"4 x {H100}", "81559 MiB"):
        assert words in out, out[-3000:]
    # the preflight refuses it before phase 1; download-model on its own refuses it before the download too
    assert "preflight FAIL GPU memory" in out and "nothing was changed" in out
    world.hub.wait_idle()
    assert world.hub.bytes_served == 0
    assert sandbox_host.run(f"test -e {HUB}", check=False).returncode != 0
    assert sandbox_host.run(f"blkid -p {sandbox_host.disk}", check=False).stdout == ""  # not even formatted


@pytest.mark.slow
def test_args_that_cannot_load_make_verify_fail_with_the_reason(lab, sandbox_host, world):
    """MODEL_ARGS forcing one GPU per instance: the deployer warns, the ML node's vLLM runs out of memory,
    verify FAILs naming it."""
    big_world(world, v_ram=200)
    four_gpus(sandbox_host)
    node = lab.write_node(sandbox_host, "tp1", MODEL=BIG, MODEL_ARGS='["--tensor-parallel-size=1"]')
    r = lab.fab("deploy", "--node", str(node), "--yes")
    out = r.stdout + r.stderr
    assert r.returncode == 1, out[-3000:]
    assert "may run out of memory" in out, out[-6000:]
    nc = json.loads((lab.nodes / "tp1" / "node-config.json").read_text())[0]
    assert nc["models"][BIG]["args"] == ["--tensor-parallel-size", "1"]  # normalised to two tokens
    c = checks(lab, "tp1")["ML node inference"]
    assert c["result"] == "FAIL" and "CUDA out of memory" in c["detail"], c


@pytest.mark.slow
def test_a_cache_the_ml_node_does_not_find_is_shown_and_fetched_again(lab, sandbox_host, world):
    """Without refs/main (and one shard) the ML node's offline lookup of main fails: verify says so, and
    the api's background check has the ML node download it again (the hub serves that shard twice)."""
    host = sandbox_host
    node = lab.write_node(host, "cache")
    assert lab.fab("deploy", "--node", str(node), "--yes").returncode == 0
    repo = world.hub.repo()
    world.hub.wait_idle()
    assert world.hub.bytes_served == repo.total_size
    hub_dir = f"/mnt/ssd/hf/hub/models--{repo.repo_id.replace('/', '--')}"
    shard = next(p for p in repo.files if p.endswith(".safetensors"))
    link = f"{hub_dir}/snapshots/{repo.commit}/{shard}"
    host.run(f"rm -f \"$(readlink -f {link})\" {link} {hub_dir}/refs/main")
    r = lab.fab("verify", "--node", str(node))
    assert r.returncode == 0, (r.stdout + r.stderr)[-3000:]
    c = checks(lab, "cache")["ML node model cache"]
    assert c["result"] == "WARN" and "does not find" in c["detail"] and "(PARTIAL)" in c["detail"], c
    host.write_file(KNOBS, json.dumps({"model_check_s": 1}))  # the api's check is due at once
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and host.run(f"test -e {hub_dir}/refs/main", check=False).returncode:
        time.sleep(0.5)
    world.hub.wait_idle()
    assert host.read_text(f"{hub_dir}/refs/main").strip() == repo.commit
    assert world.hub.bytes_for(shard) == 2 * repo.files[shard].size
    assert world.hub.bytes_served == repo.total_size + repo.files[shard].size
