"""Simulated inferenced inside the api container: warm key handling and registration."""

from __future__ import annotations

import re
import time

import pytest

from gonka_sim.network.seed import SeedServer
from gonka_tasks.config.address import cold_address
from tests.sandbox.server import support

pytestmark = support.needs_sim_python
sim = support.sim  # fixtures
join = support.join

KEYS_ADD = support.KEYS_ADD
KEYS_SHOW = ('"$DOCKER" compose run --rm --no-deps -T api sh -c '
             '\'inferenced keys show "$KEY_NAME" -a --keyring-backend file\'')
REGISTER = ('"$DOCKER" compose run --rm --no-deps -T api sh -c \'inferenced register-new-participant '
            '"$DAPI_API__PUBLIC_URL" "$ACCOUNT_PUBKEY" --node-address "$DAPI_CHAIN_NODE__SEED_API_URL"\'')


def test_keys_add_prints_record_on_stdout_and_mnemonic_on_stderr(sim, join):
    r = sim.sourced(KEYS_ADD, join)
    assert r.returncode == 0, r.stderr
    m = re.fullmatch(r"- address: (gonka1[02-9ac-hj-np-z]{38})\n  name: node-a\n"
                     r"  pubkey: '\{\"@type\":\"/cosmos.crypto.secp256k1.PubKey\",\"key\":\"([A-Za-z0-9+/=]{44})\"\}'\n"
                     r"  type: local\n", r.stdout)
    assert m, r.stdout
    address, pub = m.groups()
    assert cold_address(pub) == address
    assert "**Important** write this mnemonic phrase in a safe place." in r.stderr
    words = r.stderr.strip().splitlines()[-1].split()
    assert len(words) == 24
    ring = join / ".inference" / "keyring-file"
    assert sorted(p.name for p in ring.iterdir()) == sorted(["keyhash", "node-a.info", f"{_hex(address)}.address"])
    assert support.PASSWORD not in (ring / "node-a.info").read_text()
    assert sim.counters()["keys_add"] == 1
    # the secret never appears in a logged command line
    logs = (sim.root / "var/log/gonka-sim/docker.log").read_text()
    logs += (sim.root / "var/log/gonka-sim/inferenced.log").read_text()
    assert support.PASSWORD not in logs
    # recovering from the mnemonic gives the same key
    rec = sim.sourced('"$DOCKER" compose run --rm --no-deps -T api inferenced keys add again --recover '
                      '--keyring-backend file', join, input=f"{' '.join(words)}\n{support.PASSWORD}\n")
    assert rec.returncode == 0, rec.stderr
    assert f"address: {address}" in rec.stdout and "**Important**" not in rec.stderr


def _hex(address: str) -> str:
    return support.chainkeys.bech32_decode(address)[1].hex()


def test_second_keys_add_aborts_and_keeps_the_key(sim, join):
    first = sim.sourced(KEYS_ADD, join)
    assert first.returncode == 0
    address = first.stdout.split()[2]
    again = sim.sourced(KEYS_ADD, join)
    assert again.returncode == 1
    assert again.stderr.strip().endswith("\naborted")  # bare error after the usage, as inferenced prints it
    assert sim.counters()["keys_add"] == 1
    show = sim.sourced(KEYS_SHOW, join, input=support.PASSWORD + "\n")
    assert show.returncode == 0 and show.stdout.strip() == address


def test_keys_show_needs_the_passphrase(sim, join):
    assert sim.sourced(KEYS_ADD, join).returncode == 0
    no_input = sim.sourced(KEYS_SHOW, join)
    assert no_input.returncode == 1 and "too many failed passphrase attempts" in no_input.stderr
    wrong = sim.sourced(KEYS_SHOW, join, input="wrong-password\n" * 3)
    assert wrong.returncode == 1 and wrong.stderr.count("incorrect passphrase") == 3
    missing = sim.sourced('"$DOCKER" compose run --rm --no-deps -T api inferenced keys show nobody -a '
                          '--keyring-backend file', join, input=support.PASSWORD + "\n")
    assert missing.returncode == 1 and "nobody is not a valid name or address" in missing.stderr


def test_short_or_mismatched_passphrases_are_refused(sim, join):
    short = sim.sourced('"$DOCKER" compose run --rm --no-deps -T api inferenced keys add k --keyring-backend file',
                        join, input="short\nshort\n")
    assert short.returncode == 1 and "password must be at least 8 characters" in short.stderr
    mismatch = sim.sourced('"$DOCKER" compose run --rm --no-deps -T api inferenced keys add k '
                           '--keyring-backend file', join, input="longenough1\nlongenough2\n")
    assert mismatch.returncode == 1 and "passphrase do not match" in mismatch.stderr
    assert not (join / ".inference/keyring-file/k.info").exists()


def test_without_backend_flag_the_key_lands_in_the_test_keyring(sim, join):
    # the node writes client.toml with keyring-backend = "test" on its first start
    assert sim.sourced('"$DOCKER" compose up -d --no-deps node', join).returncode == 0
    sim.wait_ready("node")
    r = sim.sourced('"$DOCKER" compose run --rm --no-deps -T api sh -c \'inferenced keys add "$KEY_NAME"\'', join)
    assert r.returncode == 0, r.stderr
    assert (join / ".inference/keyring-test/node-a.info").exists()
    assert not (join / ".inference/keyring-file").exists()
    r = sim.sourced(KEYS_SHOW, join, input=support.PASSWORD + "\n")
    assert r.returncode == 1  # the file keyring the API reads has no such key


