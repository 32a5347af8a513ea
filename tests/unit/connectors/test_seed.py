"""The deployer's reading of the seed: /v2/participants is the participant, /v1/participants the
cold ACCOUNT (upstream v0.2.13, decentralized-api/internal/server/public/server.go); checked
against the simulated seed."""

from __future__ import annotations

import pytest

from gonka_tasks.config import load
from gonka_tasks.connectors import seed as seed_api
from gonka_tasks.core import participant
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
