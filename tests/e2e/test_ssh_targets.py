"""How an operator reaches a server: a ~/.ssh/config alias (HostName, User, Port, IdentityFile,
ProxyJump) with SSH_USER/SSH_PORT left empty, and `fab -H host` picking the node config."""

from __future__ import annotations

import subprocess

import pytest

from gonka_tasks.connectors.ssh import known_keys
from tests.e2e.test_prepare_server import fab

pytestmark = pytest.mark.sandbox


def ssh_config(tmp_path, host) -> str:
    """An SSH config reaching the server through a jump host (the server itself, at its address),
    then 127.0.0.1 inside: two hops, two host keys to pin."""
    path = tmp_path / "ssh_config"
    path.write_text(
        f"Host gpu-box\n    HostName 127.0.0.1\n    User root\n    Port 22\n    IdentityFile {host.key}\n"
        f"    ProxyJump bastion\n\n"
        f"Host bastion\n    HostName {host.ip}\n    User root\n    IdentityFile {host.key}\n")
    return str(path)


def test_an_ssh_config_alias_with_a_jump_host(lab, sandbox_host, tmp_path):
    host = sandbox_host
    cfg = ssh_config(tmp_path, host)
    node = str(lab.write_node(host, "sbx-alias", SSH_HOST="gpu-box", SSH_USER="", SSH_PORT="", SSH_KEY=""))
    r, out = fab(lab, "-S", cfg, "validate", "--node", node, "--yes")
    assert f"connected to root@127.0.0.1:22 via root@{host.ip}:22" in out, out[-3000:]
    assert "root@127.0.0.1:22 (gpu-box) via bastion" in out  # the parameter table names the route
    pinned = lab.nodes / "sbx-alias" / "known_hosts"
    assert known_keys(pinned, host.ip) and known_keys(pinned, "127.0.0.1"), pinned.read_text()

    # a changed key on the jump host is refused like the server's own
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "other")], check=True)
    other = (tmp_path / "other.pub").read_text().split()
    lines = [ln for ln in pinned.read_text().splitlines() if not ln.startswith(f"{host.ip} ")]
    pinned.write_text("\n".join([*lines, f"{host.ip} {other[0]} {other[1]}"]) + "\n")
    r, out = fab(lab, "-S", cfg, "validate", "--node", node, "--yes", ok=False)
    assert r.returncode == 1 and f"host key of {host.ip} changed" in out, out[-3000:]


@pytest.mark.slow
def test_fab_dash_h_picks_the_one_matching_node_config(lab, sandbox_host):
    host = sandbox_host
    lab.write_node(host, "sbx-h")
    r, out = fab(lab, "-H", host.ip, "validate", "--yes")
    assert "node config valid" in out and "sbx-h" in out
    r, out = fab(lab, "-H", host.ip, "deploy", "--yes")
    assert "Deployment of sbx-h" in out and "completed" in out

    lab.write_node(host, "sbx-h2")
    r, out = fab(lab, "-H", host.ip, "validate", "--yes", ok=False)
    assert r.returncode == 1 and "matches several node configs" in out
    assert "sbx-h.conf" in out and "sbx-h2.conf" in out


def test_fabric_settings_reach_the_connection(lab, sandbox_host):
    """With SSH_KEY empty, the key comes from Fabric: `-i`, the project's fabric.yaml, FABRIC_* env."""
    host = sandbox_host
    node = str(lab.write_node(host, "sbx-fab", SSH_KEY=""))
    r, out = fab(lab, "validate", "--node", node, "--yes", ok=False)
    assert r.returncode == 1 and "SSH authentication failed" in out  # no key anywhere: refused, not retried

    fab(lab, "-i", str(host.key), "validate", "--node", node, "--yes")
    (lab.workdir / "fabric.yaml").write_text(f"connect_kwargs:\n  key_filename: [{host.key}]\n")
    fab(lab, "validate", "--node", node, "--yes")
    (lab.workdir / "fabric.yaml").unlink()
    # FABRIC_* settings reach the config too: FABRIC_USER is the login user when SSH_USER is empty
    node = str(lab.write_node(host, "sbx-fab", SSH_USER=""))
    r = lab.fab("validate", "--node", node, "--yes", env={"FABRIC_USER": "opsuser"})
    assert r.returncode == 1 and "SSH authentication failed for opsuser@" in r.stdout + r.stderr
