"""Sandbox hosts: disposable, isolated SSH "servers" on the test machine.

A sandbox host named NAME with index IDX is:

* a network namespace ``gs-NAME`` joined to the runner by a veth pair: the runner's end
  ``gs-NAME`` has 10.200.IDX.1/24 (`runner_ip`), the host's end ``eth0`` has 10.200.IDX.2/24
  (`ip`). There is no default route and the resolver is 127.0.0.1, so anything beyond the
  runner fails at once;
* sshd as pid 1 of private mount/pid/uts/ipc namespaces, in an overlay of the runner's
  ``/`` whose writes land in memory (see `hostinit` for the whole view it builds);
* a sparse image on a loop device, shown inside the host as ``/dev/vdc``, TYPE disk;
* optionally (``system_disk=True``) a system disk as a real server has one: ``/dev/vda`` with a
  GPT partition table and a partition ``/dev/vda1`` (ext4, mounted at ``/boot``), two more loop
  devices that lsblk, blkid and findmnt show as a disk and its partition;
* its own ed25519 host key and client key; `known_hosts` pins the host key. The runner's
  ``~/.ssh`` is never read or written.

Everything lives in a state directory ``<base>/NAME`` (base: $GONKA_SANDBOX_BASE, default
/tmp/gonka-sandbox) whose ``state.json`` records every machine-wide resource (netns, veth,
loop device) and process (pid plus start time, so a recycled pid is never signalled), so a
host can be torn down from any process, and stale hosts of dead owners are swept.

Usage::

    host = SandboxHost.up("a", 110)      # well under a second
    with host.connection() as c:         # Fabric, pinned host key
        c.run("lsblk")
    host.reset()                         # pristine again: fresh root, blank disk
    host.down()                          # nothing left behind

CLI, for debugging by hand (prints KEY=VALUE lines)::

    python -m gonka_sim.hosts.host up NAME IDX | reset NAME | down NAME | show NAME | sweep [--all]

At ~580 lines it stays one module: `SandboxHost`'s life cycle (up, reset, down) and its ways in
(run, files, Fabric connection) are one object; what it owns on the machine is in `resources`.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shlex
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from . import lan as lan_mod
from .resources import (  # noqa: F401 - also this module's API (tests and tools use sandbox.<name>)
    BASE_ENV,
    DEFAULT_BASE,
    DEFAULT_IDX0,
    DISK_RE,
    DOCKER_LOG,
    HOST_ENV,
    HOSTINIT,
    IDX0_ENV,
    NAME_RE,
    PREFIX,
    SERVER,
    SSHD,
    STOP_GRACE,
    SYSTEM_DISK_IMAGE,
    SYSTEM_DISK_SIZE,
    SYSTEM_PART_IMAGE,
    SYSTEM_PART_SIZE,
    TOOL_TIMEOUT,
    TOOLS,
    UP_TIMEOUT,
    HostCommandError,
    HostError,
    HostState,
    _base_lock,
    _loops_backed_by,
    _stop_processes,
    _teardown,
    _tool,
    _wait_ssh,
    _wait_unused,
    addresses,
    alive,
    base_dir,
    check_name,
    first_index,
    missing_prerequisites,
    parse_size,
    process_id,
)

# --------------------------------------------------------------------------- the host


class SandboxHost:
    """One sandbox host. Create with `SandboxHost.up`, or `attach` to one that is up."""

    def __init__(self, state: HostState, base: Path):
        self._state = state
        self.base = Path(base)
        self._proc: subprocess.Popen | None = None  # set when this process started it

    # ----------------------------------------------------------------- attributes

    @property
    def name(self) -> str:
        """Host name; the hostname is gs-NAME."""
        return self._state.name

    @property
    def idx(self) -> int:
        """Index: the third octet of the host's addresses."""
        return self._state.idx

    @property
    def ip(self) -> str:
        """The host's address (its eth0): where SSH connects."""
        return addresses(self.idx)[1]

    @property
    def private_ip(self) -> str | None:
        """The host's address on its private LAN (eth1), None when it joined none."""
        return None if self._state.lan is None else lan_mod.address(self._state.lan, self.idx)

    @property
    def lan(self) -> int | None:
        """The private LAN's number, None when the host joined none."""
        return self._state.lan

    @property
    def runner_ip(self) -> str:
        """The runner's address as the host sees it: where runner-side servers are reached."""
        return addresses(self.idx)[0]

    @property
    def hostname(self) -> str:
        return PREFIX + self.name

    @property
    def netns(self) -> str:
        """Name of the network namespace, and of the runner's end of the veth pair."""
        return PREFIX + self.name

    @property
    def loop(self) -> str | None:
        """Loop device behind the disk, /dev/loopN (the runner's name for it)."""
        return self._state.loop

    @property
    def disk(self) -> str:
        """The disk as the host sees it: /dev/vdc."""
        return f"/dev/{self._state.disk}"

    @property
    def state_dir(self) -> Path:
        return self.base / self.name

    @property
    def key(self) -> Path:
        """Private key that logs in as root (ed25519, no passphrase)."""
        return self.state_dir / "keys" / "client_ed25519"

    @property
    def known_hosts(self) -> Path:
        """known_hosts file pinning the host's key under its ip."""
        return self.state_dir / "known_hosts"

    @property
    def pid(self) -> int:
        """Runner pid of the host's pid 1 (sshd)."""
        if not alive(self._state.init):
            raise HostError(f"sandbox host {self.name} is not running")
        return self._state.init[0]

    @property
    def root(self) -> Path:
        """The host's root seen from the runner, for reads.

        Do not write through it: absolute symlinks inside the host resolve on the runner
        here. Use `write_file` (or SSH) instead.
        """
        return Path(f"/proc/{self.pid}/root")

    def is_running(self) -> bool:
        """True while the host's sshd runs."""
        return alive(self._state.init)

    def __repr__(self) -> str:
        return f"SandboxHost({self.name!r}, idx={self.idx}, ip={self.ip!r}, loop={self.loop!r})"

    def __enter__(self) -> SandboxHost:
        return self

    def __exit__(self, *exc) -> None:
        self.down()

    # ----------------------------------------------------------------- life cycle

    @classmethod
    def up(cls, name: str, idx: int, *, base: str | Path | None = None, provision: Sequence[str | Path] = (),
           server_root: str | Path | None = SERVER, disk_size: str | int = "2G",
           disk: str = "vdc", system_disk: bool = False, lan: int | None = None) -> SandboxHost:
        """Bring up a new host and wait until its sshd answers.

        `server_root` (default: the simulated server software, built by gonka_sim.server.install;
        None for a bare host; or a directory tree) and then
        each of `provision` are copied into the host's root before sshd starts, every time
        it starts. A stale host of the same name whose owner process is gone is torn down
        first; a live one is an error.
        """
        check_name(name, idx)
        if lan is not None:
            lan_mod.check_lan(lan)
        if not DISK_RE.fullmatch(disk):
            raise ValueError(f"disk name {disk!r}: a plain name like vdc")
        trees = [Path(p).resolve() for p in provision]
        for tree in trees:
            if not tree.is_dir():
                raise FileNotFoundError(f"provision dir {tree} does not exist")
        if server_root == SERVER:
            from ..server import install  # noqa: PLC0415
            from .harness import knob_defaults_tree  # noqa: PLC0415

            cache = Path(base or base_dir()).resolve()
            trees[:0] = [install.tree(cache), knob_defaults_tree(cache)]
        elif server_root is not None and Path(server_root).is_dir():
            trees.insert(0, Path(server_root).resolve())
        base = Path(base or base_dir()).resolve()
        state = HostState(name=name, idx=idx, disk=disk, disk_size=parse_size(disk_size), system_disk=system_disk,
                          provision=[str(t) for t in trees], owner=process_id(os.getpid()), lan=lan)
        host = cls(state, base)
        with _base_lock(base):
            host._claim()
            try:
                host._create_resources()
            except BaseException:
                host._teardown()
                raise
        try:
            host._start()
        except BaseException:
            host._teardown()
            raise
        return host

    @classmethod
    def attach(cls, name: str, base: str | Path | None = None) -> SandboxHost:
        """The host NAME brought up earlier (maybe by another process)."""
        base = Path(base or base_dir()).resolve()
        state = HostState.load(base / name)
        if state is None:
            raise HostError(f"no sandbox host {name!r} under {base}")
        return cls(state, base)

    def reset(self) -> None:
        """Back to pristine: fresh root (tmpfs), blank disk; same keys, address and loop device."""
        # The recorded loop device must still be ours: never blank somebody else's.
        if not self.loop or self.loop not in _loops_backed_by(self.state_dir / "disk.img"):
            raise HostError(f"sandbox host {self.name} is down (no disk attached)")
        self._stop()
        if not _wait_unused(self.loop):
            raise HostError(f"{self.name}: disk {self.loop} still in use, cannot blank it")
        # Punches holes in the image: all zeroes and sparse again, page cache dropped.
        # Without --force blkdiscard opens the device exclusively, so it never hits a mount.
        _tool("blkdiscard", self.loop)
        self._start()

    def down(self) -> None:
        """Stop the host and remove everything it made; safe to call twice."""
        self._teardown()

    # ----------------------------------------------------------------- internals

    def _save(self) -> None:
        self._state.save(self.state_dir)

    def _claim(self) -> None:
        """Take the state dir (tearing down a stale one) and check the address is free."""
        old = HostState.load(self.state_dir)
        if old is not None and alive(old.owner) and old.owner != self._state.owner:
            raise HostError(f"sandbox host {self.name} is up and owned by pid {old.owner[0]}")
        if self.state_dir.exists():
            _teardown(self.base, self.name, old)
        # Names and addresses are machine-wide: another base may use them right now.
        ifname = PREFIX + self.name
        if Path(f"/run/netns/{ifname}").exists() or Path(f"/sys/class/net/{ifname}").exists():
            raise HostError(f"network namespace or link {ifname} already exists (another sandbox?)")
        if index_in_use(self.idx):
            raise HostError(f"10.200.{self.idx}.0/24 is already in use on this machine (index taken?)")
        self.state_dir.mkdir(mode=0o700)
        self._save()

    def _create_resources(self) -> None:
        """Keys, disk image + loop device, netns + veth: everything but processes."""
        st, sd = self._state, self.state_dir
        keys = sd / "keys"
        keys.mkdir(mode=0o700)
        # Both keys at once: ssh-keygen is the slowest part of this step.
        gens = [subprocess.Popen(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"{self.hostname}-{kind}",
                                  "-f", str(keys / f"{kind}_ed25519")],
                                 stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
                for kind in ("host", "client")]
        for g in gens:
            _, err = g.communicate(timeout=TOOL_TIMEOUT)
            if g.returncode:
                raise HostError(f"ssh-keygen failed: {err.decode().strip()}")
        keytype, blob = (keys / "host_ed25519.pub").read_text().split()[:2]
        self.known_hosts.write_text(f"{self.ip} {keytype} {blob}\n")

        image = sd / "disk.img"
        with open(image, "wb") as f:
            f.truncate(st.disk_size)  # sparse: costs nothing until written
        st.loop = _tool("losetup", "--find", "--show", str(image)).strip()
        self._save()
        if st.system_disk:
            self._make_system_disk()

        ifname = PREFIX + st.name
        _tool("ip", "netns", "add", ifname)
        st.netns = ifname
        self._save()
        _tool("ip", "link", "add", ifname, "type", "veth", "peer", "name", "eth0", "netns", ifname)
        st.veth = ifname
        self._save()
        _tool("ip", "-batch", "-", input=f"addr add {self.runner_ip}/24 dev {ifname}\nlink set {ifname} up\n")
        # No default route: anything beyond the runner fails at once (ENETUNREACH).
        _tool("ip", "-n", ifname, "-batch", "-", input=(
            "link set lo up\n"
            f"addr add {self.ip}/24 dev eth0\n"
            "link set eth0 up\n"))
        if st.lan is not None:
            lan_mod.join(st.lan, ifname, st.name, st.idx)

    def _make_system_disk(self) -> None:
        """/dev/vda and /dev/vda1: a GPT disk image and the ext4 image standing for its partition
        (this kernel may not scan partitions of loop devices, so the partition is a loop of its own)."""
        sd, st = self.state_dir, self._state
        disk, part = sd / SYSTEM_DISK_IMAGE, sd / SYSTEM_PART_IMAGE
        for image, size in ((disk, SYSTEM_DISK_SIZE), (part, SYSTEM_PART_SIZE)):
            with open(image, "wb") as f:
                f.truncate(size)
        _tool("sgdisk", "-n", f"1:2048:+{SYSTEM_PART_SIZE // 1024 // 1024}M", "-c", "1:boot", str(disk))
        _tool("mkfs.ext4", "-q", "-F", "-L", "boot", str(part))
        st.system_loops = [_tool("losetup", "--find", "--show", str(img)).strip() for img in (disk, part)]
        self._save()

    def _start(self) -> None:
        """Start the namespaces (hostinit, then sshd as pid 1) and wait for SSH."""
        st, sd = self._state, self.state_dir
        keys = sd / "keys"
        runtime = sd / "rt"
        runtime.mkdir(exist_ok=True)
        spec = {
            "name": st.name, "hostname": self.hostname, "runtime_dir": str(runtime),
            "loop": st.loop, "majmin": Path(f"/sys/block/{Path(st.loop).name}/dev").read_text().strip(),
            "disk": st.disk, "provision": st.provision,
            "system_disk": [{"loop": lp, "majmin": Path(f"/sys/block/{Path(lp).name}/dev").read_text().strip()}
                            for lp in st.system_loops or []],
            "host_key_file": str(keys / "host_ed25519"), "host_key_pub_file": str(keys / "host_ed25519.pub"),
            "authorized_key_file": str(keys / "client_ed25519.pub"),
        }
        (sd / "init.json").write_text(json.dumps(spec, indent=1))
        argv = ["nsenter", f"--net=/run/netns/{self.netns}", "--",
                "unshare", "--mount", "--propagation", "private", "--uts", "--ipc", "--pid", "--fork",
                "--kill-child=SIGKILL", "--", sys.executable, "-I", str(HOSTINIT), str(sd / "init.json")]
        with open(sd / "init.log", "wb") as log:
            # Our own session: a Ctrl-C at the terminal reaches the test run, whose
            # clean-up then stops the host, rather than killing sshd under its feet.
            self._proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                          start_new_session=True)
        st.unshare = process_id(self._proc.pid)
        self._save()
        st.init = self._find_init()
        self._save()
        if not _wait_ssh(self.ip, lambda: alive(st.init), UP_TIMEOUT):
            log = (sd / "init.log").read_text(errors="replace")
            raise HostError(f"sandbox host {self.name}: sshd did not come up; init.log:\n{log[-4000:]}")

    def _find_init(self) -> list[int]:
        """The namespace's pid 1: the only child of `unshare`, once it has forked."""
        deadline = time.monotonic() + UP_TIMEOUT
        upid = self._proc.pid
        while time.monotonic() < deadline and self._proc.poll() is None:
            with contextlib.suppress(OSError):
                children = Path(f"/proc/{upid}/task/{upid}/children").read_text().split()
                if children and (ident := process_id(int(children[0]))):
                    return ident
            time.sleep(0.002)
        log = (self.state_dir / "init.log").read_text(errors="replace")
        raise HostError(f"sandbox host {self.name}: namespace did not start; init.log:\n{log[-4000:]}")

    def _stop(self) -> None:
        """Stop every process of the host; its mounts go with its mount namespace."""
        _stop_processes(self._state)
        if self._proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._proc.wait(timeout=5)  # reap `unshare`: we are its parent
            self._proc = None
        self._state.unshare = self._state.init = None
        if self.state_dir.is_dir():
            self._save()

    def _teardown(self) -> None:
        if self._proc is not None:
            self._stop()
        _teardown(self.base, self.name, self._state)

    # ----------------------------------------------------------------- inside the host

    def run(self, cmd: str | Sequence[str], *, input: str | bytes | None = None, timeout: float = 60,
            check: bool = True, text: bool = True) -> subprocess.CompletedProcess:
        """Run `cmd` inside the host, as root, with its root directory and namespaces.

        A string goes through ``bash -c``; a sequence is executed as is. Not over SSH, so it
        works whatever a test did to sshd. Raises HostCommandError on a non-zero exit when
        `check` (the default). On timeout only the runner-side `nsenter` is killed; what it
        started in the host lives until the next reset.
        """
        argv = ["nsenter", "-t", str(self.pid), "-m", "-u", "-i", "-n", "-p", "-r", "-w", "--"]
        argv += ["/bin/bash", "-c", cmd] if isinstance(cmd, str) else list(cmd)
        if isinstance(input, str) and not text:
            input = input.encode()
        r = subprocess.run(argv, input=input, capture_output=True, timeout=timeout, env=HOST_ENV,
                           stdin=subprocess.DEVNULL if input is None else None,
                           text=text, errors="replace" if text else None)
        if check and r.returncode:
            raise HostCommandError(argv, r)
        return r

    def write_file(self, path: str, data: str | bytes, mode: int = 0o644) -> None:
        """Write a file of the host (parents created). Symlinks resolve inside the host."""
        _absolute(path)
        data = data.encode() if isinstance(data, str) else data
        script = 'mkdir -p -- "$(dirname -- "$1")" && cat > "$1" && chmod "$2" "$1"'
        self.run(["/bin/sh", "-c", script, "sh", path, f"{mode:o}"], input=data, text=False)

    def read_file(self, path: str) -> bytes:
        """Contents of a file of the host (symlinks resolve inside the host)."""
        _absolute(path)
        return self.run(["cat", "--", path], text=False).stdout

    def read_text(self, path: str) -> str:
        """`read_file`, decoded as UTF-8."""
        return self.read_file(path).decode()

    def docker_calls(self) -> list[dict]:
        """The simulated docker's call log (one JSON object per call); [] before any call."""
        r = self.run(["cat", "--", DOCKER_LOG], check=False, text=False)
        return [json.loads(line) for line in r.stdout.splitlines() if line.strip()] if r.returncode == 0 else []

    # ----------------------------------------------------------------- SSH clients

    def connection(self, *, command_timeout: float = 120, connect_timeout: float = 5, config=None,
                   connect_kwargs: dict | None = None, known_hosts: str | Path | None = None, **kwargs):
        """A Fabric Connection to root@ip with the host key pinned (RejectPolicy).

        Hermetic: no agent, no key search, no ssh_config or invoke config files, so the
        runner's ~/.ssh plays no part. ``run.in_stream`` is off (tests capture stdin) and
        every command has a timeout. `known_hosts` replaces the host's own file (to test
        a wrong pin); extra keyword arguments go to `fabric.Connection`.
        """
        import paramiko
        from fabric import Config, Connection

        if config is None:
            config = Config(lazy=True, overrides={
                "load_ssh_configs": False, "run": {"in_stream": False},
                "timeouts": {"command": command_timeout},
            })
        kw = {"key_filename": str(self.key), "look_for_keys": False, "allow_agent": False}
        kw.update(connect_kwargs or {})
        conn = Connection(self.ip, user="root", port=22, connect_timeout=connect_timeout, config=config,
                          connect_kwargs=kw, **kwargs)
        conn.client.load_host_keys(str(known_hosts or self.known_hosts))
        conn.client.set_missing_host_key_policy(paramiko.RejectPolicy())
        return conn

    def ssh_command(self, *command: str, known_hosts: str | Path | None = None) -> list[str]:
        """argv of an OpenSSH client logging in as root with the pinned host key.

        ``-F /dev/null`` matters: without it ssh reads ~/.ssh/config and creates ~/.ssh of the
        passwd entry (not $HOME) on the runner.
        """
        opts = {
            "IdentitiesOnly": "yes", "BatchMode": "yes", "StrictHostKeyChecking": "yes",
            "UserKnownHostsFile": str(known_hosts or self.known_hosts), "GlobalKnownHostsFile": "/dev/null",
            "UpdateHostKeys": "no", "ConnectTimeout": "5",
        }
        argv = ["ssh", "-F", "/dev/null", "-i", str(self.key)]
        for k, v in opts.items():
            argv += ["-o", f"{k}={v}"]
        return [*argv, f"root@{self.ip}", *command]

    def env(self) -> dict[str, str]:
        """The host's coordinates, as printed by the CLI."""
        return {
            "NAME": self.name, "IDX": str(self.idx), "HOSTNAME": self.hostname, "IP": self.ip,
            "RUNNER_IP": self.runner_ip, "KEY": str(self.key), "KNOWN_HOSTS": str(self.known_hosts),
            "LOOP": self.loop or "", "DISK": self.disk, "ROOT": str(self.root), "PID": str(self.pid),
            "STATE_DIR": str(self.state_dir), "SSH": shlex.join(self.ssh_command()),
            "PRIVATE_IP": self.private_ip or "",
        }


