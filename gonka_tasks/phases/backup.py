"""Key backup: the consensus key (.tmkms/), the warm keyring and the node key copied from the server
into `nodes/<KEY_NAME>/backup/<timestamp>/` (dirs 0700, files 0600), verified by checksums.

Nothing on the server is changed or deleted. The archive travels as base64 text on the command's
output and is never logged.
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

from ..errors import DeployError
from .common import q

BACKUP_PATHS = (".tmkms", ".inference/keyring-file", ".inference/config/node_key.json")


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
        run.log.info(f"PLAN would copy {', '.join(present)} to {cfg.artefacts}/backup/<timestamp>/")
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
    for d in [dest, *[p for p in dest.rglob("*") if p.is_dir()]]:
        os.chmod(d, 0o700)
    got = local_sums(dest)
    bad = [rel for rel, digest in sums.items() if got.get(rel) != digest]
    if bad or not sums:
        raise DeployError(f"backup in {dest} does not match the server: {', '.join(bad) or 'no files'}",
                          "rerun backup-keys")
    run.log.ok(f"backed up {len(sums)} key file(s) to {dest} (checksums match the server)")
    return dest


def ensure_backup(run) -> None:
    """In a deploy: back the keys up unless the latest backup already matches the server."""
    sums: dict[str, str] = {}

    def check():
        sums.update(server_sums(run))
        last = latest_backup(run.cfg)
        if last is not None and sums and local_sums(last) == sums:
            return True, f"{last} matches the server"
        return False, "no backup of the current keys yet"

    run.steps.run("backup of the keys (fab backup-keys)", check, lambda: backup_keys(run, dict(sums)), recheck=False)
