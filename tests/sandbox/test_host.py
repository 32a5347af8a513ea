"""Tests of the sandbox host (gonka_sim.hosts.host): isolation, SSH, disk, reset, fleet.

The tests marked `sandbox` need root; they run commands that would change the runner if
the isolation broke, so those commands are chosen to be harmless even then (writing a
sysctl's current value, setting the clock to now).
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import json
import os
import shlex
import socket
import subprocess
import sys
import time
from pathlib import Path

import paramiko
import pytest

from gonka_sim.hosts import host as sandbox
from gonka_sim.hosts.hostinit import STOCK_FSTAB

# Also listed in tests/conftest.py; registering twice is harmless.
pytest_plugins = ["tests.plugins.hosts"]

REPO = Path(__file__).resolve().parents[2]
T = 60  # timeout of every remote command


def sh(c, cmd: str, **kw):
    """Run `cmd` over Fabric with a timeout, output hidden."""
    kw.setdefault("timeout", T)
    return c.run(cmd, hide=True, **kw)


def keygen(path: Path) -> str:
    """A fresh ed25519 key pair at `path`; returns the public key line."""
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True, timeout=30)
    return path.with_suffix(".pub").read_text().strip()


def lsblk(c) -> list[dict]:
    return json.loads(sh(c, "lsblk -J -o NAME,TYPE,SIZE,FSTYPE,UUID,MOUNTPOINT").stdout)["blockdevices"]


def runner(*argv: str) -> str:
    """stdout of a command on the runner. (Use `blkid -p` there: the runner's blkid cache
    may still hold what an earlier host had on the same loop device.)"""
    return subprocess.run(argv, capture_output=True, text=True, timeout=30).stdout


def ssh_dir_listing() -> dict[str, str] | None:
    """The runner's real /root/.ssh (name -> sha256), None if absent."""
    d = Path("/root/.ssh")
    if not d.exists():
        return None
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir" for p in d.iterdir()}


def runner_snapshot() -> dict:
    """What a deploy in a sandbox host must never change on the runner.

    Other sandbox runs may share this machine: netns bind mounts (/run/netns/...) and loop
    devices come and go with them, so those are left out here and checked per host instead.
    """
    mounts = [line for line in runner("findmnt", "-rn", "-o", "TARGET,SOURCE,FSTYPE,OPTIONS").splitlines()
              if not line.startswith("/run/netns")]
    disks = [d for d in json.loads(runner("lsblk", "-J", "-o", "NAME,TYPE,FSTYPE,UUID,MOUNTPOINT"))["blockdevices"]
             if d["type"] != "loop"]
    return {
        "fstab": Path("/etc/fstab").read_bytes(),
        "hosts": Path("/etc/hosts").read_bytes(),
        "resolv": Path("/etc/resolv.conf").read_bytes(),
        "hostname": socket.gethostname(),
        "root_ssh": ssh_dir_listing(),
        "mnt": sorted(os.listdir("/mnt")),
        "mounts": mounts,
        "disks": disks,
        "swappiness": Path("/proc/sys/vm/swappiness").read_text(),
    }


def host_resources(host: sandbox.SandboxHost) -> dict:
    """The machine-wide traces of one host, as the runner's tools list them."""
    return {
        "netns": host.netns in runner("ip", "netns", "list").split(),
        "veth": Path(f"/sys/class/net/{host.netns}").exists(),
        "loop": str(host.state_dir / "disk.img") in runner("losetup", "-a"),
        "state_dir": host.state_dir.exists(),
    }


# --------------------------------------------------------------------------- pure parts


def test_names_must_fit_a_veth_name():
    sandbox.check_name("a", 0)
    sandbox.check_name("abcdefghijkl", 255)  # gs- + 12 = 15 characters
    for bad in ("abcdefghijklm", "", "A", "-a", "a_b", "a.b"):
        with pytest.raises(ValueError):
            sandbox.check_name(bad, 1)
    for idx in (-1, 256):
        with pytest.raises(ValueError):
            sandbox.check_name("a", idx)


def test_sizes_and_addresses():
    assert sandbox.parse_size("2G") == 2 * 1024**3
    assert sandbox.parse_size("512M") == 512 * 1024**2
    assert sandbox.parse_size("4096") == 4096
    with pytest.raises(ValueError):
        sandbox.parse_size("lots")
    assert sandbox.addresses(7) == ("10.200.7.1", "10.200.7.2")


