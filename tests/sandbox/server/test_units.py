"""gonka-sim building blocks as pure functions: compose parsing, TOML edits, templates, keys."""

from __future__ import annotations

import base64
import os
import subprocess
from pathlib import Path

import pytest
import tomlkit
import tomllib

from gonka_sim.network import repos
from gonka_tasks.config.address import cold_address
from tests.sandbox.server.support import (
    LIB,
    SERVER_ROOT,
    TEMPLATES,
    chainfiles,
    chainkeys,
    compose,
    engine,
    gotemplate,
    keyring,
    simenv,
    tomledit,
)

# ----------------------------------------------------------------------------- interpolation

@pytest.mark.parametrize("text, env, want", [
    ("${A}", {"A": "1"}, "1"),
    ("$A-x", {"A": "1"}, "1-x"),
    ("${A:-d}", {"A": ""}, "d"),
    ("${A-d}", {"A": ""}, ""),
    ("${A-d}", {}, "d"),
    ("${A:+alt}", {"A": "x"}, "alt"),
    ("${A:+alt}", {"A": ""}, ""),
    ("${A+alt}", {"A": ""}, "alt"),
    ("$$HOME", {"HOME": "/r"}, "$HOME"),
    ("${HF_HOME:-${HOME}/.cache}:/root/.cache", {"HOME": "/root"}, "/root/.cache:/root/.cache"),
    ("${HF_HOME:-${HOME}/.cache}", {"HF_HOME": "/mnt/ssd/hf", "HOME": "/root"}, "/mnt/ssd/hf"),
    ("tcp://node:${TMKMS_PORT:-26658}", {}, "tcp://node:26658"),
])
def test_interpolation_follows_compose(text, env, want):
    assert compose.interpolate(text, env, set()) == want


def test_unset_variables_are_reported_and_required_ones_fail():
    missing: set = set()
    assert compose.interpolate("${KEY_NAME}/${X:-y}", {}, missing) == "/y"
    assert missing == {"KEY_NAME"}
    with pytest.raises(compose.ComposeError, match="KEY"):
        compose.interpolate("${KEY:?set it}", {}, set())


@pytest.mark.parametrize("spec, want", [
    ("5000:26656", [("", 5000, 26656)]),
    ("127.0.0.1:9200:9200", [("127.0.0.1", 9200, 9200)]),
    ("26657", [("", None, 26657)]),
    ("8000-8001:80-81", [("", 8000, 80), ("", 8001, 81)]),
    ({"target": 80, "published": "8000", "host_ip": "127.0.0.1"}, [("127.0.0.1", 8000, 80)]),
])
def test_ports(spec, want):
    assert [(p.ip, p.host, p.container) for p in compose.parse_port(spec)] == want


def test_project_from_real_shaped_files(tmp_path):
    join = tmp_path / "deploy" / "join"
    join.mkdir(parents=True)
    for f in ("docker-compose.yml", "docker-compose.mlnode.yml"):
        (join / f).write_text((TEMPLATES / "gonka/deploy/join" / f).read_text())
    env = {"KEY_NAME": "k", "API_PORT": "8001", "PUBLIC_URL": "http://198.51.100.7:8001", "HOME": "/root"}
    proj = compose.load_project(join, ["docker-compose.yml", "docker-compose.mlnode.yml"], environ=env)
    assert proj.name == "join"
    assert "proxy-ssl" in proj.disabled and "proxy-ssl" not in proj.services
    assert proj.services["node"].container_name_in("join") == "node"
    assert proj.services["mlnode-308"].container_name_in("join") == "join-mlnode-308-1"
    assert proj.services["mlnode-308"].gpu and not proj.services["api"].gpu
    proxy = proj.services["proxy"]
    assert [(p.host, p.container) for p in proxy.ports] == [(8001, 80), (8443, 443)]
    api = proj.services["api"]
    assert api.environment["DAPI_API__PUBLIC_URL"] == "http://198.51.100.7:8001"
    assert api.environment["KEY_NAME"] == "k"
    vols = {v.target: v.source for v in proj.services["node"].volumes}
    assert vols["/root/genesis.json"] == str(tmp_path / "genesis" / "genesis.json")
    assert vols["/root/.inference"] == str(join / ".inference")
    assert proj.services["mlnode-308"].volumes[0].source == "/root/.cache"
    assert any('"SEED_API_URL" variable is not set' in w for w in proj.warnings)
    # dependencies first; the optional proxy-ssl dependency (disabled profile) is skipped
    order = proj.closure(["proxy"])
    assert order.index("tmkms") < order.index("node") < order.index("api") < order.index("proxy")
    assert "proxy-ssl" not in order
    assert proj.closure(["node"], with_deps=False) == ["node"]
    # naming a profiled service enables its profile
    assert "proxy-ssl" in compose.load_project(join, [], targets=["proxy-ssl"], environ=env).services


