"""Node config: defaults, derived values, and every bad input reported at once with the key named."""

from __future__ import annotations

import base64
import time

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
    ("private P2P address behind NAT", conf_text(ALLOW_PRIVATE_ADDRESSES=None, P2P_EXTERNAL_ADDRESS="tcp://10.1.2.3:5000"),
     "P2P_EXTERNAL_ADDRESS"),
    ("derived P2P address of a private SERVER_IP", conf_text(ALLOW_PRIVATE_ADDRESSES=None, SERVER_IP="192.168.7.2",
                                                            PUBLIC_URL="http://203.0.113.9:8000"), "P2P_EXTERNAL_ADDRESS"),
    ("SSH_HOST with a space", conf_text(SSH_HOST="gpu box"), "SSH_HOST"),
    ("SSH_HOST as an ssh option", conf_text(SSH_HOST="-oProxyCommand=x"), "SSH_HOST"),
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
    # URLs are used in files and commands on the server: no whitespace or control characters
    ("URL with a space", conf_text(SEED_API_URL="http://node2.gonka.ai:8000/a b"), "SEED_API_URL"),
    ("URL with a tab", conf_text(RPC_SERVER_URL_1="http://node1.gonka.ai:8000/chain-rpc/\tx"), "RPC_SERVER_URL_1"),
    ("URL with a newline", conf_text(HF_ENDPOINT="https://hub.example.org/\nx"), "HF_ENDPOINT"),
    ("URL with an escape", conf_text(PIP_INDEX_URL="https://pypi.example.org/\x1b[31m"), "PIP_INDEX_URL"),
    ("URL with a zero-width space", conf_text(PUBLIC_URL="http://203.0.113.5:8000/\u200b"), "PUBLIC_URL"),
    ("p2p with a space", conf_text(P2P_EXTERNAL_ADDRESS="tcp://203.0.113.5:5000 x"), "P2P_EXTERNAL_ADDRESS"),
    ("seed p2p with DEL", conf_text(SEED_NODE_P2P_URL="tcp://node2.gonka.ai:5000\x7f"), "SEED_NODE_P2P_URL"),
    ("repo with a space", conf_text(GONKA_REPO="https://github.com/gonka-ai/gonka.git --depth=1"), "GONKA_REPO"),
    ("prometheus repo with BEL", conf_text(PROMETHEUS_REPO="https://example.org/p.git\x07"), "PROMETHEUS_REPO"),
    # git must never read a repo or ref as an option (`--upload-pack=...` runs a command)
    ("repo as git option", conf_text(GONKA_REPO="--upload-pack=touch /tmp/x"), "GONKA_REPO"),
    ("repo as -c option", conf_text(PROMETHEUS_REPO="-c@host:x"), "PROMETHEUS_REPO"),
    ("repo scp host option", conf_text(GONKA_REPO="git@-oProxyCommand:x"), "GONKA_REPO"),
    ("ref as git option", conf_text(GONKA_REF="--upload-pack=x"), "GONKA_REF"),
    ("revision as option", conf_text(MODEL_REVISION="-x"), "MODEL_REVISION"),
    # nodes/<KEY_NAME>/ must not clash with a node config file
    ("KEY_NAME ends in .conf", conf_text(KEY_NAME="node-a.conf"), "KEY_NAME"),
    ("KEY_NAME ends in .CONF", conf_text(KEY_NAME="x.CONF"), "KEY_NAME"),
    ("short HF_TOKEN", conf_text(HF_TOKEN="abc"), "HF_TOKEN"),
    ("HF_TOKEN with a space", conf_text(HF_TOKEN="hf_abc defghijk"), "HF_TOKEN"),
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


def test_key_name_ending_in_conf_says_why(tmp_path):
    with pytest.raises(ConfigError) as e:
        load(write_node(tmp_path, conf_text(KEY_NAME="node-a.conf"), "node-a"))
    assert "KEY_NAME: must not end in .conf" in str(e.value) and "clash" in str(e.value)


def test_git_option_values_say_why(tmp_path):
    with pytest.raises(ConfigError) as e:
        load(write_node(tmp_path, conf_text(GONKA_REPO="--upload-pack=touch /tmp/x", PROMETHEUS_REPO="-cx@h:y")))
    text = str(e.value)
    assert "GONKA_REPO: must not start with '-' (git would read it as an option)" in text
    assert "PROMETHEUS_REPO: must not start with '-'" in text


def test_url_with_whitespace_says_why(tmp_path):
    with pytest.raises(ConfigError) as e:
        load(write_node(tmp_path, conf_text(HF_ENDPOINT="https://hub.example.org/a b")))
    assert "HF_ENDPOINT: must not contain spaces, tabs, line breaks or control" in str(e.value)


