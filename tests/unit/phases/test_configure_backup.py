"""Phase 3 keeps ONE backup of a replaced config.env / node-config.json on the server (copies of
config.env hold the keyring password), run here in a local bash as the server would run it."""

from __future__ import annotations

from gonka_tasks.core.shell import private_backup
from gonka_tasks.phases.common import Snapshot
from gonka_tasks.phases.configure import upload
from tests.doubles import make_run


def upload_once(tmp_path, name: str, content: str, mode: int):
    run = make_run(tmp_path, MOUNT_POINT=str(tmp_path / "mnt"))
    cfg = run.cfg
    snap = Snapshot(run, {name: f"cd {cfg.join_dir} && sha256sum {name} && stat -c %a {name}"})
    upload(run, snap, name, content, mode)
    return run


def test_config_env_keeps_one_private_backup_and_drops_old_stamped_copies(tmp_path):
    join = tmp_path / "mnt" / "gonka" / "deploy" / "join"
    join.mkdir(parents=True)
    (join / "config.env").write_text("export KEYRING_PASSWORD=old-one-1234\n")
    (join / "config.env").chmod(0o644)
    for stamp in ("20250101-000000", "20250102-000000"):
        (join / f"config.env.bak-{stamp}").write_text("export KEYRING_PASSWORD=older\n")
    (join / "node-config.json.bak-20250101-000000").write_text("[]\n")

    run = upload_once(tmp_path, "config.env", "export KEYRING_PASSWORD=new-one-5678\n", 0o600)
    assert "back up config.env to config.env.bak" in run.remote.changing
    assert (join / "config.env").read_text() == "export KEYRING_PASSWORD=new-one-5678\n"
    assert (join / "config.env.bak").read_text() == "export KEYRING_PASSWORD=old-one-1234\n"
    assert (join / "config.env.bak").stat().st_mode & 0o777 == 0o600
    assert sorted(p.name for p in join.iterdir()) == ["config.env", "config.env.bak",
                                                      "node-config.json.bak-20250101-000000"]

    upload_once(tmp_path, "config.env", "export KEYRING_PASSWORD=third-9012\n", 0o600)
    assert (join / "config.env.bak").read_text() == "export KEYRING_PASSWORD=new-one-5678\n"
    assert sorted(p.name for p in join.iterdir()) == ["config.env", "config.env.bak",
                                                      "node-config.json.bak-20250101-000000"]


def test_node_config_json_keeps_one_backup_with_its_mode(tmp_path):
    join = tmp_path / "mnt" / "gonka" / "deploy" / "join"
    join.mkdir(parents=True)
    (join / "node-config.json").write_text("[1]\n")
    (join / "node-config.json.bak-20250101-000000").write_text("[0]\n")
    for content in ("[2]\n", "[3]\n"):
        upload_once(tmp_path, "node-config.json", content, 0o644)
    assert (join / "node-config.json.bak").read_text() == "[2]\n"
    assert (join / "node-config.json.bak").stat().st_mode & 0o777 == 0o644
    assert sorted(p.name for p in join.iterdir()) == ["node-config.json", "node-config.json.bak"]


def test_unchanged_file_is_not_backed_up(tmp_path):
    join = tmp_path / "mnt" / "gonka" / "deploy" / "join"
    join.mkdir(parents=True)
    (join / "node-config.json").write_text("[1]\n")
    run = upload_once(tmp_path, "node-config.json", "[1]\n", 0o644)
    assert run.remote.changing == [] and not (join / "node-config.json.bak").exists()


def test_private_backup_quotes_the_path_and_globs_only_the_old_copies():
    cmd = private_backup("/mnt/my disk/join/config.env", 0o600)
    assert cmd.startswith("rm -f '/mnt/my disk/join/config.env'.bak-* && ")
    assert "umask 077" in cmd and "chmod 600 " in cmd and "mv -f " in cmd and ".bak-2" not in cmd
