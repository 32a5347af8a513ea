"""Local artefacts in `nodes/<KEY_NAME>/`: atomic writes, and files that are never overwritten.

Every write is temp file + fsync + rename (+ fsync of the directory), so a crash leaves either
the old file or the new one. `warm_key.txt`, `warm_address.txt` and `volume.txt` are write-once:
writing different content over them is an error, never a silent loss.
"""

from __future__ import annotations

import os
import tempfile
from fnmatch import fnmatch
from pathlib import Path

from gonka_tasks.errors import DeployError
from gonka_tasks.facts import is_address

WRITE_ONCE = frozenset({"warm_key.txt", "warm_address.txt", "volume.txt"})
SECRET_FILES = frozenset({"warm_key.txt", "config.env"})
# Other names that hold key material or the keyring password (copies, temp files, pending key output).
SECRET_PATTERNS = ("warm_key.txt*", "config.env*", "*.pending", "*.key", "*key*.json", "*.pem", "*mnemonic*",
                   "keyring*")


def is_secret_artefact(rel: Path, folder: bool = False) -> bool:
    """True for what must stay private in `nodes/<KEY_NAME>/` (path relative to it): the warm key,
    config.env, everything under backup/, and other key material."""
    if rel.parts and rel.parts[0] == "backup":
        return True
    name = rel.name.lstrip(".")  # write_atomic's temp files are `.<name>.<random>.tmp`
    return not folder and (name in SECRET_FILES or any(fnmatch(name, p) for p in SECRET_PATTERNS))


def write_atomic(path: Path, content: str | bytes, mode: int = 0o644) -> None:
    """Write `path` atomically and durably with the given mode (the directory is made 0700)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    data = content.encode() if isinstance(content, str) else content
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    dfd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


def remove_stale_temps(path: Path) -> None:
    """Remove temp files of `path` left by a run killed in the middle of writing it (they may hold a
    secret, and they are never the file itself)."""
    if path.parent.is_dir():
        for stale in path.parent.glob(f".{glob_escape(path.name)}.*.tmp"):
            stale.unlink(missing_ok=True)


def glob_escape(name: str) -> str:
    return "".join(f"[{c}]" if c in "*?[" else c for c in name)


def write_artefact(dirpath: Path, name: str, content: str, mode: int | None = None) -> Path:
    """Write one artefact; write-once files must not change, secret files are 0600."""
    path = dirpath / name
    remove_stale_temps(path)
    if mode is None:
        mode = 0o600 if is_secret_artefact(Path(name)) else 0o644
    if name in WRITE_ONCE and path.exists():
        old = path.read_text()
        if old.strip() == content.strip():
            if path.stat().st_mode & 0o777 != mode:
                os.chmod(path, mode)
            return path
        raise DeployError(
            f"{path} already exists with different content; refusing to overwrite it",
            f"{name} must never be lost: move it aside yourself only if you are sure it belongs to another "
            "server, then rerun",
        )
    write_atomic(path, content, mode)
    return path


def read_artefact(dirpath: Path, name: str) -> str | None:
    path = dirpath / name
    return path.read_text() if path.exists() else None


def warm_address(dirpath: Path) -> str | None:
    """warm_address.txt's address, or None when the file is missing or holds anything else (it is
    printed inside the grant command the operator copies into a shell)."""
    text = (read_artefact(dirpath, "warm_address.txt") or "").strip()
    return text if is_address(text) else None
