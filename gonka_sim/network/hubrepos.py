"""The hub's model repositories: synthetic files generated from a seed, lazily and in chunks (so
nothing big is stored and any byte range can be served), with git and LFS ids like the real hub's,
and realistic layouts (shards of equal size plus small config files)."""

from __future__ import annotations

import collections
import dataclasses
import hashlib
import json
import random
import threading
from collections.abc import Iterable, Iterator

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
    nominal_total_size: int | None = None,
) -> SyntheticRepo:
    """A small but well-formed model repo: config, tokenizer, sharded safetensors and their index.

    ``total_size`` is split evenly over ``shards`` safetensors files (the small JSON files come on
    top). The content depends only on the arguments. ``nominal_total_size`` is what the index's
    ``metadata.total_size`` states instead of the real tensor bytes, so that a small download can
    stand for a big model (the simulated ML node sizes the weights it loads from that figure).
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
    stated = tensor_bytes if nominal_total_size is None else nominal_total_size
    files["model.safetensors.index.json"] = Blob.from_text(
        json.dumps({"metadata": {"total_size": stated}, "weight_map": weight_map}, indent=2) + "\n"
    )
    return SyntheticRepo(repo_id, files, extra_refs=extra_refs)
