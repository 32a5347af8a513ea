"""Phase 1, server preparation: admin SSH keys, the data disk (formatted only when blank), fstab,
the mount, and Prometheus.

The disk is the one place where a mistake destroys data, so both decisions are pure functions of
the facts (`facts.decide_disk`, `facts.decide_mount_point`), taken before anything changes, and
each irreversible command re-checks on the server in the same shell that acts (the disk is
blank; the mount point resolves to itself and is empty). The filesystem UUID is chosen and
recorded in `volume.txt` *before* `mkfs`, so a run killed right after formatting still recognises
the disk as its own. The disk is mounted first and the fstab line written after, so a failed run
leaves fstab as it was.
"""

from __future__ import annotations

import sys
import time
import uuid as uuidlib

from gonka_tasks import facts
from gonka_tasks.connectors.artefacts import read_artefact, write_artefact
from gonka_tasks.core import shell
from gonka_tasks.core.render import fstab_line
from gonka_tasks.core.shell import q
from gonka_tasks.errors import DeployError
from gonka_tasks.phases.common import Snapshot, require


# ----------------------------------------------------------------------------- facts
def snapshot(run) -> Snapshot:
    """Everything phase 1 checks, in one round trip."""
    cfg = run.cfg
    disk = q(cfg.data_disk)
    home = f'"$(getent passwd {q(run.target.user)} | cut -d: -f6)"'
    prom = q(f"{cfg.mount_point}/prometheus")
    return Snapshot(run, {
        "home": f"getent passwd {q(run.target.user)} | cut -d: -f6",
        "keys": f"cat {home}/.ssh/authorized_keys",
        "modes": f"stat -c %a {home}/.ssh {home}/.ssh/authorized_keys",
        "exists": f"test -b {disk}",
        "blkid": facts.blkid_probe(cfg.data_disk),
        "lsblk": facts.lsblk_probe(cfg.data_disk),
        "rootdisks": facts.ROOT_DISKS_PROBE,
        "mount": facts.findmnt_probe(cfg.mount_point),
        "mp_state": facts.mount_point_probe(cfg.mount_point),
        "fstab": "cat /etc/fstab",
        "prom_origin": f"git -C {prom} config --get remote.origin.url",
        "prom_ps": f"cd {prom} && docker compose ps --format json",
        "prom_files": f"cd {prom} && cat docker-compose.yml compose.yaml docker-compose.yaml 2>/dev/null",
    }, what=f"server state: admin keys, {cfg.data_disk}, {cfg.mount_point}, Prometheus")


# ------------------------------------------------------------------------- admin keys
def _key_blob(line: str) -> str:
    parts = line.split()
    return parts[1] if len(parts) > 1 else line


def admin_keys(run, snap: Snapshot) -> None:
    """Every ADMIN_SSH_KEYS key in the login user's authorized_keys exactly once; nothing removed."""
    keys = run.cfg.admin_ssh_keys
    if not keys:
        run.log.info("ADMIN_SSH_KEYS is empty: no admin keys to add")
        return

    def check():
        present = {_key_blob(ln) for ln in snap["keys"].stdout.splitlines() if ln.strip() and not ln.startswith("#")}
        missing = [k for k in keys if _key_blob(k) not in present]
        modes = snap["modes"].stdout.split()
        if missing:
            return False, f"{len(missing)} of {len(keys)} admin key(s) missing"
        if modes != ["700", "600"]:
            return False, f"modes of ~/.ssh and authorized_keys are {' '.join(modes) or 'unknown'}, want 700 600"
        return True, f"{len(keys)} admin key(s) present"

    def act():
        home = snap["home"].out or ("/root" if run.target.user == "root" else f"/home/{run.target.user}")
        user = run.target.user
        script = (
            "set -e; umask 077; "
            f"d={q(home + '/.ssh')}; f={q(home + '/.ssh/authorized_keys')}; "
            'mkdir -p "$d"; touch "$f"; chmod 700 "$d"; chmod 600 "$f"; '
            # a last line without newline would glue the next key onto it
            'if [ -s "$f" ] && [ -n "$(tail -c1 "$f")" ]; then echo >> "$f"; fi; '
            'while IFS= read -r k; do [ -n "$k" ] || continue; '
            'b=$(printf "%s\\n" "$k" | awk "{print \\$2}"); '
            'grep -qF -- "$b" "$f" || printf "%s\\n" "$k" >> "$f"; done'
            + (f"; chown {q(user)}: \"$d\" \"$f\"" if user != "root" else "")
        )
        run.remote.run(script, what="append missing admin keys", input="\n".join(keys) + "\n")

    run.steps.run("admin SSH keys in authorized_keys", check, act, refresh=snap.refresh)


