"""The simulated seed API: registration, visibility knobs, governance models, chain RPC, faults."""

from __future__ import annotations

import http.client
import json
import threading
import time
import urllib.error
import urllib.request

import pytest

from gonka_sim.network.seed import SANDBOX_MODEL_ID, SeedServer, is_private_url
from gonka_tasks.config.address import cold_address
from tests.helpers import pubkey_b64


def call(url: str, method: str = "GET", body=None, timeout: float = 5):
    """(status, headers, parsed JSON or raw text) of one request; HTTP errors are returned too."""
    data = json.dumps(body).encode() if body is not None and not isinstance(body, bytes) else body
    req = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            status, headers, raw = r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        status, headers, raw = e.code, e.headers, e.read()
    try:
        payload = json.loads(raw) if raw else None
    except ValueError:
        payload = raw.decode()
    return status, headers, payload


def registration(key: str, url: str = "http://10.200.7.2:8000", **extra):
    """The body `inferenced register-new-participant` posts (upstream sends an empty worker_key)."""
    body = {
        "address": cold_address(key),
        "url": url,
        "validator_key": "dmFsaWRhdG9yLWtleS1leGFtcGxlLTMyLWJ5dGVzLi4=",
        "pub_key": key,
        "worker_key": "",
    }
    body.update(extra)
    return body


def failed(seed, address: str) -> list[str]:
    """Why the chain refused registrations of `address` (the POSTs themselves all said 200)."""
    return [f.reason for f in seed.failed_txs if f.address == address]


def test_post_registers_a_participant_and_creates_its_account(seed):
    key = pubkey_b64("h2-a")
    status, _, payload = call(f"{seed.url}/v1/participants", "POST", registration(key))
    assert status == 200 and payload is None
    address = cold_address(key)
    # /v1/participants/<address> is the ACCOUNT (getAccountByAddress): no omitempty, balance 0 shown
    status, _, payload = call(f"{seed.url}/v1/participants/{address}")
    assert status == 200 and payload == {"pubkey": key, "balance": 0, "denom": "ngonka"}
    assert call(f"{seed.url}/v2/accounts/{address}")[2] == payload
    # /v2/participants/<address> is the PARTICIPANT, as encoding/json writes the proto
    status, _, payload = call(f"{seed.url}/v2/participants/{address}")
    assert status == 200 and list(payload) == ["participant"]
    part = payload["participant"]
    assert part["index"] == part["address"] == address
    assert part["inference_url"] == "http://10.200.7.2:8000"
    assert part["status"] == 1 and part["weight"] == -1  # ACTIVE as an integer, new participants -1
    assert part["join_height"] >= 1_000_000 and part["join_time"] > 1_600_000_000_000  # block height, ms
    assert part["validator_key"] == registration(key)["validator_key"]
    assert "worker_public_key" not in part and "inferenceUrl" not in part  # omitempty, snake_case
    assert part["current_epoch_stats"] == {"invalidLLR": {}, "inactiveLLR": {}}
    assert seed.posts[0]["pub_key"] == key
    assert seed.participants[address].url == "http://10.200.7.2:8000"
    status, _, payload = call(f"{seed.url}/v1/participants")
    assert [p["id"] for p in payload["participants"]] == [address]


def test_chunked_post_body_is_read(seed):
    key = pubkey_b64("chunked")
    raw = json.dumps(registration(key)).encode()
    conn = http.client.HTTPConnection("127.0.0.1", seed.port, timeout=5)
    conn.request("POST", "/v1/participants", body=iter([raw[:10], raw[10:]]), encode_chunked=True,
                 headers={"Content-Type": "application/json", "Transfer-Encoding": "chunked"})  # fmt: skip
    assert conn.getresponse().status == 200
    conn.close()
    assert cold_address(key) in seed.participants


def test_unknown_address_is_404_and_bad_address_400_with_upstreams_error_bodies(seed):
    nobody = cold_address(pubkey_b64("nobody"))
    status, _, payload = call(f"{seed.url}/v1/participants/{nobody}")
    assert (status, payload) == (404, {"error": "rpc error: code = NotFound desc = account not found: key not found"})
    status, _, payload = call(f"{seed.url}/v2/participants/{nobody}")
    assert (status, payload) == (404, {"error": "rpc error: code = NotFound desc = not found: key not found"})
    status, _, payload = call(f"{seed.url}/v1/participants/gonka1notanaddress")
    assert status == 400
    assert payload == {"error": "rpc error: code = InvalidArgument desc = invalid address: invalid request"}
    assert call(f"{seed.url}/v9/nothing")[2] == {"error": "Not Found"}