def test_processes_are_identified_by_pid_and_start_time():
    me = sandbox.process_id(os.getpid())
    assert sandbox.alive(me)
    assert not sandbox.alive([me[0], me[1] + 1])  # same pid, other start: a reused pid
    assert not sandbox.alive(None)


def test_openssh_argv_is_hermetic(tmp_path):
    host = sandbox.SandboxHost(sandbox.HostState(name="x", idx=9), tmp_path)
    argv = host.ssh_command("true")
    assert argv[:3] == ["ssh", "-F", "/dev/null"]  # no ~/.ssh/config, no ~/.ssh created
    opts = dict(argv[i + 1].split("=", 1) for i, a in enumerate(argv) if a == "-o")
    assert opts["StrictHostKeyChecking"] == "yes"
    assert opts["UserKnownHostsFile"] == str(tmp_path / "x" / "known_hosts")
    assert opts["GlobalKnownHostsFile"] == "/dev/null"
    assert opts["IdentitiesOnly"] == opts["BatchMode"] == "yes"
    assert argv[-2:] == ["root@10.200.9.2", "true"]


# --------------------------------------------------------------------------- SSH


@pytest.mark.sandbox
def test_fabric_connection_with_pinned_host_key(sandbox_host):
    with sandbox_host.connection() as c:
        assert sh(c, "hostname").stdout.strip() == sandbox_host.hostname
        assert sh(c, "id -u").stdout.strip() == "0"
        assert sh(c, "ip -4 -o addr show eth0").stdout.split()[3] == f"{sandbox_host.ip}/24"
        assert sh(c, "ps -o comm= -p 1").stdout.strip() == "sshd"
    # nothing was written next to the pin
    assert sandbox_host.known_hosts.read_text().count("\n") == 1


@pytest.mark.sandbox
def test_openssh_client_with_pinned_host_key(sandbox_host):
    r = subprocess.run(sandbox_host.ssh_command("hostname"), capture_output=True, text=True, timeout=T,
                       stdin=subprocess.DEVNULL)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == sandbox_host.hostname


@pytest.mark.sandbox
def test_other_host_key_is_refused(sandbox_host, tmp_path):
    other = keygen(tmp_path / "other_host_key").split()
    wrong = tmp_path / "known_hosts"
    wrong.write_text(f"{sandbox_host.ip} {other[0]} {other[1]}\n")
    c = sandbox_host.connection(known_hosts=wrong)
    with pytest.raises(paramiko.BadHostKeyException):
        c.open()
    c.close()
    # an unknown host is refused too (RejectPolicy), not silently added
    empty = tmp_path / "empty_known_hosts"
    empty.write_text("")
    c = sandbox_host.connection(known_hosts=empty)
    with pytest.raises(paramiko.SSHException):
        c.open()
    c.close()
    assert empty.read_text() == ""
    r = subprocess.run(sandbox_host.ssh_command("true", known_hosts=wrong), capture_output=True, text=True,
                       timeout=T, stdin=subprocess.DEVNULL)
    assert r.returncode == 255 and "host key" in r.stderr.lower(), r.stderr


# --------------------------------------------------------------------------- disk


@pytest.mark.sandbox
def test_disk_is_a_blank_vdc_until_formatted(sandbox_host):
    with sandbox_host.connection() as c:
        (dev,) = lsblk(c)  # only the sandbox disk, not the runner's
        assert (dev["name"], dev["type"], dev["fstype"], dev["uuid"]) == ("vdc", "disk", None, None)
        assert sh(c, "blkid /dev/vdc", warn=True).return_code == 2  # no signature
        assert sh(c, "test -e /dev/vda || echo absent").stdout.strip() == "absent"
        sh(c, "mkfs.ext4 -q -L data /dev/vdc")
        uuid = sh(c, "blkid -s UUID -o value /dev/vdc").stdout.strip()
        (dev,) = lsblk(c)
        assert (dev["name"], dev["type"], dev["fstype"], dev["uuid"]) == ("vdc", "disk", "ext4", uuid)
    # it really is the host's own loop device
    assert runner("blkid", "-p", "-s", "UUID", "-o", "value", sandbox_host.loop).strip() == uuid


# --------------------------------------------------------------------------- isolation


