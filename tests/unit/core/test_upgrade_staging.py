"""Upgrade pre-staging, the pure parts (gonka_tasks/upgrade.py) and the server script's failure
messages (gonka_tasks/phases/upgrade.py); the server side runs in tests/e2e/test_stage_upgrade.py."""

from __future__ import annotations

import subprocess
from types import SimpleNamespace

import pytest

from gonka_sim.network import releases
from gonka_tasks.core import upgrade as up
from gonka_tasks.errors import DeployError
from gonka_tasks.operations import stage_upgrade as phase

A, B, C, D = "a" * 64, "b" * 64, "c" * 64, "d" * 64


@pytest.mark.parametrize("v", ["v0.2.14", "v0.2.15-post5", "v0.2.10-post7", "v1.0.0-rc.1"])
def test_upgrade_names_of_upstream_are_accepted(v):
    assert up.validate_version(v) == v


@pytest.mark.parametrize("v", ["", None, "0.2.14", "v0.2", "v0.2.14;rm -rf /", "v0.2.14/../../x", "../v0.2.14",
                               "current", "genesis", "v0.2.14 ", "v0.2.14\n", "$(id)", "v0.2.14-", "v0.2.14-a/b"])
def test_bad_versions_are_refused_naming_the_option(v):
    with pytest.raises(DeployError, match="--version"):
        up.validate_version(v)


def test_asset_urls_are_the_ones_the_docs_download():
    assert (up.asset_url(up.RELEASES_URL, "v0.2.14", "inferenced-amd64.zip") ==
            "https://github.com/gonka-ai/gonka/releases/download/release%2Fv0.2.14/inferenced-amd64.zip")


def test_checksums_in_the_announcements_forms_are_read():
    text = (f"# v0.2.14\n{A} decentralized-api.zip\n{B}  inferenced-amd64.zip\n\n"
            f"{C} .dapi/cosmovisor/upgrades/v0.2.14/bin/decentralized-api\n"
            f"{D.upper()} *.inference/cosmovisor/upgrades/v0.2.14/bin/inferenced\n")
    s = up.parse_checksums(text, "v0.2.14")
    assert s.zips == {"api": A, "chain": B} and s.bins == {"api": C, "chain": D}


def test_upstream_build_output_order_is_read_too():
    s = up.parse_checksums(f"inferenced-amd64.zip {A}\ndecentralized-api-amd64.zip {B}\n", "v0.2.14")
    assert s.zips == {"chain": A, "api": B} and s.bins == {}


@pytest.mark.parametrize("text, problem", [
    (f"{A}  inferenced-amd64.zip\n", "no sum for decentralized-api-amd64.zip"),
    (f"{A[:-1]}  inferenced-amd64.zip\n{B}  decentralized-api-amd64.zip\n", "line 1: not"),
    (f"{A}  inferenced-amd64.zip\n{B}  decentralized-api-amd64.zip\n{C}  ../../etc/passwd\n", "unknown file"),
    (f"{A}  inferenced-amd64.zip\n{B}  inferenced-amd64.zip\n{C}  decentralized-api-amd64.zip\n", "second, different"),
    (f"{A}  inferenced-amd64.zip\n{B}  decentralized-api-amd64.zip\n"
     f"{C}  .inference/cosmovisor/upgrades/v0.2.13/bin/inferenced\n", "unknown file"),
    (f"{A}  inferenced-amd64.zip; id\n{B}  decentralized-api-amd64.zip\n", "line 1: not"),
    (f"{A}  inferenced-amd64.zip\n{B}  decentralized-api-amd64.zip\n<html>\n", "line 3: not"),
])
def test_checksums_are_parsed_strictly(text, problem):
    with pytest.raises(DeployError, match=problem):
        up.parse_checksums(text, "v0.2.14", "sums.txt")


def test_the_simulated_release_publishes_what_the_parser_reads():
    s = up.parse_checksums(releases.checksums("v0.2.14"), "v0.2.14")
    assert set(s.zips) == set(s.bins) == {"chain", "api"}
    assert s.zips["chain"] == releases.sha256(releases.make_zip("v0.2.14", "inferenced-amd64.zip"))


