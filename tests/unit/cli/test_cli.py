"""The `fab` command line as a user types it, from the repo root."""

from __future__ import annotations

import subprocess

import pytest

from tests.helpers import ROOT, conf_text, fab, fab_bin, write_node
from tests.unit.config.test_config import BAD_INPUTS

MISSION_TASKS = ["deploy", "validate", "prepare-server", "download-model", "configure", "start-base",
                 "configure-chain", "launch", "verify", "status"]


def test_fab_list_from_repo_root_shows_every_task_with_help():
    r = subprocess.run([fab_bin(), "--list"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    lines = {ln.split()[0]: ln for ln in r.stdout.splitlines() if ln.startswith("  ") and ln.split()}
    for name in MISSION_TASKS:
        assert name in lines, f"{name} missing from fab --list"
        assert len(lines[name].split()) > 2, f"{name} has no help text"


def test_fab_help_of_a_task_documents_its_flags():
    r = fab("--help", "deploy")
    assert r.returncode == 0
    for flag in ("--node", "--yes", "--plan", "--from", "--only", "--wipe-disk"):
        assert flag in r.stdout


@pytest.mark.parametrize("name,text,key", BAD_INPUTS, ids=[b[0] for b in BAD_INPUTS])
def test_bad_config_exits_1_naming_the_key_without_traceback(tmp_path, name, text, key):
    write_node(tmp_path, text, "bad")
    r = fab("validate", "--node", "nodes/bad.conf", "--yes", cwd=tmp_path)
    assert r.returncode == 1
    out = r.stdout + r.stderr
    assert "Traceback" not in out
    assert f"- {key}" in out


def test_bare_node_name_and_missing_node(tmp_path):
    r = fab("validate", "--node", "nosuch", "--yes", cwd=tmp_path)
    assert r.returncode == 1 and "not found" in r.stdout and "Traceback" not in r.stderr
    r = fab("validate", cwd=tmp_path)
    assert r.returncode == 1 and "--node" in r.stderr


def test_no_terminal_without_yes_is_an_error_not_a_hang(tmp_path):
    write_node(tmp_path, conf_text(), "good")
    r = fab("validate", "--node", "good", cwd=tmp_path, timeout=30)
    assert r.returncode == 1
    assert "no terminal" in r.stdout and "--yes" in r.stdout


def test_dash_h_contradicting_the_config_is_an_error(tmp_path):
    write_node(tmp_path, conf_text(), "good")
    r = fab("-H", "192.0.2.99", "validate", "--node", "good", "--yes", cwd=tmp_path)
    assert r.returncode == 1
    assert "contradicts" in r.stdout and "SERVER_IP" in r.stdout


def test_secrets_not_in_the_parameter_table(tmp_path):
    from tests.helpers import PASSWORD
    write_node(tmp_path, conf_text(), "good")
    r = fab("validate", "--node", "good", cwd=tmp_path)
    assert "KEYRING_PASSWORD" in r.stdout and PASSWORD not in r.stdout + r.stderr
    logs = list((tmp_path / "logs").glob("node-a_*.log"))
    assert logs and PASSWORD not in logs[0].read_text()


def test_artefacts_and_log_go_to_the_projects_nodes_and_logs_wherever_the_config_is(tmp_path):
    """A config kept outside the project (a private folder, say): the run's log lands in the project's
    logs/ and its artefacts in the project's nodes/<KEY_NAME>/, nothing beside the config."""
    project, elsewhere = tmp_path / "project", tmp_path / "private" / "configs"
    elsewhere.mkdir(parents=True)
    conf = elsewhere / "n1.conf"
    # a server that refuses at once: the run fails at connect, after the log and last_run.json exist
    conf.write_text(conf_text(SERVER_IP="127.0.0.1", SSH_PORT="1", KEY_NAME="far-away"))
    conf.chmod(0o600)
    r = fab("validate", "--node", str(conf), "--yes", cwd=project)
    assert r.returncode == 1, r.stdout + r.stderr
    assert list((project / "logs").glob("far-away_*.log")), r.stdout
    assert (project / "nodes" / "far-away" / "last_run.json").exists()
    assert sorted(p.name for p in elsewhere.iterdir()) == ["n1.conf"]
    assert not (tmp_path / "private" / "logs").exists()


@pytest.mark.parametrize("task", ["configure", "launch", "verify", "status", "backup-keys"])
def test_a_network_node_task_refuses_an_ml_node_config_before_connecting(tmp_path, task):
    write_node(tmp_path, conf_text(), "node-a")
    write_node(tmp_path, conf_text(NODE_KIND="mlnode", NETWORK_NODE="node-a", PRIVATE_IP="10.0.0.21",
                                   KEYRING_PASSWORD=None, ACCOUNT_PUBKEY=None), "gpu1")
    r = fab(task, "--node", "gpu1", *(("--yes",) if task in ("configure", "launch") else ()), cwd=tmp_path)
    out = r.stdout + r.stderr
    assert r.returncode == 1 and "Traceback" not in out, out
    assert f"{task} works on a network node" in out and "add-ml-node" in out, out
    assert "connect" not in out.lower(), out  # refused from the config alone: no SSH attempt


def test_a_fleet_glob_leaves_the_ml_node_servers_out_of_network_node_tasks(tmp_path):
    for name in ("gpu1", "gpu2"):
        write_node(tmp_path, conf_text(NODE_KIND="mlnode", NETWORK_NODE="node-a", PRIVATE_IP="10.0.0.21",
                                       KEYRING_PASSWORD=None, ACCOUNT_PUBKEY=None), name)
    r = fab("status", "--nodes", "nodes/*.conf", cwd=tmp_path)
    out = r.stdout + r.stderr
    assert r.returncode == 1 and "Traceback" not in out, out
    assert "leaving out the ML-node servers gpu1, gpu2" in out and "none was given" in out, out
