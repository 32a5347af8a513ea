"""Init program of a sandbox host: runs as pid 1 of the host's fresh namespaces.

`host.py` starts it as ``nsenter --net=<netns> unshare --mount --uts --ipc --pid --fork ...
python -I hostinit.py <spec.json>``. By then it is pid 1 of a new pid namespace, inside a
private copy of the runner's mount namespace and inside the host's network namespace.
It builds the host's file system view and then replaces itself with sshd, so that sshd is
pid 1: when sshd exits (SIGTERM from `host.py`), the kernel kills every other process of
the host and the mount namespace -- overlay, tmpfs, the ext4 mount of the disk -- goes
with them. Nothing needs unmounting.

The view, in order:

1. a new root: an overlay of the runner's ``/`` with its upper layer on a tmpfs, so every
   write of the host lands in memory that dies with it; ``pivot_root`` into it, and the
   runner's other mounts are dropped from this namespace;
2. ``/proc`` of the new pid namespace (``/proc/sys`` read-only except ``net``), ``/sys``
   read-only, and a block-device view that shows only the loop device, named like a
   virtio disk;
3. a private ``/dev`` without nodes for the runner's disks;
4. fresh tmpfs on ``/tmp``, ``/var/tmp``, ``/run``, ``/mnt`` and ``/root``;
5. the host's own identity files (hostname, hosts, resolv.conf, fstab, machine-id, sshd
   config and host key, root's authorized_keys), then the provision trees;
6. a smaller capability bounding set, then ``exec sshd``.

Only the standard library is used: the venv's site-packages are not needed here and
``python -I`` starts faster without them.
"""

from __future__ import annotations

import contextlib
import ctypes
import grp
import json
import os
import shutil
import socket
import subprocess
import sys

# mount(2) flags and friends (linux/mount.h)
MS_RDONLY = 0x1
MS_NOSUID = 0x2
MS_NODEV = 0x4
MS_NOEXEC = 0x8
MS_REMOUNT = 0x20
MS_BIND = 0x1000
MNT_DETACH = 0x2
PR_CAPBSET_DROP = 24

# pivot_root(2) has no glibc wrapper; its syscall number depends on the architecture.
SYS_PIVOT_ROOT = {"x86_64": 155, "aarch64": 41, "riscv64": 41, "ppc64le": 203, "s390x": 217}

# Capabilities that act on the whole machine rather than the host: clock, kernel modules,
# raw I/O, new device nodes, alarms, resource limits. Dropping them guards against
# mistakes of a deploy under test; it is not a security boundary.
DROPPED_CAPS = {"sys_module": 16, "sys_rawio": 17, "sys_resource": 24, "sys_time": 25, "mknod": 27,
                "wake_alarm": 35}

SSHD = "/usr/sbin/sshd"
SSHD_CONFIG = """\
# sshd of a gonka-deploy sandbox host (replaces the distribution's file inside the host only)
Port 22
ListenAddress 0.0.0.0
HostKey /etc/ssh/ssh_host_ed25519_key
PermitRootLogin prohibit-password
PubkeyAuthentication yes
AuthorizedKeysFile .ssh/authorized_keys
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
UseDNS no
PrintMotd no
PrintLastLog no
PidFile /run/sshd.pid
AcceptEnv LANG LC_*
Subsystem sftp internal-sftp
MaxStartups 200:30:400
MaxSessions 200
LogLevel VERBOSE
"""

STOCK_FSTAB = """\
# /etc/fstab: static file system information.
#
# Use 'blkid' to print the universally unique identifier for a
# device; this may be used with UUID= as a more robust way to name devices
# that works even if disks are added and removed. See fstab(5).
#
# <file system> <mount point>   <type>  <options>       <dump>  <pass>
"""

PROVISION_STAGE = "/.gs-provision"
FAULT_HOOK = "/usr/local/lib/gonka-sim/fault-hook.sh"
SITE_MARKER = "usr/local/lib/gonka-sim/site.path"  # written by gonka_sim.server.install

_libc = ctypes.CDLL(None, use_errno=True)


