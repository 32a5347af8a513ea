"""config.env and node-config.json as the server will read them."""

from __future__ import annotations

import json
import subprocess

import pytest

from gonka_tasks.config import load
from gonka_tasks.core.render import CONFIG_ENV_ORDER, config_env, fstab_line, node_config_json
from tests.helpers import conf_text, write_node

# every variable of GONKA.md's config.env table
GONKA_CONFIG_ENV = {
    "KEY_NAME", "KEYRING_PASSWORD", "API_PORT", "API_SSL_PORT", "PUBLIC_URL", "P2P_EXTERNAL_ADDRESS",
    "ACCOUNT_PUBKEY", "NODE_CONFIG", "HF_HOME", "SEED_API_URL", "SEED_NODE_RPC_URL", "SEED_NODE_P2P_URL",
    "DAPI_API__POC_CALLBACK_URL", "DAPI_CHAIN_NODE__URL", "DAPI_CHAIN_NODE__P2P_URL", "RPC_SERVER_URL_1",
    "RPC_SERVER_URL_2", "PORT", "INFERENCE_PORT", "KEYRING_BACKEND",
}

NASTY_PASSWORDS = [
    "with spaces in it",
    "single'quote'inside",
    'double"quote"inside',
    "dollar$HOME${PATH}$(id)",
    "back`tick`s`id`",
    "back\\slash\\\\n",
    "bang!history!!",
    "all of 'them' \"at\" $once `x` \\ ! ;&|<>*?~#",
]


def _cfg(tmp_path, **kw):
    return load(write_node(tmp_path, conf_text(**kw)))


def test_config_env_has_every_variable_as_export_lines(tmp_path):
    text = config_env(_cfg(tmp_path))
    names = {ln.split("=", 1)[0].removeprefix("export ") for ln in text.splitlines() if ln.startswith("export ")}
    assert names == GONKA_CONFIG_ENV == set(CONFIG_ENV_ORDER)
    assert all(ln.startswith(("export ", "#")) for ln in text.splitlines())


@pytest.mark.parametrize("password", NASTY_PASSWORDS)
def test_password_round_trips_through_real_bash(tmp_path, password):
    cfg = _cfg(tmp_path, KEYRING_PASSWORD=password)
    assert cfg.keyring_password == password
    env_file = tmp_path / "config.env"
    env_file.write_text(config_env(cfg))
    out = subprocess.run(["bash", "-c", 'source "$1"; printf %s "$KEYRING_PASSWORD"', "_", str(env_file)],
                         capture_output=True, text=True, timeout=10, check=True)
    assert out.stdout == password


def test_all_values_round_trip_through_bash(tmp_path):
    cfg = _cfg(tmp_path)
    env_file = tmp_path / "config.env"
    env_file.write_text(config_env(cfg))
    out = subprocess.run(["bash", "-c", 'source "$1"; printf "%s|%s|%s" "$HF_HOME" "$PUBLIC_URL" "$KEYRING_BACKEND"',
                          "_", str(env_file)], capture_output=True, text=True, timeout=10, check=True)
    assert out.stdout == "/mnt/ssd/hf|http://198.51.100.7:8000|file"


def test_node_config_json_matches_gonka_schema(tmp_path):
    cfg = _cfg(tmp_path, MODEL="moonshotai/Kimi-K2.6", MODEL_ARGS='["--tensor-parallel-size","4"]',
               MAX_CONCURRENT="320")
    nodes = json.loads(node_config_json(cfg))
    assert isinstance(nodes, list) and len(nodes) == 1
    n = nodes[0]
    assert set(n) == {"id", "host", "inference_port", "poc_port", "max_concurrent", "models", "hardware"}
    assert n["hardware"] == []  # filled from the probed GPUs by configure (upstream InferenceNodeConfig)
    hw = [{"type": "NVIDIA H100 80GB HBM3 | 79GB", "count": 4}]
    with_gpus = json.loads(node_config_json(cfg, args=["--tensor-parallel-size", "4"], hardware=hw))[0]
    assert with_gpus["hardware"] == hw and with_gpus["models"]["moonshotai/Kimi-K2.6"]["args"][-1] == "4"
    assert n["host"] == "inference" and "://" not in n["host"]
    assert isinstance(n["inference_port"], int) and isinstance(n["poc_port"], int)
    assert n["max_concurrent"] == 320
    assert n["models"] == {"moonshotai/Kimi-K2.6": {"args": ["--tensor-parallel-size", "4"]}}


def test_model_args_accept_shell_words(tmp_path):
    cfg = _cfg(tmp_path, MODEL_ARGS="--tensor-parallel-size 4")
    assert json.loads(node_config_json(cfg))[0]["models"][cfg["MODEL"]]["args"] == ["--tensor-parallel-size", "4"]


def test_fstab_line_uses_uuid_and_nofail():
    assert fstab_line("abcd-1", "/mnt/ssd") == "UUID=abcd-1 /mnt/ssd ext4 defaults,nofail 0 2"


