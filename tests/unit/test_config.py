"""Node config: defaults, derived values, and every bad input reported at once with the key named."""

from __future__ import annotations

import base64

import pytest

from gonka_tasks.config import load, resolve_node_path
from gonka_tasks.errors import ConfigError
from tests.helpers import PASSWORD, conf_text, pubkey_b64, write_node


def test_valid_config_gets_defaults_and_derived_urls(tmp_path):
    cfg = load(write_node(tmp_path, conf_text()))
    assert cfg.keyring_password == PASSWORD
    assert cfg["PUBLIC_URL"] == "http://198.51.100.7:8000"
    assert cfg["P2P_EXTERNAL_ADDRESS"] == "tcp://198.51.100.7:5000"
    assert cfg.data_disk == "/dev/vdc" and cfg.mount_point == "/mnt/ssd"
    assert cfg["SEED_API_URL"] == "http://node2.gonka.ai:8000"
    assert cfg["PRUNING_KEEP_RECENT"] == "20000" and cfg["PRUNING_INTERVAL"] == "512"
    assert cfg.artefacts == tmp_path / "nodes" / "node-a"
    assert cfg.logs_dir == tmp_path / "logs"
    assert cfg.cold_address.startswith("gonka1")


def test_ipv6_server_gets_bracketed_urls(tmp_path):
    cfg = load(write_node(tmp_path, conf_text(SERVER_IP="2001:db8::5")))
    assert cfg["PUBLIC_URL"] == "http://[2001:db8::5]:8000"


def test_unknown_key_warns_with_closest_known_key(tmp_path):
    cfg = load(write_node(tmp_path, conf_text(SERVR_IP="1.2.3.4")))
    assert any("SERVR_IP" in w and "SERVER_IP" in w for w in cfg.warnings)


def test_password_is_literal_no_interpolation(tmp_path):
    cfg = load(write_node(tmp_path, conf_text(KEYRING_PASSWORD="abc${HOME}def$USER!x")))
    assert cfg.keyring_password == "abc${HOME}def$USER!x"


def test_bare_name_resolves_under_nodes():
    assert str(resolve_node_path("n1")) == "nodes/n1.conf"
    assert str(resolve_node_path("nodes/n1.conf")) == "nodes/n1.conf"


SSH_OK = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBvQ1bJ4W9bN2L3XwEomh0n3s3CSNu4oR0dFQk5xD5cP admin"
WRONG_BLOB = "ssh-rsa AAAAC3NzaC1lZDI1NTE5AAAAIBvQ1bJ4W9bN2L3XwEomh0n3s3CSNu4oR0dFQk5xD5cP x"