def _check(ret: int, what: str) -> None:
    """Turn a libc -1 return into an OSError naming the failed operation."""
    if ret == -1:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def mount(source: str, target: str, fstype: str | None = None, flags: int = 0, data: str | None = None) -> None:
    """mount(2), with errors raised as OSError."""
    _check(_libc.mount(source.encode(), target.encode(), fstype.encode() if fstype else None,
                       ctypes.c_ulong(flags), data.encode() if data else None),
           f"mount {source} on {target}")


def bind(source: str, target: str, readonly: bool = False) -> None:
    """Bind-mount `source` on `target`; a read-only bind needs a second, remounting call."""
    mount(source, target, None, MS_BIND)
    if readonly:
        mount("none", target, None, MS_REMOUNT | MS_BIND | MS_RDONLY)


def umount(target: str, flags: int = 0) -> None:
    """umount2(2), with errors raised as OSError."""
    _check(_libc.umount2(target.encode(), flags), f"umount {target}")


def tmpfs(target: str, mode: str, size: str, name: str, flags: int = MS_NOSUID | MS_NODEV) -> None:
    """Mount a fresh tmpfs; `name` shows as its source in findmnt inside the host."""
    mount(name, target, "tmpfs", flags, f"mode={mode},size={size}")


def pivot_into(new_root: str) -> None:
    """Make `new_root` the root of this mount namespace and drop the runner's mounts.

    Uses the ``pivot_root(".", ".")`` idiom from pivot_root(2). Falls back to chroot where
    pivot_root is not possible (unknown architecture, or a root that is not a mount).
    """
    os.chdir(new_root)
    number = SYS_PIVOT_ROOT.get(os.uname().machine)
    if number is not None and _libc.syscall(number, b".", b".") == 0:
        umount(".", MNT_DETACH)  # the old root sits on top of the new one until detached
    else:
        print(f"hostinit: pivot_root not possible ({os.strerror(ctypes.get_errno())}), using chroot")
        os.chroot(".")
    os.chdir("/")


def write(path: str, data: str | bytes, mode: int = 0o644) -> None:
    """Write a file of the host, replacing whatever is there (file or symlink).

    Called after the pivot, so every path resolves inside the host. Removing first matters
    for symlinks such as a resolv.conf pointing into /run: the host gets its own file.
    """
    if os.path.lexists(path):
        os.unlink(path)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "wb") as f:
        f.write(data.encode() if isinstance(data, str) else data)
    os.chmod(path, mode)  # the umask must not change the mode


def _replace_with_dir(path: str, mode: int) -> None:
    """Make `path` a directory (a symlink to a directory counts as one, as in /bin -> usr/bin)."""
    if os.path.isdir(path):
        return
    if os.path.lexists(path):
        os.unlink(path)
    os.mkdir(path)
    os.chmod(path, mode)


def copy_tree(src: str, dst: str) -> None:
    """Copy the tree `src` into `dst`, keeping modes and symlinks, skipping __pycache__.

    Existing directories are kept as they are (their modes too); files and symlinks in the
    way are replaced.
    """
    for entry in os.scandir(src):
        if entry.name == "__pycache__":
            continue
        target = os.path.join(dst, entry.name)
        if entry.is_dir(follow_symlinks=False):
            _replace_with_dir(target, entry.stat(follow_symlinks=False).st_mode & 0o7777)
            copy_tree(entry.path, target)
            continue
        if os.path.isdir(target) and not os.path.islink(target):
            shutil.rmtree(target)
        elif os.path.lexists(target):
            os.unlink(target)
        if entry.is_symlink():
            os.symlink(os.readlink(entry.path), target)
        else:
            shutil.copy2(entry.path, target, follow_symlinks=False)


