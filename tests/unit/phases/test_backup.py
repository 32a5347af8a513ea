"""backup-keys saves the keys and the API's state (.dapi/api-config.yaml, gonka.db with its -wal/-shm),
0600, checked against the server's sums; run against a local directory through the shared fake remote."""

from __future__ import annotations

import os

from gonka_tasks.phases import backup
from tests.doubles import LocalRemote, make_run


def _join(tmp_path, *, dapi: bool):
    run = make_run(tmp_path, LocalRemote(changes=False), MOUNT_POINT=str(tmp_path / "mnt"))
    join = tmp_path / "mnt" / "gonka" / "deploy" / "join"
    files = {".tmkms/secrets/priv_validator_key.softsign": b"consensus", ".inference/keyring-file/node-a.info": b"k",
             ".inference/config/node_key.json": b'{"priv_key": {}}'}
    if dapi:
        files |= {".dapi/api-config.yaml": b"api:\n  public_server_port: 9000\n", ".dapi/gonka.db": b"SQLite format 3\0",
                  ".dapi/gonka.db-wal": b"wal", ".dapi/data/other": b"not ours"}
    for rel, data in files.items():
        (join / rel).parent.mkdir(parents=True, exist_ok=True)
        (join / rel).write_bytes(data)
    return run, join


def test_backup_keys_saves_the_api_config_and_database_0600(tmp_path):
    run, join = _join(tmp_path, dapi=True)
    dest = backup.backup_keys(run)
    saved = sorted(str(p.relative_to(dest)) for p in dest.rglob("*") if p.is_file())
    assert saved == [".dapi/api-config.yaml", ".dapi/gonka.db", ".dapi/gonka.db-wal",
                     ".inference/config/node_key.json", ".inference/keyring-file/node-a.info",
                     ".tmkms/secrets/priv_validator_key.softsign"]
    for rel in saved:
        assert (dest / rel).read_bytes() == (join / rel).read_bytes(), rel
        assert os.stat(dest / rel).st_mode & 0o777 == 0o600, rel
    assert os.stat(dest / ".dapi").st_mode & 0o777 == 0o700
    assert "3 API state file(s)" in run.out.getvalue()
    # a deploy's backup check compares the keys only: the database changes as the API runs
    (join / ".dapi" / "gonka.db").write_bytes(b"SQLite format 3\0 and a flush later")
    backup.ensure_backup(run)
    assert len(list((run.cfg.artefacts / "backup").iterdir())) == 1


def test_backup_keys_before_the_api_ran_saves_the_keys_alone(tmp_path):
    run, _join_dir = _join(tmp_path, dapi=False)
    dest = backup.backup_keys(run)
    assert not (dest / ".dapi").exists()
    assert "no API state on the server yet" in run.out.getvalue()