def test_plan_places_each_binary_in_its_cosmovisor_upgrades_dir():
    sums = up.Checksums(zips={"chain": A, "api": B}, bins={"chain": C})
    chain, api = up.plan("v0.2.14", up.RELEASES_URL, "/mnt/ssd/gonka/deploy/join", sums)
    assert chain.target == "/mnt/ssd/gonka/deploy/join/.inference/cosmovisor/upgrades/v0.2.14"
    assert api.target == "/mnt/ssd/gonka/deploy/join/.dapi/cosmovisor/upgrades/v0.2.14"
    assert (chain.bin_rel, api.bin_rel) == ("bin/inferenced", "bin/decentralized-api")
    assert (chain.zip_sha256, chain.bin_sha256, api.bin_sha256) == (A, C, None)
    assert api.url.endswith("/release%2Fv0.2.14/decentralized-api-amd64.zip")


def test_backup_need_is_the_data_dir_plus_a_margin():
    assert up.backup_need(0) == up.MARGIN_MIN
    assert up.backup_need(150 * 10**9) == 165 * 10**9


def test_a_rerun_skips_only_what_it_can_verify():
    item = up.plan("v0.2.14", up.RELEASES_URL, "/j", up.Checksums({"chain": A, "api": B}, {}))[0]
    record = up.manifest_text(item, {"bin/inferenced": C})
    assert record.splitlines()[0] == f"{A}  inferenced-amd64.zip"
    assert up.staged_verdict(item, False, "", False, None) == "absent"
    assert up.staged_verdict(item, True, record.strip(), True, None) == "staged"
    assert up.staged_verdict(item, True, record.strip(), False, None) == "foreign"  # a file changed since
    other = up.manifest_text(item, {}).replace(A, D)
    assert up.staged_verdict(item, True, other.strip(), True, None) == "foreign"  # other sums asked now
    assert up.staged_verdict(item, True, "", False, True) == "staged"  # by hand, binary sum matches
    assert up.staged_verdict(item, True, "", False, None) == "foreign"
    assert up.staged_verdict(item, True, record.strip(), True, False) == "foreign"


def _run():
    cfg = SimpleNamespace(join_dir="/mnt/ssd/gonka/deploy/join", state_dir="/mnt/ssd/.gonka-deploy")
    return SimpleNamespace(cfg=cfg)


def test_the_server_script_is_valid_bash_and_quotes_everything():
    items = up.plan("v0.2.14", up.RELEASES_URL, "/mnt/ssd/gonka/deploy/join",
                    up.Checksums({"chain": A, "api": B}, {"chain": C}))
    script = phase.stage_script(_run(), "v0.2.14", items)
    assert subprocess.run(["bash", "-n"], input=script, text=True).returncode == 0
    assert "sha256sum --check --strict" in script and "mv -T" in script
    assert "current" not in script and "genesis" not in script


def test_failures_name_the_file_the_sums_and_the_space():
    items = up.plan("v0.2.14", up.RELEASES_URL, "/j", up.Checksums({"chain": A, "api": B}, {}))
    e = phase.explain_failure(phase.EXIT_MISMATCH, f"inferenced-amd64.zip: FAILED\nGD_MISMATCH inferenced-amd64.zip {A} {D}\n",
                              items)
    assert f"inferenced-amd64.zip: expected {A}, got {D}" in str(e) and "nothing was placed" in str(e)
    e = phase.explain_failure(phase.EXIT_SPACE, "GD_SPACE 500000000 1173741824 100000000\n", items)
    assert "500.0 MB free, 1.2 GB needed (.inference/data is 100.0 MB" in str(e)
    e = phase.explain_failure(phase.EXIT_FETCH, "curl: (22) 404\nGD_FETCH decentralized-api-amd64.zip\n", items)
    assert "release%2Fv0.2.14/decentralized-api-amd64.zip" in str(e)
