"""Phase 4, base services: tmkms + node, the warm key (created exactly once), the registration.

The warm key's mnemonic is the one thing a deploy can lose for good, so its creation runs in its
own session on the server (`setsid -w`: it finishes even if SSH drops) and writes its output to a
0600 file there; the deployer copies it into `warm_key.txt` (fsynced) and only then deletes the
server copy. A rerun after any crash finds either the key (SKIP) or the pending output (recover).
The passphrase comes from the container's environment (compose fills it from config.env) and is
fed to `inferenced` on stdin: it is never on a command line.
"""

from __future__ import annotations

import time

from .. import facts
from ..artefacts import read_artefact, write_artefact
from ..errors import DeployError
from ..httpclient import request
from .common import Snapshot, api_shell, compose, q, require, wait_until

KEYS_SHOW = 'printf "%s\\n" "$KEYRING_PASSWORD" | inferenced keys show "$KEY_NAME" -a --keyring-backend file'
KEYS_ADD = ('printf "%s\\n%s\\n" "$KEYRING_PASSWORD" "$KEYRING_PASSWORD" | '
            'inferenced keys add "$KEY_NAME" --keyring-backend file')
REGISTER = ('inferenced register-new-participant "$DAPI_API__PUBLIC_URL" "$ACCOUNT_PUBKEY" '
            '--node-address "$DAPI_CHAIN_NODE__SEED_API_URL"')
RPC_STATUS = "docker exec node wget -qO- -T 5 http://localhost:26657/status"


def wait_rpc(run) -> None:
    """Until the node's RPC answers and shows the consensus key (tmkms connected)."""
    def probe():
        r = run.remote.probe(RPC_STATUS)
        return rpc_state(r.stdout) if r.ok else (False, "RPC not answering yet")
    detail = wait_until(run, "node RPC with the consensus key", probe, deadline_s=run.cfg.seconds("RPC_TIMEOUT"))
    run.log.ok(f"node RPC: {detail}")


def snapshot(run) -> Snapshot:
    """Everything phase 4 checks on the server (but the keyring), in one round trip."""
    p = _pending(run)
    return Snapshot(run, {
        "config": f"test -f {q(run.cfg.join_dir + '/config.env')}",
        "ps": compose(run, "ps -a --format json"),
        "rpc": RPC_STATUS,
        "pending": f"test -f {q(p)} && echo present; test -f {q(p + '.rc')} && cat {q(p + '.rc')}",
    }, what="base services, node RPC, pending key creation")


def rpc_state(text: str) -> tuple[bool, str]:
    """Is the node's RPC up with the consensus key (tmkms connected)?"""
    try:
        s = facts.parse_rpc_status(text)
    except facts.FactError:
        return False, "RPC not answering yet"
    if not s.validator_pubkey:
        return False, f"RPC up at height {s.height}, tmkms not connected yet"
    return True, f"height {s.height}, validator key {s.validator_pubkey[:12]}..."


def base_services(run, snap: Snapshot) -> None:
    require(snap["config"].ok, f"{run.cfg.join_dir}/config.env not found", "run `fab configure` first")

    def check():
        try:
            up = {c.service for c in facts.parse_compose_ps(snap["ps"].stdout) if c.running}
        except facts.FactError:
            up = set()
        missing = [s for s in ("tmkms", "node") if s not in up]
        return not missing, ("tmkms and node running" if not missing else f"not running: {', '.join(missing)}")

    run.steps.run("tmkms and node running", check,
                  lambda: run.remote.run(compose(run, "up -d --no-deps tmkms node"), what="docker compose up -d tmkms node",
                                         timeout=1800), refresh=snap.refresh)
    if run.plan:
        return
    ready, detail = rpc_state(snap["rpc"].stdout)
    if ready:
        run.log.ok(f"node RPC: {detail}")
    else:
        wait_rpc(run)


# ---------------------------------------------------------------------------- warm key
def _pending(run) -> str:
    return f"{run.cfg.state_dir}/warm_key.pending"


