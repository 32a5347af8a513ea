"""What a deploy writes locally (node configs with secrets, keys, logs) can never be committed by accident."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

IGNORED = [
    "nodes/node1/warm_key.txt",
    "nodes/node1/config.env",
    "nodes/node1/backup/20260101-000000/priv_validator_key.json",
    "nodes/anything-else/x",
    "nodes/foo.conf",
    "logs/x.log",
    "logs/node1_20260101-000000.log",
]
KEPT = ["nodes/example.conf", "nodes/example-mlnode.conf"]


def check_ignore(paths: list[str]) -> set[str]:
    """The subset of `paths` git would ignore (`git check-ignore`, no index: the rules alone)."""
    r = subprocess.run(["git", "check-ignore", "--no-index", "--stdin"], cwd=ROOT, input="\n".join(paths) + "\n",
                       capture_output=True, text=True, timeout=30)
    if r.returncode not in (0, 1):  # 1 = none ignored
        pytest.fail(f"git check-ignore failed: {r.stderr.strip()}")
    return set(r.stdout.split())


@pytest.fixture(scope="module", autouse=True)
def git_checkout():
    if not shutil.which("git"):
        pytest.skip("git not installed")
    r = subprocess.run(["git", "rev-parse", "--show-toplevel"], cwd=ROOT, capture_output=True, text=True, timeout=30)
    if r.returncode or Path(r.stdout.strip()).resolve() != ROOT:
        pytest.skip("not a git checkout of the project")


def test_node_artefacts_configs_and_logs_are_ignored():
    ignored = check_ignore(IGNORED)
    assert ignored == set(IGNORED), f"not ignored: {sorted(set(IGNORED) - ignored)}"


def test_example_config_is_not_ignored():
    assert check_ignore(KEPT) == set()