@pytest.mark.sandbox
def test_deploy_like_session_leaves_the_runner_untouched(sandbox_host, tmp_path):
    before = runner_snapshot()
    extra_pub = keygen(tmp_path / "admin_key")
    with sandbox_host.connection() as c:
        sh(c, "blkid /dev/vdc || mkfs.ext4 -q /dev/vdc")
        uuid = sh(c, "blkid -s UUID -o value /dev/vdc").stdout.strip()
        sh(c, f"mkdir -p /mnt/ssd && echo 'UUID={uuid} /mnt/ssd ext4 defaults,nofail 0 2' >> /etc/fstab")
        sh(c, "mount -a && findmnt -n -o SOURCE /mnt/ssd | grep -qx /dev/vdc")
        sh(c, "sed -i 's/defaults,nofail/defaults,nofail,noatime/' /etc/fstab")  # rename-style edit
        sh(c, "umount /mnt/ssd && mount -a && echo data > /mnt/ssd/file && sync")
        sh(c, f"echo '{extra_pub}' >> /root/.ssh/authorized_keys")
        sh(c, "echo '10.9.9.9 extra' >> /etc/hosts && echo 'alias x=y' >> /root/.bashrc")
        sh(c, "command -v docker && docker compose version", warn=True)
        # the mount exists only inside the host
        assert not runner("findmnt", "-rn", "-S", sandbox_host.loop).strip()
        assert "/mnt/ssd" not in runner("findmnt", "-rn", "-o", "TARGET")
    second = sandbox_host.connection(connect_kwargs={"key_filename": str(tmp_path / "admin_key")})
    with second as c2:
        assert sh(c2, "wc -l < /root/.ssh/authorized_keys").stdout.strip() == "2"
    assert runner_snapshot() == before


# --------------------------------------------------------------------------- reset


@pytest.mark.sandbox
def test_reset_returns_a_used_host_to_pristine(sandbox_host, tmp_path):
    host = sandbox_host
    coords = (host.ip, host.key, host.known_hosts.read_text(), host.loop, host.key.read_text())
    extra_pub = keygen(tmp_path / "k")
    with host.connection() as c:
        sh(c, "mkfs.ext4 -q /dev/vdc && mkdir /mnt/ssd && echo 'UUID=x /mnt/ssd ext4 defaults 0 2' >> /etc/fstab")
        sh(c, "mount /dev/vdc /mnt/ssd && echo x > /mnt/ssd/f && touch /mnt/junk /root/junk /etc/junk")
        sh(c, f"echo '{extra_pub}' >> /root/.ssh/authorized_keys")
        sh(c, "nohup sleep 1000 </dev/null >/dev/null 2>&1 &")
    t0 = time.perf_counter()
    host.reset()
    elapsed = time.perf_counter() - t0
    assert elapsed < 1.0, f"reset took {elapsed:.2f} s"
    assert (host.ip, host.key, host.known_hosts.read_text(), host.loop, host.key.read_text()) == coords
    with host.connection() as c:  # same pinned host key still valid
        assert sh(c, "blkid /dev/vdc", warn=True).return_code == 2
        assert sh(c, "cat /etc/fstab").stdout == STOCK_FSTAB
        assert sh(c, "ls -A /mnt").stdout == ""
        assert sh(c, "cat /root/.ssh/authorized_keys").stdout.strip() == Path(f"{host.key}.pub").read_text().strip()
        assert sh(c, "ls /root/junk /etc/junk 2>/dev/null", warn=True).stdout == ""
        assert "sleep" not in sh(c, "ps -eo comm=").stdout
    assert runner("blkid", "-p", host.loop).strip() == ""  # blank on the runner side too


# --------------------------------------------------------------------------- fleet


@pytest.mark.sandbox
def test_two_hosts_side_by_side_are_independent(sandbox_host, sandbox_host_factory):
    a = sandbox_host
    (b,) = sandbox_host_factory(1)
    assert len({a.ip, b.ip}) == 2 and len({a.loop, b.loop}) == 2
    with a.connection() as ca, b.connection() as cb:
        sh(ca, "mkfs.ext4 -q /dev/vdc && touch /etc/only-on-a")
        assert sh(cb, "blkid /dev/vdc", warn=True).return_code == 2
        assert sh(cb, "test -e /etc/only-on-a || echo absent").stdout.strip() == "absent"
        sh(cb, "mkfs.ext4 -q /dev/vdc")
        uuids = [sh(c, "blkid -s UUID -o value /dev/vdc").stdout.strip() for c in (ca, cb)]
        # both at once: each answers for itself
        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            names = list(pool.map(lambda c: sh(c, "sleep 0.2; hostname").stdout.strip(), (ca, cb)))
    assert names == [a.hostname, b.hostname]
    assert uuids[0] != uuids[1]
    assert [runner("blkid", "-p", "-s", "UUID", "-o", "value", h.loop).strip() for h in (a, b)] == uuids


