"""Phase 2's model download on sandbox hosts: a server-side job that outlives the SSH connection
and the deployer process, survives a hub that cuts connections, and repairs a damaged cache
without fetching the good files again. Checked as an operator would: the job's pid and /proc on
the server, file sizes in the HF cache, and the hub's byte counters.

The tests share one prepared host (disk mounted, huggingface_hub installed: the pipx install is
the slow part) and each downloads its own model repo, so their caches do not meet.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import time

import pytest

from gonka_sim.hosts.host import SandboxHost
from gonka_sim.hosts.lab import Lab, fab_command, make_project
from gonka_sim.network import repos

pytestmark = pytest.mark.sandbox

KEY = "sbx-model"
MP = "/mnt/ssd"
JOB_DIR = f"{MP}/hf/.gonka-download"
MIB = 1 << 20


# ----------------------------------------------------------------------------- helpers
def last_run(lab) -> dict:
    return json.loads((lab.nodes / KEY / "last_run.json").read_text())


def fab(lab, *args: str) -> str:
    r = lab.fab(*args)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out[-4000:]
    return out


def model_dir(repo_id: str) -> str:
    return f"{MP}/hf/hub/models--{repo_id.replace('/', '--')}"


def cached_sizes(host, repo) -> dict[str, int]:
    """{file: size} of the revision's snapshot in the host's HF cache (symlinks followed)."""
    snap = f"{model_dir(repo.repo_id)}/snapshots/{repo.commit}"
    r = host.run(f"cd {snap} && find . -type l -o -type f | sed 's|^./||' | xargs -r stat -L -c '%n %s'",
                 check=False)
    return {name: int(size) for name, size in (ln.rsplit(" ", 1) for ln in r.stdout.splitlines())}


def hub_sizes(repo) -> dict[str, int]:
    return {path: e.size for path, e in repo.files.items()}


def job_pid(host) -> int:
    return int(host.read_text(f"{JOB_DIR}/pid").strip())


def job_alive(host, pid: int) -> bool:
    """The pid runs on the server and is the download job (not a recycled pid)."""
    r = host.run(f"tr '\\0' ' ' < /proc/{pid}/cmdline", check=False)
    return r.returncode == 0 and "hf_job.py download" in r.stdout


def job_state(host) -> dict:
    r = host.run(f"cat {JOB_DIR}/state.json", check=False)
    try:
        return json.loads(r.stdout) if r.returncode == 0 else {}
    except ValueError:
        return {}


def job_log_size(host) -> int:
    return int(host.run(f"stat -c %s {JOB_DIR}/job.log 2>/dev/null || echo 0").stdout.strip())


def wait_for(what: str, cond, timeout: float = 60, interval: float = 0.2):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = cond()
        if got:
            return got
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def started_jobs(run: dict) -> int:
    return sum(1 for c in run["commands"] if c["kind"] == "run" and "setsid" in c["command"])


# ---------------------------------------------------------------------------- fixtures
@dataclasses.dataclass
class Prepared:
    lab: Lab
    host: SandboxHost

    def node(self, model: str) -> str:
        """The node config, downloading `model` (rewritten for each test)."""
        return str(self.lab.write_node(self.host, KEY, MODEL=model))


@pytest.fixture(scope="module")
def prepared(sandbox_host_session, seed_server, hub_server, pypi_index, tmp_path_factory):
    """The worker's host, reset once, through prepare-server and one plain download-model."""
    host = sandbox_host_session
    host.reset()  # an earlier module may have used it
    tmp = tmp_path_factory.mktemp("download-model")
    with pytest.MonkeyPatch.context() as mp:
        (tmp / "home").mkdir()
        mp.setenv("HOME", str(tmp / "home"))  # the runner's ~/.ssh plays no part
        hub_server.reset()
        lab = Lab(workdir=tmp / "work", seed=seed_server, hub=hub_server, pypi=pypi_index,
                  prometheus_repo=repos.UPSTREAMS["prometheus"])
        p = Prepared(lab, host)
        node = p.node("sandbox/tiny-model")
        fab(lab, "prepare-server", "--node", node, "--yes")
        fab(lab, "download-model", "--node", node, "--yes")
        yield p
    host.reset()  # leave it pristine for whoever comes next


@pytest.fixture
def srv(prepared, hub):
    """The prepared host for one test; a job the test left running is stopped afterwards."""
    yield prepared
    host = prepared.host
    pid = job_pid(host)
    if job_alive(host, pid):
        host.run(f"kill {pid}", check=False)
        wait_for("the leftover job to stop", lambda: not job_alive(host, pid), timeout=10)


