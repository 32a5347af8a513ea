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
"""

from __future__ import annotations

import collections
import dataclasses
import hashlib
import json
import random
import threading
from collections.abc import Iterable, Iterator
from urllib.parse import quote, unquote

from .httpbase import Knobs, Request, SimServer, TokenBucket, route

__all__ = [
    "Blob",
    "FileResponse",
    "HubKnobs",
    "HubServer",
    "RepoEntry",
    "SyntheticRepo",
    "make_model_repo",
]

DEFAULT_REPO_ID = "sandbox/tiny-model"
_CHUNK = 1 << 20  # generation unit of generated blobs
_LFS_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".gguf", ".h5", ".msgpack", ".onnx")
_LFS_MIN_SIZE = 10 * 1024 * 1024  # the hub stores big files in LFS whatever their name


# ---------------------------------------------------------------------------------------------
# content


class Blob:
    """Content of one file: fixed bytes, or ``prefix`` followed by deterministic pseudo-random bytes.

    Generated content is produced in 1 MiB chunks, each from its own seeded PRNG, so any range can
    be read without producing what comes before it. Hashes are computed once, on first use.
    """

    def __init__(self, size: int, *, data: bytes | None = None, seed: str = "", prefix: bytes = b""):
        if data is not None and len(data) != size:
            raise ValueError("size does not match data")
        if len(prefix) > size:
            raise ValueError("prefix longer than the blob")
        self.size = size
        self._data = data
        self._seed = seed
        self._prefix = prefix
        self._lock = threading.Lock()
        self._hashes: tuple[str, str] | None = None
        self._cache: collections.OrderedDict[int, bytes] = collections.OrderedDict()

    @classmethod
    def from_bytes(cls, data: bytes) -> Blob:
        return cls(len(data), data=bytes(data))

    @classmethod
    def from_text(cls, text: str) -> Blob:
        return cls.from_bytes(text.encode("utf-8"))

    @classmethod
    def generated(cls, seed: str, size: int, prefix: bytes = b"") -> Blob:
        return cls(size, seed=seed, prefix=prefix)

    def _chunk(self, k: int) -> bytes:
        with self._lock:
            hit = self._cache.get(k)
            if hit is not None:
                self._cache.move_to_end(k)
                return hit
        body_len = self.size - len(self._prefix)
        n = min(_CHUNK, body_len - k * _CHUNK)
        data = random.Random(f"{self._seed}:{k}").randbytes(n)
        with self._lock:
            self._cache[k] = data
            while len(self._cache) > 8:
                self._cache.popitem(last=False)
        return data

    def read(self, offset: int, length: int) -> bytes:
        """Bytes ``[offset, offset+length)`` (clipped to the blob)."""
        end = min(self.size, offset + length)
        if offset >= end:
            return b""
        if self._data is not None:
            return self._data[offset:end]
        out = bytearray()
        plen = len(self._prefix)
        if offset < plen:
            out += self._prefix[offset : min(end, plen)]
            offset = min(end, plen)
        while offset < end:
            rel = offset - plen
            k, inner = divmod(rel, _CHUNK)
            chunk = self._chunk(k)
            take = min(end - offset, len(chunk) - inner)
            out += chunk[inner : inner + take]
            offset += take
        return bytes(out)

    def iter_range(self, start: int, end: int, step: int = 64 * 1024) -> Iterator[bytes]:
        """Yield the bytes of ``[start, end)`` in pieces of at most ``step``."""
        pos = start
        while pos < end:
            piece = self.read(pos, min(step, end - pos))
            if not piece:
                return
            yield piece
            pos += len(piece)

    def content(self) -> bytes:
        """The whole content (tests only: generated blobs can be large)."""
        return self.read(0, self.size)

    def _compute_hashes(self) -> tuple[str, str]:
        with self._lock:
            if self._hashes is not None:
                return self._hashes
        sha = hashlib.sha256()
        git = hashlib.sha1(f"blob {self.size}\0".encode())
        for piece in self.iter_range(0, self.size, _CHUNK):
            sha.update(piece)
            git.update(piece)
        result = (sha.hexdigest(), git.hexdigest())
        with self._lock:
            self._hashes = result
        return result

    @property
    def sha256(self) -> str:
        return self._compute_hashes()[0]

    @property
    def git_oid(self) -> str:
        """Git blob id of the content (what the hub uses as ETag of non-LFS files)."""
        return self._compute_hashes()[1]


def _git_oid(data: bytes) -> str:
    return hashlib.sha1(f"blob {len(data)}\0".encode() + data).hexdigest()


@dataclasses.dataclass(frozen=True)
class RepoEntry:
    """One file of a synthetic repo."""

    path: str
    blob: Blob
    lfs: bool

    @property
    def size(self) -> int:
        return self.blob.size

    @property
    def pointer(self) -> bytes:
        """The git-lfs pointer file committed in place of an LFS file."""
        return (
            f"version https://git-lfs.github.com/spec/v1\noid sha256:{self.blob.sha256}\nsize {self.size}\n"
        ).encode()

    @property
    def oid(self) -> str:
        """Git blob id in the tree (of the pointer for LFS files, as on the real hub)."""
        return _git_oid(self.pointer) if self.lfs else self.blob.git_oid

    @property
    def etag(self) -> str:
        """What the cache uses as blob name: sha256 for LFS files, the git blob id otherwise."""
        return self.blob.sha256 if self.lfs else self.blob.git_oid

    def tree_json(self) -> dict:
        row: dict = {"type": "file", "oid": self.oid, "size": self.size, "path": self.path}
        if self.lfs:
            row["lfs"] = {"oid": self.blob.sha256, "size": self.size, "pointerSize": len(self.pointer)}
        return row


class SyntheticRepo:
    """A model repo at one commit. ``refs`` maps branch/tag names to that commit (``main`` always)."""

    def __init__(
        self,
        repo_id: str,
        files: dict[str, Blob] | Iterable[tuple[str, Blob]],
        extra_refs: Iterable[str] = (),
        lfs_paths: Iterable[str] | None = None,
    ):
        if repo_id.count("/") != 1:
            raise ValueError(f"repo id must be 'org/name', got {repo_id!r}")
        self.repo_id = repo_id
        items = dict(files.items() if isinstance(files, dict) else files)
        lfs_set = set(lfs_paths) if lfs_paths is not None else None
        self.files: dict[str, RepoEntry] = {}
        for path in sorted(items):
            blob = items[path]
            lfs = (
                path in lfs_set
                if lfs_set is not None
                else path.endswith(_LFS_SUFFIXES) or blob.size >= _LFS_MIN_SIZE
            )
            self.files[path] = RepoEntry(path, blob, lfs)
        self._commit: str | None = None
        self._extra_refs = tuple(extra_refs)

    @property
    def commit(self) -> str:
        """40-hex commit id, derived from the repo id and its file ids (stable across runs)."""
        if self._commit is None:
            h = hashlib.sha1(self.repo_id.encode())
            for e in self.files.values():
                h.update(f"\0{e.path}\0{e.oid}".encode())
            self._commit = h.hexdigest()
        return self._commit

    @property
    def refs(self) -> dict[str, str]:
        return {name: self.commit for name in ("main", *self._extra_refs)}

    def resolve(self, revision: str) -> str | None:
        """Commit id for a branch/tag name or the commit id itself; None if unknown."""
        if revision in self.refs:
            return self.commit
        if revision == self.commit:
            return self.commit
        return None

    @property
    def total_size(self) -> int:
        return sum(e.size for e in self.files.values())

    def directories(self) -> list[str]:
        dirs = set()
        for p in self.files:
            parts = p.split("/")[:-1]
            for i in range(1, len(parts) + 1):
                dirs.add("/".join(parts[:i]))
        return sorted(dirs)


def _safetensors_blob(seed: str, size: int, tensor: str) -> tuple[Blob, int]:
    """A valid safetensors file of exactly ``size`` bytes: one U8 tensor of random data.

    Returns the blob and the tensor's byte size (for the index's total_size).
    """
    payload = size
    for _ in range(4):  # the header length depends on the payload digits: converge
        header = {
            "__metadata__": {"format": "pt"},
            tensor: {"dtype": "U8", "shape": [payload], "data_offsets": [0, payload]},
        }
        raw = json.dumps(header, separators=(",", ":")).encode()
        raw += b" " * (-len(raw) % 8)  # the format pads the header to 8 bytes
        new_payload = size - 8 - len(raw)
        if new_payload == payload:
            break
        payload = new_payload
    if payload < 0:
        raise ValueError(f"safetensors file of {size} bytes is too small for its header")
    prefix = len(raw).to_bytes(8, "little") + raw
    return Blob.generated(seed, size, prefix=prefix), payload


def make_model_repo(
    repo_id: str = DEFAULT_REPO_ID,
    total_size: int = 8 * 1024 * 1024,
    shards: int = 2,
    seed: str = "gonka-sandbox",
    tokenizer_tokens: int = 2000,
    extra_refs: Iterable[str] = (),
) -> SyntheticRepo:
    """A small but well-formed model repo: config, tokenizer, sharded safetensors and their index.

    ``total_size`` is split evenly over ``shards`` safetensors files (the small JSON files come on
    top). The content depends only on the arguments.
    """
    if shards < 1:
        raise ValueError("shards must be >= 1")
    name = repo_id.split("/")[-1]
    files: dict[str, Blob] = {}
    files[".gitattributes"] = Blob.from_text(
        "".join(f"*{s} filter=lfs diff=lfs merge=lfs -text\n" for s in _LFS_SUFFIXES)
    )
    files["README.md"] = Blob.from_text(
        f"---\nlibrary_name: transformers\nlicense: apache-2.0\n---\n\n# {name}\n\n"
        "Synthetic model served by the gonka-deploy sandbox hub.\n"
    )
    files["config.json"] = Blob.from_text(
        json.dumps(
            {
                "architectures": ["Qwen3ForCausalLM"],
                "model_type": "qwen3",
                "hidden_size": 64,
                "intermediate_size": 128,
                "num_attention_heads": 4,
                "num_hidden_layers": 2,
                "num_key_value_heads": 2,
                "vocab_size": tokenizer_tokens,
                "max_position_embeddings": 4096,
                "torch_dtype": "bfloat16",
                "transformers_version": "4.51.0",
            },
            indent=2,
        )
        + "\n"
    )
    files["generation_config.json"] = Blob.from_text(
        json.dumps({"bos_token_id": 0, "eos_token_id": 1, "do_sample": True, "temperature": 0.6}, indent=2)
        + "\n"
    )
    rng = random.Random(f"{seed}:{repo_id}:tokenizer")
    letters = "abcdefghijklmnopqrstuvwxyz"
    vocab: dict[str, int] = {"<s>": 0, "</s>": 1}
    while len(vocab) < tokenizer_tokens:
        vocab.setdefault("".join(rng.choice(letters) for _ in range(rng.randint(2, 8))), len(vocab))
    files["tokenizer.json"] = Blob.from_text(
        json.dumps({"version": "1.0", "model": {"type": "BPE", "vocab": vocab, "merges": []}}) + "\n"
    )
    files["tokenizer_config.json"] = Blob.from_text(
        json.dumps({"bos_token": "<s>", "eos_token": "</s>", "model_max_length": 4096}, indent=2) + "\n"
    )
    weight_map: dict[str, str] = {}
    tensor_bytes = 0
    base, rest = divmod(total_size, shards)
    for i in range(shards):
        fname = f"model-{i + 1:05d}-of-{shards:05d}.safetensors"
        tensor = f"model.layers.{i}.weight"
        blob, payload = _safetensors_blob(f"{seed}:{repo_id}:{fname}", base + (1 if i < rest else 0), tensor)
        files[fname] = blob
        weight_map[tensor] = fname
        tensor_bytes += payload
    files["model.safetensors.index.json"] = Blob.from_text(
        json.dumps({"metadata": {"total_size": tensor_bytes}, "weight_map": weight_map}, indent=2) + "\n"
    )
    return SyntheticRepo(repo_id, files, extra_refs=extra_refs)


# ---------------------------------------------------------------------------------------------
# server


@dataclasses.dataclass
class HubKnobs(Knobs):
    """Hub behaviour knobs (plus the common fault knobs of :class:`Knobs`)."""

    bandwidth_bps: int = 0
    """Per-response limit on file bodies, bytes/s (0 = unlimited)."""
    global_bandwidth_bps: int = 0
    """Limit shared by all file bodies being sent at once, bytes/s (0 = unlimited)."""
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
        self._global_bucket: TokenBucket | None = None
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
        self._global_bucket = None

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

    def _global(self) -> TokenBucket | None:
        rate = self.knobs.global_bandwidth_bps
        with self.lock:
            if rate <= 0:
                self._global_bucket = None
            elif self._global_bucket is None or self._global_bucket.rate != rate:
                self._global_bucket = TokenBucket(rate)
            return self._global_bucket

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
        per_conn = TokenBucket(k.bandwidth_bps) if k.bandwidth_bps > 0 else None
        glob = self._global()
        rate = min(r for r in (k.bandwidth_bps, k.global_bandwidth_bps, 1 << 30) if r > 0)
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
                for bucket in (per_conn, glob):
                    if bucket is not None and piece:
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