def build_root(spec: dict) -> str:
    """Mount the overlay root and stage the provision trees in it; return its path."""
    work = spec["runtime_dir"]
    tmpfs(work, "755", spec.get("root_size", "4g"), f"gs-{spec['name']}-rt")
    root = os.path.join(work, "root")
    for d in ("upper", "work", "root"):
        os.mkdir(os.path.join(work, d))
    mount(f"gs-{spec['name']}-root", root, "overlay",
          0, f"lowerdir=/,upperdir={work}/upper,workdir={work}/work")
    # The provision trees live on the runner, out of reach after the pivot: bind them
    # read-only under a fresh directory of the new root (a plain name, no symlinks).
    for i, tree in enumerate(spec["provision"]):
        stage = f"{root}{PROVISION_STAGE}/{i}"
        os.makedirs(stage)
        bind(tree, stage, readonly=True)
        bind_site_packages(stage, root)
    return root


def bind_site_packages(stage: str, root: str) -> None:
    """A tree naming the runner's site-packages (gonka_sim.server.install) gets them read-only at
    /usr/local/lib/gonka-sim/site: the runner's path itself may be hidden in the host (a fresh /tmp)."""
    marker = f"{stage}/{SITE_MARKER}"
    if os.path.isfile(marker):
        with open(marker) as f:
            site = f.read().strip()
        target = f"{root}/{os.path.dirname(SITE_MARKER)}/site"
        os.makedirs(target, exist_ok=True)
        bind(site, target, readonly=True)


def mount_kernel_filesystems() -> None:
    """/proc of the pid namespace, read-only sysfs of the netns, /proc/sys read-only but net."""
    mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    mount("sysfs", "/sys", "sysfs", MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_RDONLY)
    # net.* sysctls belong to the network namespace; everything else would reach the runner.
    bind("/proc/sys", "/proc/sys")
    bind("/proc/sys/net", "/proc/sys/net")
    mount("none", "/proc/sys", None, MS_REMOUNT | MS_BIND | MS_RDONLY)


def fake_block_devices(loop: str, majmin: str, disk: str) -> None:
    """Make lsblk/blkid see exactly one device, `disk`, of TYPE disk (the loop device).

    sysfs is not namespaced, so /sys/block would list the runner's disks and the loop as
    "loop". A tmpfs over /sys/block holds a read-only bind of the loop's sysfs directory
    under the disk's name, /sys/dev/block/MAJ:MIN points at it, and /sys/class/block stays
    empty: without udev, that makes lsblk probe the device with libblkid, so its FSTYPE and
    UUID columns are filled in.
    """
    for d in ("/sys/block", "/sys/dev/block", "/sys/class/block"):
        tmpfs(d, "755", "1m", "gs-sysfs")
    os.mkdir(f"/sys/block/{disk}")
    bind(f"/sys/devices/virtual/block/{os.path.basename(loop)}", f"/sys/block/{disk}", readonly=True)
    os.symlink(f"../../block/{disk}", f"/sys/dev/block/{majmin}")


def fake_system_disk(whole: dict, part: dict) -> None:
    """/dev/vda with its partition /dev/vda1 mounted at /boot, as lsblk/blkid/findmnt see a server's
    system disk. The sysfs view is a tmpfs directory of links to the two loops' attributes, with the
    partition's own `dev`, `partition` and `start` files, so lsblk walks vda1 -> vda (and `lsblk -s`
    draws the tree a real server shows)."""
    disk_dir, part_dir = "/sys/block/vda", "/sys/block/vda/vda1"
    os.makedirs(part_dir)
    for src, dst in ((whole, disk_dir), (part, part_dir)):
        real = f"/sys/devices/virtual/block/{os.path.basename(src['loop'])}"
        for entry in os.scandir(real):
            if not os.path.exists(f"{dst}/{entry.name}"):
                os.symlink(entry.path, f"{dst}/{entry.name}")
    os.unlink(f"{part_dir}/dev")
    write(f"{part_dir}/dev", part["majmin"] + "\n")
    write(f"{part_dir}/partition", "1\n")
    write(f"{part_dir}/start", "2048\n")
    os.symlink("../../block/vda", f"/sys/dev/block/{whole['majmin']}")
    os.symlink("../../block/vda/vda1", f"/sys/dev/block/{part['majmin']}")


