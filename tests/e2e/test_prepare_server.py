"""Phase 1 (prepare-server) on sandbox hosts, checked the way an operator would check a server:
the data disk, /etc/fstab, volume.txt, admin SSH keys, a rerun that changes nothing, the disk
safety rules (anything that is not blank stops the run untouched), and plan mode.
"""

from __future__ import annotations

import hashlib
import json
import re
import shlex
import time

import pytest

from tests.helpers import ssh_public_key

pytestmark = pytest.mark.sandbox

KEY = "sbx-disk"
MP = "/mnt/ssd"
MODEL_DIR = f"{MP}/hf/hub/models--sandbox--tiny-model"
MIB = 1 << 20
# commands that change a disk, a mount, a checkout or the tools: none may run when nothing is to do
MUTATING = re.compile(r"\b(mkfs|wipefs|git clone|pipx install|setsid|compose up)\b|(^|[;&|( ])mount |hf_job\.py download")


# ----------------------------------------------------------------------------- helpers
def last_run(lab) -> dict:
    return json.loads((lab.nodes / KEY / "last_run.json").read_text())


def changing(run: dict) -> list[str]:
    """What the deployer ran that changes the server (its own command log)."""
    return [c["what"] for c in run["commands"] if c["kind"] == "run"]


def fab(lab, *args: str, ok: bool = True):
    r = lab.fab(*args)
    out = r.stdout + r.stderr
    if ok:
        assert r.returncode == 0, out[-4000:]
    return r, out


def sh(host, cmd: str) -> str:
    return host.run(cmd).stdout


def first_mib(host) -> str:
    """sha256 of the disk's first MiB, read raw on the runner from the loop device."""
    with open(host.loop, "rb") as f:
        return hashlib.sha256(f.read(MIB)).hexdigest()


DOCKER_CHANGES = {"up", "run", "create", "start", "restart", "stop", "kill", "rm", "down", "pull", "build"}
_DOCKER_OPTS_WITH_VALUE = {"-f", "--file", "-p", "--project-name", "--env-file", "--project-directory", "--profile"}


def docker_verb(argv: list[str]) -> str:
    """The (compose) subcommand of a docker call: `compose -f a.yml up -d x` -> "up"."""
    args = argv[1:] if argv and argv[0] == "compose" else argv
    skip = False
    for a in args:
        if skip:
            skip = False
        elif a in _DOCKER_OPTS_WITH_VALUE:
            skip = True
        elif not a.startswith("-"):
            return a
    return ""


def docker_changes(host) -> list[list[str]]:
    """docker calls on the host that start, stop or create something (exec, ps, inspect read)."""
    return [c["argv"] for c in host.docker_calls() if docker_verb(c["argv"]) in DOCKER_CHANGES]


def wait_pull_job(host, timeout: float = 60) -> dict:
    """The image pull job's final state.json (it runs detached after download-model returns)."""
    deadline = time.monotonic() + timeout
    while True:
        text = host.run("cat /var/lib/gonka-deploy/pull/state.json", check=False).stdout
        state = json.loads(text) if text.strip() else {}
        if state.get("state") in ("complete", "failed") or time.monotonic() > deadline:
            assert state.get("state") == "complete", state
            return state
        time.sleep(0.3)


def mounted(host, mp: str = MP) -> tuple[str, str]:
    """(FSTYPE, SOURCE) of what is mounted at mp inside the host, ("", "") when nothing."""
    r = host.run(f"findmnt -n -o FSTYPE,SOURCE --mountpoint {mp}", check=False)
    parts = r.stdout.split()
    return (parts[0], parts[1]) if len(parts) == 2 else ("", "")


def fstab_lines_for(host, mp: str = MP) -> list[str]:
    return [ln for ln in host.read_text("/etc/fstab").splitlines()
            if (f := ln.split()) and not f[0].startswith("#") and len(f) >= 2 and f[1] == mp]


