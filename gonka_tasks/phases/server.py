"""Phase 1, server preparation: admin SSH keys, the data disk (formatted only when blank), fstab,
the mount, and Prometheus.

The disk is the one place where a mistake destroys data, so the decision is a pure function of
the facts (`facts.decide_disk`) and the format command re-checks blankness on the server in the
same shell that formats. The filesystem UUID is chosen and recorded in `volume.txt` *before*
`mkfs`, so a run killed right after formatting still recognises the disk as its own.
"""

from __future__ import annotations

import sys
import time
import uuid as uuidlib

from .. import facts
from ..artefacts import read_artefact, write_artefact
from ..errors import DeployError
from ..render import fstab_line
from .common import q, require


# ------------------------------------------------------------------------- admin keys
def _login_home(run) -> str:
    r = run.remote.probe(f"getent passwd {q(run.target.user)} | cut -d: -f6")
    home = r.out or ("/root" if run.target.user == "root" else f"/home/{run.target.user}")
    return home


def _key_blob(line: str) -> str:
    parts = line.split()
    return parts[1] if len(parts) > 1 else line


def admin_keys(run) -> None:
    """Every ADMIN_SSH_KEYS key in the login user's authorized_keys exactly once; nothing removed."""
    keys = run.cfg.admin_ssh_keys
    if not keys:
        run.log.info("ADMIN_SSH_KEYS is empty: no admin keys to add")
        return
    home = _login_home(run)
    ssh_dir, auth = f"{home}/.ssh", f"{home}/.ssh/authorized_keys"

    def check():
        r = run.remote.probe_many({
            "modes": f"stat -c %a {q(ssh_dir)} {q(auth)}",
            "keys": f"cat {q(auth)}",
        })
        present = {_key_blob(ln) for ln in r["keys"].stdout.splitlines() if ln.strip() and not ln.startswith("#")}
        missing = [k for k in keys if _key_blob(k) not in present]
        modes = r["modes"].stdout.split()
        if missing:
            return False, f"{len(missing)} of {len(keys)} admin key(s) missing"
        if modes != ["700", "600"]:
            return False, f"modes of ~/.ssh and authorized_keys are {' '.join(modes) or 'unknown'}, want 700 600"
        return True, f"{len(keys)} admin key(s) present"

    user = run.target.user
    script = (
        "set -e; umask 077; "
        f"d={q(ssh_dir)}; f={q(auth)}; "
        'mkdir -p "$d"; touch "$f"; chmod 700 "$d"; chmod 600 "$f"; '
        # a last line without newline would glue the next key onto it
        'if [ -s "$f" ] && [ -n "$(tail -c1 "$f")" ]; then echo >> "$f"; fi; '
        'while IFS= read -r k; do [ -n "$k" ] || continue; '
        'b=$(printf "%s\\n" "$k" | awk "{print \\$2}"); '
        'grep -qF -- "$b" "$f" || printf "%s\\n" "$k" >> "$f"; done'
        + (f"; chown {q(user)}: \"$d\" \"$f\"" if user != "root" else "")
    )
    run.steps.run("admin SSH keys in authorized_keys", check,
                  lambda: run.remote.run(script, what="append missing admin keys", input="\n".join(keys) + "\n"))


# ------------------------------------------------------------------------------- disk
def disk_probe(run) -> tuple[facts.DiskFacts, list[dict], str]:
    """One round trip: the disk's signature, lsblk tree, system disks, the mount point, fstab."""
    disk, mp = q(run.cfg.data_disk), q(run.cfg.mount_point)
    r = run.remote.probe_many({
        "exists": f"test -b {disk}",
        "blkid": f"blkid -p -o export {disk}",
        "lsblk": f"lsblk -J -o NAME,PATH,TYPE,FSTYPE,UUID,MOUNTPOINTS {disk}",
        "rootdisks": 'for m in / /boot; do s=$(findmnt -n -o SOURCE "$m" 2>/dev/null) || continue; '
                     'lsblk -n -s -o NAME,TYPE "$s" 2>/dev/null | awk \'$2=="disk"{print $1}\'; done; true',
        "mount": f"findmnt -J -o TARGET,SOURCE,FSTYPE,UUID --mountpoint {mp}",
        "fstab": "cat /etc/fstab",
    }, what=f"data disk {run.cfg.data_disk}")
    try:
        f = facts.disk_facts(r["exists"].exit_code, r["blkid"].stdout,
                             r["lsblk"].stdout if r["lsblk"].ok else "", r["rootdisks"].stdout)
        mounts = facts.parse_findmnt(r["mount"].stdout) if r["mount"].ok else []
    except facts.FactError as e:
        raise DeployError(f"cannot read the state of {run.cfg.data_disk}: {e}") from None
    return f, mounts, r["fstab"].stdout


