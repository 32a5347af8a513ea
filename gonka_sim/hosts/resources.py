"""What a sandbox host owns on the machine, and how it is found again and removed: the settings
(base dir, index), processes (pid plus start time, so a recycled pid is never signalled), loop
devices, the saved state (state.json) and the teardown that works from any process."""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import fcntl
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from . import lan

BASE_ENV = "GONKA_SANDBOX_BASE"
IDX0_ENV = "GONKA_SANDBOX_IDX0"
DEFAULT_BASE = "/tmp/gonka-sandbox"
DEFAULT_IDX0 = 100

HERE = Path(__file__).resolve().parent
HOSTINIT = HERE / "hostinit.py"
SERVER = "server"  # `server_root=SERVER`: the simulated server software (gonka_sim.server.install)

SSHD = "/usr/sbin/sshd"
TOOLS = ("unshare", "nsenter", "losetup", "ip", "ssh-keygen", "mkfs.ext4", "blkdiscard")
PREFIX = "gs-"
# veth names have at most 15 characters: "gs-" leaves 12 for the host name.
NAME_RE = re.compile(r"[a-z0-9][a-z0-9-]{0,11}")
DISK_RE = re.compile(r"[a-z]{2,8}")
HOST_ENV = {
    "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "HOME": "/root", "USER": "root", "LOGNAME": "root", "SHELL": "/bin/bash", "LANG": "C.UTF-8",
}

DOCKER_LOG = "/var/log/gonka-sim/docker.log"  # written by the simulated docker (gonka_sim.server)

SYSTEM_DISK_IMAGE, SYSTEM_PART_IMAGE = "sysdisk.img", "sysdisk-part1.img"
SYSTEM_DISK_SIZE, SYSTEM_PART_SIZE = 64 * 1024**2, 32 * 1024**2

UP_TIMEOUT = 10.0  # seconds for sshd to answer after the namespaces start
STOP_GRACE = 2.0  # seconds between SIGTERM and SIGKILL
TOOL_TIMEOUT = 30.0  # any helper command (ip, losetup, ssh-keygen, blkdiscard)


class HostError(RuntimeError):
    """A sandbox host could not be brought up, reset or torn down."""


class HostCommandError(HostError):
    """A command run inside a sandbox host (`SandboxHost.run`) failed."""

    def __init__(self, argv: Sequence[str], result: subprocess.CompletedProcess):
        self.result = result
        err = result.stderr if isinstance(result.stderr, str) else result.stderr.decode(errors="replace")
        super().__init__(f"{shlex.join(argv)} exited {result.returncode}: {err.strip()[-2000:]}")


# --------------------------------------------------------------------------- settings


def base_dir() -> Path:
    """Directory holding one state dir per host ($GONKA_SANDBOX_BASE)."""
    return Path(os.environ.get(BASE_ENV) or DEFAULT_BASE)


def first_index() -> int:
    """First host index for this run ($GONKA_SANDBOX_IDX0); hosts use IDX0, IDX0+1, ..."""
    return int(os.environ.get(IDX0_ENV) or DEFAULT_IDX0)


def addresses(idx: int) -> tuple[str, str]:
    """(runner_ip, host ip) of host `idx`: both ends of its /24."""
    return f"10.200.{idx}.1", f"10.200.{idx}.2"


def check_name(name: str, idx: int) -> None:
    """Refuse names that do not fit a veth name and indexes outside one /24 octet."""
    if not NAME_RE.fullmatch(name):
        raise ValueError(f"host name {name!r}: 1-12 characters of [a-z0-9-], starting alnum")
    if not 0 <= idx <= 255:
        raise ValueError(f"host index {idx}: must be 0..255")


def parse_size(size: str | int) -> int:
    """Bytes in a size like 2G, 512M or 1073741824."""
    if isinstance(size, int):
        return size
    m = re.fullmatch(r"(\d+)([KMGT]?)i?B?", size.strip(), re.IGNORECASE)
    if not m:
        raise ValueError(f"bad size {size!r}")
    return int(m.group(1)) * 1024 ** " KMGT".index(m.group(2).upper() or " ")


def missing_prerequisites() -> list[str]:
    """Reasons this machine cannot run sandbox hosts (empty when it can)."""
    reasons = [] if os.geteuid() == 0 else ["needs root (network namespaces, loop devices, mounts)"]
    reasons += [f"missing tool: {t}" for t in TOOLS if shutil.which(t) is None]
    if not os.access(SSHD, os.X_OK):
        reasons.append(f"missing {SSHD} (apt-get install openssh-server)")
    return reasons


# --------------------------------------------------------------------------- processes