def test_dotenv_and_shell_precedence(tmp_path):
    (tmp_path / "docker-compose.yml").write_text("services:\n  a:\n    image: x:${TAG}\n    environment:\n"
                                                 "      - ONLY_SHELL\n      KEEP: ${KEEP:-k}\n".replace(
                                                     "      KEEP", "      - KEEP=${KEEP:-k}\n#"))
    (tmp_path / ".env").write_text("TAG=fromfile\nKEEP=dot\n")
    p = compose.load_project(tmp_path, [], environ={"TAG": "shell", "ONLY_SHELL": "s"})
    assert p.services["a"].image == "x:shell"
    assert p.services["a"].environment == {"ONLY_SHELL": "s", "KEEP": "dot"}


def test_missing_file_and_unknown_service(tmp_path):
    with pytest.raises(compose.ComposeError, match="no configuration file provided"):
        compose.load_project(tmp_path, [], environ={})
    with pytest.raises(compose.ComposeError, match="no such file or directory"):
        compose.load_project(tmp_path, ["nope.yml"], environ={})
    (tmp_path / "compose.yaml").write_text("services:\n  a:\n    image: x\n    depends_on: [b]\n")
    p = compose.load_project(tmp_path, [], environ={})
    with pytest.raises(compose.ComposeError, match='depends on undefined service "b"'):
        p.closure(["a"])
    with pytest.raises(compose.ComposeError, match="no such service: zz"):
        p.service("zz")


# ----------------------------------------------------------------------------- chain files and TOML edits

def test_fresh_chain_files_parse_and_keep_comments_through_tomlkit():
    text = chainfiles.config_toml("node-a")
    cfg = tomllib.loads(text)
    assert cfg["p2p"]["persistent_peers"] == "" and cfg["moniker"] == "node-a"
    assert "# Comma separated list of nodes to keep persistent connections to\npersistent_peers = \"\"" in text
    doc = tomlkit.parse(text)
    doc["p2p"]["persistent_peers"] = "0123456789abcdef0123456789abcdef01234567@198.51.100.9:5000"
    out = tomlkit.dumps(doc)
    assert "# Comma separated list of nodes to keep persistent connections to" in out
    app = tomllib.loads(chainfiles.app_toml())
    assert (app["pruning"], app["pruning-keep-recent"], app["pruning-interval"]) == ("default", "0", "0")
    assert "# Pruning strategy" in chainfiles.app_toml()
    assert tomllib.loads(chainfiles.client_toml("gonka-mainnet"))["keyring-backend"] == "test"


def test_toml_line_edits_keep_everything_else():
    text = chainfiles.config_toml("n")
    out = tomledit.set_from_env(text, "p2p", "external_address", "tcp://198.51.100.7:5000")
    out = tomledit.set_from_env(out, "p2p", "allow_duplicate_ip", "true")
    out = tomledit.set_from_env(out, "", "priv_validator_laddr", "tcp://0.0.0.0:26658")
    out = tomledit.set_from_env(out, "statesync", "new_key", "30s")
    cfg = tomllib.loads(out)
    assert cfg["p2p"]["external_address"] == "tcp://198.51.100.7:5000"
    assert cfg["p2p"]["allow_duplicate_ip"] is True
    assert cfg["priv_validator_laddr"] == "tcp://0.0.0.0:26658"
    assert cfg["statesync"]["new_key"] == "30s"
    assert cfg["rpc"]["laddr"] == "tcp://127.0.0.1:26657"  # another section's laddr untouched
    assert len(out.splitlines()) == len(text.splitlines()) + 1


