"""The server-side download job (gonka_tasks/server_scripts/hf_job.py) on a full data disk: it
refuses to start what cannot fit, and a disk that fills is final, never retried."""

from __future__ import annotations

import argparse
import errno
import json
import sys
import types

import pytest

from gonka_tasks.server_scripts import hf_job


def test_a_full_disk_is_final_other_io_errors_are_retried():
    full = OSError(errno.ENOSPC, "No space left on device")
    wrapped = RuntimeError("download failed")
    wrapped.__cause__ = full
    assert not hf_job.transient(full)
    assert not hf_job.transient(wrapped)
    assert not hf_job.transient(hf_job.DiskFull("data disk full"))
    assert hf_job.transient(ConnectionResetError())
    assert hf_job.transient(OSError(errno.EIO, "I/O error"))


@pytest.fixture
def job(tmp_path, monkeypatch):
    """hf_job.download with the hub answered locally; hf_hub_download records its calls."""
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    calls = []
    fake = types.ModuleType("huggingface_hub")
    fake.hf_hub_download = lambda *a, **kw: calls.append(a)
    monkeypatch.setitem(sys.modules, "huggingface_hub", fake)
    args = argparse.Namespace(repo="org/model", revision="main", state_dir=str(tmp_path / "state"))
    return args, calls


def test_a_model_bigger_than_the_free_space_stops_at_once_with_the_numbers(job, monkeypatch, tmp_path):
    args, calls = job
    monkeypatch.setattr(hf_job, "remote_files", lambda repo, rev, hashes=None: ("a" * 40, {"model-00001.safetensors": 1 << 60}))
    assert hf_job.download(args) == 1
    state = json.loads((tmp_path / "state" / "state.json").read_text())
    assert state["state"] == "failed" and state["error"].startswith("data disk full: the model needs ")
    assert "are free on" in state["error"] and "keeping" in state["error"]
    assert calls == []  # nothing fetched, nothing retried


def test_a_disk_that_fills_during_the_download_is_not_retried(job, monkeypatch, tmp_path):
    args, calls = job
    monkeypatch.setattr(hf_job, "remote_files", lambda repo, rev, hashes=None: ("a" * 40, {"small.json": 10}))

    def full(*a, **kw):
        calls.append(a)
        raise OSError(errno.ENOSPC, "No space left on device")
    sys.modules["huggingface_hub"].hf_hub_download = full
    assert hf_job.download(args) == 1
    assert len(calls) == 1
    assert json.loads((tmp_path / "state" / "state.json").read_text())["error"].startswith("data disk full")


def test_a_download_by_name_writes_the_ref_once_the_snapshot_is_whole(tmp_path, monkeypatch):
    """The ML node looks the model up offline by name (main): the job writes refs/main, last; `check`
    counts a cache without it as incomplete; a download by commit sha writes no ref."""
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    sha = "a" * 40
    snap = hf_job.hub_dir("o/m") / "snapshots" / sha
    files = {"config.json": 3, "model.safetensors": 5}

    def fetch(repo, name, revision):
        assert revision == sha and not (hf_job.hub_dir(repo) / "refs" / "main").exists()
        (snap / name).parent.mkdir(parents=True, exist_ok=True)
        (snap / name).write_bytes(b"x" * files[name])

    fake = types.ModuleType("huggingface_hub")
    fake.hf_hub_download = fetch
    monkeypatch.setitem(sys.modules, "huggingface_hub", fake)
    monkeypatch.setattr(hf_job, "remote_files", lambda repo, rev, hashes=None: (sha, files))
    args = argparse.Namespace(repo="o/m", revision="main", state_dir=str(tmp_path / "state"))
    assert hf_job.download(args) == 0
    assert (hf_job.hub_dir("o/m") / "refs" / "main").read_text() == sha
    assert hf_job.compare("o/m", sha, files, "main")["complete"]
    (hf_job.hub_dir("o/m") / "refs" / "main").unlink()
    status = hf_job.compare("o/m", sha, files, "main")
    assert not status["complete"] and status["ref_missing"] and not status["missing"]
    assert hf_job.compare("o/m", sha, files, sha)["complete"]  # by sha: no ref to write


def test_files_are_fetched_in_parallel_and_a_final_failure_starts_nothing_new(job, monkeypatch, tmp_path):
    """GONKA_DL_WORKERS files at once (the biggest first); after a disk-full error no new file starts."""
    import threading  # noqa: PLC0415
    import time  # noqa: PLC0415

    args, calls = job
    files = {f"model-{i:05d}-of-00016.safetensors": 1000 + i for i in range(16)}
    monkeypatch.setattr(hf_job, "remote_files", lambda repo, rev, hashes=None: ("a" * 40, files))
    monkeypatch.setattr(hf_job, "WORKERS", 8)
    monkeypatch.setattr(hf_job, "compare", lambda *a, **kw: {"missing": sorted(files), "bad": [], "complete": True})
    running, peak, lock = [0], [0], threading.Lock()

    def slow(repo, name, **kw):
        with lock:
            calls.append(name)
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        time.sleep(0.2)
        with lock:
            running[0] -= 1
    sys.modules["huggingface_hub"].hf_hub_download = slow
    t0 = time.monotonic()
    assert hf_job.download(args) == 0
    assert time.monotonic() - t0 < 1.5  # 16 x 0.2 s one after another would be 3.2 s
    assert peak[0] == 8 and sorted(calls) == sorted(files)
    assert set(calls[:8]) == set(sorted(files, key=files.get)[-8:])  # the biggest first

    calls.clear()

    def full(repo, name, **kw):
        calls.append(name)
        time.sleep(0.05)
        raise OSError(errno.ENOSPC, "No space left on device")
    sys.modules["huggingface_hub"].hf_hub_download = full
    assert hf_job.download(args) == 1
    assert len(calls) <= 8  # those already running; none started after
    assert json.loads((tmp_path / "state" / "state.json").read_text())["error"].startswith("data disk full")


def test_a_file_whose_sha256_is_not_the_hubs_is_fetched_again(tmp_path, monkeypatch):
    """A body corrupted on the way has the right size: only the hub's sha256 catches it. The file is
    dropped and fetched again; the state file keeps the job's start time."""
    import hashlib  # noqa: PLC0415

    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setattr(hf_job, "MAX_WAIT_S", 0.01)
    sha = "b" * 40
    good = b"weights!" * 100
    files = {"config.json": 3, "model.safetensors": len(good)}
    snap = hf_job.hub_dir("o/m") / "snapshots" / sha
    bodies = {"model.safetensors": [b"X" * len(good), good], "config.json": [b"{ }"]}
    fetched = []

    def fetch(repo, name, revision):
        fetched.append(name)
        (snap / name).parent.mkdir(parents=True, exist_ok=True)
        (snap / name).write_bytes(bodies[name].pop(0))

    def listing(repo, rev, hashes=None):
        hashes["model.safetensors"] = hashlib.sha256(good).hexdigest()
        return sha, files

    fake = types.ModuleType("huggingface_hub")
    fake.hf_hub_download = fetch
    monkeypatch.setitem(sys.modules, "huggingface_hub", fake)
    monkeypatch.setattr(hf_job, "remote_files", listing)
    args = argparse.Namespace(repo="o/m", revision="main", state_dir=str(tmp_path / "state"))
    assert hf_job.download(args) == 0
    assert sorted(fetched) == ["config.json", "model.safetensors", "model.safetensors"]
    assert (snap / "model.safetensors").read_bytes() == good
    state = json.loads((tmp_path / "state" / "state.json").read_text())
    assert state["state"] == "complete" and state["started"] <= state["updated"]
