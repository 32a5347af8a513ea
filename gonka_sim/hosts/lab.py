"""A lab: one or more sandbox hosts plus the runner-side world (seed, hub, package index) and the
node configs that point a deploy at them. Used by the end-to-end tests, the benchmark and
`fab demo`, which all run the deployer exactly as a user would: `fab ... --node nodes/<x>.conf`.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from .host import SandboxHost

PROJECT_ROOT = Path(__file__).resolve().parents[2]
SANDBOX_MODEL = "sandbox/tiny-model"
# a well-formed but unreachable peer: only written into config.toml, never dialled
SANDBOX_PEER = "0123456789abcdef0123456789abcdef01234567@192.0.2.1:26656"


def random_pubkey() -> str:
    """A compressed secp256k1-shaped public key (02 prefix + 32 random bytes), base64."""
    return base64.b64encode(b"\x02" + secrets.token_bytes(32)).decode()


def random_password() -> str:
    """A strong keyring password with characters that need quoting in bash."""
    return f"sbx {secrets.token_urlsafe(12)} $'!\"`"


def dotenv_quote(value: str) -> str:
    """A value as a single-quoted dotenv string (\\ and ' escaped)."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


PROJECT_FABFILE = '''"""A gonka-deploy project: `fab` finds the tasks here; node configs in nodes/, artefacts in
nodes/<KEY_NAME>/, logs in logs/ (written by the sandbox lab)."""
from gonka_tasks.tasks import build_namespace

ns = build_namespace()
'''


def make_project(workdir: Path) -> Path:
    """Make `workdir` a project of its own, as an operator's copy of the repo is: its fabfile names
    the tasks, so its nodes/ and logs/ (not the repository's) receive what the tasks write."""
    workdir.mkdir(parents=True, exist_ok=True)
    fabfile = workdir / "fabfile.py"
    if not fabfile.exists():
        fabfile.write_text(PROJECT_FABFILE)
    return workdir


def fab_command(project: Path = PROJECT_ROOT) -> list[str]:
    """`fab` of this Python environment, run on the project at `project` (`fab -r`)."""
    exe = Path(sys.executable).parent / "fab"
    return [str(exe) if exe.exists() else (shutil.which("fab") or "fab"), "-r", str(project)]


@dataclass
class Lab:
    """Where the node configs live and what the sandbox world's servers are."""

    workdir: Path
    seed: object
    hub: object
    pypi: object | None = None
    prometheus_repo: str = ""
    written: dict[str, Path] = field(default_factory=dict)

    @property
    def nodes(self) -> Path:
        return self.workdir / "nodes"

    def node_values(self, host: SandboxHost, key_name: str, **overrides: str) -> dict[str, str]:
        seed = self.seed.url_for(host.runner_ip)
        values = {
            "SERVER_IP": host.ip,
            "SSH_USER": "root",
            "SSH_KEY": str(host.key),
            "KEY_NAME": key_name,
            "KEYRING_PASSWORD": random_password(),
            "ACCOUNT_PUBKEY": random_pubkey(),
            "COLD_KEY_NAME": "sandbox-cold",
            "ALLOW_PRIVATE_ADDRESSES": "true",
            "SEED_API_URL": seed,
            "SEED_NODE_RPC_URL": f"{seed}/chain-rpc/",
            "RPC_SERVER_URL_1": f"{seed}/chain-rpc/",
            "RPC_SERVER_URL_2": f"{seed}/chain-rpc/",
            "SEED_NODE_P2P_URL": f"tcp://{host.runner_ip}:5000",
            "MODEL": SANDBOX_MODEL,
            "HF_ENDPOINT": self.hub.url_for(host.runner_ip),
            "PERSISTENT_PEERS": SANDBOX_PEER,
            "PROMETHEUS_REPO": self.prometheus_repo,
            "RPC_TIMEOUT": "60",
            "REGISTRATION_TIMEOUT": "20",
            "LAUNCH_TIMEOUT": "60",
            # the sandbox's data disk is a 2 GiB loop device: the chain's share of it
            "CHAIN_DATA_GB": "0.5",
        }
        if self.pypi is not None:
            values["PIP_INDEX_URL"] = self.pypi.index_url_for(host.runner_ip)
        values.update(overrides)
        return values

    def write_node(self, host: SandboxHost, name: str, **overrides: str) -> Path:
        """nodes/<name>.conf for this host (0600), with the host key pinned as the deployer would pin it."""
        values = self.node_values(host, name, **overrides)
        self.nodes.mkdir(parents=True, exist_ok=True)
        path = self.nodes / f"{name}.conf"
        text = "# sandbox node written by gonka-deploy's lab\n" + "".join(
            f"{k}={dotenv_quote(v)}\n" for k, v in values.items() if v is not None)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(text)
        if values.get("HF_ENDPOINT"):
            # the sandbox's stand-in for huggingface.co: where the simulated ML node's huggingface_hub
            # goes (a real ML node reaches the real hub; nothing of the deployer reads this file)
            host.write_file("/etc/gonka-sim/world.json", json.dumps({"hf_endpoint": values["HF_ENDPOINT"]}))
        art = self.nodes / values["KEY_NAME"]
        art.mkdir(parents=True, exist_ok=True, mode=0o700)
        shutil.copyfile(host.known_hosts, art / "known_hosts")
        self.written[name] = path
        return path

    def values(self, name: str) -> dict[str, str]:
        from dotenv import dotenv_values  # noqa: PLC0415

        return {k: v or "" for k, v in dotenv_values(self.written[name], interpolate=False).items()}

    def fab(self, *args: str, timeout: float = 900, env: dict | None = None,
            stdin=subprocess.DEVNULL) -> subprocess.CompletedProcess:
        """Run `fab` in the lab's workdir as a user would (a real subprocess)."""
        full_env = {**os.environ, "NO_COLOR": "1", **(env or {})}
        return subprocess.run([*fab_command(make_project(self.workdir)), *args], cwd=self.workdir, capture_output=True, text=True,
                              timeout=timeout, env=full_env, stdin=stdin)