# ------------------------------------------------------------------------------- disk
def disk_facts(snap: Snapshot, disk: str) -> facts.DiskFacts:
    try:
        return facts.disk_facts(snap["exists"].exit_code, snap["blkid"].stdout,
                                snap["lsblk"].stdout if snap["lsblk"].ok else "", snap["rootdisks"].stdout)
    except facts.FactError as e:
        raise DeployError(f"cannot read the state of {disk}: {e}") from None


def _confirm_wipe(run, decision: facts.DiskDecision) -> None:
    disk = run.cfg.data_disk
    if not sys.stdin or not sys.stdin.isatty():
        raise DeployError(f"--wipe-disk needs you to type the device name, and there is no terminal ({decision.reason})",
                          "run prepare-server with --wipe-disk from a terminal")
    typed = input(f"{decision.reason}.\nALL DATA ON {disk} WILL BE LOST. Type the device name ({disk}) to wipe it: ")
    if typed.strip() != disk:
        raise DeployError("device name not confirmed; the disk was left untouched")


def recorded_uuid(run) -> str | None:
    """volume.txt's UUID; anything but a UUID there is an error (it reaches a root shell)."""
    text = (read_artefact(run.cfg.artefacts, "volume.txt") or "").strip()
    if not text:
        return None
    if not facts.is_uuid(text):
        raise DeployError(f"{run.cfg.artefacts}/volume.txt does not hold a filesystem UUID (got '{facts.shown(text)}')",
                          "move the file aside (the data disk's UUID is what `blkid` prints) and rerun")
    return text.lower()


def disk_decision(run, snap: Snapshot) -> tuple[facts.DiskDecision, bool]:
    """What to do with DATA_DISK (format/keep), and whether to wipe it; refusals raise."""
    cfg = run.cfg
    f = disk_facts(snap, cfg.data_disk)
    decision = facts.decide_disk(f, cfg.data_disk, cfg.mount_point, recorded_uuid(run), cfg.flag("ADOPT_DISK"))
    if decision.action != "error":
        return decision, False
    # never wipe the system disk (or one that may be), or a mounted one, whatever the flags say
    wipeable = f.exists and not decision.found.startswith("system disk") and not f.mounted_at
    if run.opt("wipe_disk") and wipeable and not run.plan:
        _confirm_wipe(run, decision)
        return decision, True
    if decision.found.startswith("system disk"):
        hint = "point DATA_DISK at the data disk (`lsblk` on the server lists the disks)"
    else:
        how = "set ADOPT_DISK=true to keep and use this ext4 filesystem, or " if decision.found == "ext4" else ""
        hint = f"{how}point DATA_DISK at a blank disk, or rerun prepare-server with --wipe-disk to ERASE it"
    raise DeployError(f"refusing to format: {decision.reason}; the disk was left untouched", hint)


def mount_point_decision(run, snap: Snapshot, decision: facts.DiskDecision) -> None:
    """MOUNT_POINT is safe to mount on (before anything is formatted or written); else stop untouched."""
    cfg = run.cfg
    try:
        mounted = facts.parse_findmnt(snap["mount"].stdout) if snap["mount"].ok else []
    except facts.FactError as e:
        raise DeployError(f"cannot read the mounts at {cfg.mount_point}: {e}") from None
    ours = {u for u in (decision.uuid, recorded_uuid(run)) if u}
    mp = facts.decide_mount_point(cfg.mount_point, snap["mp_state"].stdout, mounted, cfg.data_disk, ours)
    run.log.check(f"mount point {cfg.mount_point}")
    if not mp.ok:
        raise DeployError(f"refusing to use MOUNT_POINT: {mp.reason}; nothing was changed (disk, fstab, mounts)",
                          "choose another MOUNT_POINT (an empty or new directory such as /mnt/ssd), or clear it")
    run.log.ok(f"mount point {cfg.mount_point}: {mp.reason}")


