"""The warm key of phase 4: created exactly once, its mnemonic on this machine before anything else.

The warm key's mnemonic is the one thing a deploy can lose for good. So `keys add` runs only after
`keys show` positively answered "no such key" (any other answer stops the run), inside a guard
that refuses an existing name, in its own session on the server (`setsid -w`: it finishes even
if SSH drops), writing its output into a file reserved beforehand on the system disk (never the
data disk, which the model download fills). The deployer copies the output into `warm_key.txt`
(fsynced, read back) and only then deletes the server copy. A rerun after any crash finds the
key (SKIP) or the pending output (recovered first). A key on the server whose mnemonic never
reached this machine is an error on every run until the operator deals with it.
The passphrase comes from the container's environment (compose fills it from config.env) and is
fed to `inferenced` on stdin: it is never on a command line. The decisions themselves are pure
functions in `facts.keys`.
"""

from __future__ import annotations

import posixpath
import re
import time

from gonka_tasks import facts
from gonka_tasks.connectors.artefacts import read_artefact, write_artefact
from gonka_tasks.core.shell import q
from gonka_tasks.errors import DeployError
from gonka_tasks.phases.backup import ensure_backup
from gonka_tasks.phases.common import Snapshot, api_shell, compose, wait_until

KEYS_SHOW = 'printf "%s\\n" "$KEYRING_PASSWORD" | inferenced keys show "$KEY_NAME" -a --keyring-backend file'
# keys add asks to overwrite an existing name, reading the answer from the line that holds the password:
# the guard makes sure that question never comes up
KEYS_ADD = ('if [ -e /root/.inference/keyring-file/"$KEY_NAME".info ]; then '
            'echo "Error: key $KEY_NAME already exists; refusing to create it again" >&2; exit 73; fi; '
            'printf "%s\\n%s\\n" "$KEYRING_PASSWORD" "$KEYRING_PASSWORD" | '
            'inferenced keys add "$KEY_NAME" --keyring-backend file')
# keys add's output waits here (system disk, 0700) until it is saved locally
PENDING_DIR = "/var/lib/gonka-deploy"
PENDING_RESERVE = 65536  # bytes reserved for that output before the key is made (it is < 2 KiB)
KEYRING_ROOM_KIB = 65536  # free KiB the data disk must have before keys add writes the keyring there
RC_MARK = "__GD_KEYS_ADD_RC="
PID_MARK = "__GD_KEYS_ADD_PID="
ALIVE_MARK = "__GD_KEYS_ADD_RUNNING__"
NO_PENDING = "__GD_NO_PENDING__"


def pending_path(run) -> str:
    """Where `keys add` writes its output on the server: the system disk, never the data disk
    (which the model download fills), in a file reserved before the key is made."""
    return f"{PENDING_DIR}/{run.cfg.key_name}.keys-add"


def keyring_dir(run) -> str:
    return f"{run.cfg.join_dir}/.inference/keyring-file"


def warm_key_text(run, key: facts.NewKey) -> str:
    return (f"# Warm (ML operational) key '{run.cfg.key_name}' on {run.cfg.server_ip}, created "
            f"{time.strftime('%Y-%m-%d %H:%M:%S')} by gonka-deploy.\n"
            "# SECRET: the mnemonic below is the only way to recover this key. Back it up offline.\n"
            f"address: {key.address}\n{key.mnemonic}\n")


def local_address(run) -> str:
    """warm_address.txt's address ("" when there is none); anything but an address is an error."""
    text = (read_artefact(run.cfg.artefacts, "warm_address.txt") or "").strip()
    if text and not facts.is_address(text):
        raise DeployError(f"{run.cfg.artefacts}/warm_address.txt does not hold a gonka1... address "
                          f"(got '{facts.shown(text)}')", "move the file aside; the next run writes it again")
    return text


