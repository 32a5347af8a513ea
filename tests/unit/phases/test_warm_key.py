"""Phase 4's warm key logic against a scripted server: what happens to a pending key creation
output in every state the server can report, and that `keys add` never follows an unclear probe."""

from __future__ import annotations

import pytest

from gonka_tasks import facts
from gonka_tasks.errors import DeployError
from gonka_tasks.phases import warm_key
from gonka_tasks.phases.common import Snapshot
from tests.doubles import LocalRemote, make_run

ADDR = "gonka1qypqxpq9qcrsszg2pvxq6rs0zqg3yyc5lzv7xu"
WORDS = " ".join(["abandon"] * 23 + ["art"])
NOT_FOUND = "node-a is not a valid name or address: decoding bech32 failed: invalid bech32 string length 6"


@pytest.fixture
def run(tmp_path):
    return make_run(tmp_path)


def pending(text: str, rc: int | None, alive: bool = False) -> tuple[int, str]:
    out = f"{warm_key.PID_MARK}4242\n{text}\n\0\0\0"
    if rc is not None:
        out += f"\n{warm_key.RC_MARK}{rc}\n"
    if alive:
        out += f"\n{warm_key.ALIVE_MARK}\n"
    return 0, out


KEY_ABSENT = {"keyring-file": (0, f"keyhash\n{facts.KEYRING_LISTED}\n"), "keys show": (1, NOT_FOUND + "\n")}
KEY_PRESENT = {"keyring-file": (0, f"keyhash\nnode-a.info\n{facts.KEYRING_LISTED}\n"), "keys show": (0, ADDR + "\n")}


def test_pending_output_without_exit_status_of_a_dead_creation_names_no_empty_code(run):
    """The creating process died before writing its status; no key exists: the output is removed and
    the error says "no exit code" (never `exit code )`)."""
    run._remote = LocalRemote.scripted({"tr -d": pending("- address: garbled", None), **KEY_ABSENT})
    with pytest.raises(DeployError) as e:
        warm_key.recover_pending(run)
    assert "(no exit code)" in e.value.message and "exit code )" not in str(e.value)
    assert run._remote.changing == ["remove the output of the failed key creation"]


def test_pending_output_with_a_mnemonic_is_saved_read_back_then_removed(run):
    run._remote = LocalRemote.scripted({"tr -d": pending(f"- address: {ADDR}\n  name: node-a\n\n{WORDS}", 0)})
    warm_key.recover_pending(run)
    text = (run.cfg.artefacts / "warm_key.txt").read_text()
    assert f"address: {ADDR}" in text and WORDS in text
    assert (run.cfg.artefacts / "warm_key.txt").stat().st_mode & 0o777 == 0o600
    assert run._remote.changing == ["remove the server copy of the key creation output"]


def test_unreadable_output_of_an_existing_key_is_kept_and_is_an_error(run):
    run._remote = LocalRemote.scripted({"tr -d": pending("", 0), **KEY_PRESENT})
    with pytest.raises(DeployError) as e:
        warm_key.recover_pending(run)
    assert "was never saved on this machine" in e.value.message and ADDR in e.value.message
    assert run._remote.changing == []  # the server copy stays


def test_unclear_key_state_keeps_the_output_and_stops(run):
    run._remote = LocalRemote.scripted({"tr -d": pending("", 1), "keyring-file": (0, ""), "keys show": (125, "daemon down")})
    with pytest.raises(DeployError) as e:
        warm_key.recover_pending(run)
    assert "rerun to continue" in e.value.message
    assert run._remote.changing == []


@pytest.mark.parametrize("answers", [
    {"keyring-file": (0, f"{facts.KEYRING_LISTED}\n"), "keys show": (1, "Error response from daemon: oops\n")},
    {"keyring-file": (255, ""), "keys show": (1, NOT_FOUND + "\n")},
    {"keyring-file": (0, f"{facts.KEYRING_LISTED}\n"), "keys show": (0, "\n")},
])
def test_an_unclear_probe_never_creates_the_key(run, answers):
    run._remote = LocalRemote.scripted({"test -e": (1, ""), **answers})
    snap = Snapshot(run, {"pending": "test -e x"})
    with pytest.raises(DeployError) as e:
        warm_key.warm_key(run, snap)
    assert "could not tell whether the warm key" in e.value.message
    assert run._remote.changing == []


def _script(tmp_path, keys_add: str):
    import subprocess  # noqa: PLC0415

    (tmp_path / "join" / ".inference").mkdir(parents=True, exist_ok=True)
    pending = tmp_path / "var" / "node-a.keys-add"
    script = warm_key.keys_add_script(str(tmp_path / "join"), str(pending), keys_add)
    r = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=30)
    return r, pending


def test_keys_add_script_keeps_output_and_status_in_the_reserved_file(tmp_path):
    r, pending = _script(tmp_path, f"echo '- address: {ADDR}'; echo; echo '{WORDS}' >&2; exit 0")
    assert r.returncode == 0, r.stderr
    assert pending.stat().st_size == warm_key.PENDING_RESERVE  # written into the reservation, not truncated
    assert (pending.parent.stat().st_mode & 0o777) == 0o700 and (pending.stat().st_mode & 0o777) == 0o600
    got = facts.parse_pending_output(pending.read_text(), warm_key.RC_MARK, warm_key.PID_MARK, warm_key.ALIVE_MARK)
    assert got.exit_code == 0 and facts.parse_keys_add(got.text).mnemonic == WORDS
    # a second run never overwrites that output
    r, _ = _script(tmp_path, "echo never")
    assert r.returncode == 75 and "still at" in r.stderr
    assert WORDS in pending.read_text()


def test_keys_add_script_records_a_failure(tmp_path):
    r, pending = _script(tmp_path, "echo 'Error: boom' >&2; exit 3")
    got = facts.parse_pending_output(pending.read_text(), warm_key.RC_MARK, warm_key.PID_MARK, warm_key.ALIVE_MARK)
    assert (r.returncode, got.exit_code, got.text.strip()) == (0, 3, "Error: boom")


def test_a_creation_cut_short_by_a_full_disk_moves_its_unreadable_entry_aside(run):
    broken = "node-a is not a valid name or address: square/go-jose: compact JWE format must have five parts"
    run._remote = LocalRemote.scripted({
        "tr -d": pending("OSError: [Errno 28] No space left on device", 1),
        "keyring-file": (0, f"keyhash\nnode-a.info\n{facts.KEYRING_LISTED}\n"), "keys show": (1, broken + "\n")})
    with pytest.raises(DeployError) as e:
        warm_key.recover_pending(run)
    assert "failed half-way" in e.value.message and "moved aside" in e.value.message
    assert run._remote.changing == ["move the unreadable keyring entry of the failed key creation aside",
                               "remove the output of the failed key creation"]


def test_an_unreadable_entry_without_our_failed_creation_is_left_alone(run):
    broken = "node-a is not a valid name or address: square/go-jose: compact JWE format must have five parts"
    run._remote = LocalRemote.scripted({"test -e": (1, ""), "keyring-file": (0, f"node-a.info\n{facts.KEYRING_LISTED}\n"),
                              "keys show": (1, broken + "\n")})
    with pytest.raises(DeployError) as e:
        warm_key.warm_key(run, Snapshot(run, {"pending": "test -e x"}))
    assert "cannot be read" in e.value.message and "move" in (e.value.hint or "")
    assert run._remote.changing == []
