"""File modes of what holds secrets on this machine: the node config and `nodes/<KEY_NAME>/`.

Checked at the start of every run, before anything is written to the artefact folder:
- a folder that another user could write to, swap (a symlink into a shared place) or owns is
  refused: whoever controls it could read or replace the warm key and the key backups;
- a node config readable by others gets a WARN (it holds KEYRING_PASSWORD);
- secret artefacts that became readable by others (a copy, an archive unpacked, a umask) are made
  private again: files 0600, folders 0700.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from gonka_tasks.connectors.artefacts import is_secret_artefact
from gonka_tasks.errors import DeployError

_OTHERS_WRITE = stat.S_IWGRP | stat.S_IWOTH


def config_mode_warning(path: Path) -> str | None:
    """A WARN for a node config that other users can read or change, else None."""
    try:
        mode = path.stat().st_mode & 0o777
    except OSError:
        return None
    if mode & 0o044:
        who = "readable by others"
    elif mode & 0o022:
        who = "writable by others"
    else:
        return None
    return f"{path} is {who} (mode {mode:04o}): it holds KEYRING_PASSWORD; chmod 600 {path}"


def _owner_ok(st: os.stat_result) -> bool:
    return st.st_uid in (os.geteuid(), 0)


def check_artefact_dir(path: Path) -> None:
    """Refuse an artefact folder that is not a folder, or that someone else could write, swap or owns."""
    fix = f"make it yours and private (chmod 700 {path}), or remove it if it is not this node's"
    if not path.is_symlink() and not path.exists():
        return  # created 0700 on first write
    if not path.is_dir():
        target = f" (a link to {os.readlink(path)})" if path.is_symlink() else ""
        raise DeployError(f"{path}{target} exists but is not a folder; KEY_NAME {path.name} keeps its keys in "
                          f"{path}/", f"move {path} aside, or choose another KEY_NAME")
    real = path.resolve()
    shown = f"{path} (a link to {real})" if path.is_symlink() else str(path)
    st, lst = real.stat(), path.lstat()
    if not (_owner_ok(st) and _owner_ok(lst)):
        uid = st.st_uid if not _owner_ok(st) else lst.st_uid
        raise DeployError(f"{shown} is owned by another user (uid {uid}); it holds this node's keys", fix)
    if st.st_mode & _OTHERS_WRITE:
        raise DeployError(f"{shown} is writable by group/others (mode {st.st_mode & 0o777:04o}): they could "
                          "read or replace the keys in it", fix)
    parent = real.parent.stat().st_mode
    if parent & stat.S_IWOTH and not parent & stat.S_ISVTX:
        raise DeployError(f"{shown} sits in {real.parent}, which anyone can write to (mode {parent & 0o7777:04o}, "
                          "no sticky bit): they could swap the folder", f"keep {path.name} in a private folder")


def tighten_secrets(path: Path) -> list[str]:
    """Make the secret artefacts under `path` private again; returns `file (0644 -> 0600)` for each
    one fixed, `file (0644: cannot chmod: why)` for each that could not be.

    Symlinks inside are left alone (chmod would follow them out of the folder).
    """
    if not path.is_dir():
        return []
    fixed: list[str] = []

    def fix(p: Path, want: int) -> None:
        mode = p.stat().st_mode & 0o777
        if mode & 0o077:
            try:
                os.chmod(p, want)
                fixed.append(f"{p} ({mode:04o} -> {want:04o})")
            except OSError as e:
                fixed.append(f"{p} ({mode:04o}: cannot chmod: {e.strerror})")

    fix(path, 0o700)
    for root, dirs, files in os.walk(path):
        rel = Path(root).relative_to(path)
        for d in dirs:
            if is_secret_artefact(rel / d, folder=True) and not Path(root, d).is_symlink():
                fix(Path(root, d), 0o700)
        for f in files:
            p = Path(root, f)
            if is_secret_artefact(rel / f) and not p.is_symlink():
                fix(p, 0o600)
    return fixed
