"""Simulated Hugging Face Hub (runner side) that the real ``huggingface_hub`` client accepts.

Point a client at it with ``HF_ENDPOINT=<hub.url_for(ip)>`` (or ``endpoint=``). It serves synthetic
model repos whose file contents are generated deterministically from a seed, lazily and in
chunks, so nothing big is stored anywhere and any byte range can be served.

Endpoints (the subset ``snapshot_download`` / ``hf_hub_download`` / ``hf download`` use):

- ``GET /api/models/<org>/<name>[/revision/<rev>]``: model info with ``sha`` and ``siblings``;
  with ``?blobs=true`` the siblings carry ``size``, ``blobId`` and ``lfs``.
- ``GET /api/models/<org>/<name>/tree/<rev>[/<path>][?recursive=true]``: tree listing.
- ``HEAD|GET /<org>/<name>/resolve/<rev>/<file>``: regular files are answered directly (ETag = git
  blob id); LFS files (``*.safetensors`` etc.) answer 302 to a second "CDN" listener on another
  port, with ``X-Linked-Etag`` (sha256) and ``X-Linked-Size``, like the real hub's redirect to
  its CDN. Both carry ``X-Repo-Commit``; bodies support single ``Range`` requests (206).
- CDN listener: ``HEAD|GET /lfs/<org>/<name>/<sha256>``.

No Xet headers are ever sent, so clients with ``hf_xet`` installed still use plain HTTP.

Knobs (:class:`HubKnobs`): bandwidth limits, cutting file responses after N bytes, ignoring
Range, plus the common faults. Counters: ``bytes_served``, ``bytes_by_file``, ``file_log``.

At ~420 lines it stays one module: the server's routes (model info, tree, resolve, CDN) share its
range and bandwidth handling; the repositories it serves are in `hubrepos`.
"""

from __future__ import annotations

import collections
import dataclasses
import hashlib
import json
from collections.abc import Iterable
from urllib.parse import quote, unquote

from .httpbase import Knobs, Request, SimServer, TokenBucket, route
from .hubrepos import DEFAULT_REPO_ID, Blob, RepoEntry, SyntheticRepo, make_model_repo  # noqa: F401 - re-exported

__all__ = [
    "Blob",
    "FileResponse",
    "HubKnobs",
    "HubServer",
    "RepoEntry",
    "SyntheticRepo",
    "make_model_repo",
]

# ---------------------------------------------------------------------------------------------
# server


@dataclasses.dataclass
class HubKnobs(Knobs):
    """Hub behaviour knobs (plus the common fault knobs of :class:`Knobs`)."""

    bandwidth_bps: int = 0
    """Per-response limit on file bodies, bytes/s (0 = unlimited)."""
    global_bandwidth_bps: int = 0
    """Limit shared by all file bodies being sent at once, bytes/s (0 = unlimited)."""
    client_link_bps: int = 0
    """Limit shared by all file bodies sent to one client address at once, bytes/s (0 = unlimited):
    the downloading server's own link, which a CDN's per-connection cap leaves room on."""
    slow_every_n: int = 0
    slow_bps: int = 64 * 1024
    """Every Nth file-body GET (0 = none) is served at ``slow_bps`` at most: a slow CDN edge."""
    reset_every_n: int = 0
    """Every Nth file-body GET (0 = none) is reset half-way through its range (at least 1 byte sent)."""
    drop_after_bytes: int = 0
    drop_next_n: int = 0
    """Cut the next N file-body responses (GET, either listener) after ``drop_after_bytes`` bytes
    of that response, closing the connection mid-body."""
    drop_match: str = ""
    """Only cut responses for repo file paths containing this ("" = any file)."""
    lfs_redirect: bool = True
    """LFS files: 302 to the CDN listener (real hub behaviour); False serves them directly."""
    ignore_range: bool = False
    """Answer Range requests with 200 and the whole file (a misbehaving proxy)."""


@dataclasses.dataclass(frozen=True)
class FileResponse:
    """One file body response (HEAD included, with ``sent`` = 0)."""

    listener: str
    method: str
    repo_id: str
    path: str
    range: str | None
    status: int
    sent: int
    cut: bool


