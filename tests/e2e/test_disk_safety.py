"""Disk and mount safety under hostile input (issue 11, items 3-5): a MOUNT_POINT that resolves to a
system directory, or is not empty, stops the run before the disk is formatted or fstab is written;
a mount that fails leaves fstab as it was; the system disk is recognised the way a real server
shows it; a shell payload in any artefact the deployer reads back never reaches a shell.
"""

from __future__ import annotations

import json

import pytest

from bench import chaos
from tests.e2e.test_prepare_server import KEY, MP, changing, first_mib, last_run, mounted

pytestmark = pytest.mark.sandbox

STOCK_FSTAB_MARK = "# /etc/fstab: static file system information."
PAYLOAD = "$(touch /tmp/pwned-{0}); touch /tmp/pwned-{0}; `touch /tmp/pwned-{0}`"


def untouched(lab, host, r, fstab_before: str, blank: bool = True) -> None:
    """The run stopped with one clear error and changed neither the disk nor fstab nor the mounts."""
    out = r.stdout + r.stderr
    assert r.returncode == 1, out[-3000:]
    assert "Traceback" not in out
    assert host.read_text("/etc/fstab") == fstab_before
    if blank:
        assert host.run(["blkid", "-p", host.disk], check=False).returncode == 2, "the data disk was formatted"
    assert not [w for w in changing(last_run(lab)) if "mkfs" in w or "fstab" in w or "mount" in w]
    assert mounted(host) == ("", "")


@pytest.mark.parametrize("layout,mount_point,words", [
    ("ln -s /etc /mnt/ssd", MP, "resolves to the system directory /etc"),
    ("mkdir -p /mnt/x && ln -s /usr /mnt/x/lib", "/mnt/x/lib/gonka", "resolves to the system directory /usr"),
    ("mkdir -p /mnt/ssd && echo mine > /mnt/ssd/notes.txt", MP, "is not empty (notes.txt)"),
    ("mkdir -p /mnt && touch /mnt/ssd", MP, "is not a directory"),
])
def test_an_unsafe_mount_point_stops_before_the_disk_is_formatted(lab, sandbox_host, layout, mount_point, words):
    host = sandbox_host
    chaos.instrument(host)
    host.run(layout)
    fstab = host.read_text("/etc/fstab")
    node = lab.write_node(host, KEY, MOUNT_POINT=mount_point)
    r = lab.fab("prepare-server", "--node", str(node), "--yes")
    untouched(lab, host, r, fstab)
    assert words in r.stdout and "refusing to use MOUNT_POINT" in r.stdout, r.stdout[-3000:]
    assert chaos.mkfs_calls(host) == 0
    assert not (lab.nodes / KEY / "volume.txt").exists()


@pytest.mark.parametrize("mount_point", ["//etc", "/etc/.", "/./usr", "/usr/local/../bin", "/var/lib/docker/x"])
def test_a_mount_point_spelled_as_a_system_directory_is_refused_at_validation(lab, sandbox_host, mount_point):
    host = sandbox_host
    fstab = host.read_text("/etc/fstab")
    node = lab.write_node(host, KEY, MOUNT_POINT=mount_point)
    r = lab.fab("prepare-server", "--node", str(node), "--yes")
    assert r.returncode == 1 and "MOUNT_POINT:" in r.stdout, r.stdout[-3000:]
    assert host.read_text("/etc/fstab") == fstab
    assert host.run(["blkid", "-p", host.disk], check=False).returncode == 2


def test_a_failed_mount_leaves_fstab_as_it_was(lab, sandbox_host):
    """mount(8) fails (a broken kernel module, say): fstab has no new line; the rerun finishes."""
    host = sandbox_host
    host.write_file("/usr/local/sbin/mount", "#!/bin/sh\n# test hook: the data disk cannot be mounted\n"
                    'case " $* " in *" /mnt/ssd "*) echo "mount: wrong fs type, bad option" >&2; exit 32;; esac\n'
                    'exec /usr/bin/mount "$@"\n', mode=0o755)
    fstab = host.read_text("/etc/fstab")
    node = lab.write_node(host, KEY)
    r = lab.fab("prepare-server", "--node", str(node), "--yes")
    assert r.returncode == 1 and "mount /mnt/ssd failed" in r.stdout, r.stdout[-3000:]
    assert host.read_text("/etc/fstab") == fstab
    host.run(["rm", "-f", "/usr/local/sbin/mount"])
    r = lab.fab("prepare-server", "--node", str(node), "--yes")
    assert r.returncode == 0, r.stdout[-3000:]
    assert mounted(host) == ("ext4", host.disk)
    assert len([ln for ln in host.read_text("/etc/fstab").splitlines() if f" {MP} " in ln]) == 1