# -------------------------------------------------------------- the job outlives fab
def test_no_wait_job_outlives_fab_then_rerun_attaches(srv, hub):
    lab, host = srv.lab, srv.host
    repo = hub.add_model("sandbox/no-wait-model", total_size=8 * MIB)
    node = srv.node(repo.repo_id)
    hub.configure(global_bandwidth_bps=MIB)  # ~8 s for the 8 MiB of weights, however many files at once

    fab(lab, "download-model", "--node", node, "--yes", "--no-wait")
    assert started_jobs(last_run(lab)) == 1

    # fab has exited, and with it the SSH connection: the job runs on
    pid = job_pid(host)
    assert job_alive(host, pid), host.run(f"tail {JOB_DIR}/job.log", check=False).stdout
    wait_for("the job's progress report", lambda: job_state(host).get("repo") == repo.repo_id, timeout=30)
    assert job_alive(host, pid)

    out = fab(lab, "download-model", "--node", node, "--yes")
    assert "already running" in out and "attaching" in out, out[-3000:]
    assert "model download complete" in out
    assert started_jobs(last_run(lab)) == 0 and job_pid(host) == pid  # the same job, not a second one
    assert cached_sizes(host, repo) == hub_sizes(repo)
    hub.wait_idle()
    assert hub.bytes_served < 1.2 * repo.total_size


def test_killed_fab_mid_wait_leaves_the_job_running(srv, hub):
    lab, host = srv.lab, srv.host
    repo = hub.add_model("sandbox/killed-model", total_size=8 * MIB)
    node = srv.node(repo.repo_id)
    hub.configure(global_bandwidth_bps=MIB)  # the link: ~8 s whatever the parallelism

    with (lab.workdir / "killed-fab.out").open("w") as log:
        proc = subprocess.Popen([*fab_command(make_project(lab.workdir)), "download-model", "--node", node, "--yes"], cwd=lab.workdir,
                                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                env={**os.environ, "NO_COLOR": "1"})
        try:
            # mid-wait: the job reports progress on this model and fab follows it
            wait_for("the download to make progress",
                     lambda: (s := job_state(host)).get("repo") == repo.repo_id and s.get("done", 0) > 0, timeout=60)
            assert proc.poll() is None, "fab ended before it could be killed"
            proc.kill()
            proc.wait(timeout=10)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)

    pid = job_pid(host)
    assert job_alive(host, pid)
    time.sleep(1.5)  # still going a moment later, not just slow to die
    assert job_alive(host, pid)

    out = fab(lab, "download-model", "--node", node, "--yes")
    assert "attaching" in out and "model download complete" in out, out[-3000:]
    assert started_jobs(last_run(lab)) == 0 and job_pid(host) == pid
    assert cached_sizes(host, repo) == hub_sizes(repo)
    hub.wait_idle()
    assert hub.bytes_served < 1.2 * repo.total_size


# ----------------------------------------------------------- a hub that cuts files
# One 24 MiB shard. huggingface_hub writes 10 MiB chunks and resumes a cut body with a Range
# request (up to 5 times without progress); a cut after 11 MiB therefore resumes from 10 MiB.
# Eight cuts before the first byte exhaust those in-call retries, so the job's own retry (a new
# hf_hub_download that resumes from the .incomplete file) has to finish the work.
CUTS = {
    "twice-mid-file": {"drop_after_bytes": 11 * MIB, "drop_next_n": 2},
    "eight-times-at-start": {"drop_after_bytes": 0, "drop_next_n": 8},
}


@pytest.mark.parametrize("cut", list(CUTS))
def test_hub_cutting_the_download_resumes_without_refetching(srv, hub, cut):
    lab, host = srv.lab, srv.host
    repo = hub.add_model(f"sandbox/cut-{cut}", total_size=24 * MIB, shards=1)
    node = srv.node(repo.repo_id)
    hub.configure(drop_match="model-00001", **CUTS[cut])
    log_from = job_log_size(host)

    fab(lab, "download-model", "--node", node, "--yes")

    assert cached_sizes(host, repo) == hub_sizes(repo)
    hub.wait_idle()
    gets = [r for r in hub.file_log if r.method == "GET" and r.path.startswith("model-00001")]
    assert [r.cut for r in gets] == [True] * CUTS[cut]["drop_next_n"] + [False], gets
    if CUTS[cut]["drop_after_bytes"]:
        assert gets[-1].status == 206 and gets[-1].range, gets
    assert hub.bytes_served < 1.2 * repo.total_size, (hub.bytes_served, repo.total_size)
    job_log = host.read_text(f"{JOB_DIR}/job.log")[log_from:]
    assert ("retry 1/" in job_log) == (cut == "eight-times-at-start"), job_log


