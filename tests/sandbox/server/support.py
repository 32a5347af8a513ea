"""Shared helpers for the gonka-sim unit tests (no root, no sandbox host).

The sim programs (the tree `gonka_sim.server.install` builds for a host) run here as subprocesses on the runner
with ``GONKA_SIM_ROOT`` = a temp dir, their own loopback net (``GONKA_SIM_NET``) and a published
port offset, so tests running at the same time do not meet. Containers they start are killed
by the pid recorded in their state file (checked against its start time) at teardown.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from gonka_sim.network.repos import TEMPLATES

# the sim's own modules (re-exported for the tests)
from gonka_sim.server import (  # noqa: E402, I001
    chainfiles,
    chainkeys,
    compose,
    engine,
    gotemplate,
    install,
    keyring,
    simenv,
    tomledit,
)
from tests.helpers import pubkey_b64

SERVER_ROOT = install.tree(Path(tempfile.gettempdir()) / "gonka-sim-trees")
LIB = SERVER_ROOT / "usr" / "local" / "lib" / "gonka-sim"
BIN = SERVER_ROOT / "usr" / "local" / "bin"
DOCKER = BIN / "docker"
PASSWORD = "Sup3r 'secret' $HOME pass"
# The deployer's `keys add`: passphrase and key name come from the container's environment.
KEYS_ADD = ('"$DOCKER" compose run --rm --no-deps -T api sh -c '
            '\'printf "%s\\n%s\\n" "$KEYRING_PASSWORD" "$KEYRING_PASSWORD" | '
            'inferenced keys add "$KEY_NAME" --keyring-backend file\'')

__all__ = ["chainfiles", "chainkeys", "compose", "engine", "gotemplate", "keyring", "simenv", "tomledit", "TEMPLATES"]

needs_sim_python = pytest.mark.skipif(sys.version_info < (3, 11), reason="the sim needs Python >= 3.11 (tomllib)")


def _proc_start(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2:].split()
    return None if fields[0] in ("Z", "X") else int(fields[19])


class Sim:
    """One simulated machine state in a temp dir, driven through the sim's own CLIs."""

    def __init__(self, tmp: Path):
        self.tmp = tmp
        self.root = tmp / "root"
        self.root.mkdir()
        # the machine as a host has it: the NVIDIA runtime in dockerd's config
        (self.root / "etc" / "docker").mkdir(parents=True)
        shutil.copyfile(SERVER_ROOT / "etc" / "docker" / "daemon.json", self.root / "etc" / "docker" / "daemon.json")
        self.net = f"127.{random.randint(100, 250)}.{random.randint(1, 250)}"
        self.offset = random.randrange(10000, 23000, 10)
        self.env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(tmp), "LANG": "C.UTF-8",
            "GONKA_SIM_ROOT": str(self.root), "GONKA_SIM_NET": self.net,
            "GONKA_SIM_PORT_OFFSET": str(self.offset), "DOCKER": str(DOCKER),
        }

    # -- running things ------------------------------------------------------------------------

    def run(self, argv, cwd: Path | None = None, input: str | None = None, env: dict | None = None,
            timeout: float = 60) -> subprocess.CompletedProcess:
        return subprocess.run(argv, cwd=cwd or self.tmp, input=input, env={**self.env, **(env or {})},
                              capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL if input is None else None)

    def docker(self, *args: str, cwd: Path | None = None, input: str | None = None, env: dict | None = None,
               timeout: float = 60) -> subprocess.CompletedProcess:
        return self.run([str(DOCKER), *args], cwd=cwd, input=input, env=env, timeout=timeout)

    def sourced(self, cmd: str, cwd: Path, input: str | None = None, timeout: float = 60):
        """`source config.env && <cmd>` the way the deployer runs compose ($DOCKER is the sim)."""
        return self.run(["bash", "-c", f"source config.env && {cmd}"], cwd=cwd, input=input, timeout=timeout)

    # -- state ---------------------------------------------------------------------------------

    def knobs(self, **knobs) -> None:
        path = self.root / "etc" / "gonka-sim" / "knobs.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(knobs))

    def state(self, name: str) -> dict | None:
        try:
            return json.loads((self.root / "var/lib/gonka-sim/containers" / f"{name}.json").read_text())
        except OSError:
            return None

    def counters(self) -> dict:
        try:
            return json.loads((self.root / "var/lib/gonka-sim/counters.json").read_text())
        except OSError:
            return {}

    def docker_calls(self) -> list[dict]:
        path = self.root / "var/log/gonka-sim/docker.log"
        return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []

    def log(self, name: str) -> str:
        path = self.root / "var/lib/gonka-sim/logs" / f"{name}.log"
        return path.read_text() if path.exists() else ""

    def ip(self, service: str) -> str:
        last = simenv.SERVICE_IPS.get(service)
        return f"{self.net}.{last}"

    def port(self, published: int) -> int:
        return published + self.offset

    def wait_ready(self, name: str, timeout: float = 10) -> dict:
        ready = self.root / "var/lib/gonka-sim/run" / f"{name}.ready"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if ready.exists():
                return self.state(name)
            st = self.state(name)
            if st and (self.root / "var/lib/gonka-sim/run" / f"{name}.exit").exists():
                raise AssertionError(f"{name} exited: {self.log(name)}")
            time.sleep(0.05)
        raise AssertionError(f"{name} not ready after {timeout}s: {self.log(name)}")

    def get(self, url: str, timeout: float = 5) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(url, timeout=timeout) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()

    def get_json(self, url: str, timeout: float = 5):
        status, body = self.get(url, timeout)
        assert status == 200, (status, body)
        return json.loads(body)

    # -- cleanup -------------------------------------------------------------------------------

    def kill_all(self) -> None:
        """SIGKILL every container process this sim recorded (by pid + start time, never by name)."""
        cdir = self.root / "var/lib/gonka-sim/containers"
        for path in cdir.glob("*.json") if cdir.is_dir() else []:
            try:
                st = json.loads(path.read_text())
            except (OSError, ValueError):
                continue
            pid = st.get("pid")
            if pid and _proc_start(pid) == st.get("pid_start"):
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(pid, signal.SIGKILL)