# (name, config text, key that must be named in the error)
BAD_INPUTS = [
    ("missing SERVER_IP", conf_text(SERVER_IP=None), "SERVER_IP"),
    ("missing KEY_NAME", conf_text(KEY_NAME=None), "KEY_NAME"),
    ("missing password", conf_text(KEYRING_PASSWORD=None), "KEYRING_PASSWORD"),
    ("missing pubkey", conf_text(ACCOUNT_PUBKEY=None), "ACCOUNT_PUBKEY"),
    ("bad IPv4", conf_text(SERVER_IP="300.1.2.3"), "SERVER_IP"),
    ("bad host chars", conf_text(SERVER_IP="my host!"), "SERVER_IP"),
    ("port 0", conf_text(SSH_PORT="0"), "SSH_PORT"),
    ("port 70000", conf_text(API_PORT="70000"), "API_PORT"),
    ("port text", conf_text(SSH_PORT="ssh"), "SSH_PORT"),
    ("URL without scheme", conf_text(SEED_API_URL="node2.gonka.ai:8000"), "SEED_API_URL"),
    ("URL without host", conf_text(PUBLIC_URL="http://"), "PUBLIC_URL"),
    ("p2p wrong scheme", conf_text(P2P_EXTERNAL_ADDRESS="http://1.2.3.4:5000"), "P2P_EXTERNAL_ADDRESS"),
    ("short password", conf_text(KEYRING_PASSWORD="short"), "KEYRING_PASSWORD"),
    ("pubkey wrong length", conf_text(ACCOUNT_PUBKEY=base64.b64encode(b"\x02" + b"a" * 20).decode()), "ACCOUNT_PUBKEY"),
    ("pubkey wrong prefix", conf_text(ACCOUNT_PUBKEY=base64.b64encode(b"\x04" + b"a" * 32).decode()), "ACCOUNT_PUBKEY"),
    ("pubkey not base64", conf_text(ACCOUNT_PUBKEY="not*base64!"), "ACCOUNT_PUBKEY"),
    ("disk not under /dev", conf_text(DATA_DISK="/mnt/vdc"), "DATA_DISK"),
    ("disk traversal", conf_text(DATA_DISK="/dev/../etc/passwd"), "DATA_DISK"),
    ("mount point relative", conf_text(MOUNT_POINT="mnt/ssd"), "MOUNT_POINT"),
    ("mount point system dir", conf_text(MOUNT_POINT="/etc"), "MOUNT_POINT"),
    ("malformed ssh key", conf_text(ADMIN_SSH_KEYS="ssh-ed25519 notbase64!!"), "ADMIN_SSH_KEYS"),
    ("ssh key type mismatch", conf_text(ADMIN_SSH_KEYS=WRONG_BLOB), "ADMIN_SSH_KEYS"),
    ("private PUBLIC_URL", conf_text(ALLOW_PRIVATE_ADDRESSES="false", PUBLIC_URL="http://10.0.0.5:8000"), "PUBLIC_URL"),
    ("loopback PUBLIC_URL", conf_text(ALLOW_PRIVATE_ADDRESSES=None, PUBLIC_URL="http://127.0.0.1:8000"), "PUBLIC_URL"),
    ("link-local derived URL", conf_text(ALLOW_PRIVATE_ADDRESSES=None, SERVER_IP="169.254.1.1"), "PUBLIC_URL"),
    ("KEY_NAME charset", conf_text(KEY_NAME="node a;rm"), "KEY_NAME"),
    ("bad peer", conf_text(PERSISTENT_PEERS="abc@1.2.3.4:26656"), "PERSISTENT_PEERS"),
    ("bad bool", conf_text(ADOPT_DISK="maybe"), "ADOPT_DISK"),
    ("bad model", conf_text(MODEL="just-a-name"), "MODEL"),
    ("bad model args", conf_text(MODEL_ARGS='["--tp", 4]'), "MODEL_ARGS"),
    ("pruning interval", conf_text(PRUNING_INTERVAL="0"), "PRUNING_INTERVAL"),
    ("bad repo url", conf_text(GONKA_REPO="github.com/gonka-ai/gonka"), "GONKA_REPO"),
    ("bad ref", conf_text(GONKA_REF="../../etc"), "GONKA_REF"),
    ("ssh key file missing", conf_text(SSH_KEY="/nonexistent/key"), "SSH_KEY"),
    ("garbage line", conf_text() + "this is not a key value line\n", "line"),
    ("empty file", "", "file"),
    ("only comments", "# nothing here\n", "SERVER_IP"),
]


@pytest.mark.parametrize("name,text,key", BAD_INPUTS, ids=[b[0] for b in BAD_INPUTS])
def test_bad_input_names_the_key(tmp_path, name, text, key):
    with pytest.raises(ConfigError) as e:
        load(write_node(tmp_path, text))
    assert any(p.startswith(key) for p in e.value.problems), e.value.problems


def test_binary_junk_is_a_config_error(tmp_path):
    p = tmp_path / "nodes" / "junk.conf"
    p.parent.mkdir()
    p.write_bytes(b"\xff\xfe\x00\x81garbage\x00\x01")
    with pytest.raises(ConfigError) as e:
        load(p)
    assert "file:" in str(e.value)


def test_missing_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError) as e:
        load(tmp_path / "nodes" / "none.conf")
    assert "not found" in str(e.value)


def test_every_problem_reported_at_once_with_secret_masked(tmp_path):
    text = conf_text(SERVER_IP="999.1.1.1", SSH_PORT="0", KEYRING_PASSWORD="tiny-pw", DATA_DISK="sdb")
    with pytest.raises(ConfigError) as e:
        load(write_node(tmp_path, text))
    keys = {p.split(":")[0] for p in e.value.problems}
    assert {"SERVER_IP", "SSH_PORT", "KEYRING_PASSWORD", "DATA_DISK"} <= keys
    assert "tiny-pw" not in str(e.value)
    assert "KEYRING_PASSWORD: too short" in str(e.value) and "(got '***')" in str(e.value)
    # each problem carries what was found
    assert "(got '999.1.1.1')" in str(e.value)


def test_valid_admin_keys_accepted(tmp_path):
    from tests.helpers import ssh_public_key
    k1, k2 = ssh_public_key(tmp_path, "a"), ssh_public_key(tmp_path, "b")
    cfg = load(write_node(tmp_path, conf_text(ADMIN_SSH_KEYS=f"{k1};{k2}")))
    assert cfg.admin_ssh_keys == [k1, k2]


def test_pubkey_helper_is_valid():
    assert len(base64.b64decode(pubkey_b64())) == 33