def _confirm_wipe(run, decision: facts.DiskDecision) -> None:
    disk = run.cfg.data_disk
    if not sys.stdin or not sys.stdin.isatty():
        raise DeployError(f"--wipe-disk needs you to type the device name, and there is no terminal ({decision.reason})",
                          "run prepare-server with --wipe-disk from a terminal")
    typed = input(f"{decision.reason}.\nALL DATA ON {disk} WILL BE LOST. Type the device name ({disk}) to wipe it: ")
    if typed.strip() != disk:
        raise DeployError("device name not confirmed; the disk was left untouched")


def data_disk(run) -> str:
    """Format DATA_DISK only when blank (or wiped on request); returns the filesystem UUID."""
    cfg = run.cfg
    recorded = (read_artefact(cfg.artefacts, "volume.txt") or "").strip() or None
    f, mounts, _ = disk_probe(run)
    decision = facts.decide_disk(f, cfg.data_disk, cfg.mount_point, recorded, cfg.flag("ADOPT_DISK"))
    wipe = False
    if decision.action == "error":
        # never wipe the system disk or a mounted one, whatever the flags say
        wipeable = f.exists and decision.found != "system disk" and not f.mounted_at
        if run.opt("wipe_disk") and wipeable and not run.plan:
            _confirm_wipe(run, decision)
            wipe = True
        else:
            how = ("set ADOPT_DISK=true to keep and use this ext4 filesystem, or " if decision.found == "ext4" else "")
            raise DeployError(
                f"refusing to format: {decision.reason}; the disk was left untouched",
                f"{how}point DATA_DISK at a blank disk, or rerun prepare-server with --wipe-disk to ERASE it",
            )
    if decision.action == "keep":
        run.steps.run(f"filesystem on {cfg.data_disk}", lambda: (True, decision.reason), lambda: None)
        write_artefact(cfg.artefacts, "volume.txt", decision.uuid + "\n")
        return decision.uuid
    # blank (or to be wiped): reuse a UUID already recorded so a rerun after a crash matches it
    new_uuid = recorded or str(uuidlib.uuid4())
    disk = q(cfg.data_disk)
    guard = "" if wipe else (f'blkid -p {disk} >/dev/null 2>&1; rc=$?; '
                             f'[ "$rc" -eq 2 ] || {{ echo "disk is not blank (blkid rc $rc)" >&2; exit 42; }}; ')
    wipe_cmd = f"wipefs -a {disk} >/dev/null && " if wipe else ""

    def check():
        sig = facts.parse_blkid_export(run.remote.probe(f"blkid -p -o export {disk}").stdout)
        return (sig.get("TYPE") == "ext4" and sig.get("UUID") == new_uuid), decision.reason

    def act():
        write_artefact(cfg.artefacts, "volume.txt", new_uuid + "\n")
        run.remote.run(f"{guard}{wipe_cmd}mkfs.ext4 -q {'-F ' if wipe else ''}-L gonka-data -U {new_uuid} {disk}",
                       what=f"mkfs.ext4 {cfg.data_disk}", timeout=1800,
                       hint="the disk was checked blank just before; see the output above")
    run.steps.run(f"ext4 filesystem on {cfg.data_disk}", check, act)
    return new_uuid