def test_the_system_disk_is_refused_even_with_wipe_disk(lab, sandbox_host_factory):
    """A host that shows its system disk as a real server does (/dev/vda, GPT, /dev/vda1 at /boot):
    DATA_DISK=/dev/vda is named the system disk and never touched, --wipe-disk or not."""
    (host,) = sandbox_host_factory(1, system_disk=True)
    fstab = host.read_text("/etc/fstab")
    before = host.run("head -c 1048576 /dev/vda | sha256sum").stdout
    node = lab.write_node(host, KEY, DATA_DISK="/dev/vda")
    for extra in ([], ["--wipe-disk"]):
        r = lab.fab("prepare-server", "--node", str(node), "--yes", *extra)
        out = r.stdout + r.stderr
        assert r.returncode == 1, out[-3000:]
        assert "/dev/vda holds the root or boot filesystem" in out, out[-3000:]
        assert "Type the device name" not in out
        assert host.run("head -c 1048576 /dev/vda | sha256sum").stdout == before
        assert host.read_text("/etc/fstab") == fstab
    # the data disk of the same host is fine
    node = lab.write_node(host, KEY)
    r = lab.fab("prepare-server", "--node", str(node), "--yes")
    assert r.returncode == 0, r.stdout[-3000:]
    assert host.run("findmnt -n -o SOURCE /boot").stdout.strip() == "/dev/vda1"


def test_a_shell_payload_in_volume_txt_never_reaches_a_shell(lab, sandbox_host):
    host = sandbox_host
    before = first_mib(host)
    fstab = host.read_text("/etc/fstab")
    node = lab.write_node(host, KEY)
    (lab.nodes / KEY / "volume.txt").write_text(PAYLOAD.format("volume") + "\n")
    r = lab.fab("prepare-server", "--node", str(node), "--yes")
    untouched(lab, host, r, fstab)
    assert "volume.txt does not hold a filesystem UUID" in r.stdout, r.stdout[-3000:]
    assert first_mib(host) == before
    assert host.run("ls /tmp/pwned-* 2>/dev/null", check=False).stdout == ""


@pytest.mark.slow
def test_a_shell_payload_in_the_other_artefacts_never_reaches_a_shell(lab, sandbox_host, world):
    """After a deploy, each artefact the deployer reads back gets a payload; every task that reads
    it stops with a clear error or ignores it; nothing runs, here or on the server."""
    host = sandbox_host
    node = lab.write_node(host, KEY)
    r = lab.fab(*chaos.deploy_args(node))
    assert r.returncode == 0, r.stdout[-3000:]
    art = lab.nodes / KEY
    cases = {
        "warm_address.txt": ("deploy", "warm_address.txt does not hold a gonka1... address"),
        "warm_key.txt": ("start-base", "was never saved on this machine"),
        "verification.json": ("status", None),
    }
    for name, (task, words) in cases.items():
        path = art / name
        saved = path.read_bytes()
        path.write_text(PAYLOAD.format(name.split(".")[0]) + "\n")
        r = lab.fab(task, "--node", str(node), "--yes") if task != "status" else lab.fab(task, "--node", str(node))
        out = r.stdout + r.stderr
        assert "Traceback" not in out, out[-3000:]
        if words:
            assert r.returncode == 1 and words in out, out[-3000:]
        # the grant command the operator copies into a shell carries no payload
        report = (art / "report.txt").read_text().splitlines()
        at = next(i for i, ln in enumerate(report) if "grant-ml-ops-permissions" in ln)
        assert "pwned" not in " ".join(report[at:at + 4]), report[at:at + 4]
        path.write_bytes(saved)
    # the pinned host key: a payload line is not a key, so the connection is refused, not run
    kh = art / "known_hosts"
    kh.write_text(PAYLOAD.format("known_hosts") + "\n")
    r = lab.fab("status", "--node", str(node))
    assert r.returncode == 1 and "Traceback" not in r.stdout + r.stderr
    assert host.run("ls /tmp/pwned-* 2>/dev/null", check=False).stdout == ""
    assert not list(lab.workdir.glob("pwned-*")) and not list(art.glob("pwned-*"))
    assert json.loads((art / "last_run.json").read_text())["ok"] is False


def test_a_plan_that_meets_a_refusal_says_so_and_exits_non_zero(lab, sandbox_host):
    """--plan on a server whose disk holds someone's filesystem: the real run would refuse, so the plan
    does too (exit 1), naming the phase; nothing changes."""
    host = sandbox_host
    host.run(f"mkfs.ext4 -q -F -L theirs {host.disk}")
    before = first_mib(host)
    node = lab.write_node(host, KEY)
    r = lab.fab("deploy", "--node", str(node), "--yes", "--plan")
    assert r.returncode == 1, r.stdout[-3000:]
    assert "refusing to format" in r.stdout and "PLAN: the deploy would stop at phase 1" in r.stdout
    assert first_mib(host) == before