def warm_key_text(run, key: facts.NewKey) -> str:
    return (f"# Warm (ML operational) key '{run.cfg.key_name}' on {run.cfg.server_ip}, created "
            f"{time.strftime('%Y-%m-%d %H:%M:%S')} by gonka-deploy.\n"
            "# SECRET: the mnemonic below is the only way to recover this key. Back it up offline.\n"
            f"address: {key.address}\n{key.mnemonic}\n")


def save_key(run, key: facts.NewKey) -> None:
    """warm_key.txt (0600) and warm_address.txt written and fsynced before anything else happens."""
    run.log.add_secret(key.mnemonic)
    existing = read_artefact(run.cfg.artefacts, "warm_key.txt")
    if existing is not None and facts.parse_mnemonic(existing) == key.mnemonic:
        pass  # already saved by an earlier, interrupted run
    else:
        write_artefact(run.cfg.artefacts, "warm_key.txt", warm_key_text(run, key), 0o600)
    write_artefact(run.cfg.artefacts, "warm_address.txt", key.address + "\n", 0o644)
    run.log.ok(f"warm key saved: {run.cfg.artefacts}/warm_key.txt (0600), address {key.address}")


def recover_pending(run, pending_out: str | None = None) -> None:
    """A key created by an interrupted run: wait for its output, copy it locally, then delete it remotely."""
    p = _pending(run)
    if pending_out is None:
        pending_out = run.remote.probe(f"test -f {q(p)} && echo present; test -f {q(p + '.rc')} && cat {q(p + '.rc')}").out
    if "present" not in pending_out:
        return
    words = pending_out.split()
    if len(words) >= 2:
        rc = words[1]
    else:  # still being written by the creating process
        wait_until(run, "warm key creation", lambda: (run.remote.probe(f"test -f {q(p + '.rc')}").ok, "running"),
                   deadline_s=120)
        rc = run.remote.probe(f"cat {q(p + '.rc')}").out
    # the output holds the mnemonic: read it without logging it
    out = run.remote.probe(f"cat {q(p)}", quiet=True, log_output=False).stdout
    try:
        key = facts.parse_keys_add(out)
    except facts.FactError:
        key = None
    if key:
        run.log.add_secret(key.mnemonic)
    run.log.output(out)
    if key is None:
        run.remote.run(f"rm -f {q(p)} {q(p + '.rc')}", what="remove the failed key creation output")
        raise DeployError(f"creating the warm key failed (exit code {rc}); see the output above",
                          "check KEYRING_PASSWORD (an existing keyring needs the same one) and rerun")
    save_key(run, key)
    run.remote.run(f"rm -f {q(p)} {q(p + '.rc')}", what="remove the server copy of the key creation output")


def show_key(run) -> str | None:
    """The warm key's address on the server, or None when it does not exist."""
    r = run.remote.probe(api_shell(run, KEYS_SHOW), what=f"warm key {run.cfg.key_name} on the server", timeout=300)
    addr = facts.parse_address(r.stdout)
    if r.ok and addr:
        return addr
    text = (r.stdout + r.stderr).lower()
    if "integrity check failed" in text or "incorrect passphrase" in text or "invalid passphrase" in text:
        raise DeployError("KEYRING_PASSWORD does not open the server's existing keyring",
                          "use the password the keyring was created with (keyring in deploy/join/.inference/keyring-file/)")
    if "not found" in text or "not a valid name" in text or "no such" in text or r.exit_code != 0:
        return None
    return None