# ------------------------------------------------------------ a damaged cache file
def test_truncated_file_in_the_cache_is_fetched_again_alone(srv, hub):
    lab, host = srv.lab, srv.host
    repo = hub.add_model("sandbox/truncated-model", total_size=8 * MIB)
    node = srv.node(repo.repo_id)
    fab(lab, "download-model", "--node", node, "--yes")
    shard = "model-00001-of-00002.safetensors"
    # truncate follows the snapshot's symlink: the blob itself is cut short
    host.run(f"truncate -s 1000 {model_dir(repo.repo_id)}/snapshots/{repo.commit}/{shard}")
    hub.wait_idle()
    before = dict(hub.bytes_by_file)

    fab(lab, "download-model", "--node", node, "--yes")

    step = next(s for s in last_run(lab)["steps"] if s["name"].startswith(f"model {repo.repo_id}"))
    assert step["result"] == "done", step  # found damaged, not skipped
    assert cached_sizes(host, repo) == hub_sizes(repo)
    hub.wait_idle()
    fetched = {k: v - before.get(k, 0) for k, v in hub.bytes_by_file.items() if v != before.get(k, 0)}
    assert fetched == {f"{repo.repo_id}/{shard}": repo.files[shard].size}


# ------------------------------------------------------- a job for another model
def test_job_for_another_model_is_not_taken_for_ours(srv, hub):
    lab, host = srv.lab, srv.host
    old = hub.add_model("sandbox/old-model", total_size=8 * MIB)
    new = hub.add_model("sandbox/new-model", total_size=1 * MIB, shards=1)
    hub.configure(global_bandwidth_bps=MIB)  # the link: ~8 s whatever the parallelism
    fab(lab, "download-model", "--node", srv.node(old.repo_id), "--yes", "--no-wait")
    pid = job_pid(host)

    node = srv.node(new.repo_id)  # the operator switched MODEL while the old job runs
    r = lab.fab("download-model", "--node", node, "--yes")

    out = r.stdout + r.stderr
    assert r.returncode == 1 and f"{old.repo_id}@main, pid {pid}" in out, out[-3000:]
    assert job_alive(host, pid) and started_jobs(last_run(lab)) == 0  # left alone
    host.run(f"kill {pid}")  # what the hint says to do
    wait_for("the old job to stop", lambda: not job_alive(host, pid), timeout=10)
    fab(lab, "download-model", "--node", node, "--yes")
    assert cached_sizes(host, new) == hub_sizes(new)


# ------------------------------------------- three interruptions on a flaky CDN
def finished_files(host, repo) -> set[str]:
    hub_files = hub_sizes(repo)
    return {n for n, size in cached_sizes(host, repo).items() if hub_files.get(n) == size}


def start_fab(lab, node: str, log_name: str) -> subprocess.Popen:
    log = (lab.workdir / log_name).open("w")
    return subprocess.Popen([*fab_command(make_project(lab.workdir)), "download-model", "--node", node, "--yes"],
                            cwd=lab.workdir, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                            env={**os.environ, "NO_COLOR": "1"})


