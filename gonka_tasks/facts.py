"""Pure parsers of what the server says: lsblk/blkid/findmnt, fstab, compose ps, RPC status, keys.

Each takes command output (text) and returns plain data, or raises `FactError` with a message:
never anything else, whatever the input (the fuzz tests hold them to that).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field


class FactError(ValueError):
    """Command output that cannot be understood."""


def _json(text: str, what: str):
    try:
        return json.loads(text)
    except (ValueError, TypeError, RecursionError) as e:
        raise FactError(f"{what}: not JSON ({e.__class__.__name__})") from None


# --------------------------------------------------------------------------------- disks
@dataclass
class BlockDevice:
    name: str
    path: str
    type: str
    fstype: str | None = None
    uuid: str | None = None
    mountpoints: list[str] = field(default_factory=list)
    children: list[BlockDevice] = field(default_factory=list)


def parse_lsblk(text: str) -> list[BlockDevice]:
    """`lsblk -J -o NAME,PATH,TYPE,FSTYPE,UUID,MOUNTPOINTS` -> devices with their children."""
    data = _json(text, "lsblk")
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
    root_disks: set[str]               # disks holding / and /boot
    mounted_at: list[str]              # where the device (or a child) is mounted


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
    roots = {ln.strip() for ln in rootdisk_out.splitlines() if ln.strip()}
    return DiskFacts(True, parse_blkid_export(blkid_out), device, roots, mounted)


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


def parse_findmnt(text: str) -> list[dict[str, str]]:
    """`findmnt -J -o TARGET,SOURCE,FSTYPE,UUID ...` -> filesystems (flattened), keys upper-cased."""
    if not text.strip():
        return []
    data = _json(text, "findmnt")
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


# ---------------------------------------------------------------------------- compose / docker
@dataclass
class Container:
    name: str
    service: str
    state: str
    exit_code: int = 0
    health: str = ""
    publishers: list[dict] = field(default_factory=list)

    @property
    def running(self) -> bool:
        return self.state == "running"


def parse_compose_ps(text: str) -> list[Container]:
    """`docker compose ps --format json`: one JSON object per line (v2.21+) or one JSON array (older)."""
    text = text.strip()
    if not text:
        return []
    items: list = []
    if text.startswith("["):
        data = _json(text, "compose ps")
        if not isinstance(data, list):
            raise FactError("compose ps: not a list")
        items = data
    else:
        for line in text.splitlines():
            line = line.strip()
            if line:
                items.append(_json(line, "compose ps"))
    out = []
    for it in items:
        if not isinstance(it, dict):
            raise FactError("compose ps: entry is not an object")
        pubs = it.get("Publishers") or []
        code = it.get("ExitCode", 0)
        out.append(Container(
            name=str(it.get("Name", "")), service=str(it.get("Service", "")),
            state=str(it.get("State", "")).lower(), exit_code=code if isinstance(code, int) else 0,
            health=str(it.get("Health", "") or ""), publishers=pubs if isinstance(pubs, list) else [],
        ))
    return out


def compose_services(yaml_text: str) -> list[str]:
    """Service names of a compose file that run by default (services with `profiles` are opt-in)."""
    import yaml  # noqa: PLC0415 - only phases that read compose files need it

    try:
        data = yaml.safe_load(yaml_text)
    # PyYAML's scalar constructors raise more than YAMLError: ValueError (`2001-02-30`, `!!int x`, a
    # 5000-digit int), KeyError (`!!bool x`), IndexError (`!!int`), AttributeError (`!!timestamp x`);
    # deep nesting raises RecursionError.
    except (yaml.YAMLError, ValueError, LookupError, AttributeError, TypeError, RecursionError) as e:
        raise FactError(f"compose file: not YAML ({e.__class__.__name__})") from None
    if not isinstance(data, dict) or not isinstance(data.get("services"), dict):
        raise FactError("compose file: no services")
    return [str(name) for name, svc in data["services"].items()
            if not (isinstance(svc, dict) and svc.get("profiles"))]


# ------------------------------------------------------------------------------ chain RPC
@dataclass
class RpcStatus:
    network: str
    height: int
    catching_up: bool
    validator_pubkey: str


def parse_rpc_status(text: str) -> RpcStatus:
    """CometBFT `/status` JSON (with or without the JSON-RPC `result` envelope)."""
    data = _json(text, "RPC status")
    if isinstance(data, dict) and isinstance(data.get("result"), dict):
        data = data["result"]
    if not isinstance(data, dict):
        raise FactError("RPC status: not an object")
    sync = data.get("sync_info")
    if not isinstance(sync, dict):
        raise FactError("RPC status: no sync_info")
    try:
        height = int(str(sync.get("latest_block_height", "0")))
    except ValueError:
        raise FactError("RPC status: latest_block_height is not a number") from None
    vinfo = data.get("validator_info") if isinstance(data.get("validator_info"), dict) else {}
    pub = vinfo.get("pub_key") if isinstance(vinfo.get("pub_key"), dict) else {}
    ninfo = data.get("node_info") if isinstance(data.get("node_info"), dict) else {}
    catching = sync.get("catching_up", False)
    return RpcStatus(network=str(ninfo.get("network", "")), height=height,
                     catching_up=catching is True or str(catching).lower() == "true",
                     validator_pubkey=str(pub.get("value", "") or ""))


# ------------------------------------------------------------------------------ keys
_ADDRESS = re.compile(r"\b(gonka1[02-9ac-hj-np-z]{38,58})\b")
_MNEMONIC_LINE = re.compile(r"^\s*([a-z]+(?: [a-z]+){11,23})\s*$")


@dataclass
class NewKey:
    address: str
    mnemonic: str


def parse_keys_add(text: str) -> NewKey:
    """Output of `inferenced keys add` (YAML record + mnemonic, on whichever streams) -> address, mnemonic."""
    addr = None
    for line in text.splitlines():
        m = re.match(r"^\s*(?:-\s*)?address:\s*(\S+)\s*$", line)  # not \s*-?\s*: quadratic on blank lines
        if m and _ADDRESS.fullmatch(m.group(1)):
            addr = m.group(1)
            break
    words = [m.group(1) for line in text.splitlines() if (m := _MNEMONIC_LINE.match(line))]
    mnemonic = next((w for w in reversed(words) if len(w.split()) in (12, 15, 18, 21, 24)), None)
    if not addr:
        raise FactError("keys add: no gonka1... address in the output")
    if not mnemonic:
        raise FactError("keys add: no mnemonic phrase in the output")
    return NewKey(addr, mnemonic)


def parse_address(text: str) -> str | None:
    """The first gonka1... address in a text (`keys show -a`)."""
    m = _ADDRESS.search(text)
    return m.group(1) if m else None


def parse_mnemonic(text: str) -> str | None:
    """A stored warm_key.txt: the mnemonic line (12-24 lowercase words)."""
    for line in text.splitlines():
        m = _MNEMONIC_LINE.match(line)
        if m and len(m.group(1).split()) in (12, 15, 18, 21, 24):
            return m.group(1)
    return None


def parse_kv_lines(text: str) -> dict[str, str]:
    """`name value` lines (first word is the name) -> dict."""
    out = {}
    for line in text.splitlines():
        parts = line.split(None, 1)
        if parts:
            out[parts[0]] = parts[1].strip() if len(parts) > 1 else ""
    return out