def _absolute(path: str) -> None:
    if not path.startswith("/"):
        raise ValueError(f"path inside the host must be absolute: {path!r}")


# --------------------------------------------------------------------------- module API


def up(name: str, idx: int, **kwargs) -> SandboxHost:
    """Same as `SandboxHost.up`."""
    return SandboxHost.up(name, idx, **kwargs)


def reset(name: str, base: str | Path | None = None) -> SandboxHost:
    """Reset host NAME (possibly brought up by another process)."""
    host = SandboxHost.attach(name, base)
    host.reset()
    return host


def down(name: str, base: str | Path | None = None) -> None:
    """Tear down host NAME (possibly brought up by another process); no error if absent."""
    base = Path(base or base_dir()).resolve()
    _teardown(base, name, HostState.load(base / name))


def sweep(base: str | Path | None = None, *, everything: bool = False) -> list[str]:
    """Tear down stale hosts under `base`: those whose owner process is gone.

    With `everything`, tear down all of them. Only directories holding a state.json are
    touched. Returns the names torn down.
    """
    base = Path(base or base_dir()).resolve()
    if not base.is_dir():
        return []
    swept = []
    with _base_lock(base):
        for state_dir in sorted(p for p in base.iterdir() if p.is_dir() and NAME_RE.fullmatch(p.name)):
            if not (state_dir / "state.json").exists():
                continue
            state = HostState.load(state_dir)
            if state is not None and alive(state.owner) and not everything:
                continue
            _teardown(base, state_dir.name, state)
            swept.append(state_dir.name)
    return swept