def test_container_paths_in_commands_map_to_volumes():
    st = {"volumes": [["/srv/hf", "/root/.cache", "rw", "bind"], ["/j/.inference", "/root/.inference", "rw", "bind"],
                      ["/", "/rootfs", "ro", "bind"]], "project": "p"}
    got = engine.rewrite_paths(st, ["/root/.cache/hub", 'ls /root/.inference/config && cat "/root/.cache"',
                                    "/root/.cachex", "--home=/root/.inference", "/rootfs/etc", "/etc/hosts"])
    assert got == ["/srv/hf/hub", 'ls /j/.inference/config && cat "/srv/hf"', "/root/.cachex",
                   "--home=/j/.inference", "/etc", "/etc/hosts"]
    # an already rewritten path stays where it is
    assert engine.map_container_path([["/j/.inference", "/root/.inference"]], "/j/.inference/x") == Path("/j/.inference/x")


# ----------------------------------------------------------------------------- templates

def test_go_templates():
    row = {"Names": "node", "Status": "Up 2 minutes", "State": {"Status": "running"}, "RestartCount": 0,
           "Labels": {"a": "b"}}
    assert gotemplate.render("{{.Names}}\\t{{.Status}}", row) == "node\tUp 2 minutes"
    assert gotemplate.render("{{.State.Status}} {{.RestartCount}}", row) == "running 0"
    assert gotemplate.render("{{json .State}}", row) == '{"Status":"running"}'
    assert gotemplate.render('{{index .Labels "a"}}', row) == "b"
    assert gotemplate.header("{{.Names}}\\t{{.Status}}") == "NAMES\tSTATUS"
    with pytest.raises(gotemplate.TemplateError):
        gotemplate.render("{{.Nope}}", row)


# ----------------------------------------------------------------------------- keys

def test_addresses_agree_with_the_runner_side_derivation():
    for _ in range(5):
        pub = chainkeys.compressed_pubkey(chainkeys.private_key(chainkeys.new_mnemonic()))
        assert len(pub) == 33 and pub[0] in (2, 3)
        b64 = base64.b64encode(pub).decode()
        assert chainkeys.address_from_b64(b64) == cold_address(b64)
    # the published Cosmos vector of the all-"abandon ... art" mnemonic at m/44'/118'/0'/0/0
    pub = chainkeys.compressed_pubkey(chainkeys.private_key("abandon " * 23 + "art"))
    assert chainkeys.address(pub, "cosmos") == "cosmos1r5v5srda7xfth3hn2s26txvrcrntldjumt8mhl"
    hrp, payload = chainkeys.bech32_decode(cold_address(b64))
    assert hrp == "gonka" and len(payload) == 20


def test_mnemonics_have_24_words_and_a_checksum():
    from mnemonic import Mnemonic  # noqa: PLC0415

    wordlist = Mnemonic("english").wordlist
    phrase = chainkeys.new_mnemonic()
    words = phrase.split()
    assert len(words) == 24 and chainkeys.mnemonic_valid(phrase)
    words[3] = wordlist[(wordlist.index(words[3]) + 1) % 2048]
    assert not chainkeys.mnemonic_valid(" ".join(words))


def test_keyring_blobs_need_the_passphrase():
    blob = keyring.seal(b"secret record", "right password")
    assert blob.count(".") == 4 and "secret" not in blob
    assert keyring.unseal(blob, "right password") == b"secret record"
    with pytest.raises(keyring.KeyringError, match=r"aes.KeyUnwrap\(\): integrity check failed."):
        keyring.unseal(blob, "wrong password")


# ----------------------------------------------------------------------------- the file tree itself