# --------------------------------------------------------------------------- guard rails


@pytest.mark.sandbox
def test_no_way_out(sandbox_host):
    """No default route and no resolver; checked without sending traffic anywhere."""
    with sandbox_host.connection() as c:
        assert "default" not in sh(c, "ip route").stdout
        assert sh(c, "ip -4 route show default").stdout == ""
        # a route lookup only, no packet: public addresses are unreachable
        r = sh(c, "ip route get 192.0.2.1", warn=True)
        assert r.return_code != 0 and "unreachable" in r.stderr.lower()
        assert sh(c, "cat /etc/resolv.conf").stdout.strip() == "nameserver 127.0.0.1"
        t0 = time.perf_counter()
        assert sh(c, "getent hosts github.com", warn=True).return_code != 0
        assert time.perf_counter() - t0 < 2, "name lookups must fail fast"


@pytest.mark.sandbox
def test_machine_wide_settings_are_out_of_reach(sandbox_host):
    # Harmless even if a guard failed: current values only.
    with sandbox_host.connection() as c:
        assert sh(c, "sysctl -w vm.swappiness=$(cat /proc/sys/vm/swappiness)", warn=True).failed
        assert sh(c, "sysctl -w net.ipv4.ip_forward=1", warn=True).ok  # per network namespace
        assert sh(c, "date -s @$(date +%s)", warn=True).failed  # CAP_SYS_TIME dropped
        assert sh(c, "mknod /tmp/disk b 7 0", warn=True).failed  # CAP_MKNOD dropped
        assert sh(c, "echo 1 > /sys/block/vdc/queue/nomerges", warn=True).failed  # sysfs read-only
        assert sh(c, "findmnt -n -o FSTYPE /").stdout.strip() == "overlay"
        assert sh(c, "hostname gs-renamed && hostname").stdout.strip() == "gs-renamed"  # own uts ns
    assert socket.gethostname() != "gs-renamed"


# --------------------------------------------------------------------------- runner-side access


@pytest.mark.sandbox
def test_run_write_read_stay_inside_the_host(sandbox_host):
    host = sandbox_host
    assert host.run("hostname").stdout.strip() == host.hostname
    assert host.run(["cat"], input="piped").stdout == "piped"
    assert host.run("exit 3", check=False).returncode == 3
    with pytest.raises(sandbox.HostCommandError):
        host.run("exit 3")
    host.write_file("/etc/gonka-sim/knobs.json", '{"fail": true}')
    assert json.loads(host.read_file("/etc/gonka-sim/knobs.json")) == {"fail": True}
    assert host.run("stat -c %a /etc/gonka-sim/knobs.json").stdout.strip() == "644"
    host.write_file("/usr/local/bin/gs-tool", "#!/bin/sh\necho tool\n", 0o755)
    with host.connection() as c:
        assert sh(c, "gs-tool").stdout.strip() == "tool"
    # Absolute symlinks resolve inside the host, never on the runner.
    host.run("ln -s /etc/hostname /tmp/lnk && ln -s /etc/gonka-h1-probe /tmp/lnk2")
    assert host.read_text("/tmp/lnk").strip() == host.hostname
    host.write_file("/tmp/lnk2", "inside\n")
    assert host.read_text("/etc/gonka-h1-probe") == "inside\n"
    assert not Path("/etc/gonka-h1-probe").exists()
    assert (host.root / "etc/hostname").read_text().strip() == host.hostname
    with pytest.raises(ValueError):
        host.write_file("relative/path", "x")


# --------------------------------------------------------------------------- provisioning


