"""Pure parsers of what the server says: lsblk/blkid/findmnt, fstab, compose ps, RPC status, keys.

Each takes command output (text) and returns plain data, or raises `FactError` with a message:
never anything else, whatever the input (the fuzz tests hold them to that).

One module on purpose (~550 lines): every parser of what a server says sits here, each a pure
function held to the same contract by the fuzz tests, which check that none is left out.
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


# ---------------------------------------------------------------------------- mount point
@dataclass
class MountPointDecision:
    ok: bool
    reason: str


# The mount point as the server sees it: `realpath -m` (symlinks followed), then its kind, then
# (for a directory) its entries and a marker; fields separated by MP_SEP lines.
MP_SEP = "__GD_MP__"


def mount_point_probe(mount_point: str) -> str:
    from shlex import quote  # noqa: PLC0415

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
    from .paths import system_dir  # noqa: PLC0415

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


_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


def is_uuid(text: str | None) -> bool:
    """A filesystem UUID as blkid prints it (and nothing else: it is pasted into mkfs/mount commands)."""
    return bool(text and _UUID.fullmatch(text))


def is_address(text: str) -> bool:
    return bool(_ADDRESS.fullmatch(text))


def shown(text: str, limit: int = 60) -> str:
    """A value read from a file or the server, safe to put in a message: one line, escaped, cut short."""
    return text[:limit].encode("unicode_escape").decode("ascii") + ("..." if len(text) > limit else "")


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


# ------------------------------------------------------------------------- the warm key
@dataclass
class KeyState:
    """What the server says about the warm key: `present` (with its address), `absent`, or
    `unknown` (anything else: a failed or cut probe, an unexpected answer). Only `absent` lets
    `keys add` run; `bad_password` is a known `unknown` with its own fix."""

    state: str  # "present" | "absent" | "unknown" | "bad_password" | "broken"
    address: str | None = None
    reason: str = ""


KEYRING_LISTED = "__GD_KEYRING_LISTED__"
KEYRING_NO_DIR = "__GD_KEYRING_NO_DIR__"


def keyring_listing_probe(keyring_dir: str) -> str:
    """A shell probe whose output `parse_keyring_listing` reads: the file names of the keyring
    directory and a marker, or the marker of a directory that does not exist. Anything else
    (permission denied, not a directory, a cut connection) gives neither marker."""
    from shlex import quote  # noqa: PLC0415

    d = quote(keyring_dir)
    return (f"if [ -d {d} ]; then ls -A {d} && echo {KEYRING_LISTED}; "
            f"elif [ ! -e {d} ] && [ ! -L {d} ]; then echo {KEYRING_NO_DIR}; fi")


def parse_keyring_listing(text: str) -> set[str] | None:
    """File names in the keyring directory (empty when it does not exist), None when unknown."""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    if lines == [KEYRING_NO_DIR]:
        return set()
    if lines and lines[-1] == KEYRING_LISTED:
        return set(lines[:-1])
    return None


# a keyring entry that exists but does not decode: a write cut short (the file keyring's jose parser)
_BROKEN_ENTRY = ("go-jose", "unexpected end of JSON input", "compact JWE format")
_PASSWORD_ERRORS = ("integrity check failed", "incorrect passphrase", "too many failed passphrase attempts")


def decide_warm_key(name: str, exit_code: int | None, output: str, keyring_files: set[str] | None) -> KeyState:
    """Read `inferenced keys show NAME -a --keyring-backend file` (stdout and stderr together) and
    the keyring directory's listing.

    The Cosmos SDK's `keys show` (client/keys/show.go) exits 1 with
    `NAME is not a valid name or address: <why>` as its last line on stderr (inferenced prints it
    bare; other builds prefix `Error: `) when the name is not in the keyring; <why> is the bech32
    error of reading NAME as an address (`decoding bech32 failed: ...`) or `... key not found`. A key is `absent` only when that exact answer comes back AND the keyring
    directory was listed without `NAME.info`; every other answer is `unknown`.
    """
    lines = [ln.strip() for ln in (output or "").splitlines() if ln.strip()]
    addresses = [ln for ln in lines if _ADDRESS.fullmatch(ln)]
    if exit_code == 0:
        if len(set(addresses)) == 1:
            return KeyState("present", addresses[0], f"address {addresses[0]}")
        return KeyState("unknown", reason="`keys show` exited 0 without one address in its output")
    low = "\n".join(lines).lower()
    if any(e in low for e in _PASSWORD_ERRORS):
        return KeyState("bad_password", reason="KEYRING_PASSWORD does not open the server's keyring")
    prefix = f"{name} is not a valid name or address: "
    if exit_code == 1 and keyring_files and f"{name}.info" in keyring_files and any(
            ln.removeprefix("Error: ").startswith(prefix) and any(b in ln for b in _BROKEN_ENTRY) for ln in lines):
        return KeyState("broken", reason=f"the keyring entry {name}.info cannot be read ({lines[-1][:160]})")
    said_absent = exit_code == 1 and any(
        ln.removeprefix("Error: ").startswith(prefix)
        and (ln.removeprefix("Error: ")[len(prefix):].startswith("decoding bech32 failed") or "key not found" in ln)
        for ln in lines)
    if not said_absent:
        tail = lines[-1][:200] if lines else "no output"
        code = "timed out" if exit_code is None else f"exit code {exit_code}"
        return KeyState("unknown", reason=f"`keys show` gave no clear answer ({code}: {tail})")
    if keyring_files is None:
        return KeyState("unknown", reason="`keys show` says no key, but the keyring directory could not be listed")
    if f"{name}.info" in keyring_files:
        return KeyState("unknown", reason=f"`keys show` says no key, but the keyring holds {name}.info")
    return KeyState("absent", reason="no key of that name in the keyring")


@dataclass
class PendingOutput:
    """A key creation's output kept on the server, as the deployer reads it back."""

    text: str                # what `keys add` printed (markers and NUL padding removed)
    exit_code: int | None    # None while it runs (or if it died before finishing)
    alive: bool              # the creating process still runs


def parse_pending_output(text: str, rc_mark: str, pid_mark: str, alive_mark: str) -> PendingOutput:
    """The pending file as `cat`-ed with the liveness marker appended -> PendingOutput."""
    out, code, alive = [], None, False
    for line in text.replace("\0", "").splitlines():
        if line.startswith(rc_mark):
            rest = line[len(rc_mark):].strip()
            code = int(rest) if rest.isdigit() else -1
        elif line.strip() == alive_mark:
            alive = True
        elif not line.startswith(pid_mark):
            out.append(line)
    return PendingOutput("\n".join(out), code, alive)