def test_hosts_file_matches_the_service_table():
    lines = [ln.split() for ln in (SERVER_ROOT / "etc/hosts.sandbox").read_text().splitlines()
             if ln.strip() and not ln.startswith("#")]
    assert {name: ip for ip, name in lines} == {n: f"{simenv.DEFAULT_NET}.{i}" for n, i in simenv.SERVICE_IPS.items()}


def test_gitconfig_maps_every_upstream(tmp_path):
    cfg = repos.provision_dir(tmp_path) / "etc/gitconfig"
    for name, url in repos.UPSTREAMS.items():
        got = subprocess.run(["git", "config", "--file", str(cfg), "--get-all", f"url.file:///srv/git/{name}.git.insteadof"],
                             capture_output=True, text=True, check=True, timeout=10).stdout.split()
        assert url in got


def test_programs_are_executable_python_scripts():
    progs = [SERVER_ROOT / "usr/local/bin" / n for n in ("docker", "nvidia-smi", "systemctl", "udevadm")]
    progs += [LIB / "container-init", LIB / "bin-chain/inferenced", LIB / "bin-common/wget", LIB / "bin-common/curl",
              LIB / "bin-gpu/nvidia-smi"]
    for p in progs:
        assert os.access(p, os.X_OK), p
        assert p.read_text().startswith("#!/usr/bin/python3\n"), p


def test_repos_build_with_two_releases(tmp_path):
    info = repos.build_repos(tmp_path)
    g = info["gonka"]
    assert set(g["refs"]) == {"v0.2.12", "v0.2.13", "main"} and g["refs"]["main"] == g["refs"]["v0.2.13"]
    assert g["refs"]["v0.2.12"] != g["refs"]["v0.2.13"]
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", "--branch", "v0.2.12", str(g["path"]), str(clone)], check=True,
                   capture_output=True, timeout=30)
    old = (clone / "deploy/join/docker-compose.yml").read_text()
    # upstream's v0.2.12 -> v0.2.13 diff: image tags, QUERY_GAS_LIMIT for the node, NODE_MANAGER_ADDR
    assert "api:0.2.12" in old and ":0.2.13" not in old and "versiond:0.2.12" in old
    assert "QUERY_GAS_LIMIT" not in old and "NODE_MANAGER_ADDR=api:9400" in old
    assert "QUERY_GAS_LIMIT" not in (clone / "deploy/join/config.env.template").read_text()
    new = (repos.TEMPLATES / "gonka/deploy/join/docker-compose.yml").read_text()
    assert "QUERY_GAS_LIMIT=${QUERY_GAS_LIMIT:-10000000}" in new and "api:0.2.13" in new
    for name in ("docker-compose.mlnode.yml", "nginx.conf", "node-config.json"):  # unchanged between them
        assert (clone / "deploy/join" / name).read_text() == (repos.TEMPLATES / "gonka/deploy/join" / name).read_text()
    assert (clone / "genesis/genesis.json").is_file()
    again = repos.build_repos(tmp_path / "again")
    assert again["gonka"]["refs"] == g["refs"]  # fixed dates and authors: same ids every time
    tree = repos.provision_dir(tmp_path / "prov")
    assert (tree / "srv/git/gonka.git/HEAD").is_file() and (tree / "srv/git/prometheus.git/HEAD").is_file()
    assert Path(info["prometheus"]["path"]).is_dir()


def test_provision_cache_is_rebuilt_when_the_templates_change(tmp_path, monkeypatch):
    """A cached build made from other templates is stale: provision_dir rebuilds it."""
    tree = repos.provision_dir(tmp_path)
    (tmp_path / "provision.fingerprint").write_text("from-older-templates\n")
    head = tree / "srv/git/gonka.git/packed-refs"
    head.write_text("")  # a marker of the old build: gone after the rebuild
    repos.provision_dir(tmp_path)
    assert "v0.2.13" in head.read_text()
    assert (tmp_path / "provision.fingerprint").read_text().strip() == repos.fingerprint()