# ------------------------------------------------------------------ fresh host + rerun
def test_fresh_host_prepare_and_download_then_rerun_changes_nothing(lab, sandbox_host, hub, tmp_path):
    host = sandbox_host
    original_keys = host.read_text("/root/.ssh/authorized_keys")
    admin = [ssh_public_key(tmp_path, "admin-a"), ssh_public_key(tmp_path, "admin-b")]
    node = str(lab.write_node(host, KEY, ADMIN_SSH_KEYS=";".join(admin)))

    fab(lab, "prepare-server", "--node", node, "--yes")
    first = last_run(lab)
    fab(lab, "download-model", "--node", node, "--yes")
    # the yardsticks of the rerun below do see changes when there are some
    assert [c for c in first["commands"] if MUTATING.search(c["command"])]
    assert [c for c in last_run(lab)["commands"] if MUTATING.search(c["command"])]
    assert docker_changes(host)

    # the disk: ext4 at /mnt/ssd, one fstab line by UUID with nofail, the UUID recorded locally
    assert mounted(host) == ("ext4", host.disk)
    uuid = sh(host, f"blkid -p -s UUID -o value {host.disk}").strip()
    assert uuid and (lab.nodes / KEY / "volume.txt").read_text().strip() == uuid
    lines = fstab_lines_for(host)
    assert len(lines) == 1, host.read_text("/etc/fstab")
    assert lines[0].split()[0] == f"UUID={uuid}" and "nofail" in lines[0].split()[3].split(",")

    # the model: every file of the hub's revision, with the hub's size, in the HF cache layout
    repo = hub.repo()
    snap = f"{MODEL_DIR}/snapshots/{repo.commit}"
    listing = sh(host, f"cd {snap} && find . -type l -o -type f | sed 's|^./||' | xargs stat -L -c '%n %s'")
    got = {name: int(size) for name, size in (ln.rsplit(" ", 1) for ln in listing.splitlines())}
    assert got == {path: e.size for path, e in repo.files.items()}

    # admin keys: each once, after the key that was there, with the modes sshd insists on
    keys = host.read_text("/root/.ssh/authorized_keys")
    blobs = [ln.split()[1] for ln in keys.splitlines() if ln.strip() and not ln.startswith("#")]
    assert blobs[0] == original_keys.split()[1]
    for k in admin:
        assert blobs.count(k.split()[1]) == 1
    assert sh(host, "stat -c %a /root/.ssh /root/.ssh/authorized_keys").split() == ["700", "600"]
    with host.connection(connect_kwargs={"key_filename": str(tmp_path / "admin-b_ed25519")}) as c:
        assert c.run("id -u", hide=True).stdout.strip() == "0"

    # the image pull job download-model started runs on detached: let it finish first
    wait_pull_job(host)
    # second run of both: every step SKIP, nothing changing issued, files byte-identical
    fstab, docker = host.read_file("/etc/fstab"), docker_changes(host)
    for task in ("prepare-server", "download-model"):
        _, out = fab(lab, task, "--node", node, "--yes")
        run = last_run(lab)
        assert run["ok"] and run["steps"], out[-3000:]
        assert [s["name"] for s in run["steps"] if s["result"] != "skip"] == [], run["steps"]
        assert changing(run) == [], changing(run)
        assert not [c["command"] for c in run["commands"] if MUTATING.search(c["command"])]
    assert host.read_file("/etc/fstab") == fstab
    assert host.read_text("/root/.ssh/authorized_keys") == keys
    assert docker_changes(host) == docker


# ---------------------------------------------------------------------- disk safety
def _foreign_ext4(host) -> str:
    host.run(f"mkfs.ext4 -q -F -L theirs {host.disk}")
    return "holds an ext4 filesystem"


def _xfs(host) -> str:
    if host.run("command -v mkfs.xfs", check=False).returncode:
        pytest.skip("mkfs.xfs missing (apt-get install xfsprogs)")
    host.run(f"mkfs.xfs -q -f {host.disk}")
    return "xfs filesystem"


def _gpt(host) -> str:
    if host.run("command -v sgdisk", check=False).returncode:
        pytest.skip("sgdisk missing (apt-get install gdisk)")
    host.run(f"sgdisk -o {host.disk}")
    return "gpt partition table"


def _mounted_elsewhere(host) -> str:
    # No lazy init: ext4lazyinit would otherwise mark the group descriptors (in the first MiB)
    # zeroed in the background while the test compares; sync so the mount's own writes are done.
    host.run(f"mkfs.ext4 -q -F -E lazy_itable_init=0,lazy_journal_init=0 {host.disk} && mkdir -p /data && "
             f"mount {host.disk} /data && sync")
    return "mounted at /data"