def _proc_stat(pid: int) -> tuple[str, int] | None:
    """(state letter, start time in clock ticks) of a process, or None if there is none."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return None
    return fields[0], int(fields[19])


def process_id(pid: int) -> list[int] | None:
    """[pid, start time]: identifies a process even after its pid is reused."""
    stat = _proc_stat(pid)
    return [pid, stat[1]] if stat else None


def alive(ident: Sequence[int] | None) -> bool:
    """True if the process [pid, start time] still runs (a zombie counts as gone)."""
    if not ident:
        return False
    stat = _proc_stat(ident[0])
    return stat is not None and stat[1] == ident[1] and stat[0] not in "ZX"


def _signal(ident: Sequence[int] | None, sig: int) -> None:
    """Send `sig` to the recorded process, only if it is still that very process."""
    if alive(ident):
        with contextlib.suppress(ProcessLookupError):
            os.kill(ident[0], sig)


def _wait_gone(idents: Sequence[Sequence[int] | None], timeout: float) -> bool:
    """Wait until none of the processes runs; False on timeout."""
    deadline = time.monotonic() + timeout
    while any(alive(i) for i in idents):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)
    return True


def _tool(*argv: str, input: str | None = None, check: bool = True) -> str:
    """Run a helper command on the runner; its stdout, or HostError with its stderr."""
    r = subprocess.run(argv, input=input, capture_output=True, text=True, timeout=TOOL_TIMEOUT,
                       stdin=None if input is not None else subprocess.DEVNULL)
    if check and r.returncode:
        raise HostError(f"{shlex.join(argv)} exited {r.returncode}: {r.stderr.strip()}")
    return r.stdout


# --------------------------------------------------------------------------- devices


def _loops_backed_by(image: Path) -> list[str]:
    """Loop devices whose backing file is `image` (found through sysfs, no guessing)."""
    found = []
    for backing in Path("/sys/block").glob("loop*/loop/backing_file"):
        with contextlib.suppress(OSError):
            if backing.read_text().strip().removesuffix(" (deleted)") == str(image):
                found.append("/dev/" + backing.parent.parent.name)
    return found


def _wait_unused(device: str, timeout: float = 5.0) -> bool:
    """Wait until nothing has `device` mounted (an O_EXCL open succeeds); False on timeout.

    The ext4 mount of the disk goes away with the host's mount namespace, which the kernel
    may release a moment after the processes exit. Discarding or detaching before that
    would race with the file system's last writes.
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            os.close(os.open(device, os.O_RDONLY | os.O_EXCL))
            return True
        except FileNotFoundError:
            return True
        except OSError as e:
            if e.errno != errno.EBUSY or time.monotonic() > deadline:
                return False
        time.sleep(0.005)


def _wait_ssh(ip: str, still_starting, timeout: float) -> bool:
    """Wait for an SSH banner on ip:22 while `still_starting()` holds; False if it stops."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and still_starting():
        with contextlib.suppress(OSError), socket.create_connection((ip, 22), timeout=0.5) as s:
            s.settimeout(2)
            if s.recv(4) == b"SSH-":
                return True
        time.sleep(0.005)
    return False


# --------------------------------------------------------------------------- state


@dataclasses.dataclass
class HostState:
    """What a host owns, saved as <state dir>/state.json after every change."""

    name: str
    idx: int
    disk: str = "vdc"
    disk_size: int = 2 * 1024**3
    system_disk: bool = False  # also show /dev/vda (GPT) with /dev/vda1 at /boot
    provision: list[str] = dataclasses.field(default_factory=list)
    owner: list[int] | None = None  # process that brought it up: [pid, start time]
    # Machine-wide resources, recorded once made (teardown removes only what is recorded).
    loop: str | None = None
    system_loops: list[str] | None = None  # [whole disk, partition] when system_disk
    netns: str | None = None
    veth: str | None = None  # the runner's end of the pair
    lan: int | None = None  # private LAN joined (eth1 on 10.201.LAN.IDX, see lan.py)
    unshare: list[int] | None = None  # the `unshare` process (parent of the namespace's pid 1)
    init: list[int] | None = None  # pid 1 of the host (sshd), as seen from the runner

    def save(self, state_dir: Path) -> None:
        """Write state.json atomically."""
        tmp = state_dir / "state.json.tmp"
        tmp.write_text(json.dumps(dataclasses.asdict(self), indent=1))
        tmp.replace(state_dir / "state.json")

    @classmethod
    def load(cls, state_dir: Path) -> HostState | None:
        """The saved state, or None when it is missing or unreadable."""
        try:
            data = json.loads((state_dir / "state.json").read_text())
            return cls(**data)
        except (OSError, ValueError, TypeError):
            return None


@contextlib.contextmanager
def _base_lock(base: Path) -> Iterator[None]:
    """Serialize claiming and sweeping state dirs between processes sharing `base`."""
    base.mkdir(parents=True, exist_ok=True)
    with open(base / ".lock", "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _stop_processes(state: HostState) -> None:
    """SIGTERM the host's pid 1, SIGKILL after a grace period; by recorded pid only.

    When pid 1 of a pid namespace exits, the kernel kills every other process in it
    (sessions, daemons a deploy started), and `unshare` exits with it.
    """
    procs = (state.init, state.unshare)
    _signal(state.init, signal.SIGTERM)
    if not _wait_gone(procs, STOP_GRACE):
        for p in procs:
            _signal(p, signal.SIGKILL)
        if not _wait_gone(procs, 5):
            raise HostError(f"sandbox host {state.name}: processes {procs} did not exit")


def _teardown(base: Path, name: str, state: HostState | None) -> None:
    """Remove everything host `name` made. Works on half-made hosts and without state."""
    state_dir = base / name
    if state is not None:
        _stop_processes(state)
    # Without a readable state, the names follow from the host name.
    netns = state.netns if state else PREFIX + name
    veth = state.veth if state else PREFIX + name
    for loop in [lp for img in ("disk.img", SYSTEM_DISK_IMAGE, SYSTEM_PART_IMAGE)
                 for lp in _loops_backed_by(state_dir / img)]:
        _wait_unused(loop)
        # If still in use, -d makes it detach itself once free (autoclear).
        _tool("losetup", "-d", loop, check=False)
    if veth and Path(f"/sys/class/net/{veth}").exists():
        _tool("ip", "link", "del", veth, check=False)
    if netns and Path(f"/run/netns/{netns}").exists():
        _tool("ip", "netns", "del", netns, check=False)
    if state is not None and state.lan is not None:
        lan.leave(state.lan, name)  # the LAN's namespace goes with its last host
    # Only a dir that is ours: a state dir, right under base.
    if state_dir.parent == base and NAME_RE.fullmatch(name):
        shutil.rmtree(state_dir, ignore_errors=True)
