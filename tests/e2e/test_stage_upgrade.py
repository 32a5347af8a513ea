"""Issue 16, item 4, on a deployed sandbox host: `fab stage-upgrade` places the chain and API
binaries of a release in Cosmovisor's upgrades/<version>/ dirs, checked with `sha256sum --check`,
never touching the running binaries; a wrong checksum or too little space refuses and leaves
nothing in place; a rerun skips."""

from __future__ import annotations

import pytest

from gonka_sim.network import releases
from tests.e2e.test_security import output

pytestmark = pytest.mark.sandbox

JOIN = "/mnt/ssd/gonka/deploy/join"
V = "v0.2.14"
HOMES = {"inferenced": f"{JOIN}/.inference/cosmovisor", "decentralized-api": f"{JOIN}/.dapi/cosmovisor"}


def sums_of(host, paths: str) -> str:
    return host.run(f"sha256sum {paths}", timeout=60).stdout


def leftovers(host) -> str:
    """Anything of version V (or a staging dir) under either Cosmovisor dir."""
    return host.run(f"find {HOMES['inferenced']} {HOMES['decentralized-api']} /mnt/ssd/.gonka-deploy "
                    f"\\( -name '{V}*' -o -name '.gd-stage*' \\) -print", timeout=60).stdout.strip()


@pytest.mark.slow
def test_stage_upgrade_good_wrong_rerun_and_space(lab, sandbox_host, tmp_path):
    host = sandbox_host
    node = lab.write_node(host, "stage-up")
    r = lab.fab("deploy", "--node", str(node), "--yes")
    assert r.returncode == 0, output(r)[-4000:]
    running = f"{HOMES['inferenced']}/genesis/bin/inferenced {HOMES['decentralized-api']}/genesis/bin/decentralized-api"
    before = sums_of(host, running)
    links = host.run(f"readlink {HOMES['inferenced']}/current {HOMES['decentralized-api']}/current").stdout
    assert "/root/.inference/cosmovisor/genesis" in links

    rel = releases.serve_for(host)
    try:
        good = tmp_path / "good.sha256"
        good.write_text(rel.publish(V))
        stage = ("stage-upgrade", "--node", str(node), "--version", V, "--yes")

        # a corrupted asset: refused, naming the file and both sums; nothing in place
        rel.corrupt(V, "decentralized-api-amd64.zip")
        r = lab.fab(*stage, "--checksums", str(good))
        assert r.returncode == 1, output(r)[-3000:]
        want = releases.sha256(releases.make_zip(V, "decentralized-api-amd64.zip"))
        got = releases.sha256(rel.asset(V, "decentralized-api-amd64.zip"))
        assert f"checksum mismatch for decentralized-api-amd64.zip: expected {want}, got {got}" in output(r)
        assert leftovers(host) == ""

        # a wrong published sum (the asset is fine): the same
        rel.corrupted.clear()
        wrong = tmp_path / "wrong.sha256"
        wrong.write_text(good.read_text().replace(want, "0" * 64))
        r = lab.fab(*stage, "--checksums", str(wrong))
        assert r.returncode == 1 and f"expected {'0' * 64}, got {want}" in output(r), output(r)[-3000:]
        assert leftovers(host) == ""

        # too little space for Cosmovisor's backup: refused with the numbers, nothing in place
        free = int(host.run(f"df -B1 --output=avail {JOIN}/.inference | tail -n 1").stdout.strip())
        host.run(f"fallocate -l {max(free - 300 * 2**20, 1)} /mnt/ssd/filler", timeout=60)
        r = lab.fab(*stage, "--checksums", str(good))
        host.run("rm -f /mnt/ssd/filler")
        assert r.returncode == 1, output(r)[-3000:]
        assert "not enough free space on the data disk for Cosmovisor's backup" in output(r)
        assert "free" in output(r) and "needed (.inference/data is" in output(r)
        assert leftovers(host) == ""

        # the good sums: both binaries in place, verified, 0755 root; the running ones untouched
        r = lab.fab(*stage, "--checksums", str(good))
        assert r.returncode == 0, output(r)[-4000:]
        for name, home in HOMES.items():
            st = host.run(f"stat -c '%a %u:%g' {home}/upgrades/{V}/bin/{name} {home}/upgrades/{V}").stdout.split("\n")
            assert st[:2] == ["755 0:0", "755 0:0"], (name, st)
        check = host.run(f"cd {JOIN} && sed -n '3,4p' /dev/stdin | sha256sum --check --strict",
                         input=good.read_text(), check=False)
        assert check.returncode == 0 and check.stdout.count(": OK") == 2, check.stdout + check.stderr
        assert sums_of(host, running) == before
        assert host.run(f"readlink {HOMES['inferenced']}/current {HOMES['decentralized-api']}/current").stdout == links
        assert not host.run(f"ls -a {HOMES['inferenced']} {HOMES['decentralized-api']} | grep gd-stage",
                            check=False).stdout
        assert sum(1 for h in rel.hits if h[2] == 200 and h[0] == "release-assets.githubusercontent.com") >= 2

        # rerun: verified and skipped, nothing downloaded
        hits = len(rel.hits)
        r = lab.fab(*stage, "--checksums", str(good))
        assert r.returncode == 0 and "SKIP" in output(r) and "staged and verified" in output(r), output(r)[-3000:]
        assert len(rel.hits) == hits

        # the sums of another build for the same name: refused, the staged dirs left as they are
        r = lab.fab(*stage, "--checksums", str(wrong))
        assert r.returncode == 1 and "does not match the given sums" in output(r), output(r)[-3000:]
        assert host.run(f"test -f {HOMES['inferenced']}/upgrades/{V}/bin/inferenced", check=False).returncode == 0
    finally:
        rel.close()