class HubServer(SimServer):
    """Simulated Hugging Face Hub with a main listener (``port``) and a CDN listener (``cdn_port``).

    ``repos`` defaults to one :func:`make_model_repo` (``sandbox/tiny-model``, 8 MiB of weights).
    Counters: ``bytes_served`` (file body bytes written, both listeners), ``bytes_by_file``
    (Counter keyed ``"<repo_id>/<path>"``), ``file_log`` (list of :class:`FileResponse`).
    """

    knobs_class = HubKnobs
    knobs: HubKnobs

    def __init__(
        self,
        host: str = "0.0.0.0",
        port: int = 0,
        knobs: HubKnobs | None = None,
        repos: Iterable[SyntheticRepo] | None = None,
        cdn_port: int = 0,
    ):
        initial = list(repos) if repos is not None else [make_model_repo()]
        self._initial_repos = {r.repo_id: r for r in initial}
        self._buckets: dict[str, TokenBucket] = {}  # shared limits: "*" (global) and client addresses
        super().__init__(host, port, knobs)
        self._ports["cdn"] = cdn_port
        seg = r"([^/]+)"
        self._routes = [
            ("GET", rf"/api/models/{seg}/{seg}/?", self._info),
            ("GET", rf"/api/models/{seg}/{seg}/revision/{seg}/?", self._info),
            ("GET", rf"/api/models/{seg}/{seg}/tree/{seg}(?:/(.*?))?/?", self._tree),
            ("GET", rf"/{seg}/{seg}/resolve/{seg}/(.+)", self._resolve),
        ]
        self._cdn_routes = [("GET", rf"/lfs/{seg}/{seg}/([0-9a-f]{{64}})", self._cdn)]

    def _reset_state(self) -> None:
        self.repos: dict[str, SyntheticRepo] = dict(self._initial_repos)
        self.bytes_served = 0
        self.bytes_by_file: collections.Counter[str] = collections.Counter()
        self.file_log: list[FileResponse] = []
        self._buckets = {}
        self.file_gets = 0

    # -- repos -----------------------------------------------------------------------------------

    @property
    def cdn_port(self) -> int:
        return self._ports["cdn"]

    def add_repo(self, repo: SyntheticRepo) -> SyntheticRepo:
        """Serve another repo (until the next reset(), which restores the constructor's set)."""
        with self.lock:
            self.repos[repo.repo_id] = repo
        return repo

    def add_model(self, repo_id: str, **kw) -> SyntheticRepo:
        """Serve a :func:`make_model_repo` under ``repo_id`` (kw passed through); returns it."""
        return self.add_repo(make_model_repo(repo_id, **kw))

    def repo(self, repo_id: str = DEFAULT_REPO_ID) -> SyntheticRepo:
        with self.lock:
            return self.repos[repo_id]

    def bytes_for(self, path: str, repo_id: str = DEFAULT_REPO_ID) -> int:
        """File body bytes served so far for one file."""
        with self.lock:
            return self.bytes_by_file[f"{repo_id}/{path}"]

    # -- HTTP ------------------------------------------------------------------------------------

    def handle(self, req: Request) -> None:
        table = self._cdn_routes if req.listener == "cdn" else self._routes
        hit = route(table, req)
        if hit is None:
            req.handler.send_json(404, {"error": "Not Found"})
            return
        fn, groups = hit
        fn(req, *[unquote(g) if g is not None else None for g in groups])

    def _repo_or_404(self, req: Request, org: str, name: str) -> SyntheticRepo | None:
        with self.lock:
            repo = self.repos.get(f"{org}/{name}")
        if repo is None:
            req.handler.send_json(
                404,
                {"error": "Repository not found"},
                headers={"X-Error-Code": "RepoNotFound", "X-Error-Message": "Repository not found"},
            )
        return repo

    def _commit_or_404(self, req: Request, repo: SyntheticRepo, rev: str) -> str | None:
        commit = repo.resolve(rev)
        if commit is None:
            msg = f"Invalid rev id: {rev}"
            req.handler.send_json(
                404, {"error": msg}, headers={"X-Error-Code": "RevisionNotFound", "X-Error-Message": msg}
            )
        return commit

    def _info(self, req: Request, org: str, name: str, rev: str | None = None) -> None:
        repo = self._repo_or_404(req, org, name)
        if repo is None:
            return
        commit = self._commit_or_404(req, repo, rev or "main")
        if commit is None:
            return
        blobs = (req.arg("blobs") or "").lower() in ("1", "true")
        siblings = []
        for e in repo.files.values():
            sib: dict = {"rfilename": e.path}
            if blobs:
                sib.update({"blobId": e.oid, "size": e.size})
                if e.lfs:
                    sib["lfs"] = {"sha256": e.blob.sha256, "size": e.size, "pointerSize": len(e.pointer)}
            siblings.append(sib)
        config = None
        if "config.json" in repo.files:
            try:
                config = json.loads(repo.files["config.json"].blob.content())
            except ValueError:
                config = None
        info = {
            "_id": hashlib.sha1(repo.repo_id.encode()).hexdigest()[:24],
            "id": repo.repo_id,
            "modelId": repo.repo_id,
            "author": org,
            "sha": commit,
            "lastModified": "2026-01-15T12:00:00.000Z",
            "createdAt": "2026-01-15T12:00:00.000Z",
            "private": False,
            "disabled": False,
            "gated": False,
            "downloads": 0,
            "likes": 0,
            "library_name": "transformers",
            "tags": ["transformers", "safetensors", "text-generation"],
            "pipeline_tag": "text-generation",
            "config": {"architectures": config.get("architectures"), "model_type": config.get("model_type")}
            if isinstance(config, dict)
            else None,
            "siblings": siblings,
            "spaces": [],
            "usedStorage": repo.total_size,
        }
        req.handler.send_json(200, info)

    def _tree(self, req: Request, org: str, name: str, rev: str, sub: str | None) -> None:
        repo = self._repo_or_404(req, org, name)
        if repo is None or self._commit_or_404(req, repo, rev) is None:
            return
        recursive = (req.arg("recursive") or "").lower() in ("1", "true")
        base = (sub or "").strip("/")
        prefix = f"{base}/" if base else ""
        if base and base not in repo.directories() and base not in repo.files:
            msg = f"{base} does not exist on {rev}"
            req.handler.send_json(
                404, {"error": msg}, headers={"X-Error-Code": "EntryNotFound", "X-Error-Message": msg}
            )
            return

        def wanted(path: str) -> bool:
            if not path.startswith(prefix):
                return False
            return recursive or "/" not in path[len(prefix) :]

        rows: list[dict] = []
        for d in repo.directories():
            if wanted(d):
                rows.append(
                    {
                        "type": "directory",
                        "oid": hashlib.sha1(f"{repo.commit}:{d}".encode()).hexdigest(),
                        "size": 0,
                        "path": d,
                    }
                )
        rows.extend(e.tree_json() for e in repo.files.values() if wanted(e.path))
        rows.sort(key=lambda r: r["path"])
        req.handler.send_json(200, rows)

    def _resolve(self, req: Request, org: str, name: str, rev: str, path: str) -> None:
        repo = self._repo_or_404(req, org, name)
        if repo is None:
            return
        commit = self._commit_or_404(req, repo, rev)
        if commit is None:
            return
        entry = repo.files.get(path)
        if entry is None:
            req.handler.send_json(
                404,
                {"error": "Entry not found"},
                headers={
                    "X-Error-Code": "EntryNotFound",
                    "X-Error-Message": "Entry not found",
                    "X-Repo-Commit": commit,
                },
            )
            return
        headers = {"X-Repo-Commit": commit}
        if entry.lfs:
            headers["X-Linked-Etag"] = f'"{entry.blob.sha256}"'
            headers["X-Linked-Size"] = str(entry.size)
        if entry.lfs and self.knobs.lfs_redirect:
            location = (
                f"http://{req.host_name()}:{self.cdn_port}/lfs/{quote(org)}/{quote(name)}/"
                f"{entry.blob.sha256}?filename={quote(path.split('/')[-1])}"
            )
            body = f"Found. Redirecting to {location}".encode()
            headers.update({"Location": location, "ETag": f'"{entry.oid}"'})
            req.handler.send_body(302, body, "text/plain; charset=utf-8", headers)
            self._log_file(req, repo.repo_id, path, 302, 0, False)
            return
        headers["ETag"] = f'"{entry.etag}"'
        self._send_file(req, repo.repo_id, entry, headers)

    def _cdn(self, req: Request, org: str, name: str, sha: str) -> None:
        with self.lock:
            repo = self.repos.get(f"{org}/{name}")
        entry = None
        if repo is not None:
            entry = next((e for e in repo.files.values() if e.lfs and e.blob.sha256 == sha), None)
        if entry is None:
            req.handler.send_body(404, b"<Error><Code>NoSuchKey</Code></Error>", "application/xml")
            return
        filename = req.arg("filename") or entry.path.split("/")[-1]
        headers = {
            "ETag": f'"{sha}"',
            "Content-Disposition": f'inline; filename="{filename}"',
            "Cache-Control": "public, max-age=604800, immutable",
        }
        self._send_file(req, repo.repo_id, entry, headers)

    # -- file bodies -----------------------------------------------------------------------------

    def _log_file(self, req: Request, repo_id: str, path: str, status: int, sent: int, cut: bool) -> None:
        rec = FileResponse(
            req.listener, req.method, repo_id, path, req.headers.get("Range"), status, sent, cut
        )
        with self.lock:
            self.file_log.append(rec)

    def _shared(self, key: str, rate: int) -> TokenBucket | None:
        """The bucket shared by every body sent under `key` at `rate` (None when unlimited): the hub's
        whole output ("*") or one client address's link."""
        with self.lock:
            bucket = self._buckets.get(key)
            if rate <= 0:
                self._buckets.pop(key, None)
                return None
            if bucket is None or bucket.rate != rate:
                bucket = self._buckets[key] = TokenBucket(rate)
            return bucket

    def _cdn_mood(self) -> tuple[bool, bool]:
        """(slow, reset) for the next file-body GET: every Nth as the knobs say."""
        k = self.knobs
        with self.lock:
            self.file_gets += 1
            n = self.file_gets
        return (k.slow_every_n > 0 and n % k.slow_every_n == 0,
                k.reset_every_n > 0 and n % k.reset_every_n == 0)

    def _send_file(self, req: Request, repo_id: str, entry: RepoEntry, headers: dict[str, str]) -> None:
        h = req.handler
        size = entry.size
        rng = None if self.knobs.ignore_range else _parse_range(req.headers.get("Range"), size)
        if rng == "invalid":
            h.send_body(416, b"", "text/plain", {"Content-Range": f"bytes */{size}", **headers})
            self._log_file(req, repo_id, entry.path, 416, 0, False)
            return
        start, end = rng if isinstance(rng, tuple) else (0, size)
        status = 206 if isinstance(rng, tuple) else 200
        h.send_response(status)
        h.send_header("Content-Type", "application/octet-stream")
        h.send_header("Content-Length", str(end - start))
        h.send_header("Accept-Ranges", "bytes")
        if status == 206:
            h.send_header("Content-Range", f"bytes {start}-{end - 1}/{size}")
        for k, v in headers.items():
            h.send_header(k, v)
        h.end_headers()
        if req.method == "HEAD":
            self._log_file(req, repo_id, entry.path, status, 0, False)
            return
        k = self.knobs
        cut_at = None
        if k.drop_match in entry.path and self._take("drop_next_n", "", ""):
            cut_at = k.drop_after_bytes
        slow, reset = self._cdn_mood()
        if reset and cut_at is None:
            cut_at = max(1, (end - start) // 2)
        conn_bps = min(r for r in (k.bandwidth_bps, k.slow_bps if slow else 0, 1 << 62) if r > 0)
        per_conn = TokenBucket(conn_bps) if conn_bps < 1 << 62 else None
        link = self._shared(f"client {req.handler.client_address[0]}", k.client_link_bps)
        buckets = [b for b in (per_conn, link, self._shared("*", k.global_bandwidth_bps)) if b is not None]
        rate = int(min([b.rate for b in buckets] + [1 << 30]))
        step = max(1024, min(64 * 1024, rate // 20))
        sent = 0
        key = f"{repo_id}/{entry.path}"
        cut = False
        try:
            for piece in entry.blob.iter_range(start, end, step):
                if self.stopping.is_set():
                    cut = True
                    break
                if cut_at is not None and sent + len(piece) >= cut_at:
                    piece = piece[: max(0, cut_at - sent)]
                    cut = True
                for bucket in buckets:
                    if piece:
                        bucket.take(len(piece), self.stopping)
                if piece:
                    # Count before writing: the client may see the bytes before we get to count them.
                    with self.lock:
                        self.bytes_served += len(piece)
                        self.bytes_by_file[key] += len(piece)
                    try:
                        h.wfile.write(piece)
                    except OSError:
                        with self.lock:
                            self.bytes_served -= len(piece)
                            self.bytes_by_file[key] -= len(piece)
                        raise
                    sent += len(piece)
                if cut:
                    break
        except OSError:  # client went away
            cut = True
        if cut:
            h.drop()
        self._log_file(req, repo_id, entry.path, status, sent, cut)


def _parse_range(header: str | None, size: int) -> tuple[int, int] | str | None:
    """Parse a single ``bytes=`` range into ``(start, end_exclusive)``.

    None means "no (usable) range: send everything"; "invalid" means answer 416.
    """
    if not header:
        return None
    header = header.strip()
    if not header.startswith("bytes=") or "," in header:
        return None  # multi-range or other units: a 200 with the whole body is allowed
    spec = header[len("bytes=") :].strip()
    first, _, last = spec.partition("-")
    try:
        if first == "":
            n = int(last)
            if n <= 0:
                return "invalid"
            return (max(0, size - n), size)
        start = int(first)
        end = int(last) + 1 if last else size
    except ValueError:
        return None
    if start >= size or end <= start:
        return "invalid"
    return (start, min(end, size))
