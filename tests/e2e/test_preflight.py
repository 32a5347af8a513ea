"""The preflight on sandbox hosts made to lack one prerequisite each: `validate` shows the FAIL
line with its fix, and `deploy` stops before it changes anything (no mkfs, no clone, no
container)."""

from __future__ import annotations

import json

import pytest

from tests.e2e.test_prepare_server import docker_changes, fab

pytestmark = pytest.mark.sandbox

KEY = "sbx-pre"
KNOBS = "/etc/gonka-sim/knobs.json"


def set_knobs(host, **knobs) -> None:
    host.write_file(KNOBS, json.dumps(knobs))


def no_docker(host):
    host.run("mv \"$(command -v docker)\" /root/docker.moved-away")


def full_docker_root(host):
    # Docker's data root on a tiny filesystem of its own, filled to the last block
    host.run("mkdir -p /var/lib/docker && mount -t tmpfs -o size=2m tmpfs /var/lib/docker && "
             "dd if=/dev/zero of=/var/lib/docker/fill bs=64k 2>/dev/null; true")


def port_in_use(host):
    host.run("setsid python3 -m http.server 8000 --bind 0.0.0.0 >/dev/null 2>&1 < /dev/null & "
             "for i in $(seq 50); do ss -Hltn | grep -q ':8000 ' && break; sleep 0.1; done")


def arm_server(host):
    # what `uname -m` says on an ARM server (the Gonka images are amd64 only)
    host.write_file("/usr/local/bin/uname", '#!/bin/sh\n[ "$1" = -m ] && echo aarch64 && exit 0\nexec /usr/bin/uname "$@"\n',
                    mode=0o755)


def nothing(host):
    pass


VARIANTS = {
    "no-docker": (no_docker, "Docker Engine", "install Docker Engine"),
    "daemon-down": (lambda h: set_knobs(h, docker_daemon_down=True), "Docker Engine", "systemctl enable --now docker"),
    "no-compose-plugin": (lambda h: set_knobs(h, no_compose_plugin=True), "Compose v2 plugin", "docker-compose-plugin"),
    "no-nvidia-runtime": (lambda h: set_knobs(h, no_nvidia_runtime=True), "NVIDIA container runtime", "nvidia-ctk"),
    "no-gpu": (lambda h: set_knobs(h, no_gpu=True), "NVIDIA driver", "NVIDIA driver"),
    "small-gpu": (lambda h: set_knobs(h, gpu_memory_mib=16384), "GPU memory", "more or larger GPUs"),
    "full-root-disk": (full_docker_root, "disk (images)", "data-root"),
    "port-in-use": (port_in_use, "ports", "8000 (proxy (API_PORT))"),
    "registry-unreachable": (lambda h: set_knobs(h, registry_unreachable=True), "reach image registry", "ghcr.io"),
    "arm-server": (arm_server, "architecture", "x86_64"),
    "small-data-disk": (nothing, "disk (data)", "bigger data disk"),
    "git-remote-unreachable": (nothing, "reach git remote", "GONKA_REPO"),
    "hub-unreachable": (nothing, "reach model hub", "HF_ENDPOINT"),
}
# node config values that make the variant (the rest comes from the host)
OVERRIDES = {
    "small-data-disk": lambda host: {"CHAIN_DATA_GB": "100"},
    "git-remote-unreachable": lambda host: {"GONKA_REPO": "https://github.com/gonka-ai/no-such-repo.git"},
    "hub-unreachable": lambda host: {"HF_ENDPOINT": f"http://{host.runner_ip}:9"},
}


# three run in every suite; the rest with the long runs (CI=true or RUN_SLOW=1)
QUICK = ("no-docker", "no-nvidia-runtime", "registry-unreachable")


@pytest.mark.parametrize("variant", [v if v in QUICK else pytest.param(v, marks=pytest.mark.slow) for v in VARIANTS])
def test_a_missing_prerequisite_fails_early_and_changes_nothing(lab, sandbox_host, variant):
    host = sandbox_host
    breaks, check, fix = VARIANTS[variant]
    node = str(lab.write_node(host, KEY, **OVERRIDES.get(variant, lambda h: {})(host)))
    breaks(host)
    blank_before = host.run(f"blkid -p {host.disk}", check=False).stdout

    r, out = fab(lab, "validate", "--node", node, "--yes", ok=False)
    assert r.returncode == 1, out[-3000:]
    line = next((ln for ln in out.splitlines() if f"preflight FAIL {check}:" in ln), None)
    assert line is not None, out[-3000:]
    assert fix in out, out[-3000:]

    r, out = fab(lab, "deploy", "--node", node, "--yes", ok=False)
    assert r.returncode == 1 and "nothing was changed" in out, out[-3000:]
    # the server is as it was: disk still blank, nothing cloned, no container made
    assert host.run(f"blkid -p {host.disk}", check=False).stdout == blank_before == ""
    assert host.run("findmnt -n /mnt/shared /mnt/ssd", check=False).stdout == ""
    assert docker_changes(host) == []
    run = json.loads((lab.nodes / KEY / "last_run.json").read_text())
    assert [c["what"] for c in run["commands"] if c["kind"] == "run"] == []


def test_a_healthy_sandbox_host_passes_the_preflight(lab, sandbox_host):
    node = str(lab.write_node(sandbox_host, KEY))
    r, out = fab(lab, "validate", "--node", node, "--yes")
    assert "preflight FAIL" not in out
    for check in ("Docker Engine", "Compose v2 plugin", "GPUs", "NVIDIA container runtime", "disk (images)",
                  "disk (data)", "ports", "reach git remote", "reach model hub", "reach seed", "reach image registry"):
        assert f"preflight PASS {check}:" in out, (check, out[-3000:])