def fstab_and_mount(run, fs_uuid: str) -> None:
    """One fstab line for MOUNT_POINT (UUID=, nofail), backed up first; mounted from that line."""
    cfg = run.cfg
    mp = cfg.mount_point
    line = fstab_line(fs_uuid, mp)

    def fstab_check():
        text = run.remote.probe("cat /etc/fstab").stdout
        entries = facts.fstab_entries_for(text, mp)
        return entries == [line], (f"{len(entries)} entr{'y' if len(entries) == 1 else 'ies'} for {mp}"
                                   if entries != [line] else f"UUID={fs_uuid} {mp}")

    def fstab_act():
        text = run.remote.probe("cat /etc/fstab").stdout
        stamp = time.strftime("%Y%m%d-%H%M%S")
        run.remote.run(f"cp -p /etc/fstab /etc/fstab.gonka-deploy-{stamp}.bak", what="back up /etc/fstab")
        run.remote.write_file("/etc/fstab", facts.fstab_with_entry(text, line, mp), mode=0o644,
                              what=f"write the {mp} entry to /etc/fstab")
        verify = run.remote.probe("findmnt --verify --tab-file /etc/fstab 2>&1", what="findmnt --verify /etc/fstab")
        bad = [ln for ln in verify.stdout.splitlines() if mp in ln and "[E]" in ln]
        if bad:
            run.remote.run(f"cp -p /etc/fstab.gonka-deploy-{stamp}.bak /etc/fstab", what="restore /etc/fstab")
            raise DeployError(f"the new fstab entry does not verify: {'; '.join(bad)}; fstab restored")

    run.steps.run(f"/etc/fstab entry for {mp}", fstab_check, fstab_act)

    def mount_check():
        r = run.remote.probe(f"findmnt -J -o TARGET,SOURCE,FSTYPE,UUID --mountpoint {q(mp)}")
        fs = facts.parse_findmnt(r.stdout) if r.ok else []
        if not fs:
            return False, "not mounted"
        got = fs[0]
        if got.get("UUID") == fs_uuid or got.get("SOURCE") == cfg.data_disk:
            return True, f"{got.get('SOURCE')} ({got.get('FSTYPE')}) at {mp}"
        raise DeployError(f"{mp} is already a mount point of {got.get('SOURCE')} ({got.get('FSTYPE')}), not of "
                          f"{cfg.data_disk}", "unmount it or choose another MOUNT_POINT")

    def mount_act():
        r = run.remote.probe(f"ls -A {q(mp)} 2>/dev/null | head -3")
        if r.out:
            raise DeployError(f"{mp} is not empty ({', '.join(r.out.split())}...): mounting would hide those files",
                              "move them away or choose another MOUNT_POINT")
        run.remote.run(f"mkdir -p {q(mp)} && mount {q(mp)}", what=f"mount {mp}")

    run.steps.run(f"{cfg.data_disk} mounted at {mp}", mount_check, mount_act)


def require_mounted(run) -> None:
    """Later phases write under MOUNT_POINT: make sure it is the data disk, not the root filesystem."""
    mp = run.cfg.mount_point
    r = run.remote.probe(f"findmnt -n -o SOURCE --mountpoint {q(mp)}")
    require(r.ok and bool(r.out), f"{mp} is not mounted (data disk missing)",
            "run `fab prepare-server` first")


# ------------------------------------------------------------------------- prometheus
def prometheus(run) -> None:
    """PROMETHEUS_REPO cloned into MOUNT_POINT/prometheus and started; empty repo = skipped."""
    repo = run.cfg["PROMETHEUS_REPO"]
    if not repo:
        run.log.info("PROMETHEUS_REPO is empty: Prometheus step skipped")
        return
    d = f"{run.cfg.mount_point}/prometheus"

    def cloned():
        r = run.remote.probe(f"git -C {q(d)} remote get-url origin")
        if r.ok and r.out and r.out != repo:
            raise DeployError(f"{d} is a clone of {r.out}, not of PROMETHEUS_REPO {repo}",
                              "move it aside or fix PROMETHEUS_REPO")
        return r.ok and r.out == repo, d

    run.steps.run("Prometheus repository", cloned,
                  lambda: run.remote.run(f"git clone -q {q(repo)} {q(d)}", what=f"git clone {repo}", timeout=600))

    def running():
        r = run.remote.probe_many({
            "ps": f"cd {q(d)} && docker compose ps --format json",
            "files": f"cd {q(d)} && cat docker-compose.yml compose.yaml docker-compose.yaml 2>/dev/null",
        })
        try:
            services = facts.compose_services(r["files"].stdout)
            up = {c.service for c in facts.parse_compose_ps(r["ps"].stdout) if c.running}
        except facts.FactError as e:
            return False, str(e)
        missing = [s for s in services if s not in up]
        return not missing, (f"not running: {', '.join(missing)}" if missing else f"{len(services)} running")

    run.steps.run("Prometheus containers running", running,
                  lambda: run.remote.run(f"cd {q(d)} && docker compose up -d", what="docker compose up -d (prometheus)",
                                         timeout=900))


def prepare_server(run) -> None:
    """Phase 1."""
    admin_keys(run)
    fs_uuid = data_disk(run)
    fstab_and_mount(run, fs_uuid)
    prometheus(run)