@pytest.fixture
def seed():
    # Not 127.0.0.1: inside a (simulated) container that address is the container itself.
    with SeedServer(host="127.0.0.2") as server:
        yield server


def _with_seed(sim, join, seed):
    support.write_config_env(join, sim, SEED_API_URL=seed.url_for("127.0.0.2"))
    assert sim.sourced(KEYS_ADD, join).returncode == 0
    assert sim.sourced('"$DOCKER" compose up tmkms node -d --no-deps', join).returncode == 0
    sim.wait_ready("node")
    sim.wait_ready("tmkms")
    url = f"http://{sim.ip('node')}:26657/status"
    for _ in range(80):
        if sim.get_json(url)["result"]["validator_info"]["pub_key"]:
            break
        time.sleep(0.1)


def test_register_prints_and_polls_as_upstream(sim, join, seed):
    """register_participant_command.go: POST /v1/participants, then poll /v2/participants every 2 s.
    The API writes the status as an integer, which the CLI's `status string` cannot decode: the
    poll never finds the participant, ends with the timeout warning, and the command exits 0."""
    _with_seed(sim, join, seed)
    sim.knobs(register_poll_s=2.5)  # one tick (upstream: 30 s)
    r = sim.sourced(REGISTER, join)
    assert r.returncode == 0, r.stderr
    cold = cold_address(support.pubkey_b64())
    status = sim.get_json(f"http://{sim.ip('node')}:26657/status")["result"]
    consensus = status["validator_info"]["pub_key"]["value"]
    base = seed.url_for("127.0.0.2")
    assert r.stdout == (
        "No consensus key provided, attempting to auto-fetch from chain node...\n"
        "Successfully auto-fetched and validated consensus key from chain node\n"
        "Registering new participant:\n"
        "  Node URL: http://198.51.100.7:8000\n"
        f"  Account Address: {cold}\n"
        f"  Account Public Key: {support.pubkey_b64()}\n"
        f"  Validator Consensus Key: {consensus} (auto-fetched)\n"
        f"  Seed Node Address: {base}\n"
        f"Sending registration request to {base}/v1/participants\n"
        "Response status code: 200\n"
        "Participant registration successful.\n"
        "Waiting for participant to be available (timeout: 30 seconds)...\n"
        ".Warning: timeout after 2.5s waiting for participant to be available\n"
        f"You can manually check your participant at {base}/v2/participants/{cold}\n"
        "Account balance: 0\n")
    body = seed.posts[-1]
    assert body == {"address": cold, "url": "http://198.51.100.7:8000", "validator_key": consensus,
                    "pub_key": support.pubkey_b64(), "worker_key": ""}
    assert seed.is_visible(cold)  # it did land: only the CLI could not read it
    seed.wait_idle()
    assert seed.count(f"/v2/participants/{cold}", method="GET") == 1
    assert seed.count(f"/v2/accounts/{cold}", method="GET") == 1
    assert sim.counters()["register_posts"] == 1
    # registering again: the API answers 200 (async), the chain refuses it, the command exits 0
    again = sim.sourced(REGISTER, join)
    assert again.returncode == 0 and "Response status code: 200" in again.stdout
    assert [f.reason for f in seed.failed_txs] == ["account already exists"]


def test_register_finds_a_participant_whose_status_decodes():
    """The success branch, for an API that wrote a string status (none does at v0.2.13)."""
    from gonka_sim.server import inferenced  # noqa: PLC0415

    found = inferenced.parse_participant(b'{"participant": {"address": "gonka1x", "inferenceUrl": "http://h:8000", '
                                         b'"status": "ACTIVE"}}')
    assert found == ("gonka1x", "http://h:8000", "ACTIVE")
    assert inferenced.parse_participant(b'{"participant": {"address": "gonka1x", "inference_url": "u", '
                                        b'"status": 1}}') is None
    # Go matches keys case-insensitively, but not across the underscore
    assert inferenced.parse_participant(b'{"participant": {"ADDRESS": "a", "inference_url": "u"}}') == ("a", "", "")


def test_register_poll_timeout_is_only_a_warning(sim, join, seed):
    _with_seed(sim, join, seed)
    seed.configure(hide_registrations=True)
    sim.knobs(register_poll_s=1)
    r = sim.sourced(REGISTER, join)
    assert r.returncode == 0, r.stderr
    assert "Warning: timeout after 1s waiting for participant to be available" in r.stdout
    assert "Account balance" not in r.stdout  # the account is not readable either


def test_register_timeout_knob_posts_nothing(sim, join, seed):
    _with_seed(sim, join, seed)
    sim.knobs(register_timeout=True, register_poll_s=0.5)
    r = sim.sourced(REGISTER, join)
    assert r.returncode == 0 and "Warning: timeout" in r.stdout
    assert seed.posts == [] and "register_posts" not in sim.counters()


def test_register_needs_the_consensus_key(sim, join, seed):
    support.write_config_env(join, sim, SEED_API_URL=seed.url_for("127.0.0.2"))
    r = sim.sourced(REGISTER, join)
    assert r.returncode == 1 and "node RPC endpoint not responding" in r.stderr
    assert sim.sourced('"$DOCKER" compose up node -d --no-deps', join).returncode == 0
    sim.wait_ready("node")
    r = sim.sourced(REGISTER, join)
    assert r.returncode == 1 and "node does not have validator information" in r.stderr
    assert seed.posts == []
