"""Simulated ``apt-get`` (update, install, purge) with the locks apt really takes.

A sandbox host has no mirror to download from, so a package's files are kept in a pool: `purge`
moves them there (how a test makes a host that lacks pipx), `install` moves them back. The locks
are apt's own files and lock type (POSIX ``fcntl`` write locks, which is what apt's ``GetLock``
takes), so a process holding one (a stand-in for unattended-upgrades) blocks the simulated
apt-get exactly as it blocks the real one:

- ``install``/``purge`` take ``/var/lib/dpkg/lock-frontend``, waiting ``DPkg::Lock::Timeout``
  seconds (apt >= 1.9.11) while printing ``Waiting for cache lock: ...``; without a timeout they
  fail at once (exit 100) with apt's messages.
- ``update`` takes ``/var/lib/apt/lists/lock`` and never waits, whatever the timeout says.

Packages: the distribution's own (pipx, sudo, curl, ...) and, once `update` has read their
sources.list lines (with a `signed-by` keyring that exists), the vendors' (Docker's apt
repository, NVIDIA's container toolkit repository). Knob ``apt_install_s`` (default 0.3):
seconds one install takes.
"""

from __future__ import annotations

import fcntl
import os
import re
import shutil
import struct
import sys
import time

from . import simenv

FRONTEND = "/var/lib/dpkg/lock-frontend"
DPKG = "/var/lib/dpkg/lock"
LISTS = "/var/lib/apt/lists/lock"
POOL = "/var/lib/gonka-sim/apt-pool"

# package -> (version, the files it owns on a host); the distribution's own archive
PACKAGES: dict[str, tuple[str, tuple[str, ...]]] = {
    "pipx": ("1.1.0-1", ("/usr/bin/pipx",)),
    "sudo": ("1.9.13p3-1+deb12u1", ("/usr/bin/sudo",)),
    "curl": ("7.88.1-10+deb12u8", ("/usr/bin/curl",)),
    "ca-certificates": ("20230311", ()),
    "gnupg": ("2.2.40-1.1", ()),
    "iptables": ("1.8.9-2", ()),  # the binaries are the runner's, seen through the host's root
    # Debian's persistence of iptables rules (firewall.py); iptables-persistent depends on it
    "netfilter-persistent": ("1.0.20", ("/usr/sbin/netfilter-persistent",)),
    "iptables-persistent": ("1.0.20", ("/usr/share/netfilter-persistent/plugins.d/15-ip4tables",)),
}
DEPENDS = {"iptables-persistent": ("netfilter-persistent", "iptables")}
# vendor repositories: the host name their sources.list line names -> their packages. Known to
# apt only after `update` read a line for them whose signed-by keyring exists (docs.docker.com
# "Install using the apt repository"; NVIDIA Container Toolkit install guide, "With apt")
VENDOR = {
    "download.docker.com": {
        "docker-ce": ("5:27.3.1-1~ubuntu.22.04~jammy", ("/usr/local/bin/docker",)),
        "docker-ce-cli": ("5:27.3.1-1~ubuntu.22.04~jammy", ()),
        "containerd.io": ("1.7.22-1", ()),
        "docker-buildx-plugin": ("0.17.1-1~ubuntu.22.04~jammy", ()),
        "docker-compose-plugin": ("2.29.7-1~ubuntu.22.04~jammy", ("/usr/libexec/docker/cli-plugins/docker-compose",)),
    },
    "nvidia.github.io": {
        "nvidia-container-toolkit": ("1.17.0-1", ("/usr/local/bin/nvidia-ctk",)),
        "nvidia-container-toolkit-base": ("1.17.0-1", ()),
    },
}
INDEX = "/var/lib/apt/lists/gonka-sim-index.json"


def catalog() -> dict[str, tuple[str, tuple[str, ...]]]:
    """Every package apt knows now: the archive's and those of the vendor lists the last update read."""
    known = dict(PACKAGES)
    for host in simenv.read_json(simenv.host_path(INDEX), []) or []:
        known.update(VENDOR.get(host, {}))
    return known


def vendor_sources() -> tuple[list[str], list[str]]:
    """(vendor hosts usable, apt's complaints) from /etc/apt/sources.list.d/*.list: a line needs a
    signed-by keyring that exists and holds an OpenPGP key (binary or armored)."""
    usable, errors = [], []
    d = simenv.host_path("/etc/apt/sources.list.d")
    for f in sorted(d.glob("*.list")) if d.is_dir() else []:
        for line in f.read_text(errors="replace").splitlines():
            line = line.strip()
            if not line.startswith("deb "):
                continue
            host = next((h for h in VENDOR if f"://{h}/" in line), None)
            if host is None:
                continue
            m = re.search(r"signed-by=([^\]\s]+)", line)
            key = simenv.host_path(m.group(1)) if m else None
            data = key.read_bytes() if key is not None and key.is_file() else b""
            if not data.startswith(b"-----BEGIN PGP PUBLIC KEY BLOCK-----") and not (data[:1] and data[0] & 0x80):
                url = line.split("]", 1)[-1].split()[0] if "]" in line else line.split()[1]
                errors += [f"W: GPG error: {url} InRelease: The following signatures couldn't be verified because "
                           "the public key is not available: NO_PUBKEY 8D81803C0EBFCD88",
                           f"E: The repository '{url}' is not signed."]
                continue
            usable.append(host)
    return sorted(set(usable)), errors
