"""Registration is confirmed on the participant, never on the account (upstream v0.2.13: the API's
/v1/participants/<address> is the ACCOUNT, /v2/participants/<address> the participant).

A cold account that already exists on chain (funded) cannot be registered by the unfunded
`register-new-participant`: the seed answers 200 and the chain refuses the message. A participant
registered with another URL than PUBLIC_URL cannot be changed by it either. Both stop phase 4 with
a message naming the problem and the cold-key command that fixes it, and `verify` fails them.
"""

from __future__ import annotations

import json

import pytest

from gonka_tasks.config.address import cold_address

pytestmark = pytest.mark.sandbox


def verification(lab, key: str) -> dict[str, tuple[str, str]]:
    doc = json.loads((lab.nodes / key / "verification.json").read_text())
    return {c["name"]: (c["result"], c["detail"]) for c in doc["checks"]}


def errors(stdout: str) -> str:
    return "\n".join(ln for ln in stdout.splitlines() if "[ERROR]" in ln or "fix:" in ln or "./inferenced" in ln
                     or ln.startswith("    --"))


def test_funded_cold_account_never_registered_stops_start_base_and_fails_verify(lab, sandbox_host, world):
    host, seed = sandbox_host, world.seed
    node = lab.write_node(host, "reg-funded")
    values = lab.values("reg-funded")
    cold = cold_address(values["ACCOUNT_PUBKEY"])
    seed.fund_account(values["ACCOUNT_PUBKEY"], balance=25_000_000_000)  # signed before, never registered
    r = lab.fab("deploy", "--node", str(node), "--yes")
    assert r.returncode == 1, r.stdout[-4000:]
    assert "=== phase 5" not in r.stdout and "Traceback" not in r.stdout
    said = errors(r.stdout)
    assert f"the cold account {cold} already exists on chain" in said, r.stdout[-4000:]
    assert "balance 25000000000 ngonka (25 GNK)" in said and "account already exists" in said
    # what to do: the cold key registers itself, with the node's consensus key and the real values
    assert "./inferenced tx inference submit-new-participant http://" in said
    assert f"--from {values['COLD_KEY_NAME']} --keyring-backend file" in said
    assert "--validator-key <CONSENSUS_KEY" not in said  # read from the node's RPC
    assert "--chain-id gonka-mainnet" in said
    # nothing was sent: the registration could only fail on chain
    seed.wait_idle()
    assert seed.posts == [] and not seed.is_visible(cold)
    report = (lab.nodes / "reg-funded" / "report.txt").read_text()
    assert report.startswith("Deployment of reg-funded FAILED: phase 4 (start-base)")
    v = lab.fab("verify", "--node", str(node), timeout=300)
    assert v.returncode == 1
    result, detail = verification(lab, "reg-funded")["registration"]
    assert result == "FAIL", detail
    assert "not listed at the seed" in detail and "account exists" in detail and "submit-new-participant" in detail


@pytest.mark.slow
def test_participant_registered_with_another_url_is_named_at_start_base(lab, sandbox_host, world):
    host, seed = sandbox_host, world.seed
    node = lab.write_node(host, "reg-url")
    values = lab.values("reg-url")
    cold = cold_address(values["ACCOUNT_PUBKEY"])
    seed.register(values["ACCOUNT_PUBKEY"], url="http://203.0.113.44:8000")
    r = lab.fab("deploy", "--node", str(node), "--yes")
    assert r.returncode == 1, r.stdout[-4000:]
    said = errors(r.stdout)
    public = f"http://{values['SERVER_IP']}:8000"
    assert f"participant {cold} is registered with inference URL http://203.0.113.44:8000, but PUBLIC_URL is " \
           f"{public}" in said, r.stdout[-4000:]
    assert f"./inferenced tx inference submit-new-participant {public}" in said
    seed.wait_idle()
    assert seed.posts == []
    # once the operator changed it on chain, the rerun finds the registration done
    with seed.lock:
        seed.participants[cold].url = public + "/"
    r = lab.fab("start-base", "--node", str(node), "--yes")
    assert r.returncode == 0, r.stdout[-4000:]
    assert "[SKIP] participant registered at the seed" in r.stdout
