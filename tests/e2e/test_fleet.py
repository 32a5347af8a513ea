"""Fleets: several nodes in parallel, one connection and log per node, failures isolated, a summary."""

from __future__ import annotations

import json
import re

import pytest

pytestmark = pytest.mark.sandbox


@pytest.mark.slow
def test_fleet_of_four_with_one_failing_disk(lab, sandbox_host, sandbox_host_factory):
    hosts = [sandbox_host, *sandbox_host_factory(3)]
    for i, h in enumerate(hosts):
        lab.write_node(h, f"fleet-{i}")
    # node 2's disk holds a filesystem this deploy did not create: it must stop, untouched
    bad = hosts[2]
    bad.run("mkfs.ext4 -q -L precious /dev/vdc && mkdir -p /data && mount /dev/vdc /data && "
            "echo keep > /data/marker && umount /data")
    before = bad.run("dd if=/dev/vdc bs=1M count=1 2>/dev/null | sha256sum").stdout

    r = lab.fab("deploy", "--nodes", str(lab.nodes / "fleet-*.conf"), "--yes", "--parallel", "4", timeout=1200)
    assert r.returncode == 1, r.stdout[-3000:]
    out = r.stdout

    # console lines carry the node name; the confirmation was not asked per node (no terminal, --yes)
    for i in range(4):
        assert re.search(rf"^\[[^]]+\] fleet-{i} +\| \[", out, re.M), f"no prefixed lines for fleet-{i}"
    # the summary names every node, the failure and its reason
    summary = out[out.index("fleet summary"):]
    assert "3/4 nodes ok" in summary
    rows = {ln.split()[0]: ln for ln in summary.splitlines()[3:] if ln.strip()}
    assert "FAILED" in rows["fleet-2"] and "refusing to format" in rows["fleet-2"]
    assert "did not create" in r.stdout
    for i in (0, 1, 3):
        assert rows[f"fleet-{i}"].split()[1:3] == ["ok", "1,2,3,4,5,6"]

    # one log file per node; the others are fully deployed, the failing disk untouched
    for i in range(4):
        assert len(list((lab.workdir / "logs").glob(f"fleet-{i}_*.log"))) == 1
    for i in (0, 1, 3):
        run = json.loads((lab.nodes / f"fleet-{i}" / "last_run.json").read_text())
        assert run["ok"]
    assert bad.run("dd if=/dev/vdc bs=1M count=1 2>/dev/null | sha256sum").stdout == before
    assert bad.run("findmnt /mnt/ssd", check=False).returncode != 0
