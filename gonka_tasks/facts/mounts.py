"""The mount point (checked on the server before mkfs), fstab lines keyed on the mount point, and findmnt."""

from __future__ import annotations

from dataclasses import dataclass
from shlex import quote

from gonka_tasks.config.paths import system_dir
from gonka_tasks.facts.base import FactError, load_json


@dataclass
class MountPointDecision:
    ok: bool
    reason: str


# The mount point as the server sees it: `realpath -m` (symlinks followed), then its kind, then
# (for a directory) its entries and a marker; fields separated by MP_SEP lines.
MP_SEP = "__GD_MP__"


def mount_point_probe(mount_point: str) -> str:
    m = quote(mount_point)
    return (f"realpath -m -- {m}; echo {MP_SEP}; "
            f"if [ -L {m} ]; then echo symlink; elif [ -d {m} ]; then echo dir; elif [ -e {m} ]; then echo other; "
            f"else echo missing; fi; echo {MP_SEP}; "
            f"if [ -d {m} ]; then ls -A -- {m} && echo {MP_SEP}; fi")


def decide_mount_point(mount_point: str, probe_out: str, mounted: list[dict[str, str]], disk: str,
                       our_uuids: set[str]) -> MountPointDecision:
    """Mount the data disk at `mount_point` only if the server shows it is safe: the path resolves to
    itself (no symlink leads elsewhere), is no system directory, and is missing, an empty directory,
    or already the mount point of our disk. Anything unclear is a refusal."""
    parts: list[list[str]] = [[]]
    for line in probe_out.splitlines():
        if line.strip() == MP_SEP:
            parts.append([])
        else:
            parts[-1].append(line)
    if len(parts) < 3:
        return MountPointDecision(False, f"cannot read the state of {mount_point} on the server")
    real, kind = "\n".join(parts[0]).strip(), "\n".join(parts[1]).strip()
    if real != mount_point:
        where = system_dir(real)
        what = f"the system directory {where}" if where else real
        return MountPointDecision(False, f"{mount_point} resolves to {what} on the server (a symlink on the way)")
    if system_dir(real):
        return MountPointDecision(False, f"{mount_point} is the system directory {system_dir(real)}")
    if mounted:
        top = mounted[-1]
        if top.get("SOURCE") == disk or top.get("UUID") in our_uuids:
            return MountPointDecision(True, f"already the mount point of {disk}")
        return MountPointDecision(False, f"{mount_point} is already a mount point of {top.get('SOURCE')} "
                                         f"({top.get('FSTYPE')}), not of {disk}")
    if kind == "missing":
        return MountPointDecision(True, f"{mount_point} does not exist yet")
    if kind != "dir":
        return MountPointDecision(False, f"{mount_point} exists and is not a directory ({kind or 'unknown'})")
    if len(parts) < 4:
        return MountPointDecision(False, f"cannot list {mount_point} on the server")
    entries = [e for e in parts[2] if e.strip()]
    if entries:
        return MountPointDecision(False, f"{mount_point} is not empty ({', '.join(entries[:3])}"
                                         f"{'...' if len(entries) > 3 else ''}): mounting would hide those files")
    return MountPointDecision(True, f"{mount_point} is an empty directory")


# --------------------------------------------------------------------------------- fstab
def fstab_with_entry(text: str, line: str, mount_point: str) -> str:
    """fstab text with exactly one entry for mount_point (the given line), comments and order kept."""
    out: list[str] = []
    placed = False
    for ln in text.splitlines():
        fields = ln.split()
        if fields and not fields[0].startswith("#") and len(fields) >= 2 and fields[1].rstrip("/") == mount_point.rstrip("/"):
            if not placed:
                out.append(line)
                placed = True
            continue
        out.append(ln)
    if not placed:
        out.append(line)
    return "\n".join(out) + "\n"


def fstab_entries_for(text: str, mount_point: str) -> list[str]:
    """The non-comment fstab lines whose mount point is mount_point."""
    return [ln for ln in text.splitlines()
            if (f := ln.split()) and not f[0].startswith("#") and len(f) >= 2 and f[1].rstrip("/") == mount_point.rstrip("/")]


def findmnt_probe(mount_point: str) -> str:
    """What is mounted at the mount point, as JSON (parse_findmnt)."""
    return f"findmnt -J -o TARGET,SOURCE,FSTYPE,UUID --mountpoint {quote(mount_point)}"


def parse_findmnt(text: str) -> list[dict[str, str]]:
    """`findmnt -J -o TARGET,SOURCE,FSTYPE,UUID ...` -> filesystems (flattened), keys upper-cased."""
    if not text.strip():
        return []
    data = load_json(text, "findmnt")
    if not isinstance(data, dict) or not isinstance(data.get("filesystems", []), list):
        raise FactError("findmnt: no filesystems list")
    out: list[dict[str, str]] = []
    stack = list(data.get("filesystems", []))
    while stack:
        fs = stack.pop(0)
        if not isinstance(fs, dict):
            raise FactError("findmnt: entry is not an object")
        out.append({k.upper(): str(v) for k, v in fs.items() if k != "children" and v is not None})
        kids = fs.get("children") or []
        if isinstance(kids, list):
            stack += kids
    return out
