"""The data disk: lsblk, blkid and the system disks, and the one irreversible decision, `decide_disk`
(format only a disk that is positively blank, never the system disk)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from shlex import quote

from gonka_tasks.facts.base import FactError, load_json


@dataclass
class BlockDevice:
    name: str
    path: str
    type: str
    fstype: str | None = None
    uuid: str | None = None
    mountpoints: list[str] = field(default_factory=list)
    children: list[BlockDevice] = field(default_factory=list)


def lsblk_probe(disk: str) -> str:
    """The data disk and its children as JSON (parse_lsblk)."""
    return f"lsblk -J -o NAME,PATH,TYPE,FSTYPE,UUID,MOUNTPOINTS {quote(disk)}"


def blkid_probe(disk: str) -> str:
    """Signatures read from the device itself, not udev's cache (parse_blkid_export)."""
    return f"blkid -p -o export {quote(disk)}"


def parse_lsblk(text: str) -> list[BlockDevice]:
    """`lsblk -J -o NAME,PATH,TYPE,FSTYPE,UUID,MOUNTPOINTS` -> devices with their children."""
    data = load_json(text, "lsblk")
    if not isinstance(data, dict) or not isinstance(data.get("blockdevices"), list):
        raise FactError("lsblk: no blockdevices list")

    def dev(d) -> BlockDevice:
        if not isinstance(d, dict) or not isinstance(d.get("name"), str):
            raise FactError("lsblk: device without a name")
        mps = d.get("mountpoints", [d.get("mountpoint")])
        if not isinstance(mps, list):
            mps = [mps]
        kids = d.get("children") or []
        if not isinstance(kids, list):
            raise FactError("lsblk: children is not a list")
        return BlockDevice(
            name=d["name"], path=str(d.get("path") or f"/dev/{d['name']}"), type=str(d.get("type") or ""),
            fstype=d.get("fstype") if isinstance(d.get("fstype"), str) else None,
            uuid=d.get("uuid") if isinstance(d.get("uuid"), str) else None,
            mountpoints=[m for m in mps if isinstance(m, str) and m],
            children=[dev(c) for c in kids],
        )
    try:
        return [dev(d) for d in data["blockdevices"]]
    except RecursionError:  # a real disk has a handful of levels, not hundreds
        raise FactError("lsblk: devices nested too deeply") from None


def parse_blkid_export(text: str) -> dict[str, str]:
    """`blkid -p -o export DEV` -> {"TYPE": "ext4", "UUID": ..., "PTTYPE": "gpt", ...}."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        if "=" in line:
            k, _, v = line.partition("=")
            if re.fullmatch(r"[A-Z_]+", k.strip()):
                out[k.strip()] = v.strip()
    return out


@dataclass
class DiskFacts:
    """What the server says about DATA_DISK, gathered in one batched probe."""

    exists: bool
    signature: dict[str, str]          # blkid -p: TYPE / UUID / PTTYPE
    device: BlockDevice | None         # lsblk of the device, with children
    root_disks: set[str]               # disks holding /, /boot and /boot/efi
    mounted_at: list[str]              # where the device (or a child) is mounted
    root_unknown: list[str] = field(default_factory=list)  # system mounts whose disk could not be told


# One line per system mount point: `disk <mount> <name>` for each disk under it (`lsblk -s` walks from
# the filesystem down through partitions, LVM or RAID to the disks; -r prints no tree drawing),
# `nodev <mount> <source>` when it is not on a block device (overlay, ZFS), `unknown ...` when lsblk
# cannot tell; a mount point that does not exist prints nothing. DONE ends a complete answer.
ROOT_DISKS_PROBE = (
    "for m in / /boot /boot/efi; do "
    's=$(findmnt -n -v -o SOURCE --mountpoint "$m" 2>/dev/null) || continue; '
    's=$(printf "%s\\n" "$s" | tail -n 1); '
    'case "$s" in /dev/*) ;; *) echo "nodev $m $s"; continue ;; esac; '
    'd=$(lsblk -n -r -s -o NAME,TYPE "$s" 2>/dev/null | awk \'$2=="disk"{print $1}\'); '
    'if [ -n "$d" ]; then for x in $d; do echo "disk $m $x"; done; else echo "unknown $m $s"; fi; '
    "done; echo DONE"
)


def parse_root_disks(text: str) -> tuple[set[str], list[str]]:
    """ROOT_DISKS_PROBE's output -> (disk names under the system mounts, mounts that are unknown)."""
    disks: set[str] = set()
    unknown: list[str] = []
    lines = [ln.split() for ln in text.splitlines() if ln.strip()]
    if not lines or lines[-1] != ["DONE"]:
        return disks, ["the system disk probe gave no complete answer"]
    for words in lines[:-1]:
        if len(words) == 3 and words[0] == "disk":
            disks.add(words[2])
        elif len(words) >= 3 and words[0] == "unknown":
            unknown.append(f"{words[1]} ({' '.join(words[2:])})")
        elif not (len(words) >= 3 and words[0] == "nodev"):
            unknown.append(f"unexpected line {' '.join(words)[:80]!r}")
    return disks, unknown