@pytest.fixture
def sim(tmp_path):
    s = Sim(tmp_path)
    try:
        yield s
    finally:
        s.kill_all()


def wait_for(pred, timeout=8.0, what="condition"):
    """Poll `pred` until it returns something true (returned), or fail the test after `timeout` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = pred()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def write_config_env(join: Path, sim: Sim, **over: str) -> None:
    values = {
        "KEY_NAME": "node-a", "KEYRING_PASSWORD": PASSWORD, "API_PORT": "8000", "API_SSL_PORT": "8443",
        "PUBLIC_URL": "http://198.51.100.7:8000", "P2P_EXTERNAL_ADDRESS": "tcp://198.51.100.7:5000",
        "ACCOUNT_PUBKEY": pubkey_b64(), "NODE_CONFIG": "./node-config.json",
        "HF_HOME": str(sim.tmp / "hf"), "SEED_API_URL": "http://127.0.0.1:9", "SEED_NODE_RPC_URL": "http://127.0.0.1:9/chain-rpc/",
        "SEED_NODE_P2P_URL": "tcp://127.0.0.1:9", "DAPI_API__POC_CALLBACK_URL": "http://api:9100",
        "DAPI_CHAIN_NODE__URL": "http://node:26657", "DAPI_CHAIN_NODE__P2P_URL": "http://node:26656",
        "RPC_SERVER_URL_1": "http://127.0.0.1:9/chain-rpc/", "RPC_SERVER_URL_2": "http://127.0.0.1:9/chain-rpc/",
        "PORT": "8080", "INFERENCE_PORT": "5050", "KEYRING_BACKEND": "file",
    }
    values.update(over)
    lines = []
    for k, v in values.items():
        lines.append(f"export {k}='" + v.replace("'", "'\\''") + "'")
    (join / "config.env").write_text("\n".join(lines) + "\n")
    (sim.tmp / "hf").mkdir(exist_ok=True)


@pytest.fixture
def join(sim, tmp_path) -> Path:
    """A checkout of the sandbox gonka repo with a filled-in config.env; returns deploy/join."""
    repo = tmp_path / "gonka"
    shutil.copytree(TEMPLATES / "gonka", repo)
    path = repo / "deploy" / "join"
    write_config_env(path, sim)
    return path
