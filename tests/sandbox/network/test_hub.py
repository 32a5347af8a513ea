"""The simulated Hugging Face hub, driven by the real huggingface_hub client (and its `hf` CLI)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from gonka_sim.network.hub import Blob, HubServer, SyntheticRepo, make_model_repo
from gonka_sim.network.seed import SANDBOX_MODEL_ID

hf = pytest.importorskip("huggingface_hub")
from huggingface_hub import HfApi, hf_hub_download, snapshot_download  # noqa: E402
from huggingface_hub.errors import (  # noqa: E402
    EntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)
from huggingface_hub.utils import disable_progress_bars, enable_progress_bars  # noqa: E402

MB = 1_000_000


@pytest.fixture(autouse=True)
def _quiet_hf(monkeypatch):
    # Keep the client off the internet (no update check, no telemetry) and quiet.
    monkeypatch.setenv("HF_HUB_DISABLE_UPDATE_CHECK", "1")
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
    monkeypatch.setenv("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("HF_TOKEN", raising=False)
    disable_progress_bars()
    yield
    enable_progress_bars()


def fetch(url: str, method: str = "GET", headers: dict | None = None):
    req = urllib.request.Request(url, method=method, headers=headers or {})

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *a, **kw):
            return None

    opener = urllib.request.build_opener(NoRedirect)
    try:
        with opener.open(req, timeout=10) as r:
            return r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


def assert_snapshot_matches(path: str, repo: SyntheticRepo) -> None:
    snap = Path(path)
    assert sorted(str(p.relative_to(snap)) for p in snap.rglob("*") if p.is_file()) == sorted(repo.files)
    for e in repo.files.values():
        data = (snap / e.path).read_bytes()
        assert len(data) == e.size and data == e.blob.content(), e.path


def test_snapshot_download_gives_real_cache_layout(hub, tmp_path):
    repo = hub.repo(SANDBOX_MODEL_ID)
    path = snapshot_download(SANDBOX_MODEL_ID, revision="main", cache_dir=tmp_path, endpoint=hub.url)
    storage = tmp_path / "models--sandbox--tiny-model"
    assert Path(path) == storage / "snapshots" / repo.commit
    assert (storage / "refs" / "main").read_text() == repo.commit
    assert_snapshot_matches(path, repo)
    blobs = {p.name for p in (storage / "blobs").iterdir()}
    assert blobs == {e.etag for e in repo.files.values()}  # sha256 for LFS files, git oid for others
    shard = storage / "snapshots" / repo.commit / "model-00001-of-00002.safetensors"
    assert shard.is_symlink() and shard.resolve().name == repo.files[shard.name].blob.sha256
    hub.wait_idle()
    assert hub.bytes_served == repo.total_size
    # LFS files went through the CDN listener, never with xet.
    assert {r.listener for r in hub.file_log if r.path.endswith(".safetensors") and r.method == "GET"} == {
        "cdn"
    }
    assert not hub.errors


def test_second_snapshot_is_served_from_cache(hub, tmp_path):
    snapshot_download(SANDBOX_MODEL_ID, cache_dir=tmp_path, endpoint=hub.url)
    served = hub.bytes_served
    snapshot_download(SANDBOX_MODEL_ID, cache_dir=tmp_path, endpoint=hub.url)
    assert hub.bytes_served == served


def test_hf_hub_download_pinned_commit(hub, tmp_path):
    repo = hub.repo(SANDBOX_MODEL_ID)
    p = hf_hub_download(
        SANDBOX_MODEL_ID, "config.json", revision=repo.commit, cache_dir=tmp_path, endpoint=hub.url
    )
    assert json.loads(Path(p).read_text())["model_type"] == "qwen3"


def test_model_info_and_tree(hub):
    repo = hub.repo(SANDBOX_MODEL_ID)
    api = HfApi(endpoint=hub.url)
    info = api.model_info(SANDBOX_MODEL_ID, files_metadata=True)
    assert info.sha == repo.commit
    sizes = {s.rfilename: s.size for s in info.siblings}
    assert sizes == {p: e.size for p, e in repo.files.items()}
    lfs = {s.rfilename: s.lfs.sha256 for s in info.siblings if s.lfs}
    assert lfs == {p: e.blob.sha256 for p, e in repo.files.items() if e.lfs}
    assert set(lfs) == {p for p in repo.files if p.endswith(".safetensors")}
    plain = api.model_info(SANDBOX_MODEL_ID)
    assert all(s.size is None for s in plain.siblings)
    tree = list(api.list_repo_tree(SANDBOX_MODEL_ID, recursive=True))
    assert {f.path: f.size for f in tree} == sizes


def test_synthetic_content_is_valid_safetensors_and_index():
    repo = make_model_repo("x/y", total_size=3 * MB, shards=3)
    index = json.loads(repo.files["model.safetensors.index.json"].blob.content())
    total = 0
    for name in set(index["weight_map"].values()):
        blob = repo.files[name].blob
        n = int.from_bytes(blob.read(0, 8), "little")
        header = json.loads(blob.read(8, n))
        (tensor,) = [k for k in header if k != "__metadata__"]
        start, end = header[tensor]["data_offsets"]
        assert 8 + n + end == blob.size == MB
        total += end - start
    assert index["metadata"]["total_size"] == total
    assert make_model_repo("x/y", total_size=3 * MB, shards=3).commit == repo.commit
    assert make_model_repo("x/y", total_size=3 * MB, shards=3, seed="other").commit != repo.commit


def test_blob_ranges_are_consistent():
    blob = Blob.generated("s", 3 * (1 << 20) + 123, prefix=b"HEAD")
    whole = blob.content()
    assert len(whole) == blob.size and whole.startswith(b"HEAD")
    for start, n in [(0, 10), (2, 7), ((1 << 20) - 5, 20), (blob.size - 50, 100), (blob.size, 5)]:
        assert blob.read(start, n) == whole[start : start + n]
    assert b"".join(blob.iter_range(100, blob.size, 70_000)) == whole[100:]


def test_resolve_headers_range_and_no_xet(hub):
    repo = hub.repo(SANDBOX_MODEL_ID)
    e = repo.files["config.json"]
    url = f"{hub.url}/{SANDBOX_MODEL_ID}/resolve/main/config.json"
    status, headers, body = fetch(url, "HEAD")
    assert status == 200 and body == b""
    assert headers["X-Repo-Commit"] == repo.commit
    assert headers["ETag"] == f'"{e.blob.git_oid}"'
    assert int(headers["Content-Length"]) == e.size and headers["Accept-Ranges"] == "bytes"
    assert not any(k.lower().startswith("x-xet") for k in headers)
    status, headers, body = fetch(url, headers={"Range": "bytes=5-14"})
    assert status == 206 and body == e.blob.content()[5:15]
    assert headers["Content-Range"] == f"bytes 5-14/{e.size}"
    assert fetch(url, headers={"Range": "bytes=-4"})[2] == e.blob.content()[-4:]
    assert fetch(url, headers={"Range": f"bytes={e.size}-"})[0] == 416
    hub.configure(ignore_range=True)
    status, _, body = fetch(url, headers={"Range": "bytes=5-14"})
    assert status == 200 and len(body) == e.size


def test_lfs_resolve_redirects_to_cdn_with_linked_headers(hub):
    repo = hub.repo(SANDBOX_MODEL_ID)
    e = repo.files["model-00002-of-00002.safetensors"]
    status, headers, _ = fetch(f"{hub.url}/{SANDBOX_MODEL_ID}/resolve/main/{e.path}", "HEAD")
    assert status == 302
    assert headers["X-Linked-Etag"] == f'"{e.blob.sha256}"' and int(headers["X-Linked-Size"]) == e.size
    assert headers["X-Repo-Commit"] == repo.commit
    assert headers["Location"].startswith(f"http://127.0.0.1:{hub.cdn_port}/lfs/")
    status, headers, body = fetch(headers["Location"], headers={"Range": "bytes=0-7"})
    assert status == 206 and body == e.blob.read(0, 8)
    hub.configure(lfs_redirect=False)
    status, headers, _ = fetch(f"{hub.url}/{SANDBOX_MODEL_ID}/resolve/main/{e.path}", "HEAD")
    assert status == 200 and headers["ETag"] == f'"{e.blob.sha256}"'


def test_errors_map_to_client_exceptions(hub, tmp_path):
    with pytest.raises(RepositoryNotFoundError):
        hf_hub_download("nobody/nothing", "config.json", cache_dir=tmp_path, endpoint=hub.url)
    with pytest.raises(RevisionNotFoundError):
        hf_hub_download(SANDBOX_MODEL_ID, "config.json", revision="v9", cache_dir=tmp_path, endpoint=hub.url)
    with pytest.raises(EntryNotFoundError):
        hf_hub_download(SANDBOX_MODEL_ID, "missing.bin", cache_dir=tmp_path, endpoint=hub.url)


def test_dropped_connection_resumes_with_range(hub, tmp_path):
    # One 24 MiB shard: the client buffers 10 MiB chunks, so a cut after 12 MB leaves 10 MiB to
    # resume from with a Range request.
    repo = hub.add_model("sandbox/resume-model", total_size=24 * (1 << 20), shards=1)
    hub.configure(drop_after_bytes=12 * MB, drop_next_n=1, drop_match="model-00001")
    path = snapshot_download(repo.repo_id, cache_dir=tmp_path, endpoint=hub.url)
    assert_snapshot_matches(path, repo)
    hub.wait_idle()
    gets = [r for r in hub.file_log if r.method == "GET" and r.path.startswith("model-00001")]
    assert [r.cut for r in gets] == [True, False]
    assert gets[1].status == 206 and gets[1].range.startswith("bytes=")
    assert hub.bytes_served < 1.2 * repo.total_size


def test_second_call_fetches_only_what_failed(hub, tmp_path):
    repo = hub.repo(SANDBOX_MODEL_ID)
    hub.configure(fail_next_n=10, fail_status=404, fail_match="model-00002")
    with pytest.raises(Exception):  # noqa: B017 - whichever error the client raises for a 404
        snapshot_download(SANDBOX_MODEL_ID, cache_dir=tmp_path, endpoint=hub.url, max_workers=2)
    assert hub.bytes_served < repo.total_size
    hub.configure(fail_next_n=0)
    path = snapshot_download(SANDBOX_MODEL_ID, cache_dir=tmp_path, endpoint=hub.url)
    assert_snapshot_matches(path, repo)
    assert hub.bytes_served == repo.total_size  # nothing fetched twice


def test_api_failure_surfaces_as_error(hub, tmp_path):
    hub.configure(fail_next_n=1, fail_match="/api/")
    with pytest.raises(Exception, match="snapshot folder|503|Service Unavailable"):
        snapshot_download(SANDBOX_MODEL_ID, cache_dir=tmp_path, endpoint=hub.url)


def _two_mb_repo() -> SyntheticRepo:
    return SyntheticRepo("sandbox/two-mb", {"weights.bin": Blob.generated("2mb", 2 * MB)})


def test_per_connection_throttle(hub):
    hub.add_repo(_two_mb_repo())
    hub.configure(bandwidth_bps=MB, lfs_redirect=False)
    t = time.monotonic()
    status, _, body = fetch(f"{hub.url}/sandbox/two-mb/resolve/main/weights.bin")
    elapsed = time.monotonic() - t
    assert status == 200 and len(body) == 2 * MB
    assert 1.8 <= elapsed < 3.0


def test_global_throttle_is_shared(hub):
    hub.add_repo(SyntheticRepo("sandbox/one-mb", {"weights.bin": Blob.generated("1mb", MB)}))
    hub.configure(global_bandwidth_bps=2 * MB, lfs_redirect=False)
    url = f"{hub.url}/sandbox/one-mb/resolve/main/weights.bin"
    sizes: list[int] = []
    threads = [threading.Thread(target=lambda: sizes.append(len(fetch(url)[2]))) for _ in range(2)]
    t = time.monotonic()
    for th in threads:
        th.start()
    for th in threads:
        th.join(10)
    elapsed = time.monotonic() - t
    assert sizes == [MB, MB]
    assert 0.9 <= elapsed < 1.6  # 2 MB at 2 MB/s in total, not 1 MB at 2 MB/s each


def fetch_from(url: str, source: str) -> int:
    """GET url from a given local source address (one client address = one server's link); body length."""
    import http.client
    from urllib.parse import urlsplit

    u = urlsplit(url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=20, source_address=(source, 0))
    try:
        conn.request("GET", u.path)
        return len(conn.getresponse().read())
    finally:
        conn.close()


def timed_parallel(jobs) -> tuple[float, list]:
    """Run the callables at once; (seconds until the last ended, their results)."""
    out: list = [None] * len(jobs)

    def run(i, fn):
        out[i] = fn()

    threads = [threading.Thread(target=run, args=(i, fn)) for i, fn in enumerate(jobs)]
    t = time.monotonic()
    for th in threads:
        th.start()
    for th in threads:
        th.join(30)
    return time.monotonic() - t, out


def _shards_repo(n: int, size: int) -> SyntheticRepo:
    return SyntheticRepo("sandbox/cdn", {f"s{i}.bin": Blob.generated(f"cdn{i}", size) for i in range(n)})


def test_cdn_caps_each_connection_and_the_clients_link(hub):
    # the link carries 4 MB/s, each connection 0.5 MB/s: one connection gets 1/8 of the link,
    # eight get all of it, sixteen no more than all of it
    hub.add_repo(_shards_repo(16, MB // 2))
    hub.configure(bandwidth_bps=MB // 2, client_link_bps=4 * MB, lfs_redirect=False)
    url = f"{hub.url}/sandbox/cdn/resolve/main/s{{}}.bin"
    one, _ = timed_parallel([lambda: fetch_from(url.format(0), "127.0.0.1")])
    assert 0.85 <= one < 1.4  # 0.5 MB at 0.5 MB/s
    eight, sizes = timed_parallel([lambda i=i: fetch_from(url.format(i), "127.0.0.1") for i in range(8)])
    assert sizes == [MB // 2] * 8
    assert 0.85 <= eight < 1.5  # 4 MB at the link's 4 MB/s: the per-connection cap is no limit any more
    sixteen, _ = timed_parallel([lambda i=i: fetch_from(url.format(i), "127.0.0.1") for i in range(16)])
    assert 1.8 <= sixteen < 2.8  # 8 MB: the link, not 16 x 0.5 MB/s


def test_each_client_address_has_a_link_of_its_own(hub):
    hub.add_repo(_shards_repo(2, MB))
    hub.configure(client_link_bps=MB, lfs_redirect=False)
    url = f"{hub.url}/sandbox/cdn/resolve/main/s{{}}.bin"
    apart, _ = timed_parallel([lambda: fetch_from(url.format(0), "127.0.0.1"),
                               lambda: fetch_from(url.format(1), "127.0.0.2")])
    assert 0.85 <= apart < 1.5  # two servers, 1 MB each on its own 1 MB/s link
    shared, _ = timed_parallel([lambda: fetch_from(url.format(0), "127.0.0.1"),
                                lambda: fetch_from(url.format(1), "127.0.0.1")])
    assert 1.8 <= shared < 2.8  # one server: both share its link


def test_cdn_slows_and_resets_every_nth_connection(hub):
    import http.client

    hub.add_repo(_shards_repo(4, MB // 4))
    hub.configure(slow_every_n=2, slow_bps=MB // 4, reset_every_n=3, lfs_redirect=False)
    url = f"{hub.url}/sandbox/cdn/resolve/main/s{{}}.bin"
    times = []
    for i in range(4):
        t = time.monotonic()
        if i == 2:  # the third GET is reset half-way: the client sees a short body
            with pytest.raises(http.client.IncompleteRead):
                fetch(url.format(i))
        else:
            assert len(fetch(url.format(i))[2]) == MB // 4
        times.append(time.monotonic() - t)
    hub.wait_idle()
    gets = [r for r in hub.file_log if r.method == "GET"]
    assert [r.cut for r in gets] == [False, False, True, False]
    assert gets[2].sent == MB // 8
    assert times[0] < 0.5 and times[1] >= 0.85 and times[3] >= 0.85  # the 2nd and 4th at 0.25 MB/s


def test_snapshot_download_through_a_flaky_cdn_gets_every_byte_once_or_resumed(hub, tmp_path):
    repo = hub.add_model("sandbox/flaky", total_size=16 * MB, shards=16)
    hub.configure(reset_every_n=4, slow_every_n=5, slow_bps=4 * MB)
    path = snapshot_download(repo.repo_id, cache_dir=tmp_path, endpoint=hub.url, max_workers=8)
    assert_snapshot_matches(path, repo)
    hub.wait_idle()
    assert any(r.cut for r in hub.file_log)
    # resumed with Range, never from scratch: at most the client's buffered chunk is fetched again
    assert hub.bytes_served < 1.5 * repo.total_size


def test_hf_cli_download_into_hf_home(hub, tmp_path):
    hf_bin = Path(sys.executable).with_name("hf")
    if not hf_bin.exists():
        pytest.skip("hf CLI not installed next to this python")
    env = {
        **os.environ,
        "HF_ENDPOINT": hub.url,
        "HF_HOME": str(tmp_path / "hf"),
        "HOME": str(tmp_path),
    }
    repo = hub.repo(SANDBOX_MODEL_ID)
    r = subprocess.run(
        [str(hf_bin), "download", SANDBOX_MODEL_ID, "--revision", "main"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    snap = tmp_path / "hf" / "hub" / "models--sandbox--tiny-model" / "snapshots" / repo.commit
    assert str(snap) in r.stdout
    assert_snapshot_matches(str(snap), repo)


def test_reset_restores_repos_and_counters(hub):
    hub.add_model("sandbox/extra", total_size=MB, shards=1)
    fetch(f"{hub.url}/{SANDBOX_MODEL_ID}/resolve/main/config.json")
    assert hub.bytes_served > 0
    hub.reset()
    assert "sandbox/extra" not in hub.repos and SANDBOX_MODEL_ID in hub.repos
    assert hub.bytes_served == 0 and hub.file_log == [] and hub.bytes_by_file == {}


def test_standalone_hub_close_stops_both_listeners():
    with HubServer(repos=[make_model_repo(total_size=MB, shards=1)]) as h:
        ports = (h.port, h.cdn_port)
        assert fetch(f"{h.url}/api/models/{SANDBOX_MODEL_ID}")[0] == 200
    for port in ports:
        with pytest.raises(OSError):
            urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=1)