@pytest.mark.sandbox
def test_provision_trees_are_copied_at_every_start(sandbox_host_factory, tmp_path):
    tree = tmp_path / "tree"
    (tree / "usr/local/bin/__pycache__").mkdir(parents=True)
    (tree / "usr/local/bin/__pycache__/x.pyc").write_bytes(b"junk")
    tool = tree / "usr/local/bin/gs-hello"
    tool.write_text("#!/bin/sh\necho hello\n")
    tool.chmod(0o755)
    (tree / "usr/local/bin/gs-hi").symlink_to("gs-hello")
    (tree / "srv/git/app.git").mkdir(parents=True)
    (tree / "srv/git/app.git/HEAD").write_text("ref: refs/heads/main\n")
    (tree / "etc").mkdir()
    (tree / "etc/hosts.sandbox").write_text("127.0.0.1\tgs-provisioned gs-extra\n")
    (tree / "usr").chmod(0o700)  # an existing directory keeps its own mode
    (host,) = sandbox_host_factory(1, provision=[tree])
    for _ in range(2):
        with host.connection() as c:
            assert sh(c, "gs-hello && gs-hi").stdout.split() == ["hello", "hello"]
            assert sh(c, "stat -c %a /usr/local/bin/gs-hello /usr").stdout.split() == ["755", "755"]
            assert sh(c, "test -L /usr/local/bin/gs-hi && cat /srv/git/app.git/HEAD").stdout.startswith("ref:")
            assert sh(c, "ls /usr/local/bin/__pycache__ 2>/dev/null", warn=True).stdout == ""
            assert sh(c, "getent hosts gs-provisioned").stdout.split()[0] == "127.0.0.1"
            assert sh(c, f"getent hosts {host.hostname}").stdout.split()[0] == "127.0.1.1"
            sh(c, "rm /usr/local/bin/gs-hello")
        host.reset()


# --------------------------------------------------------------------------- teardown, sweep, CLI


@pytest.mark.sandbox
def test_down_leaves_nothing_behind(sandbox_host_factory):
    (host,) = sandbox_host_factory(1)
    procs = (host._state.init, host._state.unshare)
    assert all(sandbox.alive(p) for p in procs)
    assert all(host_resources(host).values())
    host.down()
    assert not any(host_resources(host).values())
    assert not any(sandbox.alive(p) for p in procs)
    assert str(host.state_dir) not in runner("findmnt", "-rn", "-o", "TARGET")
    host.down()  # twice is fine


def _cli(base: Path, *args: str) -> dict[str, str]:
    r = subprocess.run([sys.executable, "-m", "gonka_sim.hosts.host", *args], capture_output=True, text=True,
                       timeout=60, cwd=REPO, env={**os.environ, sandbox.BASE_ENV: str(base)})
    assert r.returncode == 0, r.stderr
    return dict(line.split("=", 1) for line in r.stdout.splitlines())


@pytest.mark.sandbox
def test_cli_up_reset_down(sandbox_host_factory, tmp_path):
    base = tmp_path / "cli-base"
    idx = sandbox_host_factory.reserve_index()
    name = f"c{idx}"
    env = _cli(base, "up", name, str(idx))
    assert env["IP"] == f"10.200.{idx}.2" and env["DISK"] == "/dev/vdc"
    try:
        run = subprocess.run([*shlex.split(env["SSH"]), "hostname"], capture_output=True, text=True, timeout=T,
                             stdin=subprocess.DEVNULL)
        assert run.stdout.strip() == f"gs-{name}", run.stderr
        env2 = _cli(base, "reset", name)
        assert (env2["IP"], env2["LOOP"], env2["KEY"]) == (env["IP"], env["LOOP"], env["KEY"])
        assert env2["PID"] != env["PID"]
    finally:
        _cli(base, "down", name)
    assert name not in runner("ip", "netns", "list")
    assert not (base / name).exists()


@pytest.mark.sandbox
def test_sweep_tears_down_only_hosts_of_dead_owners(sandbox_host_factory, tmp_path):
    base = tmp_path / "sweep-base"  # private: no other test or worker sweeps here
    idx = sandbox_host_factory.reserve_index()
    mine = sandbox.SandboxHost.up(f"l{idx}", idx, base=base)  # owned by this (live) process
    try:
        idx = sandbox_host_factory.reserve_index()
        stale = f"c{idx}"
        _cli(base, "up", stale, str(idx))  # owned by the CLI process, gone by now
        assert sandbox.sweep(base) == [stale]
        assert not (base / stale).exists()
        assert f"gs-{stale}" not in runner("ip", "netns", "list").split()
        assert mine.is_running()
        with mine.connection() as c:
            assert sh(c, "hostname").stdout.strip() == mine.hostname
    finally:
        mine.down()