DISK_CASES = {
    "foreign-ext4": (_foreign_ext4, {}),
    "xfs": (_xfs, {}),
    "gpt-no-filesystem": (_gpt, {}),
    "mounted-elsewhere": (_mounted_elsewhere, {}),
    "missing-device": (lambda host: "/dev/vdz does not exist", {"DATA_DISK": "/dev/vdz"}),
}


@pytest.mark.parametrize("case", list(DISK_CASES))
def test_disk_that_is_not_blank_stops_untouched(lab, sandbox_host, case):
    host = sandbox_host
    make, overrides = DISK_CASES[case]
    found = make(host)
    before = first_mib(host)
    node = str(lab.write_node(host, KEY, **overrides))

    r, out = fab(lab, "prepare-server", "--node", node, "--yes", ok=False)

    assert r.returncode == 1, out[-3000:]
    assert found in out and "refusing to format" in out, out[-3000:]
    assert first_mib(host) == before
    assert not [w for w in changing(last_run(lab)) if "mkfs" in w or "fstab" in w or "mount" in w]
    assert fstab_lines_for(host) == []
    assert mounted(host) == ("", "")
    assert not (lab.nodes / KEY / "volume.txt").exists()


def test_adopt_disk_keeps_a_foreign_ext4_and_its_files(lab, sandbox_host):
    host = sandbox_host
    host.run(f"mkfs.ext4 -q -F -L theirs {host.disk} && mkdir -p /tmp/theirs && mount {host.disk} /tmp/theirs "
             "&& echo precious > /tmp/theirs/data.txt && umount /tmp/theirs")
    uuid = sh(host, f"blkid -p -s UUID -o value {host.disk}").strip()
    node = str(lab.write_node(host, KEY, ADOPT_DISK="true"))

    fab(lab, "prepare-server", "--node", node, "--yes")

    assert not [w for w in changing(last_run(lab)) if "mkfs" in w]
    assert sh(host, f"blkid -p -s UUID -o value {host.disk}").strip() == uuid
    assert (lab.nodes / KEY / "volume.txt").read_text().strip() == uuid
    assert mounted(host) == ("ext4", host.disk)
    assert host.read_text(f"{MP}/data.txt") == "precious\n"
    assert fstab_lines_for(host)[0].split()[0] == f"UUID={uuid}"


def test_wipe_disk_without_a_terminal_refuses(lab, sandbox_host):
    host = sandbox_host
    _foreign_ext4(host)
    before = first_mib(host)
    node = str(lab.write_node(host, KEY))

    r, out = fab(lab, "prepare-server", "--node", node, "--yes", "--wipe-disk", ok=False)

    assert r.returncode == 1
    assert "no terminal" in out and "ext4" in out, out[-3000:]
    assert first_mib(host) == before
    assert mounted(host) == ("", "")


# --------------------------------------------------------------------------- plan mode
PLANNED_STEPS = ("admin SSH keys", "ext4 filesystem on /dev/vdc", f"/etc/fstab entry for {MP}",
                 f"/dev/vdc mounted at {MP}", "Prometheus repository", "Prometheus containers running",
                 "gonka repository", "model cache dir", "huggingface_hub on the server",
                 "download sandbox/tiny-model")


def test_plan_on_a_fresh_host_lists_phases_1_2_and_changes_nothing(lab, sandbox_host, tmp_path):
    host = sandbox_host
    node = str(lab.write_node(host, KEY, ADMIN_SSH_KEYS=ssh_public_key(tmp_path, "admin-a")))
    probe = (f"blkid -p -o export {host.disk}; echo ---; cat /etc/fstab; echo ---; ls -la /mnt; echo ---; "
             f"cat /root/.ssh/authorized_keys; echo ---; ls -la {shlex.quote(MP)} 2>&1")

    def state():
        return host.run(probe, check=False).stdout, docker_changes(host), first_mib(host)

    before = state()
    _, out = fab(lab, "deploy", "--plan", "--node", node)  # no --yes: a plan asks nothing

    plans = [ln for ln in out.splitlines() if "PLAN would run" in ln]
    for step in PLANNED_STEPS:
        assert any(step in ln for ln in plans), (step, out[-4000:])
    assert state() == before
    run = last_run(lab)
    assert run["ok"] and changing(run) == [] and not [s for s in run["steps"] if s["result"] == "done"]