def system_disk_nodes(whole: dict, part: dict) -> None:
    """The device nodes of the system disk, and its partition mounted at /boot."""
    for name, d in (("vda", whole), ("vda1", part)):
        major, minor = (int(x) for x in d["majmin"].split(":"))
        os.mknod(f"/dev/{name}", 0o060660, os.makedev(major, minor))
    os.makedirs("/boot", exist_ok=True)
    mount("/dev/vda1", "/boot", "ext4", MS_NOSUID | MS_NODEV)


def private_dev(majmin: str, disk: str) -> None:
    """A /dev with the usual character devices, ptys, shm and the disk node only."""
    tmpfs("/dev", "755", "1m", "udev", flags=MS_NOSUID)  # device nodes must work here
    for name, minor in (("null", 3), ("zero", 5), ("full", 7), ("random", 8), ("urandom", 9)):
        os.mknod(f"/dev/{name}", 0o020666, os.makedev(1, minor))
        os.chmod(f"/dev/{name}", 0o666)
    os.mknod("/dev/tty", 0o020666, os.makedev(5, 0))
    os.chmod("/dev/tty", 0o666)
    major, minor = (int(x) for x in majmin.split(":"))
    os.mknod(f"/dev/{disk}", 0o060660, os.makedev(major, minor))
    os.chmod(f"/dev/{disk}", 0o660)
    with contextlib.suppress(KeyError):  # as udev would: group disk
        os.chown(f"/dev/{disk}", 0, grp.getgrnam("disk").gr_gid)
    os.mkdir("/dev/pts")
    mount("devpts", "/dev/pts", "devpts", MS_NOSUID | MS_NOEXEC, "newinstance,ptmxmode=0666,mode=0620,gid=5")
    os.symlink("pts/ptmx", "/dev/ptmx")
    os.mkdir("/dev/shm")
    tmpfs("/dev/shm", "1777", "64m", "shm")
    for name, target in (("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"),
                         ("stdout", "/proc/self/fd/1"), ("stderr", "/proc/self/fd/2")):
        os.symlink(target, f"/dev/{name}")


def fresh_dirs(spec: dict) -> None:
    """Fresh tmpfs on the directories a new server has empty (or its own, like /root)."""
    tmpfs("/tmp", "1777", "1g", "tmpfs")
    tmpfs("/var/tmp", "1777", "256m", "tmpfs")
    tmpfs("/run", "755", "64m", "tmpfs")
    tmpfs("/mnt", "755", "256m", "tmpfs")
    tmpfs("/root", "700", "1g", "tmpfs")
    # Docker's data root on a "disk" of a server's size: the preflight sizes the image pulls (tens of
    # GB) against its free space; the sim writes no image bytes, so the tmpfs stays empty
    os.makedirs("/var/lib/docker", exist_ok=True)
    tmpfs("/var/lib/docker", "710", "64g", "gs-docker")
    for d in ("/run/sshd", "/run/lock"):
        os.mkdir(d, 0o755)
    # Without this fresh /root the runner's own dotfiles would show through the overlay.
    for entry in os.scandir("/etc/skel"):
        if entry.is_file(follow_symlinks=False):
            shutil.copy2(entry.path, f"/root/{entry.name}")
    os.mkdir("/root/.ssh", 0o700)
    write("/root/.ssh/authorized_keys", spec["authorized_key"], 0o600)


def identity_files(spec: dict) -> None:
    """The files that make this host itself: names, no DNS, stock fstab, sshd and its key."""
    hostname = spec["hostname"]
    write("/etc/hostname", f"{hostname}\n")
    write("/etc/hosts", f"127.0.0.1\tlocalhost\n127.0.1.1\t{hostname}\n"
                        "::1\tlocalhost ip6-localhost ip6-loopback\n")
    # No resolver: lookups fail at once instead of timing out (the host has no way out).
    write("/etc/resolv.conf", "nameserver 127.0.0.1\n")
    write("/etc/fstab", STOCK_FSTAB)
    write("/etc/machine-id", os.urandom(16).hex() + "\n", 0o444)
    # The runner's own host keys would show through the overlay; the host has just its own.
    for entry in os.scandir("/etc/ssh"):
        if entry.name.startswith("ssh_host_"):
            os.unlink(entry.path)
    write("/etc/ssh/ssh_host_ed25519_key", spec["host_key"], 0o600)
    write("/etc/ssh/ssh_host_ed25519_key.pub", spec["host_key_pub"], 0o644)
    write("/etc/ssh/sshd_config", SSHD_CONFIG)


