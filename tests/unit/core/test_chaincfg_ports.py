"""TOML edits keep comments and change only the keys asked; compose ports get bound to loopback."""

from __future__ import annotations

import difflib

import pytest

from gonka_tasks.core import chaincfg
from gonka_tasks.core.ports import bind_internal_ports, exposed_mappings
from tests.helpers import output

CONFIG_TOML = output("config.toml")

APP_TOML = output("app.toml")

PEER = "0123456789abcdef0123456789abcdef01234567@203.0.113.5:26656"


def _changed_lines(a: str, b: str) -> list[str]:
    return [ln for ln in difflib.unified_diff(a.splitlines(), b.splitlines(), lineterm="", n=0)
            if ln.startswith(("+", "-")) and not ln.startswith(("+++", "---"))]


def test_peers_edit_changes_only_that_key():
    new = chaincfg.set_persistent_peers(CONFIG_TOML, [PEER, PEER.replace("01234567@", "76543210@")])
    assert _changed_lines(CONFIG_TOML, new) == [
        '-persistent_peers = ""',
        f'+persistent_peers = "{PEER},{PEER.replace("01234567@", "76543210@")}"']
    assert chaincfg.set_persistent_peers(new, [PEER, PEER.replace("01234567@", "76543210@")]) == new


def test_pruning_edit_keeps_comments():
    new = chaincfg.set_pruning(APP_TOML, 20000, 512)
    assert _changed_lines(APP_TOML, new) == [
        '-pruning = "default"', '-pruning-keep-recent = "0"', '-pruning-interval = "0"',
        '+pruning = "custom"', '+pruning-keep-recent = "20000"', '+pruning-interval = "512"'] or \
        sorted(_changed_lines(APP_TOML, new)) == sorted([
            '-pruning = "default"', '-pruning-keep-recent = "0"', '-pruning-interval = "0"',
            '+pruning = "custom"', '+pruning-keep-recent = "20000"', '+pruning-interval = "512"'])
    assert chaincfg.pruning(new) == ("custom", "20000", "512")


@pytest.mark.parametrize("bad", ["not = [toml", "[p2p]\nx = 1\n", ""])
def test_bad_config_toml(bad):
    with pytest.raises(chaincfg.ChainConfigError):
        chaincfg.set_persistent_peers(bad, [PEER])


COMPOSE = '''services:
  api:
    ports:
      - "9100:9100"            # callback
      - "127.0.0.1:9200:9200"
  proxy:
    ports:
      - "${API_PORT:-8000}:80"
  node:
    ports:
      - "5000:26656"
  inference:
    ports:
      - "${PORT:-8080}:8080"
      - ${INFERENCE_PORT:-5050}:5000
      - 0.0.0.0:9999:9999
'''


def test_bind_internal_ports_only_touches_internal_mappings():
    env = {"PORT": "8080", "INFERENCE_PORT": "5050", "API_PORT": "8000"}
    ports = {8080, 5050, 9100, 9200}
    assert len(exposed_mappings(COMPOSE, ports, env)) == 3
    new = bind_internal_ports(COMPOSE, ports, "127.0.0.1", env)
    assert '- "127.0.0.1:9100:9100"            # callback' in new
    assert '- "127.0.0.1:${PORT:-8080}:8080"' in new
    assert '- "127.0.0.1:${INFERENCE_PORT:-5050}:5000"' in new
    assert '"${API_PORT:-8000}:80"' in new and '"5000:26656"' in new and "0.0.0.0:9999:9999" in new
    assert exposed_mappings(new, ports, env) == []
    assert bind_internal_ports(new, ports, "127.0.0.1", env) == new
