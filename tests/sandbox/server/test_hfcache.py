"""The simulated ML node's cache lookups (gonka_sim/server/hfcache.py) and the api's args merge."""

from __future__ import annotations

from gonka_sim.server import hfcache
from gonka_sim.server.dapi import merge_model_args
from gonka_sim.server.mlnode import arg_value

SHA = "b" * 40


def test_offline_lookup_by_name_needs_the_ref(tmp_path):
    snap = hfcache.repo_dir(tmp_path, "o/m") / "snapshots" / SHA
    snap.mkdir(parents=True)
    (snap / "config.json").write_text("{}")
    # by commit: found; by name (None = main): only through refs/main
    assert hfcache.offline_file(tmp_path, "o/m", "config.json", SHA) == snap / "config.json"
    assert hfcache.offline_file(tmp_path, "o/m", "config.json", None) is None
    assert hfcache.revisions(tmp_path, "o/m") == [SHA]  # what makes the status PARTIAL
    ref = hfcache.repo_dir(tmp_path, "o/m") / "refs" / "main"
    ref.parent.mkdir()
    ref.write_text(SHA)
    assert hfcache.offline_file(tmp_path, "o/m", "config.json", None) == snap / "config.json"
    assert hfcache.offline_file(tmp_path, "o/m", "missing.json", "main") is None


def test_merge_and_runner_arg_reading_follow_upstream():
    assert merge_model_args(["--max-model-len", "1000"], ["--max-model-len", "5", "--tensor-parallel-size", "2"]) == [
        "--max-model-len", "1000", "--tensor-parallel-size", "2"]
    assert arg_value(["--tensor-parallel-size", "4"], "--tensor-parallel-size", 1) == 4
    assert arg_value(["--tensor-parallel-size=4"], "--tensor-parallel-size", 1) == 1  # runner.py reads tokens only