def fault_hook() -> None:
    """With the simulated server software present, the bash of every SSH command sources its fault
    hook (a no-op until a test arms it) from root's ~/.bashrc, before anything else there."""
    if os.path.isfile(FAULT_HOOK):
        rc = "/root/.bashrc"
        old = ""
        if os.path.exists(rc):
            with open(rc) as f:
                old = f.read()
        write(rc, f"[ -r {FAULT_HOOK} ] && . {FAULT_HOOK}  # gonka-sim fault injection\n" + old)


def provision(count: int) -> None:
    """Copy the staged provision trees into the root, then drop the staging binds.

    A tree's etc/hosts.sandbox adds its lines to /etc/hosts (for names like `node` or
    `api` that compose services would resolve on a real server).
    """
    for i in range(count):
        stage = f"{PROVISION_STAGE}/{i}"
        copy_tree(stage, "/")
        extra = os.path.join(stage, "etc/hosts.sandbox")
        if os.path.isfile(extra):
            with open(extra) as src, open("/etc/hosts", "a") as hosts:
                hosts.write(src.read().rstrip("\n") + "\n")
        umount(stage)
        os.rmdir(stage)
    if os.path.isdir(PROVISION_STAGE):
        os.rmdir(PROVISION_STAGE)
    # dockerd "started at boot": it read daemon.json as it is now (a later edit needs a restart)
    if os.path.isfile("/etc/docker/daemon.json"):
        os.makedirs("/var/lib/gonka-sim", exist_ok=True)
        shutil.copyfile("/etc/docker/daemon.json", "/var/lib/gonka-sim/dockerd.json")


BOOT = "/usr/local/lib/gonka-sim/boot"


def boot_services() -> None:
    """Boot-time units of the simulated server software: the kernel's tables start empty (the
    network namespace outlives a reset), netfilter-persistent restores its saved rules when
    installed, then dockerd programs its chains (gonka_sim.server.firewall)."""
    if os.access(BOOT, os.X_OK):
        env = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"}
        subprocess.run([BOOT], env=env, stdin=subprocess.DEVNULL, timeout=60, check=False)


def drop_capabilities() -> None:
    """Remove the machine-wide capabilities from the bounding set (kept across exec)."""
    for name, cap in DROPPED_CAPS.items():
        _check(_libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0), f"drop cap_{name}")


def main(spec_path: str) -> None:
    """Build the host from the JSON spec written by host.py, then become sshd."""
    with open(spec_path) as f:
        spec = json.load(f)
    # The key files are on the runner: read them while it is still visible.
    for field in ("host_key", "host_key_pub", "authorized_key"):
        with open(spec[f"{field}_file"]) as f:
            spec[field] = f.read()
    socket.sethostname(spec["hostname"])
    root = build_root(spec)
    pivot_into(root)
    mount_kernel_filesystems()
    fake_block_devices(spec["loop"], spec["majmin"], spec["disk"])
    if spec.get("system_disk"):
        fake_system_disk(*spec["system_disk"])
    private_dev(spec["majmin"], spec["disk"])
    if spec.get("system_disk"):
        system_disk_nodes(*spec["system_disk"])
    fresh_dirs(spec)
    identity_files(spec)
    provision(len(spec["provision"]))
    boot_services()
    fault_hook()
    drop_capabilities()
    print(f"hostinit: {spec['hostname']} ready, exec sshd", flush=True)
    os.execv(SSHD, [SSHD, "-D", "-E", "/var/log/sshd.log", "-f", "/etc/ssh/sshd_config"])


if __name__ == "__main__":
    main(sys.argv[1])