def saved_key(run) -> facts.NewKey | None:
    """The key held by the local warm_key.txt (address line + mnemonic), None if it holds none."""
    text = read_artefact(run.cfg.artefacts, "warm_key.txt")
    if text is None:
        return None
    m = re.search(r"^address:\s*(\S+)\s*$", text, re.M)
    mnemonic = facts.parse_mnemonic(text)
    addr = facts.parse_address(m.group(1)) if m else None
    return facts.NewKey(addr, mnemonic) if addr and mnemonic else None


def save_key(run, key: facts.NewKey) -> None:
    """warm_key.txt (0600) written, fsynced and read back before anything else happens."""
    run.log.add_secret(key.mnemonic)
    cfg = run.cfg
    held = saved_key(run)
    if held is not None and held.address != key.address:
        raise DeployError(
            f"the server's key creation output is for {key.address}, but {cfg.artefacts}/warm_key.txt holds "
            f"{held.address}; both are kept (the output stays at {pending_path(run)} on the server)",
            "find out which key the server uses (`fab status`); keep both mnemonics offline, then move the "
            "wrong warm_key.txt aside and rerun")
    if held is None:
        write_artefact(cfg.artefacts, "warm_key.txt", warm_key_text(run, key), 0o600)
    if saved_key(run) != key:  # read back what reached the disk
        raise DeployError(f"{cfg.artefacts}/warm_key.txt does not read back the mnemonic just written",
                          "check the local disk (full? read-only?) and rerun: the server keeps its copy until then")
    write_artefact(cfg.artefacts, "warm_address.txt", key.address + "\n", 0o644)
    run.log.ok(f"warm key saved: {cfg.artefacts}/warm_key.txt (0600), address {key.address}")


def key_state(run) -> facts.KeyState:
    """The warm key on the server, from `keys show` and the keyring's listing (one round trip)."""
    r = run.remote.probe_many({
        "keyring": facts.keyring_listing_probe(keyring_dir(run)),
        "show": api_shell(run, KEYS_SHOW) + " 2>&1",
    }, what=f"warm key {run.cfg.key_name} on the server")
    show = r["show"]
    return facts.decide_warm_key(run.cfg.key_name, show.exit_code, show.stdout,
                                 facts.parse_keyring_listing(r["keyring"].stdout))


def known_key(run) -> facts.KeyState:
    """`key_state`, with every answer but present/absent stopping the run."""
    st = key_state(run)
    if st.state == "bad_password":
        raise DeployError("KEYRING_PASSWORD does not open the server's existing keyring",
                          "use the password the keyring was created with (deploy/join/.inference/keyring-file/)")
    if st.state == "broken":
        raise DeployError(f"{st.reason}; nothing was changed",
                          f"if a key creation failed on a full data disk, move {keyring_dir(run)}/"
                          f"{run.cfg.key_name}.info aside on the server (it holds no usable key) and rerun")
    if st.state == "unknown":
        raise DeployError(f"could not tell whether the warm key {run.cfg.key_name} exists: {st.reason}; "
                          "nothing was created; rerun to continue",
                          "if it keeps failing, check `docker compose run --rm api inferenced keys list "
                          "--keyring-backend file` on the server")
    return st


def lost_mnemonic_error(run, address: str, why: str) -> DeployError:
    cfg = run.cfg
    return DeployError(
        f"the mnemonic of the warm key {cfg.key_name} ({address}) was never saved on this machine ({why}); "
        "it cannot be read back from the server",
        f"1) `fab backup-keys --node {cfg.path}` copies the server's keyring: with KEYRING_PASSWORD it is now the "
        f"only way to use this key; keep it offline. 2) If you hold the mnemonic elsewhere, write it into "
        f"{cfg.artefacts}/warm_key.txt ('address: {address}' then the words) and rerun. 3) Otherwise rerun with "
        "--accept-lost-mnemonic to go on with the keyring backup alone (recorded in warm_key.lost)")