def test_funded_account_is_not_a_participant(seed):
    key = pubkey_b64("funded")
    address = cold_address(key)
    seed.fund_account(key, balance=5_000_000_000)
    assert call(f"{seed.url}/v1/participants/{address}")[2] == {"pubkey": key, "balance": 5_000_000_000,
                                                                 "denom": "ngonka"}
    assert call(f"{seed.url}/v2/participants/{address}")[0] == 404
    # the unfunded registration answers 200 (sent async) and fails on chain
    status, _, payload = call(f"{seed.url}/v1/participants", "POST", registration(key))
    assert status == 200 and payload is None
    assert call(f"{seed.url}/v2/participants/{address}")[0] == 404
    assert failed(seed, address) == ["account already exists"]
    assert address not in seed.participants and seed.accounts[address].balance == 5_000_000_000


def test_funded_account_that_never_signed_has_no_public_key(seed):
    key = pubkey_b64("never-signed")
    address = cold_address(key)
    seed.fund_account(key, balance=1, signed=False)
    status, _, payload = call(f"{seed.url}/v1/participants/{address}")
    assert status == 404
    assert payload == {"error": "rpc error: code = NotFound desc = account has no public key: key not found"}
    assert call(f"{seed.url}/v1/participants", "POST", registration(key))[0] == 200
    assert failed(seed, address) == ["account already exists"]


def test_duplicate_registration_answers_200_and_changes_nothing(seed):
    body = registration(pubkey_b64("h2-dup"))
    assert call(f"{seed.url}/v1/participants", "POST", body)[0] == 200
    again = dict(body, url="http://203.0.113.77:8000")
    status, _, payload = call(f"{seed.url}/v1/participants", "POST", again)
    assert status == 200 and payload is None
    assert failed(seed, body["address"]) == ["account already exists"]
    assert len(seed.posts) == 2 and len(seed.participants) == 1
    assert seed.participants[body["address"]].url == "http://10.200.7.2:8000"


def test_address_is_required_and_must_match_pub_key_on_chain(seed):
    key = pubkey_b64("h2-noaddr")
    body = registration(key)
    del body["address"]
    status, _, payload = call(f"{seed.url}/v1/participants", "POST", body)
    assert (status, payload) == (400, {"error": "Address and PubKey are required"})
    other = registration(pubkey_b64("other"), address=cold_address(key))
    assert call(f"{seed.url}/v1/participants", "POST", other)[0] == 200
    assert failed(seed, cold_address(key)) == ["public key does not match address"]
    assert not seed.participants


@pytest.mark.parametrize(
    ("body", "status", "fragment"),
    [
        (b"{not json", 400, "Syntax error"),
        ([1, 2], 400, "Unmarshal type error"),
        ({"url": "http://x:8000"}, 400, "Address and PubKey are required"),
        ({"url": 5, "address": "a", "pub_key": "b"}, 400, "Unmarshal type error"),
    ],
)
def test_bodies_that_do_not_bind_are_400(seed, body, status, fragment):
    got, _, payload = call(f"{seed.url}/v1/participants", "POST", body)
    assert got == status and fragment in json.dumps(payload) and set(payload) == {"error"}
    assert not seed.participants


def test_invalid_keys_pass_the_api_and_fail_on_chain(seed):
    bad_pub = registration(pubkey_b64("k"), pub_key="AAAA")
    bad_worker = registration(pubkey_b64("w"), worker_key=pubkey_b64("w"))  # secp256k1: upstream wants ED25519
    for body in (bad_pub, bad_worker):
        assert call(f"{seed.url}/v1/participants", "POST", body)[0] == 200
    assert "invalid pub key" in failed(seed, bad_pub["address"])[0]
    assert "invalid worker key" in failed(seed, bad_worker["address"])[0]
    assert not seed.participants


def test_registration_closed_fails_on_chain_and_forced_status_answers_it(seed):
    seed.configure(registration_closed=True)
    body = registration(pubkey_b64("c"))
    assert call(f"{seed.url}/v1/participants", "POST", body)[0] == 200
    assert failed(seed, body["address"]) == ["registration is closed"]
    seed.configure(registration_closed=False, post_status=502, post_message="bad gateway")
    status, _, payload = call(f"{seed.url}/v1/participants", "POST", registration(pubkey_b64("c")))
    assert (status, payload) == (502, {"error": "bad gateway"})
    assert not seed.participants


