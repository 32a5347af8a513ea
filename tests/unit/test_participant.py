"""The deployer's reading of the seed: /v2/participants is the participant, /v1/participants the
cold ACCOUNT (upstream v0.2.13, decentralized-api/internal/server/public/server.go); checked
against the simulated seed, and the API state copied by backup-keys."""

from __future__ import annotations

import io
import os
import subprocess
from types import SimpleNamespace

import pytest

from gonka_tasks.config import load
from gonka_tasks.connectors import seed as seed_api
from gonka_tasks.connectors.remote import Remote, Result
from gonka_tasks.core import participant
from gonka_tasks.phases import backup
from gonka_tasks.session.log import RunLog
from gonka_tasks.session.step import Steps
from tests.helpers import conf_text, pubkey_b64, write_node


def _cfg(tmp_path, seed, **kw):
    return load(write_node(tmp_path, conf_text(SEED_API_URL=seed.url, **kw)))


def test_a_funded_account_is_read_as_an_account_not_a_participant(tmp_path, seed):
    cfg = _cfg(tmp_path, seed)
    seed.fund_account(cfg["ACCOUNT_PUBKEY"], balance=7_250_000_000)
    assert seed_api.lookup_participant(cfg) is None
    acct = seed_api.lookup_account(cfg)
    assert acct.state == "present" and acct.exists and acct.balance == 7_250_000_000
    assert participant.balance_text(acct) == "7250000000 ngonka (7.25 GNK)"


def test_an_account_that_never_signed_still_exists(tmp_path, seed):
    cfg = _cfg(tmp_path, seed)
    seed.fund_account(cfg["ACCOUNT_PUBKEY"], signed=False)
    acct = seed_api.lookup_account(cfg)
    assert acct.state == "no_pubkey" and acct.exists and acct.balance is None


def test_a_registered_participant_with_its_url_and_status(tmp_path, seed):
    cfg = _cfg(tmp_path, seed)
    seed.register(cfg["ACCOUNT_PUBKEY"], url=cfg["PUBLIC_URL"] + "/")
    found = seed_api.lookup_participant(cfg)
    assert found == participant.Participant(cfg.cold_address, cfg["PUBLIC_URL"] + "/", "ACTIVE")
    assert participant.same_url(found.inference_url, cfg["PUBLIC_URL"])
    assert not participant.same_url("http://203.0.113.1:8000", cfg["PUBLIC_URL"])
    assert seed_api.lookup_account(cfg).state == "present"


def test_nobody_is_absent_and_odd_answers_are_errors(tmp_path, seed):
    cfg = _cfg(tmp_path, seed, ACCOUNT_PUBKEY=pubkey_b64("nobody"))
    assert seed_api.lookup_participant(cfg) is None
    assert seed_api.lookup_account(cfg).state == "absent"
    with pytest.raises(ValueError, match="HTTP 400: boom"):
        participant.parse_participant(400, {"error": "boom"})
    assert participant.parse_account(500, {"error": {"message": "Syntax error"}}).detail == "HTTP 500: Syntax error"
    assert participant.error_text({"message": "older shape"}) == "older shape"


# ---------------------------------------------------------------- backup-keys: the API state too
class LocalRemote:
    """The deployer's commands run in a local bash instead of over SSH."""

    probe_many = Remote.probe_many

    def probe(self, command: str, *, input: str | None = None, **_) -> Result:
        r = subprocess.run(["bash", "-c", command], input=input, capture_output=True, text=True, timeout=60)
        return Result(command, r.returncode, r.stdout, r.stderr, 0.0)

    def run(self, command: str, *, what: str, **_) -> Result:  # backup-keys changes nothing on the server
        raise AssertionError(f"backup-keys ran a changing command: {what}")


def _join(tmp_path, *, dapi: bool):
    cfg = load(write_node(tmp_path, conf_text(MOUNT_POINT=str(tmp_path / "mnt"))))
    join = tmp_path / "mnt" / "gonka" / "deploy" / "join"
    files = {".tmkms/secrets/priv_validator_key.softsign": b"consensus", ".inference/keyring-file/node-a.info": b"k",
             ".inference/config/node_key.json": b'{"priv_key": {}}'}
    if dapi:
        files |= {".dapi/api-config.yaml": b"api:\n  public_server_port: 9000\n", ".dapi/gonka.db": b"SQLite format 3\0",
                  ".dapi/gonka.db-wal": b"wal", ".dapi/data/other": b"not ours"}
    for rel, data in files.items():
        (join / rel).parent.mkdir(parents=True, exist_ok=True)
        (join / rel).write_bytes(data)
    out = io.StringIO()
    log = RunLog(None, console=out)
    return SimpleNamespace(cfg=cfg, remote=LocalRemote(), log=log, steps=Steps(log), plan=False, out=out), join


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
