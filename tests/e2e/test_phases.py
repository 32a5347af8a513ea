"""Single phases as tasks: validate over real SSH, preconditions checked on the server, --from/--only."""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.sandbox


def test_validate_checks_ssh_and_root_and_shows_masked_parameters(lab, sandbox_host):
    node = lab.write_node(sandbox_host, "val-a")
    password = lab.values("val-a")["KEYRING_PASSWORD"]
    r = lab.fab("validate", "--node", str(node), "--yes")
    assert r.returncode == 0, r.stdout[-2000:]
    assert f"connected to root@{sandbox_host.ip}:22" in r.stdout
    assert "[CHECK] root access" in r.stdout
    assert "KEYRING_PASSWORD" in r.stdout and "***" in r.stdout and password not in r.stdout


def test_login_user_without_root_rights_is_refused(lab, sandbox_host):
    # '*' = no password but not locked: sshd without PAM refuses locked accounts even with a key
    sandbox_host.run("useradd -m -p '*' -s /bin/bash deployer && mkdir -p /home/deployer/.ssh && "
                     "cp /root/.ssh/authorized_keys /home/deployer/.ssh/ && chown -R deployer: /home/deployer/.ssh")
    node = lab.write_node(sandbox_host, "val-b", SSH_USER="deployer")
    r = lab.fab("validate", "--node", str(node), "--yes")
    assert r.returncode == 1
    assert "cannot run root commands" in r.stdout and "Traceback" not in r.stdout + r.stderr


def test_each_phase_checks_its_own_preconditions(lab, sandbox_host):
    node = lab.write_node(sandbox_host, "pre-a")
    cases = [
        ("launch", "config.env not found", "fab configure"),
        ("configure-chain", "not found", "fab start-base"),
        ("start-base", "config.env not found", "fab configure"),
        ("configure", "docker-compose.yml not found", "fab download-model"),
        ("download-model", "/mnt/ssd is not mounted", "fab prepare-server"),
    ]
    for task, problem, fix in cases:
        r = lab.fab(task, "--node", str(node), "--yes")
        assert r.returncode == 1, (task, r.stdout[-1500:])
        assert problem in r.stdout and fix in r.stdout, (task, r.stdout[-1500:])
        assert "Traceback" not in r.stdout + r.stderr
    # nothing was changed by the refusals
    assert sandbox_host.run("blkid -p /dev/vdc", check=False).returncode == 2
    assert not [c for c in sandbox_host.docker_calls() if "up" in c["argv"]]


def test_only_and_from_select_phases(lab, sandbox_host):
    node = lab.write_node(sandbox_host, "sel-a")
    r = lab.fab("deploy", "--node", str(node), "--yes", "--only", "prepare-server")
    assert r.returncode == 0, r.stdout[-2000:]
    run = json.loads((lab.nodes / "sel-a" / "last_run.json").read_text())
    assert {s["phase"] for s in run["steps"]} == {"prepare-server"}
    r = lab.fab("deploy", "--node", str(node), "--yes", "--from", "7")
    assert r.returncode == 1  # verify alone on a host with nothing running: checks fail, and say so
    assert "FAIL" in r.stdout and "verification:" in r.stdout
    r = lab.fab("deploy", "--node", str(node), "--yes", "--only", "nonsense")
    assert r.returncode == 1 and "unknown phase 'nonsense'" in r.stdout


def test_plan_on_a_fresh_host_changes_nothing(lab, sandbox_host):
    node = lab.write_node(sandbox_host, "plan-a")
    fstab = sandbox_host.read_text("/etc/fstab")
    r = lab.fab("deploy", "--node", str(node), "--plan")
    assert r.returncode == 0, r.stdout[-3000:]
    assert "PLAN would run: ext4 filesystem on /dev/vdc" in r.stdout
    assert "PLAN would run: /etc/fstab entry for /mnt/ssd" in r.stdout
    run = json.loads((lab.nodes / "plan-a" / "last_run.json").read_text())
    assert [c for c in run["commands"] if c["kind"] == "run"] == []
    assert sandbox_host.read_text("/etc/fstab") == fstab
    assert sandbox_host.run("blkid -p /dev/vdc", check=False).returncode == 2
    assert not (lab.nodes / "plan-a" / "volume.txt").exists()