def test_private_urls_fail_on_chain_only_with_knob(seed):
    key = pubkey_b64("priv")
    seed.configure(reject_private_urls=True)
    assert call(f"{seed.url}/v1/participants", "POST", registration(key, url="http://10.1.2.3:8000"))[0] == 200
    assert "private" in failed(seed, cold_address(key))[0] and not seed.participants
    assert call(f"{seed.url}/v1/participants", "POST", registration(key, url="http://203.0.113.5:8000"))[0] == 200
    assert seed.participants[cold_address(key)].url == "http://203.0.113.5:8000"


@pytest.mark.parametrize(
    ("url", "private"),
    [
        ("http://127.0.0.1:8000", True),
        ("http://localhost:8000", True),
        ("http://192.168.1.4", True),
        ("http://169.254.169.254/", True),
        ("http://100.64.0.1:8000", True),
        ("http://[::1]:8000", True),
        ("http://[fe80::1]:8000", True),
        ("http://8.8.8.8:8000", False),
        ("http://node.example.com:8000", False),
    ],
)
def test_is_private_url(url, private):
    assert is_private_url(url) is private


def test_registration_visible_after_delay(seed):
    seed.configure(registration_visible_after=0.4)
    key = pubkey_b64("slow")
    assert call(f"{seed.url}/v1/participants", "POST", registration(key))[0] == 200
    assert call(f"{seed.url}/v2/participants/{cold_address(key)}")[0] == 404
    assert call(f"{seed.url}/v1/participants/{cold_address(key)}")[0] == 404  # made by the same message
    time.sleep(0.5)
    assert call(f"{seed.url}/v2/participants/{cold_address(key)}")[0] == 200
    assert call(f"{seed.url}/v1/participants/{cold_address(key)}")[0] == 200


def test_hidden_registration_never_shows_but_blocks_duplicates(seed):
    seed.configure(hide_registrations=True)
    body = registration(pubkey_b64("ghost"))
    assert call(f"{seed.url}/v1/participants", "POST", body)[0] == 200
    assert call(f"{seed.url}/v2/participants/{body['address']}")[0] == 404
    assert call(f"{seed.url}/v1/participants")[2]["participants"] == []
    assert call(f"{seed.url}/v1/participants", "POST", body)[0] == 200
    assert failed(seed, body["address"]) == ["account already exists"]


def test_lost_registration_can_be_retried(seed):
    seed.configure(lose_registrations=True)
    body = registration(pubkey_b64("lost"))
    assert call(f"{seed.url}/v1/participants", "POST", body)[0] == 200
    assert call(f"{seed.url}/v2/participants/{body['address']}")[0] == 404
    seed.configure(lose_registrations=False)
    assert call(f"{seed.url}/v1/participants", "POST", body)[0] == 200
    assert call(f"{seed.url}/v2/participants/{body['address']}")[0] == 200


def test_register_helper_preloads_a_participant_and_its_account(seed):
    p = seed.register(pubkey_b64("pre"), url="http://203.0.113.9:8000")
    assert call(f"{seed.url}/v2/participants/{p.address}")[2]["participant"]["inference_url"] == p.url
    assert call(f"{seed.url}/v1/participants/{p.address}")[0] == 200
    assert call(f"{seed.url}/v1/participants", "POST", registration(pubkey_b64("pre")))[0] == 200
    assert failed(seed, p.address) == ["account already exists"]


def test_governance_models_default_and_configurable(seed):
    status, _, payload = call(f"{seed.url}/v1/governance/models")
    ids = [m["id"] for m in payload["models"]]
    assert status == 200
    assert ids[:3] == ["MiniMaxAI/MiniMax-M2.7", "moonshotai/Kimi-K2.6", "deepseek-ai/DeepSeek-V4-Flash-0731"]
    assert SANDBOX_MODEL_ID in ids
    assert all({"hf_repo", "hf_commit", "model_args"} <= set(m) for m in payload["models"])
    seed.configure(models=[{"id": "Qwen/Qwen3-32B-FP8"}])
    assert call(f"{seed.url}/v1/governance/models")[2] == {"models": [{"id": "Qwen/Qwen3-32B-FP8"}]}


def test_world_aligns_governance_commits_with_hub(world):
    models = call(f"{world.seed.url}/v1/governance/models")[2]["models"]
    commits = {m["id"]: m["hf_commit"] for m in models}
    assert commits[SANDBOX_MODEL_ID] == world.hub.repo(SANDBOX_MODEL_ID).commit
    assert all(len(c) == 40 for c in commits.values())