def pending_output(run) -> facts.PendingOutput | None:
    """The saved output of a key creation on the server, None when there is none. Read without
    logging it: it holds the mnemonic."""
    p = q(pending_path(run))
    r = run.remote.probe(
        f"if [ -e {p} ]; then tr -d '\\000' < {p}; "
        f"pid=$(tr -d '\\000' < {p} | sed -n 's/^{PID_MARK}\\([0-9][0-9]*\\)$/\\1/p' | head -n 1); "
        f'if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then echo; echo {ALIVE_MARK}; fi; '
        f"else echo {NO_PENDING}; fi", quiet=True, log_output=False)
    if not r.ok:
        raise DeployError(f"cannot read {pending_path(run)} on the server (exit code {r.exit_code}); "
                          "rerun to continue")
    if r.stdout.strip() == NO_PENDING:
        return None
    return facts.parse_pending_output(r.stdout, RC_MARK, PID_MARK, ALIVE_MARK)


def remove_pending(run, what: str) -> None:
    p = q(pending_path(run))
    run.remote.run(f"shred -u {p} 2>/dev/null || rm -f {p}", what=what)


def recover_pending(run) -> None:
    """A key creation whose output is still on the server: save its mnemonic locally, then delete it.

    Output that holds no mnemonic is deleted only when the key positively does not exist (the
    creation failed); if the key exists, its mnemonic is lost: an error on this and every run.
    """
    found = pending_output(run)
    if found is None:
        return
    if found.exit_code is None and found.alive:
        def finished():
            nonlocal found
            found = pending_output(run) or found
            return not found.alive or found.exit_code is not None, "running"
        wait_until(run, "warm key creation", finished, deadline_s=120)
    out, rc = found.text, found.exit_code
    try:
        key = facts.parse_keys_add(out)
    except facts.FactError:
        key = None
    if key:
        run.log.add_secret(key.mnemonic)
        save_key(run, key)
        remove_pending(run, "remove the server copy of the key creation output")
        return
    run.log.output(out)
    st = key_state(run)
    status = f"exit code {rc}" if rc is not None else "no exit code"
    if st.state == "present":
        raise lost_mnemonic_error(run, st.address or "?",
                                  f"the creation's output holds no mnemonic; kept at {pending_path(run)}")
    if st.state == "broken" and rc not in (None, 0):
        # our own creation failed half-way (a full disk): it printed no mnemonic and left an entry that
        # does not decode, so no usable key exists; keep the entry aside, never delete it
        aside = f"{run.cfg.key_name}.info.broken-{time.strftime('%Y%m%d-%H%M%S')}"
        run.remote.run(f"cd {q(keyring_dir(run))} && mv -n -- {q(run.cfg.key_name + '.info')} {q(aside)}",
                       what="move the unreadable keyring entry of the failed key creation aside")
        remove_pending(run, "remove the output of the failed key creation")
        raise DeployError(f"creating the warm key failed half-way ({status}): {st.reason}; it was moved aside "
                          f"to {keyring_dir(run)}/{aside}; no key exists", "free space on the data disk and rerun")
    if st.state != "absent":
        known_key(run)  # raises with what is unclear
    remove_pending(run, "remove the output of the failed key creation")
    raise DeployError(f"creating the warm key failed ({status}); see the output above; no key was created",
                      "check KEYRING_PASSWORD (an existing keyring needs the same one) and the free space on the "
                      "server, then rerun")