def index_in_use(idx: int) -> bool:
    """True if 10.200.IDX.0/24 is taken on this machine (by any host, any base)."""
    return bool(_tool("ip", "-o", "-4", "addr", "show", "to", f"10.200.{idx}.0/24").strip())


# --------------------------------------------------------------------------- CLI


def main(argv: Sequence[str] | None = None) -> int:
    """CLI for debugging by hand; prints KEY=VALUE lines."""
    p = argparse.ArgumentParser(prog="python -m gonka_sim.hosts.host", description=__doc__.split("\n")[0])
    p.add_argument("--base", help=f"state base dir (default ${BASE_ENV} or {DEFAULT_BASE})")
    sub = p.add_subparsers(dest="op", required=True)
    u = sub.add_parser("up", help="bring up host NAME with index IDX")
    u.add_argument("name")
    u.add_argument("idx", type=int)
    u.add_argument("--size", default="2G", help="disk size (sparse), default 2G")
    u.add_argument("--provision", action="append", default=[], metavar="DIR",
                   help="extra tree copied into the host's root (repeatable)")
    u.add_argument("--no-server-root", action="store_true", help="a bare host: without the simulated server software")
    u.add_argument("--lan", type=int, help="also join private LAN N (eth1 on 10.201.N.IDX/24)")
    for op in ("reset", "down", "show"):
        sub.add_parser(op, help=f"{op} host NAME").add_argument("name")
    s = sub.add_parser("sweep", help="tear down hosts whose owner process is gone")
    s.add_argument("--all", action="store_true", help="tear down every host under the base")
    args = p.parse_args(argv)
    if args.op in ("up", "reset") and (why := missing_prerequisites()):
        print("cannot run sandbox hosts: " + "; ".join(why), file=sys.stderr)
        return 2
    t0 = time.perf_counter()
    host = None
    if args.op == "up":
        host = SandboxHost.up(args.name, args.idx, base=args.base, provision=args.provision,
                              server_root=None if args.no_server_root else SERVER,
                              disk_size=args.size, lan=args.lan)
    elif args.op == "reset":
        host = reset(args.name, args.base)
    elif args.op == "show":
        host = SandboxHost.attach(args.name, args.base)
    elif args.op == "down":
        down(args.name, args.base)
    else:
        print("SWEPT=" + " ".join(sweep(args.base, everything=args.all)))
    if host is not None:
        for k, v in host.env().items():
            print(f"{k}={v}")
    print(f"SECONDS={time.perf_counter() - t0:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