def test_chain_status_shape_and_growing_height(seed):
    seed.configure(block_time_s=0.1)
    status, _, payload = call(f"{seed.url}/chain-rpc/status")
    assert status == 200 and payload["jsonrpc"] == "2.0"
    result = payload["result"]
    assert result["node_info"]["network"] == "gonka-mainnet"
    assert result["sync_info"]["catching_up"] is False
    assert result["validator_info"]["pub_key"]["type"] == "tendermint/PubKeyEd25519"
    h1 = int(result["sync_info"]["latest_block_height"])
    time.sleep(0.35)
    h2 = int(call(f"{seed.url}/chain-rpc/status")[2]["result"]["sync_info"]["latest_block_height"])
    assert h2 >= h1 + 2
    seed.configure(chain_halted=True)
    h3 = seed.height()
    time.sleep(0.25)
    assert seed.height() == h3
    rpc = call(
        f"{seed.url}/chain-rpc/", "POST", {"jsonrpc": "2.0", "id": 7, "method": "status", "params": {}}
    )[2]
    assert rpc["id"] == 7 and rpc["result"]["sync_info"]["latest_block_height"] == str(h3)


def test_rate_limit_next_n_gives_429_with_retry_after(seed):
    seed.configure(rate_limit_next_n=1, retry_after_s=7)
    status, headers, _ = call(f"{seed.url}/v1/governance/models")
    assert status == 429 and headers["Retry-After"] == "7"
    assert call(f"{seed.url}/v1/governance/models")[0] == 200


def test_rate_limit_per_minute_per_client(seed):
    seed.configure(rate_limit_per_min=3)
    statuses = [call(f"{seed.url}/v1/governance/models")[0] for _ in range(5)]
    assert statuses == [200, 200, 200, 429, 429]
    _, headers, _ = call(f"{seed.url}/v1/governance/models")
    assert 1 <= int(headers["Retry-After"]) <= 60


def test_fail_next_n_matches_path(seed):
    seed.configure(fail_next_n=2, fail_status=500, fail_match="/v1/participants")
    assert call(f"{seed.url}/v1/governance/models")[0] == 200  # not matched, not consumed
    assert call(f"{seed.url}/v1/participants")[0] == 500
    assert call(f"{seed.url}/v1/participants")[0] == 500
    assert call(f"{seed.url}/v1/participants")[0] == 200


def test_drop_connection_closes_without_response(seed):
    seed.configure(drop_connection_next_n=1)
    conn = http.client.HTTPConnection("127.0.0.1", seed.port, timeout=5)
    conn.request("GET", "/v1/governance/models")
    with pytest.raises((http.client.RemoteDisconnected, ConnectionResetError)):
        conn.getresponse()
    conn.close()
    assert call(f"{seed.url}/v1/governance/models")[0] == 200
    seed.wait_idle()
    assert seed.log[0].status is None


def test_delay_knob(seed):
    seed.configure(delay_s=0.3)
    t = time.monotonic()
    call(f"{seed.url}/v1/governance/models")
    assert time.monotonic() - t >= 0.28


def test_counters_and_reset(seed):
    call(f"{seed.url}/v1/governance/models")
    call(f"{seed.url}/v1/governance/models")
    seed.wait_idle()
    assert seed.requests["/v1/governance/models"] == 2
    assert seed.count("/v1/governance", method="GET") == 2
    seed.configure(registration_closed=True)
    seed.reset()
    assert seed.requests == {} and seed.log == [] and seed.knobs.registration_closed is False


def test_unknown_knob_is_an_error(seed):
    with pytest.raises(AttributeError):
        seed.configure(no_such_knob=1)


def test_concurrent_registrations_are_consistent(seed):
    keys = [pubkey_b64(f"c{i}") for i in range(20)]

    def post(k):
        call(f"{seed.url}/v1/participants", "POST", registration(k))

    threads = [threading.Thread(target=post, args=(k,)) for k in keys + keys]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert len(seed.participants) == 20 and len(seed.posts) == 40


def test_standalone_server_binds_all_interfaces_and_closes():
    with SeedServer() as s:
        assert s.host == "0.0.0.0" and s.port > 0
        assert s.url_for("10.200.9.1") == f"http://10.200.9.1:{s.port}"
        assert call(f"{s.url}/chain-rpc/status")[0] == 200
        port = s.port
    with pytest.raises(OSError):
        urllib.request.urlopen(f"http://127.0.0.1:{port}/chain-rpc/status", timeout=1)