def test_duplicate_keys_warn_with_their_lines_and_the_last_one_wins(tmp_path):
    other = "Another-passw0rd-here"
    text = conf_text() + "SSH_PORT=2222\nKEYRING_PASSWORD=" + other + "\nSSH_PORT=22\nSSH_PORT=2200\n"
    cfg = load(write_node(tmp_path, text))
    assert cfg.ssh_port == 2200 and cfg.keyring_password == other
    assert "SSH_PORT: set 3 times (lines 6, 8 and 9); the last one is used" in cfg.warnings
    assert "KEYRING_PASSWORD: set twice (lines 3 and 7); the last one is used" in cfg.warnings
    shown = "\n".join(cfg.warnings)
    assert other not in shown and PASSWORD not in shown
    # the value that lost is a secret all the same: the log masks it
    assert PASSWORD in cfg.secrets and other in cfg.secrets


def test_many_bad_admin_keys_are_counted_not_listed_and_fast(tmp_path):
    keys = "\n".join(f"ssh-ed25519 AAAAbad{i} c" for i in range(200_000))
    path = write_node(tmp_path, conf_text() + f'ADMIN_SSH_KEYS="{keys}"\n')
    t0 = time.monotonic()
    with pytest.raises(ConfigError) as e:
        load(path)
    assert time.monotonic() - t0 < 5
    listed = [p for p in e.value.problems if p.startswith("ADMIN_SSH_KEYS: key ")]
    assert len(listed) == 10 and listed[0].startswith("ADMIN_SSH_KEYS: key 1: ")
    assert "ADMIN_SSH_KEYS: ... and 199990 more bad keys" in e.value.problems
    assert len(e.value.problems) == 11


def test_a_few_bad_admin_keys_are_all_listed(tmp_path):
    keys = ";".join(["ssh-ed25519 AAAAbad"] * 10)
    with pytest.raises(ConfigError) as e:
        load(write_node(tmp_path, conf_text(ADMIN_SSH_KEYS=keys)))
    assert len(e.value.problems) == 10 and not any("more bad keys" in p for p in e.value.problems)


def test_a_wrong_file_given_as_config_is_summed_up_fast(tmp_path):
    """5,000 broken lines and unknown keys: the first 20 of each are shown, the rest counted."""
    text = conf_text() + "".join(f"junk line {i}\nUNKNOWN_{i}=x\n" for i in range(5_000))
    t0 = time.monotonic()
    with pytest.raises(ConfigError) as e:
        load(write_node(tmp_path, text))
    assert time.monotonic() - t0 < 5
    assert len(e.value.problems) == 21 and e.value.problems[-1] == "file: ... and 4980 more broken lines"
    cfg = load(write_node(tmp_path, conf_text() + "".join(f"UNKNOWN_{i}=x\n" for i in range(5_000))))
    assert len(cfg.warnings) == 21 and cfg.warnings[-1] == "file: ... and 4980 more unknown keys, ignored"


def test_ssh_target_from_an_ssh_config_alias(tmp_path):
    """SSH_HOST names a ~/.ssh/config entry: its HostName, User, Port and ProxyJump complete an
    empty SSH_USER/SSH_PORT; the node config's own values win; without either, root and 22."""
    import paramiko  # noqa: PLC0415

    from gonka_tasks.errors import DeployError  # noqa: PLC0415
    from gonka_tasks.session.run import resolve_target  # noqa: PLC0415

    ssh = paramiko.SSHConfig.from_text("Host gpu1\n  HostName 10.0.0.5\n  User ops\n  Port 2222\n  ProxyJump bastion\n")
    cfg = load(write_node(tmp_path, conf_text(SSH_HOST="gpu1", SSH_USER="", SSH_PORT="", SERVER_IP="203.0.113.9")))
    t = resolve_target(cfg, None, ssh)
    assert (t.alias, t.host, t.user, t.port, t.jump) == ("gpu1", "10.0.0.5", "ops", 2222, "bastion")
    assert str(t) == "ops@10.0.0.5:2222 (gpu1) via bastion"
    assert resolve_target(cfg, "gpu1", ssh).host == "10.0.0.5"  # -H by alias, by address or by SERVER_IP
    assert resolve_target(cfg, "203.0.113.9", ssh).alias == "gpu1"
    with pytest.raises(DeployError, match="contradicts"):
        resolve_target(cfg, "ops@gpu2", ssh)
    cfg = load(write_node(tmp_path, conf_text(SSH_HOST="gpu1", SSH_USER="admin", SSH_PORT="22")))
    assert (resolve_target(cfg, None, ssh).user, resolve_target(cfg, None, ssh).port) == ("admin", 22)
    cfg = load(write_node(tmp_path, conf_text(SSH_USER="", SSH_PORT="")))
    t = resolve_target(cfg, None, paramiko.SSHConfig())
    assert (t.user, t.port, t.jump) == ("root", 22, "")
