"""Prerequisites installed with apt on a fresh server: pipx (waiting for the locks unattended-upgrades
holds), and with --install-prereqs Docker, its Compose plugin and the NVIDIA container toolkit from
the vendors' repositories."""

from __future__ import annotations

import json
import shlex

import pytest

from gonka_sim.network import vendorrepos
from tests.e2e.test_prepare_server import fab

pytestmark = pytest.mark.sandbox

KEY = "sbx-apt"
HOLD = ("import ctypes,fcntl,os,sys,time; ctypes.CDLL(None).prctl(15, b'unattended-upgr', 0, 0, 0); "
        "fd=os.open(sys.argv[1], os.O_RDWR|os.O_CREAT, 0o640); fcntl.lockf(fd, fcntl.LOCK_EX); "
        "open(sys.argv[1] + '.held', 'w').close(); time.sleep(float(sys.argv[2]))")


def hold_lock(host, path: str, seconds: float) -> None:
    """A process in the host holding one of apt's locks for a while (gone with the host)."""
    host.run(f"mkdir -p {shlex.quote(path.rsplit('/', 1)[0])}; rm -f {path}.held")
    # started on its own (not at the end of an `&&` list, whose background subshell takes it along)
    host.run(f"setsid python3 -c {shlex.quote(HOLD)} {path} {seconds} >/dev/null 2>&1 < /dev/null &\n"
             f"for i in $(seq 100); do [ -e {path}.held ] && break; sleep 0.05; done; [ -e {path}.held ]")
    assert host.run(f"ps -eo args | grep -c '^python3 -c .*{path}'").stdout.strip() != "0"


@pytest.mark.slow
def test_a_host_without_pipx_gets_it_after_the_apt_locks_are_released(lab, sandbox_host):
    host = sandbox_host
    host.run("apt-get purge -y -qq pipx")
    assert host.run("command -v pipx", check=False).returncode != 0
    node = str(lab.write_node(host, KEY))
    fab(lab, "prepare-server", "--node", node, "--yes")

    # held well into download-model's pipx install (it comes after the preflight and the clone)
    hold_lock(host, "/var/lib/apt/lists/lock", 12)
    hold_lock(host, "/var/lib/dpkg/lock-frontend", 16)
    fab(lab, "download-model", "--node", node, "--yes")

    assert host.run("command -v pipx").stdout.strip() == "/usr/bin/pipx"
    calls = [json.loads(ln)["argv"] for ln in host.read_text("/var/log/gonka-sim/apt-get.log").splitlines()]
    updates = [c for c in calls if "update" in c]
    installs = [c for c in calls if "install" in c]
    # update failed on the lists lock at least once and was retried; install waited for the frontend lock
    assert len(updates) >= 2, calls
    assert installs and "pipx" in installs[-1] and "DPkg::Lock::Timeout=60" in installs[-1]


@pytest.mark.slow
def test_install_prereqs_installs_docker_compose_and_the_nvidia_toolkit(lab, sandbox_host):
    """A server without Docker, its Compose plugin and the NVIDIA toolkit: the preflight refuses
    (pointing at --install-prereqs); with it, the vendors' repositories are added as their guides
    say, the packages installed, the nvidia runtime registered, and the phase goes on."""
    host = sandbox_host
    repos = vendorrepos.serve_for(host)
    try:
        host.run("apt-get purge -y -qq docker-ce docker-compose-plugin nvidia-container-toolkit && "
                 "echo '{}' > /etc/docker/daemon.json && systemctl restart docker")
        assert host.run("command -v docker", check=False).returncode != 0
        node = str(lab.write_node(host, KEY))
        r, out = fab(lab, "prepare-server", "--node", node, "--yes", ok=False)
        assert r.returncode == 1 and "preflight FAIL Docker Engine" in out and "--install-prereqs" in out
        assert host.run(f"blkid -p {host.disk}", check=False).stdout == ""  # untouched

        r, out = fab(lab, "prepare-server", "--node", node, "--yes", "--install-prereqs")
        # Docker first; the runtime check it then makes possible finds the toolkit missing: installed next
        assert "install compose, docker (apt)" in out and "install toolkit (apt)" in out, out[-3000:]
        assert "preflight PASS NVIDIA container runtime" in out  # checked again after the install
        assert host.run("docker compose version --short").stdout.strip()
        runtimes = json.loads(host.run("docker info --format '{{json .Runtimes}}'").stdout)
        assert "nvidia" in runtimes
        docker_list = host.read_text("/etc/apt/sources.list.d/docker.list")
        assert "signed-by=/etc/apt/keyrings/docker.asc" in docker_list and "https://download.docker.com/linux/" in docker_list
        assert "signed-by=/usr/share/keyrings/nvidia-container-toolkit-keyring.gpg" in host.read_text(
            "/etc/apt/sources.list.d/nvidia-container-toolkit.list")
        assert {(h, p) for h, p, status in repos.hits if status == 200} >= {
            ("nvidia.github.io", "/libnvidia-container/gpgkey"),
            ("nvidia.github.io", "/libnvidia-container/stable/deb/nvidia-container-toolkit.list")}
        assert any(h == "download.docker.com" and p.endswith("/gpg") for h, p, _ in repos.hits)
        assert host.run("findmnt -n -o TARGET /mnt/ssd").stdout.strip() == "/mnt/ssd"  # the phase went on
    finally:
        repos.close()