def disk_facts(exists_rc: int, blkid_out: str, lsblk_out: str, rootdisk_out: str) -> DiskFacts:
    """Combine the probes of a disk into DiskFacts."""
    if exists_rc != 0:
        return DiskFacts(False, {}, None, set(), [])
    devs = parse_lsblk(lsblk_out) if lsblk_out.strip() else []
    device = devs[0] if devs else None
    mounted: list[str] = []
    if device:
        stack = [device]
        while stack:
            d = stack.pop()
            mounted += d.mountpoints
            stack += d.children
    roots, unknown = parse_root_disks(rootdisk_out)
    return DiskFacts(True, parse_blkid_export(blkid_out), device, roots, mounted, unknown)


@dataclass
class DiskDecision:
    action: str      # "format" | "keep" | "error"
    reason: str
    uuid: str | None = None
    found: str = ""  # what is on the disk, for messages and --wipe-disk


def decide_disk(f: DiskFacts, disk: str, mount_point: str, recorded_uuid: str | None, adopt: bool) -> DiskDecision:
    """Format only a blank disk; keep our own (or adopted) ext4; refuse everything else, saying what it is."""
    if not f.exists:
        return DiskDecision("error", f"{disk} does not exist on the server; check DATA_DISK (see `lsblk`)")
    name = disk.rsplit("/", 1)[-1]
    if f.device and (f.device.name in f.root_disks or name in f.root_disks):
        return DiskDecision("error", f"{disk} holds the root or boot filesystem; refusing to touch it",
                            found="system disk")
    if f.root_unknown:
        return DiskDecision("error", f"cannot tell which disk holds {', '.join(f.root_unknown)}, so {disk} cannot "
                            "be shown not to be the system disk", found="system disk unknown")
    sig = f.signature
    kids = f.device.children if f.device else []
    if kids:
        parts = ", ".join(f"{k.name} ({k.fstype or 'no filesystem'})" for k in kids)
        return DiskDecision("error", f"{disk} has partitions: {parts}", found="partitions")
    if sig.get("PTTYPE"):
        return DiskDecision("error", f"{disk} has a {sig['PTTYPE']} partition table", found=f"{sig['PTTYPE']} partition table")
    fstype = sig.get("TYPE")
    uuid = sig.get("UUID")
    other_mounts = [m for m in f.mounted_at if m != mount_point]
    if other_mounts:
        return DiskDecision("error", f"{disk} is mounted at {', '.join(other_mounts)}", found=f"mounted at {other_mounts[0]}")
    if not fstype:
        if f.mounted_at:
            return DiskDecision("error", f"{disk} is mounted at {f.mounted_at[0]} but shows no filesystem",
                                found="mounted")
        return DiskDecision("format", f"{disk} is blank", found="blank")
    if fstype == "ext4" and uuid and (uuid == recorded_uuid or adopt):
        why = "recorded in volume.txt" if uuid == recorded_uuid else "ADOPT_DISK=true"
        return DiskDecision("keep", f"{disk} holds ext4 {uuid} ({why})", uuid=uuid, found="ext4")
    if fstype == "ext4":
        rec = f"volume.txt has {recorded_uuid}" if recorded_uuid else "no volume.txt for this node"
        return DiskDecision("error", f"{disk} holds an ext4 filesystem {uuid} that this deploy did not create ({rec})",
                            uuid=uuid, found="ext4")
    return DiskDecision("error", f"{disk} holds a {fstype} filesystem", uuid=uuid, found=fstype)
