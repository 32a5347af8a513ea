"""File modes of the local secrets: the node config warns, secret artefacts are made private again,
and an artefact folder that someone else could write, swap or owns is refused before anything is written."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest

from gonka_tasks.config import load
from gonka_tasks.connectors.artefacts import is_secret_artefact, write_artefact
from gonka_tasks.errors import DeployError
from gonka_tasks.session.filemodes import check_artefact_dir, config_mode_warning, tighten_secrets
from gonka_tasks.session.run import start_run
from tests.helpers import conf_text, fab, write_node


def mode(p: Path) -> int:
    return p.stat().st_mode & 0o7777


def node(tmp_path: Path, conf_mode: int = 0o600, **overrides: str) -> Path:
    path = write_node(tmp_path, conf_text(**overrides))
    path.chmod(conf_mode)
    return path


def started(path: Path) -> str:
    """Start a run on the node (no connection) and return what it printed."""
    console = io.StringIO()
    start_run(load(path), host_string=None, opts={}, console=console).close()
    return console.getvalue()


# ------------------------------------------------------------------------ the node config
@pytest.mark.parametrize("m,word", [(0o644, "readable"), (0o640, "readable"), (0o604, "readable"),
                                    (0o620, "writable"), (0o602, "writable")])
def test_config_open_to_others_warns(tmp_path, m, word):
    path = node(tmp_path, m)
    assert config_mode_warning(path) == (f"{path} is {word} by others (mode {m:04o}): it holds KEYRING_PASSWORD; "
                                         f"chmod 600 {path}")


@pytest.mark.parametrize("m", [0o600, 0o400, 0o700])
def test_private_config_does_not_warn(tmp_path, m):
    assert config_mode_warning(node(tmp_path, m)) is None


def test_every_task_warns_about_a_readable_config(tmp_path):
    out = started(node(tmp_path, 0o644))
    assert "[WARN] " in out and "node-a.conf is readable by others (mode 0644)" in out and "chmod 600" in out
    assert "readable by others" not in started(node(tmp_path, 0o600))


# ------------------------------------------------------------------------ secret artefacts
def make_artefacts(art: Path) -> dict[str, int]:
    """A node folder after some runs and a careless copy: name -> mode it has now."""
    files = {"warm_key.txt": 0o644, "config.env": 0o640, "warm_address.txt": 0o644, "node-config.json": 0o644,
             "report.txt": 0o644, "keys.pending": 0o644, "config.env.bak": 0o604, ".warm_key.txt.x1.tmp": 0o644,
             "backup/20250101-000000/.tmkms/priv_validator_key.json": 0o644,
             "backup/20250101-000000/.inference/keyring-file/a.info": 0o664}
    for name, m in files.items():
        p = art / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text("x\n")
        p.chmod(m)
    for d in [art / "backup", *(p for p in (art / "backup").rglob("*") if p.is_dir())]:
        d.chmod(0o755)
    art.chmod(0o755)
    return files


def test_secret_artefacts_are_made_private_again_on_every_run(tmp_path):
    path = node(tmp_path)
    art = tmp_path / "nodes" / "node-a"
    make_artefacts(art)
    (art / "link.key").symlink_to(tmp_path / "nodes" / "node-a.conf")  # never chmod through a link
    out = started(path)
    assert "[WARN] secret artefacts were readable by others, made private again:" in out
    assert f"{art / 'warm_key.txt'} (0644 -> 0600)" in out and f"{art} (0755 -> 0700)" in out
    for name in ("warm_key.txt", "config.env", "keys.pending", "config.env.bak", ".warm_key.txt.x1.tmp",
                 "backup/20250101-000000/.tmkms/priv_validator_key.json",
                 "backup/20250101-000000/.inference/keyring-file/a.info"):
        assert mode(art / name) == 0o600, name
    for d in [art, art / "backup", *(p for p in (art / "backup").rglob("*") if p.is_dir())]:
        assert mode(d) == 0o700, d
    for name in ("warm_address.txt", "node-config.json", "report.txt"):
        assert mode(art / name) == 0o644, name  # public by design
    assert mode(tmp_path / "nodes" / "node-a.conf") == 0o600
    assert "made private again" not in started(path)  # nothing left to fix


def test_tighten_reports_what_it_fixed(tmp_path):
    art = tmp_path / "node-a"
    make_artefacts(art)
    fixed = tighten_secrets(art)
    assert len(fixed) == 13  # 5 secret files, 2 in backup/, the folder, backup/ and 4 folders in it
    assert tighten_secrets(art) == []
    assert tighten_secrets(tmp_path / "absent") == []


@pytest.mark.parametrize("rel,secret", [("warm_key.txt", True), ("config.env", True), ("config.env.bak", True),
                                        ("x.pending", True), ("backup/any/file", True), ("node_key.json", True),
                                        ("tls.pem", True), (".config.env.abc.tmp", True),
                                        ("warm_address.txt", False), ("report.txt", False), ("last_run.json", False),
                                        ("known_hosts", False), ("node-config.json", False)])
def test_which_artefacts_are_secret(rel, secret):
    assert is_secret_artefact(Path(rel)) is secret


def test_a_new_artefact_folder_is_private(tmp_path):
    write_artefact(tmp_path / "nodes" / "node-a", "report.txt", "x\n")
    assert mode(tmp_path / "nodes" / "node-a") == 0o700
    write_artefact(tmp_path / "nodes" / "node-a", "keys.pending", "x\n")
    assert mode(tmp_path / "nodes" / "node-a" / "keys.pending") == 0o600


# ------------------------------------------------------------------------ refused folders
def group_writable(art: Path, tmp: Path) -> None:
    art.mkdir(parents=True)
    art.chmod(0o770)


def other_writable(art: Path, tmp: Path) -> None:
    art.mkdir(parents=True)
    art.chmod(0o707)


def link_to_open_folder(art: Path, tmp: Path) -> None:
    (tmp / "shared").mkdir()
    (tmp / "shared").chmod(0o777)
    art.parent.mkdir(parents=True, exist_ok=True)
    art.symlink_to(tmp / "shared")


def link_into_open_folder(art: Path, tmp: Path) -> None:
    """The target is private, but anyone could rename it away and put their own in its place."""
    (tmp / "shared" / "mine").mkdir(parents=True, mode=0o700)
    (tmp / "shared").chmod(0o777)
    art.parent.mkdir(parents=True, exist_ok=True)
    art.symlink_to(tmp / "shared" / "mine")


def dangling_link(art: Path, tmp: Path) -> None:
    art.parent.mkdir(parents=True, exist_ok=True)
    art.symlink_to(tmp / "gone")


def a_file(art: Path, tmp: Path) -> None:
    art.parent.mkdir(parents=True, exist_ok=True)
    art.write_text("not a folder\n")


REFUSED = {
    "group-writable": (group_writable, "writable by group/others (mode 0770)"),
    "other-writable": (other_writable, "writable by group/others (mode 0707)"),
    "link to a world-writable folder": (link_to_open_folder, "writable by group/others (mode 0777)"),
    "link into a world-writable folder": (link_into_open_folder, "which anyone can write to (mode 0777, no sticky"),
    "dangling link": (dangling_link, "exists but is not a folder"),
    "a file": (a_file, "exists but is not a folder; KEY_NAME node-a keeps its keys in"),
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_unsafe_artefact_folder_is_refused_before_anything_is_written(tmp_path, case):
    setup, words = REFUSED[case]
    path = node(tmp_path)
    art = tmp_path / "nodes" / "node-a"
    setup(art, tmp_path)
    before = sorted(os.listdir(art)) if art.is_dir() else None
    with pytest.raises(DeployError) as e:
        started(path)
    assert words in str(e.value) and str(art) in str(e.value), str(e.value)
    assert not (tmp_path / "logs").exists()
    assert (sorted(os.listdir(art)) if art.is_dir() else None) == before


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to give the folder to another user")
def test_artefact_folder_owned_by_another_user_is_refused(tmp_path):
    art = tmp_path / "nodes" / "node-a"
    art.mkdir(parents=True, mode=0o700)
    os.chown(art, 54321, 54321)
    with pytest.raises(DeployError) as e:
        check_artefact_dir(art)
    assert "owned by another user (uid 54321)" in str(e.value)


def test_private_folder_and_link_into_a_sticky_folder_are_accepted(tmp_path):
    art = tmp_path / "nodes" / "node-a"
    art.mkdir(parents=True, mode=0o700)
    check_artefact_dir(art)
    check_artefact_dir(tmp_path / "nodes" / "absent")
    sticky = tmp_path / "tmp"
    (sticky / "mine").mkdir(parents=True, mode=0o700)
    sticky.chmod(0o1777)
    link = tmp_path / "nodes" / "node-b"
    link.symlink_to(sticky / "mine")
    check_artefact_dir(link)


def test_fab_refuses_an_open_artefact_folder_with_exit_1(tmp_path):
    node(tmp_path)
    (tmp_path / "nodes" / "node-a").mkdir(mode=0o700)
    (tmp_path / "nodes" / "node-a").chmod(0o777)
    r = fab("validate", "--node", "nodes/node-a.conf", "--yes", cwd=tmp_path)
    out = r.stdout + r.stderr
    assert r.returncode == 1 and "Traceback" not in out
    assert "nodes/node-a is writable by group/others (mode 0777)" in out and "chmod 700 " in out
    assert "nodes/node-a" in out.split("chmod 700 ", 1)[1].split()[0]
    assert not (tmp_path / "logs").exists() and os.listdir(tmp_path / "nodes" / "node-a") == []


def test_fab_names_a_file_in_the_way_of_the_artefact_folder(tmp_path):
    """KEY_NAME=README with a file nodes/README: a clear error, not `File exists` halfway through."""
    node(tmp_path, KEY_NAME="README")
    (tmp_path / "nodes" / "README").write_text("notes\n")
    r = fab("validate", "--node", "nodes/node-a.conf", "--yes", cwd=tmp_path)
    out = r.stdout + r.stderr
    assert r.returncode == 1 and "Traceback" not in out
    assert "nodes/README exists but is not a folder; KEY_NAME README keeps its keys in " in out
    assert "nodes/README/" in out
    assert (tmp_path / "nodes" / "README").read_text() == "notes\n"