@pytest.mark.slow  # whole transfers under faults: with the slow set (CI runs it)
def test_three_interruptions_never_fetch_a_finished_file_again(srv, hub):
    """The job killed, the SSH connection dropped and a CDN resetting every 7th connection, all in
    one download of 16 shards: it completes, and every file finished before an interruption has no
    byte more fetched after it (the hub's per-file counters)."""
    from bench.chaos_host import kill_ssh_sessions  # noqa: PLC0415

    lab, host = srv.lab, srv.host
    repo = hub.add_model("sandbox/three-cuts", total_size=16 * MIB, shards=16)
    node = srv.node(repo.repo_id)
    total = repo.total_size
    # the server's link at 2 MiB/s (about 8 s), each connection at a quarter of that, resets throughout
    hub.configure(client_link_bps=2 * MIB, bandwidth_bps=MIB // 2, reset_every_n=7)
    checkpoints: list[tuple[set[str], dict[str, int]]] = []

    def checkpoint() -> None:
        hub.wait_idle(timeout=2)  # a finished file's counter is final; others may still be moving
        checkpoints.append((finished_files(host, repo), dict(hub.bytes_by_file)))

    def progressed(share: float) -> bool:
        st = job_state(host)
        return st.get("repo") == repo.repo_id and st.get("done", 0) > share * total

    # 1. the job itself is killed a third of the way through: fab reports it, a rerun resumes
    first = start_fab(lab, node, "cut1.out")
    try:
        wait_for("a third of the download", lambda: progressed(1 / 3), timeout=60)
        host.run(f"kill -9 {job_pid(host)}")
        assert first.wait(timeout=60) != 0
    finally:
        first.kill()
    assert "stopped without finishing" in (lab.workdir / "cut1.out").read_text()
    checkpoint()
    assert 0 < len(checkpoints[-1][0]) < len(repo.files)

    # 2. a new job; the SSH connection drops under the waiting fab two thirds of the way through
    second = start_fab(lab, node, "cut2.out")
    try:
        wait_for("two thirds of the download", lambda: progressed(2 / 3), timeout=60)
        pid = job_pid(host)
        assert kill_ssh_sessions(host)
        assert job_alive(host, pid)  # detached: the drop does not touch it
        rc = second.wait(timeout=120)
    finally:
        second.kill()
    checkpoint()
    # the deployer reconnects and follows the same job to its end (or fails clearly; the rerun finishes)
    second_out = (lab.workdir / "cut2.out").read_text()
    assert ("model download complete" in second_out) if rc == 0 else ("rerun" in second_out), second_out[-3000:]
    assert job_pid(host) == pid  # no second job was started

    # 3. a rerun finds the whole model (or finishes it)
    fab(lab, "download-model", "--node", node, "--yes")
    assert cached_sizes(host, repo) == hub_sizes(repo)
    hub.wait_idle()
    assert any(r.cut for r in hub.file_log if r.repo_id == repo.repo_id)  # the CDN did reset connections
    final = dict(hub.bytes_by_file)
    for done, counters in checkpoints:
        for name in done:
            key = f"{repo.repo_id}/{name}"
            assert final[key] == counters[key], f"{name} was fetched again after it was finished"
    assert hub.bytes_served < 1.3 * total, (hub.bytes_served, total)  # resumed with Range, not restarted


# ---------------------------------------------------- the data disk fills meanwhile
@pytest.mark.slow  # whole transfers under faults: with the slow set (CI runs it)
def test_a_disk_that_fills_during_the_download_ends_it_at_once_with_the_numbers(srv, hub):
    """Something else fills the data disk to the last block while the job runs: the job ends within
    seconds with "data disk full" and the space figures, retries nothing, and once the space is
    freed a rerun finishes without fetching the finished files again."""
    lab, host = srv.lab, srv.host
    repo = hub.add_model("sandbox/disk-fills", total_size=16 * MIB, shards=16)
    node = srv.node(repo.repo_id)
    hub.configure(client_link_bps=2 * MIB, bandwidth_bps=MIB // 2)  # about 8 s
    filler = f"{MP}/.test-filler"
    log_from = job_log_size(host)
    proc = start_fab(lab, node, "fill.out")
    try:
        wait_for("the download to make progress",
                 lambda: (s := job_state(host)).get("repo") == repo.repo_id and s.get("done", 0) > MIB, timeout=60)
        # root's writes use ext4's reserved blocks too: fill until the kernel refuses a single block
        host.run(f"fallocate -l $(( $(stat -f -c '%a*%S' {MP}) )) {filler}; "
                 f"dd if=/dev/zero of={filler} bs=4k oflag=append conv=notrunc status=none 2>/dev/null; true",
                 timeout=60)
        filled = time.monotonic()
        rc = proc.wait(timeout=60)
        ended = time.monotonic() - filled
    finally:
        proc.kill()
    out = (lab.workdir / "fill.out").read_text()
    assert rc != 0 and "data disk full" in out, out[-3000:]
    assert "bytes are free on" in out and "keeping" in out  # the numbers: needed, free, kept free
    assert ended < 15, f"the job took {ended:.1f} s to give up"
    job_log = host.read_text(f"{JOB_DIR}/job.log")[log_from:]
    assert "retry" not in job_log, job_log
    assert job_state(host)["state"] == "failed"
    done_before = finished_files(host, repo)
    hub.wait_idle()
    counters = dict(hub.bytes_by_file)

    host.run(["rm", "-f", filler])  # the operator frees the space, as the error says
    fab(lab, "download-model", "--node", node, "--yes")
    assert cached_sizes(host, repo) == hub_sizes(repo)
    hub.wait_idle()
    for name in done_before:
        assert hub.bytes_by_file[f"{repo.repo_id}/{name}"] == counters[f"{repo.repo_id}/{name}"], name
