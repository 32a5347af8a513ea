"""A full deploy onto a sandbox host, exactly as a user runs it, and a rerun that changes nothing."""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.sandbox


def last_run(lab, key):
    return json.loads((lab.nodes / key / "last_run.json").read_text())


def test_full_deploy_then_noop_rerun(lab, sandbox_host, world):
    node = lab.write_node(sandbox_host, "sbx-a")
    r = lab.fab("deploy", "--node", str(node), "--yes")
    assert r.returncode == 0, r.stdout[-4000:]
    r2 = lab.fab("deploy", "--node", str(node), "--yes")
    assert r2.returncode == 0, r2.stdout[-4000:]
    run = last_run(lab, "sbx-a")
    print(json.dumps([(c["kind"], c["what"], c["seconds"]) for c in run["commands"]], indent=0))
    print([(s["name"], s["result"]) for s in run["steps"]])
    print(run["seconds"])
