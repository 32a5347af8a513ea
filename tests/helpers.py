"""Small builders shared by the tests: valid node configs and keys."""

from __future__ import annotations

import base64
import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures"
PASSWORD = "Sup3r 'secret' $HOME `x` \\ !pass"


def output(name: str) -> str:
    """A command output the parsers are tested on (tests/fixtures/outputs/): real outputs, or outputs in
    the real format; the parser tests and the fuzz tests' seeds both read them."""
    return (FIXTURES / "outputs" / name).read_text()


def pubkey_b64(seed: str = "cold") -> str:
    """A well-formed compressed secp256k1 public key (02 prefix + 32 bytes), base64."""
    return base64.b64encode(b"\x02" + hashlib.sha256(seed.encode()).digest()).decode()


def ssh_public_key(tmp: Path, name: str = "admin") -> str:
    """A real OpenSSH ed25519 public key line made with ssh-keygen."""
    key = tmp / f"{name}_ed25519"
    if not key.exists():
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", str(key)], check=True)
    return (tmp / f"{name}_ed25519.pub").read_text().strip()


def conf_text(**overrides: str) -> str:
    """A valid node config; keyword arguments replace or add keys (value None drops the key)."""
    values = {
        "SERVER_IP": "198.51.100.7",
        "KEY_NAME": "node-a",
        "KEYRING_PASSWORD": PASSWORD,
        "ACCOUNT_PUBKEY": pubkey_b64(),
        "ALLOW_PRIVATE_ADDRESSES": "true",
    }
    values.update(overrides)
    lines = []
    for k, v in values.items():
        if v is None:
            continue
        if any(ch in v for ch in " '\"$`\\!#\n"):
            v = "'" + v.replace("\\", "\\\\").replace("'", "\\'") + "'"
        lines.append(f"{k}={v}")
    return "\n".join(lines) + "\n"


def write_node(workdir: Path, text: str, name: str = "node-a") -> Path:
    nodes = workdir / "nodes"
    nodes.mkdir(parents=True, exist_ok=True)
    path = nodes / f"{name}.conf"
    path.write_text(text)
    return path


def fab_bin() -> str:
    exe = Path(sys.executable).parent / "fab"
    return str(exe) if exe.exists() else shutil.which("fab") or "fab"


def fab(*args: str, cwd: Path = ROOT, stdin=subprocess.DEVNULL, timeout: int = 60) -> subprocess.CompletedProcess:
    """Run fab as an operator would in a project dir of our choice (`cwd`, made a project with its own
    fabfile, so what the tasks write lands in its nodes/ and logs/, not the repository's)."""
    from gonka_sim.hosts.lab import make_project  # noqa: PLC0415

    project = cwd if cwd == ROOT else make_project(cwd)
    return subprocess.run([fab_bin(), "-r", str(project), *args], cwd=cwd, capture_output=True, text=True,
                          stdin=stdin, timeout=timeout, env={**os.environ, "NO_COLOR": "1"})