def data_disk(run, snap: Snapshot, decision: facts.DiskDecision, wipe: bool) -> str:
    """Format DATA_DISK only when blank (or wiped on request); returns the filesystem UUID."""
    cfg = run.cfg
    recorded = recorded_uuid(run)
    if decision.action == "keep":
        run.steps.run(f"filesystem on {cfg.data_disk}", lambda: (True, decision.reason), lambda: None)
        if not run.plan:
            write_artefact(cfg.artefacts, "volume.txt", decision.uuid + "\n")
        return decision.uuid
    # blank (or to be wiped): reuse a UUID already recorded so a rerun after a crash matches it
    new_uuid = recorded or str(uuidlib.uuid4())
    disk = q(cfg.data_disk)
    guard = "" if wipe else (f'blkid -p {disk} >/dev/null 2>&1; rc=$?; '
                             f'[ "$rc" -eq 2 ] || {{ echo "disk is not blank (blkid rc $rc)" >&2; exit 42; }}; ')
    wipe_cmd = f"wipefs -a {disk} >/dev/null && " if wipe else ""

    def check():
        sig = facts.parse_blkid_export(snap["blkid"].stdout)
        return (sig.get("TYPE") == "ext4" and sig.get("UUID") == new_uuid), decision.reason

    def act():
        write_artefact(cfg.artefacts, "volume.txt", new_uuid + "\n")
        run.remote.run(f"{guard}{wipe_cmd}mkfs.ext4 -q {'-F ' if wipe else ''}-L gonka-data -U {q(new_uuid)} {disk}",
                       what=f"mkfs.ext4 {cfg.data_disk}", timeout=1800,
                       hint="the disk was checked blank just before; see the output above")
    run.steps.run(f"ext4 filesystem on {cfg.data_disk}", check, act, refresh=snap.refresh)
    return new_uuid


def mount_and_fstab(run, snap: Snapshot, fs_uuid: str) -> None:
    """The disk mounted at MOUNT_POINT, then one fstab line for it (UUID=, nofail), backed up first.

    The mount comes first: a run that fails there has not touched fstab, and the mount command
    re-checks in its own shell that the mount point resolves to itself and is empty.
    """
    cfg = run.cfg
    mp = cfg.mount_point
    if not facts.is_uuid(fs_uuid):  # it came from blkid or volume.txt: it reaches a root shell
        raise DeployError(f"the data disk's UUID {facts.shown(fs_uuid)!r} is not a UUID; refusing to mount it")
    line = fstab_line(fs_uuid, mp)

    def mount_check():
        fs = facts.parse_findmnt(snap["mount"].stdout) if snap["mount"].ok else []
        if not fs:
            return False, "not mounted"
        got = fs[-1]
        if got.get("UUID") == fs_uuid or got.get("SOURCE") == cfg.data_disk:
            return True, f"{got.get('SOURCE')} ({got.get('FSTYPE')}) at {mp}"
        raise DeployError(f"{mp} is already a mount point of {got.get('SOURCE')} ({got.get('FSTYPE')}), not of "
                          f"{cfg.data_disk}", "unmount it or choose another MOUNT_POINT")

    def mount_act():
        m = q(mp)
        run.remote.run(
            f'set -e; [ "$(realpath -m -- {m})" = {m} ] || {{ echo "{mp} resolves elsewhere" >&2; exit 43; }}; '
            f"mkdir -p -- {m}; "
            f'[ -z "$(ls -A -- {m})" ] || {{ echo "{mp} is not empty" >&2; exit 42; }}; '
            f"mount -t ext4 -o defaults UUID={fs_uuid} {m}",
            what=f"mount {mp}", hint="MOUNT_POINT was checked just before; see the output above")

    run.steps.run(f"{cfg.data_disk} mounted at {mp}", mount_check, mount_act, refresh=snap.refresh)

    def fstab_check():
        entries = facts.fstab_entries_for(snap["fstab"].stdout, mp)
        return entries == [line], (f"{len(entries)} entr{'y' if len(entries) == 1 else 'ies'} for {mp}"
                                   if entries != [line] else f"UUID={fs_uuid} {mp}")

    def fstab_act():
        text = snap["fstab"].stdout
        stamp = time.strftime("%Y%m%d-%H%M%S")
        saved = f"/etc/fstab.gonka-deploy-{stamp}.bak"
        run.remote.run(shell.stamped_backup("/etc/fstab", saved), what="back up /etc/fstab")
        run.remote.write_file("/etc/fstab", facts.fstab_with_entry(text, line, mp), mode=0o644,
                              what=f"write the {mp} entry to /etc/fstab")
        verify = run.remote.probe("findmnt --verify --tab-file /etc/fstab 2>&1", what="findmnt --verify /etc/fstab")
        bad = [ln for ln in verify.stdout.splitlines() if mp in ln and "[E]" in ln]
        if bad:
            run.remote.run(shell.stamped_backup(saved, "/etc/fstab"), what="restore /etc/fstab")
            raise DeployError(f"the new fstab entry does not verify: {'; '.join(bad)}; fstab restored")

    run.steps.run(f"/etc/fstab entry for {mp}", fstab_check, fstab_act, refresh=snap.refresh)