BE_AWARE = "N: Be aware that removing the lock file is not a solution and may break your system."


class AptError(Exception):
    def __init__(self, lines: list[str], code: int = 100):
        super().__init__("\n".join(lines))
        self.lines, self.code = lines, code


def holder(fd: int) -> tuple[int, str] | None:
    """(pid, command name) of the process holding a write lock on fd's file, or None."""
    flock = struct.pack("hhqqi4x", fcntl.F_WRLCK, os.SEEK_SET, 0, 0, 0)
    got = fcntl.fcntl(fd, fcntl.F_GETLK, flock)
    ltype, _w, _s, _l, pid = struct.unpack("hhqqi4x", got)
    if ltype == fcntl.F_UNLCK:
        return None
    try:
        name = open(f"/proc/{pid}/comm").read().strip()  # noqa: SIM115 - /proc is the real one, whatever the root
    except OSError:
        name = "?"
    return pid, name


def take(path: str, timeout: float, what: str) -> int:
    """Lock `path` as apt does; wait up to `timeout` seconds; AptError when it stays held."""
    real = simenv.host_path(path)
    real.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(real, os.O_RDWR | os.O_CREAT, 0o640)
    deadline = time.monotonic() + timeout
    while True:
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return fd
        except OSError:
            who = holder(fd)
            held = f"Could not get lock {path}. It is held by process {who[0]} ({who[1]})" if who else \
                f"Could not get lock {path}"
            left = deadline - time.monotonic()
            if left <= 0:
                os.close(fd)
                raise AptError([f"E: {held}", BE_AWARE, f"E: {what}"]) from None
            print(f"Waiting for cache lock: {held}... {int(timeout - left)}s", file=sys.stderr, flush=True)
            time.sleep(min(1.0, left))


def parse(argv: list[str]) -> tuple[dict[str, str], set[str], list[str]]:
    opts: dict[str, str] = {}
    flags: set[str] = set()
    words: list[str] = []
    it = iter(argv)
    for a in it:
        if a == "-o":
            k, _, v = next(it, "").partition("=")
            opts[k.lower()] = v
        elif a.startswith("-o") and "=" in a:
            k, _, v = a[2:].partition("=")
            opts[k.lower()] = v
        elif a.startswith("-"):
            flags.add(a)
        else:
            words.append(a)
    return opts, flags, words


def lock_timeout(opts: dict[str, str]) -> float:
    try:
        return max(0.0, float(opts.get("dpkg::lock::timeout", "0")))
    except ValueError:
        return 0.0


def update(opts, flags) -> int:
    fd = take(LISTS, 0, "Unable to lock directory /var/lib/apt/lists/")  # update never waits
    try:
        time.sleep(0.05)
        usable, errors = vendor_sources()
        simenv.write_json(simenv.host_path(INDEX), usable)
        if not {"-qq", "-q"} & flags:
            print("Hit:1 http://deb.debian.org/debian bookworm InRelease\nReading package lists...")
        if errors:
            raise AptError(errors)
        return 0
    finally:
        os.close(fd)


def pool_of(name: str, path: str):
    return simenv.host_path(POOL) / name / path.lstrip("/")


def install(opts, flags, names: list[str], remove: bool = False) -> int:
    known = catalog()
    unknown = [n for n in names if n not in known and not any(n in v for v in VENDOR.values())]
    if not remove:
        unknown = [n for n in names if n not in known]
    if unknown:
        raise AptError([f"E: Unable to locate package {unknown[0]}"])
    fd = take(FRONTEND, lock_timeout(opts),
              "Unable to acquire the dpkg frontend lock (/var/lib/dpkg/lock-frontend), is another process using it?")
    try:
        fd2 = take(DPKG, lock_timeout(opts), "Unable to lock the administration directory (/var/lib/dpkg/), "
                                              "is another process using it?")
        try:
            every = {**PACKAGES, **{k: v for pkgs in VENDOR.values() for k, v in pkgs.items()}}
            if not remove:  # dependencies first, as apt orders them
                names = list(dict.fromkeys([d for n in names for d in DEPENDS.get(n, ())] + names))
            for n in names:
                version, files = every.get(n, ("", ()))
                for f in files:
                    src, dst = (simenv.host_path(f), pool_of(n, f)) if remove else (pool_of(n, f), simenv.host_path(f))
                    if src.exists():
                        dst.parent.mkdir(parents=True, exist_ok=True)
                        shutil.move(str(src), str(dst))
                if not remove:
                    time.sleep(float(simenv.knob("apt_install_s", 0.3)))
                    from .firewall import postinst  # noqa: PLC0415

                    postinst(n)
                if "-qq" not in flags:
                    print(f"{'Removing' if remove else 'Setting up'} {n} ({version}) ...")
            return 0
        finally:
            os.close(fd2)
    finally:
        os.close(fd)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    simenv.log_call("apt-get", argv)
    opts, flags, words = parse(argv)
    if not words:
        print("apt 2.6.1 (amd64)\nUsage: apt-get [options] command", file=sys.stderr)
        return 1
    cmd, names = words[0], words[1:]
    try:
        if cmd == "update":
            return update(opts, flags)
        if cmd == "install":
            return install(opts, flags, names)
        if cmd in ("purge", "remove"):
            return install(opts, flags, names, remove=True)
        raise AptError([f"E: Invalid operation {cmd}"])
    except AptError as e:
        print("\n".join(e.lines), file=sys.stderr)
        return e.code