def keys_add_script(join_dir: str, pending: str, keys_add: str) -> str:
    """The shell script that runs `keys_add` (a command line) with its output kept in `pending`.

    In order: refuse when an earlier output is still there; refuse when the data disk (where the
    keyring is written) is nearly full; reserve `pending` on the system disk (if that fails, no key
    is made); then run keys add in its own session, writing its pid, output and exit status into
    the reserved file without truncating it.
    """
    p, kdir, pdir = q(pending), q(join_dir + "/.inference"), q(posixpath.dirname(pending))
    # keys add in a subshell: whatever it does (exit, cd), the status line is still written
    inner = "{ echo " + PID_MARK + "$$; ( " + keys_add + " ); echo " + RC_MARK + "$?; } 1<>" + p + " 2>&1"
    return "\n".join([
        "set -e; umask 077",
        f"mkdir -p {pdir}; chmod 700 {pdir}",
        f'if [ -e {p} ]; then echo "an earlier key creation output is still at {pending}" >&2; exit 75; fi',
        f'd={kdir}; [ -d "$d" ] || d={q(join_dir)}',
        "kib=$(df -Pk \"$d\" | awk 'NR==2 {print $4}')",
        f'if [ "${{kib:-0}}" -lt {KEYRING_ROOM_KIB} ]; then',
        f'  echo "data disk full: ${{kib:-0}} KiB free where the keyring is, keys add needs {KEYRING_ROOM_KIB} KiB" >&2',
        "  exit 74",
        "fi",
        f"if ! head -c {PENDING_RESERVE} /dev/zero > {p}.tmp; then",
        f'  rm -f {p}.tmp; echo "no room on the system disk for the key creation output" >&2; exit 74',
        "fi",
        f"sync {p}.tmp 2>/dev/null || sync",
        f"mv {p}.tmp {p}",
        f"setsid -w sh -c {q(inner)} </dev/null",
    ])


def create_key(run) -> None:
    """`keys add`, run only after a positive "no such key" (see `keys_add_script`), then its output
    saved here before anything else happens."""
    cfg = run.cfg
    keys_add = compose(run, f"run --rm --no-deps -T api sh -c {q(KEYS_ADD)}")
    run.remote.run(keys_add_script(cfg.join_dir, pending_path(run), keys_add),
                   what=f"create the warm key {cfg.key_name} (inferenced keys add)", timeout=300, show_output=False)
    recover_pending(run)


def accept_lost_mnemonic(run, address: str) -> None:
    """--accept-lost-mnemonic: with a keyring backup that matches the server, record the loss."""
    ensure_backup(run)
    write_artefact(run.cfg.artefacts, "warm_key.lost",
                   f"# The mnemonic of warm key {run.cfg.key_name} was never saved; accepted with "
                   f"--accept-lost-mnemonic on {time.strftime('%Y-%m-%d %H:%M:%S')}.\n"
                   f"# The keyring backup in backup/ with KEYRING_PASSWORD is the only way to use it.\n"
                   f"address: {address}\n", 0o600)
    run.log.warn(f"recorded in {run.cfg.artefacts}/warm_key.lost: the mnemonic of {address} is lost; "
                 "the keyring backup is the only copy of this key")


def lost_recorded(run, address: str) -> bool:
    text = read_artefact(run.cfg.artefacts, "warm_key.lost") or ""
    return f"address: {address}" in text


def warm_key(run, snap: Snapshot) -> None:
    """The warm key exists on the server exactly once, and its mnemonic is saved locally."""
    cfg = run.cfg
    if not run.plan and snap["pending"].exit_code != 1:  # 1: positively no pending output
        recover_pending(run)
    state: dict[str, facts.KeyState] = {}

    def check():
        st = state["key"] = known_key(run)
        return st.state == "present", st.reason

    run.steps.run(f"warm key {cfg.key_name}", check, lambda: create_key(run))
    st = state.get("key")
    if run.plan or st is None or st.state != "present":
        return
    address = st.address
    local_addr = local_address(run)
    if local_addr and local_addr != address:
        raise DeployError(f"warm_address.txt says {local_addr} but the server's key {cfg.key_name} is {address}",
                          "these files belong to another key: check SERVER_IP and KEY_NAME")
    held = saved_key(run)
    if held is not None and held.address == address:
        if not local_addr:
            write_artefact(cfg.artefacts, "warm_address.txt", address + "\n")
        return
    if lost_recorded(run, address):
        run.log.warn(f"the mnemonic of {address} is lost (warm_key.lost); keep the keyring backup safe")
    elif run.opt("accept_lost_mnemonic"):
        accept_lost_mnemonic(run, address)
    else:
        why = ("warm_key.txt is missing" if read_artefact(cfg.artefacts, "warm_key.txt") is None
               else "warm_key.txt holds no mnemonic for this address")
        raise lost_mnemonic_error(run, address, why)
    if not local_addr:
        write_artefact(cfg.artefacts, "warm_address.txt", address + "\n")
