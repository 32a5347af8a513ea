"""The Hugging Face cache as the ML node's huggingface_hub sees it: files listed online from the hub,
found offline the way `hf_hub_download(local_files_only=True)` finds them, fetched the way
`snapshot_download` fetches them.

Cache layout (huggingface_hub `file_download.py`): `<cache>/models--ORG--NAME/` holds `refs/<name>`
(a branch or tag name -> the commit it was downloaded at), `snapshots/<commit>/<file>` (symlinks)
and `blobs/<etag>`. Offline, a revision that is not a 40-hex commit resolves ONLY through
`refs/<revision>`; `None` means `main`. `snapshot_download(revision=name)` writes `refs/<name>` as
soon as it has resolved the commit, then fetches each file not already in the snapshot.

The hub's address: the container's `HF_ENDPOINT` when its compose entry sets one; otherwise the
sandbox's stand-in for `huggingface.co`, `hf_endpoint` in `/etc/gonka-sim/world.json` (written by
whoever set up the sandbox world), else the real hub (unreachable from a sandbox).
"""

from __future__ import annotations

import http.client
import json
import os
import re
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from . import simenv

COMMIT = re.compile(r"^[0-9a-f]{40}$")
DEFAULT_ENDPOINT = "https://huggingface.co"


class HubError(Exception):
    """The hub could not be asked (unreachable, unknown repo or revision)."""


def world_path() -> Path:
    return simenv.host_path("/etc/gonka-sim/world.json")


def endpoint(env) -> str:
    """Where this container's huggingface_hub sends its requests."""
    if env.get("HF_ENDPOINT"):
        return env["HF_ENDPOINT"].rstrip("/")
    world = simenv.read_json(world_path(), {}) or {}
    return str(world.get("hf_endpoint") or DEFAULT_ENDPOINT).rstrip("/")


def repo_dir(cache: Path, repo: str) -> Path:
    return cache / ("models--" + repo.replace("/", "--"))


def _get(url: str, timeout: float = 10.0):
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return json.loads(r.read())
    except urllib.error.HTTPError as e:
        raise HubError(f"{e.code} Client Error for url: {url}") from None
    except (OSError, ValueError) as e:
        raise HubError(f"cannot reach {url}: {e}") from None


def repo_info(ep: str, repo: str, revision: str | None) -> tuple[str, list[str]]:
    """(commit, file names) of `revision` (None = main), asked online."""
    rev = urllib.parse.quote(revision or "main", safe="")
    data = _get(f"{ep}/api/models/{repo}/revision/{rev}")
    return data["sha"], [s["rfilename"] for s in data.get("siblings") or []]


def list_repo_files(ep: str, repo: str, revision: str | None) -> list[str]:
    """`HfApi.list_repo_files`: the recursive tree of `revision` (None = main), online."""
    rev = urllib.parse.quote(revision or "main", safe="")
    rows = _get(f"{ep}/api/models/{repo}/tree/{rev}?recursive=true")
    return [r["path"] for r in rows if r.get("type") == "file"]


def offline_commit(cache: Path, repo: str, revision: str | None) -> str | None:
    """The commit `revision` means offline: itself when it is a commit, else what refs/<revision> says."""
    rev = revision or "main"
    if COMMIT.match(rev):
        return rev
    try:
        return (repo_dir(cache, repo) / "refs" / rev).read_text().strip() or None
    except OSError:
        return None


def offline_file(cache: Path, repo: str, filename: str, revision: str | None) -> Path | None:
    """What `hf_hub_download(..., local_files_only=True)` returns, or None where it raises."""
    commit = offline_commit(cache, repo, revision)
    if commit is None:
        return None
    p = repo_dir(cache, repo) / "snapshots" / commit / filename
    return p if p.exists() else None  # exists() follows the symlink into blobs/


def revisions(cache: Path, repo: str) -> list[str]:
    """Commits with a snapshot directory (what `scan_cache_dir` lists as the repo's revisions)."""
    snaps = repo_dir(cache, repo) / "snapshots"
    try:
        return sorted(p.name for p in snaps.iterdir() if p.is_dir())
    except OSError:
        return []


def head_etag(url: str, timeout: float = 30.0) -> str:
    """The etag huggingface_hub names a blob by (X-Linked-Etag of an LFS file, else ETag), from a HEAD
    that does not follow the redirect; "" when the hub gives none."""
    parts = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port or 80, timeout=timeout)
    try:
        conn.request("HEAD", parts.path + (f"?{parts.query}" if parts.query else ""))
        r = conn.getresponse()
        r.read()
        tag = r.getheader("X-Linked-Etag") or r.getheader("ETag") or ""
    except OSError as e:
        raise HubError(f"HEAD {url} failed: {e}") from None
    finally:
        conn.close()
    return tag.removeprefix("W/").strip('"')


def _fetch(url: str, dest: Path, timeout: float = 60.0) -> str:
    """GET `url` (following the hub's redirect to its CDN by hand, to keep the LFS etag) into `dest`;
    returns the etag huggingface_hub names the blob by."""
    etag = ""
    for _hop in range(3):
        parts = urllib.parse.urlsplit(url)
        conn = http.client.HTTPConnection(parts.hostname, parts.port or 80, timeout=timeout)
        try:
            conn.request("GET", parts.path + (f"?{parts.query}" if parts.query else ""))
            r = conn.getresponse()
            etag = etag or (r.getheader("X-Linked-Etag") or r.getheader("ETag") or "")
            if r.status in (301, 302, 307, 308):
                r.read()
                url = urllib.parse.urljoin(url, r.getheader("Location") or "")
                continue
            if r.status != 200:
                raise HubError(f"{r.status} for {url}")
            tmp = dest.with_name(dest.name + ".incomplete")
            with open(tmp, "wb") as f:
                while True:
                    piece = r.read(1 << 16)
                    if not piece:
                        break
                    f.write(piece)
            os.replace(tmp, dest)
            return etag.strip('"').removeprefix("W/").strip('"')
        except OSError as e:
            raise HubError(f"download of {url} failed: {e}") from None
        finally:
            conn.close()
    raise HubError(f"too many redirects for {url}")


def snapshot_download(ep: str, cache: Path, repo: str, revision: str | None, log=print) -> str:
    """What the ML node's download subprocess does: resolve, write refs/<name>, fetch what is missing."""
    commit, files = repo_info(ep, repo, revision)
    base = repo_dir(cache, repo)
    rev = revision or "main"
    if rev != commit:  # huggingface_hub caches the name -> commit mapping before fetching the files
        ref = base / "refs" / rev
        ref.parent.mkdir(parents=True, exist_ok=True)
        ref.write_text(commit)
    snap = base / "snapshots" / commit
    blobs = base / "blobs"
    blobs.mkdir(parents=True, exist_ok=True)
    for name in files:
        link = snap / name
        if link.exists():
            continue  # the client's fast path: a file of this commit already in the snapshot
        link.parent.mkdir(parents=True, exist_ok=True)
        url = f"{ep}/{repo}/resolve/{commit}/{urllib.parse.quote(name)}"
        etag = head_etag(url)
        blob = blobs / etag if etag else None
        if blob is None or not blob.exists():  # a blob already there is linked, not fetched again
            tmp = blobs / f".sim-{os.getpid()}-{abs(hash(name))}"
            etag = _fetch(url, tmp) or etag
            blob = blobs / (etag or tmp.name)
            os.replace(tmp, blob)
            log(f"downloaded {repo}/{name}")
        if link.is_symlink():
            link.unlink()
        link.symlink_to(os.path.relpath(blob, link.parent))
    return commit