def require_mounted(run, mount_out: str | None = None) -> None:
    """Later phases write under MOUNT_POINT: make sure it is the data disk, not the root filesystem."""
    mp = run.cfg.mount_point
    if mount_out is None:
        mount_out = run.remote.probe(f"findmnt -n -o SOURCE --mountpoint {q(mp)}").out
    require(bool(mount_out.strip()), f"{mp} is not mounted (data disk missing)", "run `fab prepare-server` first")


# ------------------------------------------------------------------------- prometheus
def prometheus(run, snap: Snapshot) -> None:
    """PROMETHEUS_REPO cloned into MOUNT_POINT/prometheus and started; empty repo = skipped."""
    repo = run.cfg["PROMETHEUS_REPO"]
    if not repo:
        run.log.info("PROMETHEUS_REPO is empty: Prometheus step skipped")
        return
    d = f"{run.cfg.mount_point}/prometheus"

    def cloned():
        origin = snap["prom_origin"].out
        if snap["prom_origin"].ok and origin and origin != repo:
            raise DeployError(f"{d} is a clone of {origin}, not of PROMETHEUS_REPO {repo}",
                              "move it aside or fix PROMETHEUS_REPO")
        return snap["prom_origin"].ok and origin == repo, d

    run.steps.run("Prometheus repository", cloned,
                  lambda: run.remote.run(f"git clone -q {q(repo)} {q(d)}", what=f"git clone {repo}", timeout=600),
                  refresh=snap.refresh)

    def running():
        if not snap["prom_origin"].ok:
            return False, "not cloned yet"
        try:
            services = facts.compose_services(snap["prom_files"].stdout)
            up = {c.service for c in facts.parse_compose_ps(snap["prom_ps"].stdout) if c.running}
        except facts.FactError as e:
            return False, str(e)
        missing = [s for s in services if s not in up]
        return not missing, (f"not running: {', '.join(missing)}" if missing else f"{len(services)} running")

    run.steps.run("Prometheus containers running", running,
                  lambda: run.remote.run(f"cd {q(d)} && docker compose up -d", what="docker compose up -d (prometheus)",
                                         timeout=900), refresh=snap.refresh)


def prepare_server(run) -> None:
    """Phase 1."""
    snap = snapshot(run)
    admin_keys(run, snap)
    decision, wipe = disk_decision(run, snap)
    mount_point_decision(run, snap, decision)
    fs_uuid = data_disk(run, snap, decision, wipe)
    mount_and_fstab(run, snap, fs_uuid)
    prometheus(run, snap)
