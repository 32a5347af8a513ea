"""Key backup: the consensus key (.tmkms/), the warm keyring and the node key copied from the server
into `nodes/<KEY_NAME>/backup/<timestamp>/` (dirs 0700, files 0600), verified by checksums; with
them the API's state, `.dapi/api-config.yaml` and `.dapi/gonka.db` (its SQLite database, with the
`-wal`/`-shm` files when present), once the API has made them.

Nothing on the server is changed or deleted. The archive travels as base64 text on the command's
output and is never logged. The API writes its database while it runs, so those files are first
copied together into a private temporary directory on the server, and summed and packed from there.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import os
import tarfile
import time
from pathlib import Path, PurePosixPath

from gonka_tasks.core.shell import q
from gonka_tasks.errors import DeployError

BACKUP_PATHS = (".tmkms", ".inference/keyring-file", ".inference/config/node_key.json")
"""The key material: a deploy backs it up after phase 4 unless the latest backup matches."""
STATE_PATHS = (".dapi/api-config.yaml", ".dapi/gonka.db", ".dapi/gonka.db-wal", ".dapi/gonka.db-shm")
"""The API's state (upstream v0.2.13: apiconfig/config_manager.go; the db is SQLite, default
API_SQLITE_PATH /root/.dapi/gonka.db): copied when present, never compared (it changes as the API runs)."""
STATE_MARK = "__GD_STATE_ARCHIVE__"


def _safe_members(tar: tarfile.TarFile) -> list[tarfile.TarInfo]:
    """Regular files and dirs under relative paths only (no links, devices or ..)."""
    out = []
    for m in tar.getmembers():
        p = PurePosixPath(m.name)
        if p.is_absolute() or ".." in p.parts or not (m.isfile() or m.isdir()):
            raise DeployError(f"refusing unsafe path in the key archive: {m.name}")
        out.append(m)
    return out


def server_sums(run) -> dict[str, str]:
    """{relative path: sha256} of the key material on the server (one round trip)."""
    cmd = (f"cd {q(run.cfg.join_dir)} && for p in {' '.join(BACKUP_PATHS)}; do [ -e \"$p\" ] && "
           "find \"$p\" -type f -exec sha256sum {} +; done; true")
    out = run.remote.probe(cmd, what="key material on the server").stdout
    return {line[66:].strip(): line[:64] for line in out.splitlines() if len(line) > 66}


def state_snapshot(run) -> tuple[dict[str, str], bytes]:
    """({relative path: sha256}, tar.gz) of the API state files present, read in one command from
    a private copy taken on the server (the API may write the originals meanwhile)."""
    paths = " ".join(q(p) for p in STATE_PATHS)
    cmd = (f"set -e; umask 077; t=$(mktemp -d); trap 'rm -rf \"$t\"' EXIT; cd {q(run.cfg.join_dir)}; "
           f"for p in {paths}; do if [ -f \"$p\" ]; then mkdir -p \"$t/$(dirname \"$p\")\"; "
           "cp -p \"$p\" \"$t/$p\"; fi; done; cd \"$t\"; "
           "if [ -d .dapi ]; then find .dapi -type f -exec sha256sum {} +; "
           f"echo {STATE_MARK}; tar -cz .dapi | base64 -w0; else echo {STATE_MARK}; fi")
    r = run.remote.probe(cmd, log_output=False, timeout=300, what="API state on the server")
    if not r.ok or STATE_MARK not in r.stdout:
        raise DeployError(f"reading the API state (.dapi/) failed (exit code {r.exit_code})", "rerun backup-keys")
    head, _, blob = r.stdout.partition(STATE_MARK)
    sums = {line[66:].strip(): line[:64] for line in head.splitlines() if len(line) > 66}
    try:
        data = base64.b64decode(blob.strip(), validate=True) if sums else b""
    except (binascii.Error, ValueError):
        raise DeployError("the API state archive from the server is damaged; rerun backup-keys") from None
    return sums, data


def _extract(data: bytes, dest: Path) -> None:
    """Unpack a tar.gz into dest: dirs 0700, files 0600 written with fsync, nothing overwritten."""
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        for m in _safe_members(tar):
            target = dest / m.name
            if m.isdir():
                target.mkdir(parents=True, exist_ok=True, mode=0o700)
                continue
            target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            blob = tar.extractfile(m).read()
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(blob)
                f.flush()
                os.fsync(f.fileno())


def local_sums(dest: Path) -> dict[str, str]:
    return {str(p.relative_to(dest)): hashlib.sha256(p.read_bytes()).hexdigest() for p in dest.rglob("*") if p.is_file()}


def latest_backup(cfg) -> Path | None:
    root = cfg.artefacts / "backup"
    dirs = sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
    return dirs[-1] if dirs else None


def backup_keys(run, sums: dict[str, str] | None = None) -> Path | None:
    """Copy the key material; returns the backup dir (None in plan mode)."""
    cfg = run.cfg
    join = q(cfg.join_dir)
    sums = server_sums(run) if sums is None else sums
    present = [p for p in BACKUP_PATHS if any(k == p or k.startswith(p + "/") for k in sums)]
    if not present:
        raise DeployError(f"no key material under {cfg.join_dir} yet (.tmkms, .inference/keyring-file)",
                          "run `fab start-base` first")
    missing = [p for p in BACKUP_PATHS if p not in present]
    if missing:
        run.log.warn(f"not on the server (yet): {', '.join(missing)}")
    if run.plan:
        run.log.info(f"PLAN would copy {', '.join(present)} (and {', '.join(STATE_PATHS)} where present) to "
                     f"{cfg.artefacts}/backup/<timestamp>/")
        return None
    paths = " ".join(q(p) for p in present)
    archive = run.remote.probe(f"cd {join} && tar -cz {paths} | base64 -w0", log_output=False, timeout=300)
    if not archive.ok:
        raise DeployError(f"reading the key material failed (exit code {archive.exit_code})")
    try:
        data = base64.b64decode(archive.stdout.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise DeployError("the key archive from the server is damaged; rerun backup-keys") from None
    dest = cfg.artefacts / "backup" / time.strftime("%Y%m%d-%H%M%S")
    n = 1
    while dest.exists():
        n += 1
        dest = dest.with_name(f"{time.strftime('%Y%m%d-%H%M%S')}-{n}")
    dest.mkdir(parents=True, mode=0o700)
    for d in (cfg.artefacts, cfg.artefacts / "backup"):
        os.chmod(d, 0o700)
    _extract(data, dest)
    state_sums, state = state_snapshot(run)
    if state_sums:
        _extract(state, dest)
    else:
        run.log.info("no API state on the server yet (.dapi/gonka.db appears once the api service has run)")
    for d in [dest, *[p for p in dest.rglob("*") if p.is_dir()]]:
        os.chmod(d, 0o700)
    got = local_sums(dest)
    bad = [rel for rel, digest in {**sums, **state_sums}.items() if got.get(rel) != digest]
    if bad or not sums:
        raise DeployError(f"backup in {dest} does not match the server: {', '.join(bad) or 'no files'}",
                          "rerun backup-keys")
    state_note = f" and {len(state_sums)} API state file(s)" if state_sums else ""
    run.log.ok(f"backed up {len(sums)} key file(s){state_note} to {dest} (checksums match the server)")
    return dest


def ensure_backup(run) -> None:
    """In a deploy: back the keys up unless the latest backup already matches the server."""
    sums: dict[str, str] = {}

    def check():
        sums.update(server_sums(run))
        last = latest_backup(run.cfg)
        # the key material only: the API state in a backup changes as the API runs
        held = {k: v for k, v in local_sums(last).items() if not k.startswith(".dapi/")} if last else {}
        if last is not None and sums and held == sums:
            return True, f"{last} matches the server"
        return False, "no backup of the current keys yet"

    run.steps.run("backup of the keys (fab backup-keys)", check, lambda: backup_keys(run, dict(sums)), recheck=False)
