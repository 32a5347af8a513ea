"""Preflight verdicts from server answers: a healthy server passes, each broken prerequisite fails
with a fix line (the answers are shaped like the real commands' output)."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pytest

from gonka_tasks.core import preflight, recipes
from gonka_tasks.core.preflight import Needs, evaluate

GIB = 1024 ** 3


@dataclass
class R:
    exit_code: int
    stdout: str


def manifest(size: int, arch: str = "amd64") -> str:
    return json.dumps([{"Ref": "x", "Descriptor": {"platform": {"architecture": arch, "os": "linux"}},
                        "SchemaV2Manifest": {"layers": [{"size": size // 2}, {"size": size - size // 2}]}}])


def healthy() -> dict[str, R]:
    return {
        "os": R(0, "ubuntu 22.04\nx86_64\n"),
        "docker": R(0, "27.3.1\n"),
        "compose": R(0, "2.29.7\n"),
        "runtimes": R(0, '{"io.containerd.runc.v2":{"path":"runc"},"nvidia":{"path":"nvidia-container-runtime"},'
                         '"runc":{"path":"runc"}}\n'),
        "docker_root": R(0, f"/dev/vda1 {500 * GIB} {100 * GIB} {400 * GIB} 20% /\n"),
        "gpus": R(0, "NVIDIA H100 80GB HBM3, 81559\n" * 4),
        "cuda": R(0, "CUDA Version: 12.8\n"),
        "mem": R(0, f"MemTotal:       {600 * 1024 * 1024} kB\n"),
        "ports": R(0, "LISTEN 0 4096 0.0.0.0:22 0.0.0.0:*\n"),
        "ours": R(0, ""),
        "git": R(0, "0\n"),
        "hub": R(0, json.dumps({"id": "org/m", "sha": "a" * 40, "siblings": [
            {"rfilename": "config.json", "size": 1000},
            {"rfilename": "model-00001-of-00002.safetensors", "size": 150 * GIB},
            {"rfilename": "model-00002-of-00002.safetensors", "size": 150 * GIB}]}) + "\n200"),
        "seed": R(0, '{"jsonrpc":"2.0"}\n200'),
        "cached": R(1, ""),
        "chain": R(2, ""),
        "data": R(0, f"/dev/vdc {2000 * GIB} {1 * GIB} {1999 * GIB} 1% /mnt/shared\n/dev/vdc\n"),
        "disk": R(0, f"{2000 * GIB}\n"),
        "registry": R(0, f"== ghcr.io/product-science/api:0.2.13\n{manifest(2 * GIB)}\n"
                         f"== ghcr.io/gonka-ai/mlnode:3.0.13\n{manifest(20 * GIB)}\n"),
    }


NEEDS = Needs(ports={8000: ("0.0.0.0", "proxy (API_PORT)"), 5000: ("0.0.0.0", "node p2p (P2P_PORT)"),
                     9100: ("127.0.0.1", "api")}, model="org/m",
              gov=recipes.GovModel.from_entry({"id": "org/m", "v_ram": "200"}), data_disk="/dev/vdc")


def verdicts(res, needs=NEEDS) -> dict[str, preflight.Check]:
    return {c.name: c for c in evaluate(res, needs)}


def test_a_healthy_server_passes_every_check():
    checks = evaluate(healthy(), NEEDS)
    assert [c for c in checks if c.result != "PASS"] == []
    names = {c.name for c in checks}
    assert {"Docker Engine", "Compose v2 plugin", "GPUs", "NVIDIA container runtime", "GPU memory", "RAM",
            "disk (images)", "disk (data)", "ports", "reach git remote", "reach model hub", "reach seed",
            "reach image registry"} <= names


BROKEN = [
    ("docker", R(127, "bash: line 1: docker: command not found"), "Docker Engine", "install Docker Engine"),
    ("docker", R(1, "Cannot connect to the Docker daemon at unix:///var/run/docker.sock. Is the docker daemon running?"),
     "Docker Engine", "systemctl enable --now docker"),
    ("compose", R(125, "docker: 'compose' is not a docker command."), "Compose v2 plugin", "docker-compose-plugin"),
    ("compose", R(0, "2.17.2"), "Compose v2 plugin", "--only-upgrade"),
    ("runtimes", R(0, '{"runc":{"path":"runc"}}'), "NVIDIA container runtime", "nvidia-ctk runtime configure"),
    ("gpus", R(127, "bash: nvidia-smi: command not found"), "NVIDIA driver", "install the NVIDIA driver"),
    ("gpus", R(9, "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver."), "NVIDIA driver",
     "install the NVIDIA driver"),
    ("gpus", R(0, "NVIDIA A10, 23028\n"), "GPU memory", "more or larger GPUs"),
    ("docker_root", R(0, f"/dev/vda1 {100 * GIB} {95 * GIB} {5 * GIB} 95% /\n"), "disk (images)", "data-root"),
    ("data", R(0, f"/dev/vdc {200 * GIB} {1 * GIB} {199 * GIB} 1% /mnt/shared\n/dev/vdc\n"), "disk (data)",
     "bigger data disk"),
    ("ports", R(0, "LISTEN 0 4096 0.0.0.0:8000 0.0.0.0:*\n"), "ports", "ss -ltnp"),
    ("git", R(0, "128\n"), "reach git remote", "GONKA_REPO"),
    ("hub", R(0, "\n000"), "reach model hub", "HF_ENDPOINT"),
    ("hub", R(0, '{"error":"Repository not found"}\n404'), "reach model hub", "MODEL_REVISION"),
    ("seed", R(0, "\n000"), "reach seed", "SEED_API_URL"),
    ("registry", R(0, "== ghcr.io/product-science/api:0.2.13\nGet \"https://ghcr.io/v2/\": dial tcp: lookup ghcr.io: "
                      "no such host\n"), "reach image registry", "registry"),
    ("os", R(0, "ubuntu 22.04\naarch64\n"), "architecture", "x86_64"),
]


@pytest.mark.parametrize(("probe", "answer", "check", "fix"), BROKEN, ids=[f"{b[0]}-{i}" for i, b in enumerate(BROKEN)])
def test_each_broken_prerequisite_fails_with_its_fix(probe, answer, check, fix):
    res = healthy()
    res[probe] = answer
    got = verdicts(res)
    assert got[check].result == "FAIL", got[check]
    assert fix in got[check].fix
    # only the broken thing fails (a missing daemon also hides the runtime check, not fails it twice)
    assert [c.name for c in got.values() if c.result == "FAIL"] == [check]


def test_ports_held_by_our_own_containers_are_fine():
    res = healthy()
    res["ports"] = R(0, "LISTEN 0 4096 0.0.0.0:8000 0.0.0.0:*\nLISTEN 0 4096 127.0.0.1:9100 0.0.0.0:*\n")
    res["ours"] = R(0, "proxy 0.0.0.0:8000->80/tcp, :::8000->80/tcp\napi 127.0.0.1:9100->9100/tcp\n")
    assert verdicts(res)["ports"].result == "PASS"


def test_a_listener_on_another_specific_address_is_no_clash():
    res = healthy()
    res["ports"] = R(0, "LISTEN 0 4096 10.1.2.3:9100 0.0.0.0:*\n")  # e.g. node-exporter on a private address
    assert verdicts(res)["ports"].result == "PASS"
    res["ports"] = R(0, "LISTEN 0 4096 *:9100 *:*\n")
    assert verdicts(res)["ports"].result == "FAIL"


def test_an_unformatted_data_disk_is_sized_by_the_device():
    res = healthy()
    res["data"] = R(0, f"/dev/vda1 {500 * GIB} {100 * GIB} {400 * GIB} 20% /\n")  # MOUNT_POINT not mounted: df of /
    res["disk"] = R(0, f"{100 * GIB}\n")
    c = verdicts(res)["disk (data)"]
    assert c.result == "FAIL" and "not formatted yet" in c.detail
    res["disk"] = R(0, f"{100 * GIB}\n{99 * GIB} ext4\n")  # partitioned: phase 1's decision, not a size verdict
    c = verdicts(res)["disk (data)"]
    assert c.result == "WARN" and "not blank" in c.detail


def test_sizes_come_from_the_registry_and_the_hub():
    got = verdicts(healthy())
    assert "22.0 GiB of images" in got["disk (images)"].detail  # 2 + 20 GiB of layers
    assert "486.3 GiB (model + chain)" in got["disk (data)"].detail  # 300 GiB of weights + 200 GB for the chain


def test_what_is_already_there_is_not_asked_for_again():
    res = healthy()
    res["registry"] = R(0, "== ghcr.io/product-science/api:0.2.13 present\n"
                           f"== ghcr.io/gonka-ai/mlnode:3.0.13\n{manifest(20 * GIB)}\n")
    res["cached"] = R(0, f"{250 * GIB}\t/mnt/shared/hub/models--org--m\n")
    res["chain"] = R(0, "/mnt/shared/gonka/deploy/join/.inference/data\n")
    res["data"] = R(0, f"/dev/vdc {400 * GIB} {340 * GIB} {60 * GIB} 85% /mnt/shared\n/dev/vdc\n")
    got = verdicts(res)
    assert "20.0 GiB of images" in got["disk (images)"].detail
    assert got["disk (data)"].result == "PASS" and "50.0 GiB (model + chain)" in got["disk (data)"].detail


def test_unknown_sizes_warn_instead_of_guessing():
    res = healthy()
    res["hub"] = R(0, "\n401")
    res["registry"] = R(1, "")
    got = verdicts(res, Needs(ports={}, gov=None, gated=True))
    assert got["disk (images)"].result == "WARN" and got["disk (data)"].result == "WARN"
    assert got["reach model hub"].result == "PASS"  # gated: the token is checked by the download
    assert got["reach image registry"].result == "WARN"
    assert "GPU memory" not in got


def test_small_ram_and_cuda_out_of_range_warn():
    res = healthy()
    res["mem"] = R(0, "MemTotal:       65000000 kB\n")  # 62 GiB, with 320 GiB of GPUs
    res["cuda"] = R(0, "CUDA Version: 12.2\n")
    got = verdicts(res)
    assert got["RAM"].result == "WARN" and "1.5x" in got["RAM"].detail
    assert got["CUDA"].result == "WARN"


def test_manifest_sizes_pick_linux_amd64():
    text = ("== img:1\n" + json.dumps([
        {"Descriptor": {"platform": {"architecture": "arm64", "os": "linux"}}, "SchemaV2Manifest": {"layers": [{"size": 1}]}},
        {"Descriptor": {"platform": {"architecture": "amd64", "os": "linux"}},
         "SchemaV2Manifest": {"layers": [{"size": 5}, {"size": 7}]}}]) + "\n== img:2\n" +
        json.dumps({"Descriptor": {}, "SchemaV2Manifest": {"layers": [{"size": 3}]}}) + "\n")
    assert preflight.manifest_bytes(text) == {"img:1": 12, "img:2": 3}
