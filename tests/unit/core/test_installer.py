"""The install script of --install-prereqs: the vendors' documented steps, only what is missing,
valid shell, stopping at the first failure."""

from __future__ import annotations

import subprocess

import pytest

from gonka_tasks.core import installer


@pytest.mark.parametrize("what", [{"docker"}, {"compose"}, {"toolkit"}, {"docker", "compose", "toolkit"}])
def test_the_script_is_valid_shell_for_bash_and_dash(what):
    text = installer.install_script(what)
    for sh in ("bash", "dash"):
        r = subprocess.run([sh, "-n"], input=text, capture_output=True, text=True)
        assert r.returncode == 0, (sh, r.stderr)


def test_only_what_is_missing_is_installed():
    docker = installer.install_script({"docker"})
    assert "docker-ce docker-ce-cli containerd.io docker-buildx-plugin docker-compose-plugin" in docker
    assert "signed-by=/etc/apt/keyrings/docker.asc" in docker and "nvidia" not in docker
    compose = installer.install_script({"compose"})
    assert "gd_apt install -y -qq docker-compose-plugin " in compose and "docker-ce " not in compose
    toolkit = installer.install_script({"toolkit"})
    assert "download.docker.com" not in toolkit
    assert "gpg --batch --yes --dearmor -o /usr/share/keyrings/nvidia-container-toolkit-keyring.gpg" in toolkit
    # the runtime counts only once dockerd has read daemon.json again
    assert toolkit.index("nvidia-ctk runtime configure --runtime=docker") < toolkit.rindex("systemctl restart docker")


def test_every_step_stops_the_script_when_it_fails():
    text = installer.install_script({"docker", "toolkit"})
    steps = [ln for ln in text.splitlines()[1:] if ln and not ln.startswith((".", "case", "codename"))]
    assert all(ln.endswith("|| exit 1") for ln in steps), [ln for ln in steps if not ln.endswith("|| exit 1")]
