"""Phase 4, base services: tmkms + node running and the node's RPC up, the warm key (warm_key.py:
created exactly once, its mnemonic saved here first), the registration confirmed on the participant.

Upstream's API: /v2/participants/<address> is the participant, /v1/participants/<address> the
account (connectors/seed.py). Registration is confirmed on the first, never assumed.
"""

from __future__ import annotations

import time

from gonka_tasks import facts
from gonka_tasks.connectors import seed
from gonka_tasks.connectors.artefacts import read_artefact, write_artefact
from gonka_tasks.core import participant
from gonka_tasks.core.shell import COMPOSE_BASE, q
from gonka_tasks.errors import DeployError
from gonka_tasks.phases import images
from gonka_tasks.phases.common import Snapshot, api_shell, compose, require, wait_until
from gonka_tasks.phases.warm_key import pending_path, warm_key

REGISTER = ('inferenced register-new-participant "$DAPI_API__PUBLIC_URL" "$ACCOUNT_PUBKEY" '
            '--node-address "$DAPI_CHAIN_NODE__SEED_API_URL"')


def wait_rpc(run) -> None:
    """Until the node's RPC answers and shows the consensus key (tmkms connected)."""
    def probe():
        r = run.remote.probe(facts.RPC_STATUS_PROBE)
        return rpc_state(r.stdout) if r.ok else (False, "RPC not answering yet")
    detail = wait_until(run, "node RPC with the consensus key", probe, deadline_s=run.cfg.seconds("RPC_TIMEOUT"))
    run.log.ok(f"node RPC: {detail}")


def snapshot(run) -> Snapshot:
    """Everything phase 4 checks on the server (but the keyring), in one round trip."""
    return Snapshot(run, {
        "config": f"test -f {q(run.cfg.join_dir + '/config.env')}",
        "ps": compose(run, "ps -a --format json"),
        "rpc": facts.RPC_STATUS_PROBE,
        "pending": f"test -e {q(pending_path(run))} || test -L {q(pending_path(run))}",
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

    def act():
        # tmkms and node, and api for `keys add`: waited for if the pull job has them still to come
        images.require_images(run, COMPOSE_BASE, ("tmkms", "node", "api"))
        run.remote.run(compose(run, "up -d --no-deps tmkms node"), what="docker compose up -d tmkms node", timeout=1800)

    run.steps.run("tmkms and node running", check, act, refresh=snap.refresh)
    if run.plan:
        return
    ready, detail = rpc_state(snap["rpc"].stdout)
    if ready:
        run.log.ok(f"node RPC: {detail}")
    else:
        wait_rpc(run)


# ------------------------------------------------------------------------ registration
def participant_url(run) -> str:
    return participant.participant_url(run.cfg)


def registered(run) -> bool:
    return seed.lookup_participant(run.cfg) is not None


def consensus_key(run) -> str | None:
    """The node's validator (consensus) key, for the commands the operator runs; None if unknown."""
    r = run.remote.probe(facts.RPC_STATUS_PROBE)
    if not r.ok:
        return None
    try:
        return facts.parse_rpc_status(r.stdout).validator_pubkey or None
    except facts.FactError:
        return None


def url_mismatch_error(run, found: participant.Participant) -> DeployError:
    """The cold key is a participant registered with another URL than PUBLIC_URL."""
    cfg = run.cfg
    return DeployError(
        f"participant {cfg.cold_address} is registered with inference URL {found.inference_url}, but PUBLIC_URL "
        f"is {cfg['PUBLIC_URL']}; register-new-participant cannot change it (the chain refuses a second "
        "unfunded registration)",
        "either set PUBLIC_URL back to the registered URL, or change the URL on chain with the cold key on your "
        "own machine (x/inference MsgSubmitNewParticipant updates an existing participant's URL):\n"
        + participant.submit_participant_command(cfg, consensus_key(run), seed.seed_chain_id(cfg))
        + "\nthen rerun")


def funded_unregistered_error(run, account: participant.Account) -> DeployError:
    """The cold account exists on chain but is no participant: the unfunded registration that
    register-new-participant sends fails on chain ("account already exists",
    msg_server_submit_new_unfunded_participant.go) while the seed still answers 200."""
    cfg = run.cfg
    held = (f"balance {participant.balance_text(account)}" if account.state == "present"
            else "it has received coins but never signed a transaction")
    return DeployError(
        f"the cold account {cfg.cold_address} already exists on chain ({held}) but is not a participant: "
        "register-new-participant cannot register it (the chain refuses an unfunded registration for an "
        "existing account with 'account already exists', even though the seed answers 200)",
        "register it with the cold key itself, on your own machine (the host docs' manual registration):\n"
        + participant.submit_participant_command(cfg, consensus_key(run), seed.seed_chain_id(cfg))
        + f"\nthen rerun; `fab verify` shows registration PASS once {participant.participant_url(cfg)} answers")


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
    """The participant is registered at the seed with PUBLIC_URL (confirmed there, never assumed)."""
    cfg = run.cfg

    def found_ok() -> tuple[bool, str]:
        found = seed.lookup_participant(cfg)
        if found is None:
            return False, f"{cfg.cold_address} is not a participant at {cfg.seed_api_url}"
        if not participant.same_url(found.inference_url, cfg["PUBLIC_URL"]):
            raise url_mismatch_error(run, found)
        return True, f"{cfg.cold_address} at {cfg.seed_api_url} ({found.status}, {found.inference_url})"

    def check():
        return found_ok()

    def landed() -> tuple[bool, str]:
        return found_ok()[0], "not listed yet"

    def note_found() -> None:
        """A registration confirmed by a run that was cut before writing registration.txt: say so."""
        if read_artefact(cfg.artefacts, "registration.txt") is None and not run.plan:
            write_artefact(cfg.artefacts, "registration.txt",
                           f"# participant {cfg.cold_address} found registered at {participant_url(run)} on "
                           f"{time.strftime('%Y-%m-%d %H:%M:%S')}; the output of register-new-participant was "
                           "not kept (an earlier run was interrupted)\n")

    def register():
        account = seed.lookup_account(cfg)
        if account.exists:
            raise funded_unregistered_error(run, account)
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
        # the seed answers 200 before the chain has run the message, and never reports its failure
        wait_until(run, f"participant {cfg.cold_address} at the seed", landed,
                   deadline_s=cfg.seconds("REGISTRATION_TIMEOUT"), interval_s=5, report_every_s=15,
                   first_pause_s=2.0,
                   hint="register-new-participant finished but the seed does not list the participant: the "
                        "registration did not land (the seed accepts it before the chain checks it, e.g. for a "
                        "private PUBLIC_URL). See registration.txt, check PUBLIC_URL and ACCOUNT_PUBKEY, rerun")

    if run.steps.run("participant registered at the seed", check, register) == "skip":
        note_found()


def start_base(run) -> None:
    """Phase 4."""
    snap = snapshot(run)
    base_services(run, snap)
    warm_key(run, snap)
    registration(run)
