"""A login user that is not root: passwordless sudo (the real sudo) runs the whole deploy; a sudo
that asks for a password is refused before anything changes."""

from __future__ import annotations

import json
import shutil

import pytest

from tests.e2e.test_prepare_server import docker_changes, fab

pytestmark = [pytest.mark.sandbox,
              pytest.mark.skipif(shutil.which("sudo") is None, reason="needs sudo (scripts/setup installs it)")]

USER = "deployer"


def add_user(host, *, nopasswd: bool) -> None:
    """A user with the host's client key, allowed sudo (without a password or with one)."""
    rule = f"{USER} ALL=(ALL) NOPASSWD:ALL" if nopasswd else f"{USER} ALL=(ALL) ALL"
    host.run(f"useradd -m -s /bin/bash {USER} && install -d -m 700 -o {USER} -g {USER} /home/{USER}/.ssh && "
             f"install -m 600 -o {USER} -g {USER} /root/.ssh/authorized_keys /home/{USER}/.ssh/authorized_keys && "
             f"echo '{rule}' > /etc/sudoers.d/{USER} && chmod 440 /etc/sudoers.d/{USER} && "
             f"echo '{USER}:Unused-Passw0rd' | chpasswd")


@pytest.mark.slow
def test_full_deploy_rerun_verify_and_backup_as_a_sudo_user(lab, sandbox_host):
    host = sandbox_host
    add_user(host, nopasswd=True)
    node = str(lab.write_node(host, "sbx-sudo", SSH_USER=USER))

    r, out = fab(lab, "deploy", "--node", node, "--yes")
    assert f"{USER} is not root: commands run through sudo -n" in out
    # root's work was done as root: the key material and the mount belong to root
    assert host.run("stat -c %U /mnt/ssd/gonka/deploy/join/.inference/keyring-file").stdout.strip() == "root"
    assert host.run("findmnt -n -o TARGET /mnt/ssd").stdout.strip() == "/mnt/ssd"

    r, out = fab(lab, "deploy", "--node", node, "--yes")
    run = json.loads((lab.nodes / "sbx-sudo" / "last_run.json").read_text())
    assert {s["result"] for s in run["steps"]} == {"skip"}
    fab(lab, "verify", "--node", node)
    fab(lab, "backup-keys", "--node", node)
    backups = list((lab.nodes / "sbx-sudo" / "backup").rglob("priv_validator_key*"))
    assert backups, "backup-keys saved no tmkms key"


def test_a_sudo_that_asks_for_a_password_is_refused_before_anything_changes(lab, sandbox_host):
    host = sandbox_host
    add_user(host, nopasswd=False)
    node = str(lab.write_node(host, "sbx-sudo-pw", SSH_USER=USER))
    r, out = fab(lab, "deploy", "--node", node, "--yes", ok=False)
    assert r.returncode == 1
    assert f"{USER}@" in out and "sudo -n` asks for a password" in out and "passwordless sudo" in out
    assert host.run(f"blkid -p {host.disk}", check=False).stdout == ""
    assert docker_changes(host) == []