def warm_key(run, snap: Snapshot) -> None:
    """The warm key exists on the server exactly once, and its mnemonic is saved locally."""
    cfg = run.cfg
    if not run.plan:
        recover_pending(run, snap["pending"].out)
    state: dict[str, str | None] = {}

    def check():
        state["address"] = show_key(run)
        return bool(state["address"]), (f"address {state['address']}" if state["address"] else "no key yet")

    def create():
        p = _pending(run)
        inner = compose(run, f"run --rm --no-deps -T api sh -c {q(KEYS_ADD)}")
        run.remote.run(
            f"mkdir -p {q(cfg.state_dir)} && umask 077 && "
            f"setsid -w sh -c {q(inner + ' > ' + q(p) + ' 2>&1; echo $? > ' + q(p + '.rc'))} </dev/null",
            what=f"create the warm key {cfg.key_name} (inferenced keys add)", timeout=300, show_output=False)
        recover_pending(run)

    run.steps.run(f"warm key {cfg.key_name}", check, create)
    address = state.get("address")
    if run.plan or not address:
        return
    local_addr = (read_artefact(cfg.artefacts, "warm_address.txt") or "").strip()
    if local_addr and local_addr != address:
        raise DeployError(f"warm_address.txt says {local_addr} but the server's key {cfg.key_name} is {address}",
                          "these files belong to another key: check SERVER_IP and KEY_NAME")
    if not local_addr:
        write_artefact(cfg.artefacts, "warm_address.txt", address + "\n")
    if read_artefact(cfg.artefacts, "warm_key.txt") is None:
        run.log.warn(f"warm_key.txt is missing locally: the mnemonic of {address} cannot be recovered from the "
                     "server. Back up instead deploy/join/.inference/keyring-file/ (fab backup-keys) together "
                     "with KEYRING_PASSWORD: they are the only way to use this key.")


# ------------------------------------------------------------------------ registration
def participant_url(run) -> str:
    return f"{run.cfg.seed_api_url}/v1/participants/{run.cfg.cold_address}"


def registered(run) -> bool:
    r = request(participant_url(run), attempts=4, what="participant lookup at the seed")
    return r.status == 200


CHAIN_ERRORS = (
    ("already exists", None),
    ("registration is closed", ("the network does not accept new participants right now",
                                "wait for registration to open (see the Gonka announcements) and rerun")),
    ("private", ("the chain rejected PUBLIC_URL as a private address",
                 "set PUBLIC_URL to the server's public address")),
    ("loopback", ("the chain rejected PUBLIC_URL as a loopback address",
                  "set PUBLIC_URL to the server's public address")),
    ("failed to get", ("the seed could not read the node's consensus key", "check that tmkms and node run")),
)


def registration(run) -> None:
    """The participant is registered at the seed (confirmed there, never assumed)."""
    cfg = run.cfg

    def check():
        return registered(run), f"{cfg.cold_address} at {cfg.seed_api_url}"

    def note_found() -> None:
        """A registration confirmed by a run that was cut before writing registration.txt: say so."""
        if read_artefact(cfg.artefacts, "registration.txt") is None and not run.plan:
            write_artefact(cfg.artefacts, "registration.txt",
                           f"# participant {cfg.cold_address} found registered at {participant_url(run)} on "
                           f"{time.strftime('%Y-%m-%d %H:%M:%S')}; the output of register-new-participant was "
                           "not kept (an earlier run was interrupted)\n")

    def register():
        r = run.remote.run(api_shell(run, REGISTER), what="register-new-participant", ok_codes=tuple(range(256)),
                           timeout=300)
        out = (r.stdout + r.stderr).strip()
        write_artefact(cfg.artefacts, "registration.txt",
                       f"# register-new-participant at {time.strftime('%Y-%m-%d %H:%M:%S')}, exit code {r.exit_code}\n"
                       f"# participant {cfg.cold_address}, {participant_url(run)}\n{run.log.redact(out)}\n")
        lower = out.lower()
        for needle, problem in CHAIN_ERRORS:
            if needle in lower and problem:
                raise DeployError(f"registration failed: {problem[0]}", problem[1])
        if r.exit_code != 0 and "already exists" not in lower:
            raise DeployError(f"register-new-participant failed (exit code {r.exit_code}); output in registration.txt",
                              "see the output above; rerun once the cause is fixed")
        deadline = cfg.seconds("REGISTRATION_TIMEOUT")
        wait_until(run, f"participant {cfg.cold_address} at the seed", lambda: (registered(run), "not listed yet"),
                   deadline_s=deadline, interval_s=5, report_every_s=15, first_pause_s=2.0,
                   hint="register-new-participant finished but the seed does not list the participant: the "
                        "registration did not land. See registration.txt, check PUBLIC_URL and ACCOUNT_PUBKEY, rerun")

    if run.steps.run("participant registered at the seed", check, register) == "skip":
        note_found()


def start_base(run) -> None:
    """Phase 4."""
    snap = snapshot(run)
    base_services(run, snap)
    warm_key(run, snap)
    registration(run)
