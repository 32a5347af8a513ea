"""The final report: the grant command as the current CLI documents it, the cold account's balance
against what the grant's fee allowance needs, and the after-join commands (collateral, PoC choice
per model) filled in with the node's values, to run with the cold key, never by the deployer."""

from __future__ import annotations

import re

import pytest

from gonka_tasks.config import load
from gonka_tasks.core.participant import Account
from gonka_tasks.core.report import AfterJoin, grant_command, report_text
from tests.helpers import conf_text, write_node

WARM = "gonka1qyqszqgpqyqszqgpqyqszqgpqyqszqgpjnp7du"
MODELS = ["MiniMaxAI/MiniMax-M2.7", "moonshotai/Kimi-K2.6", "deepseek-ai/DeepSeek-V4-Flash-0731"]


def one_line(command: str) -> str:
    """A shell command with its `\\`-newline continuations joined and runs of blanks collapsed."""
    return re.sub(r"\s+", " ", command.replace("\\\n", " ")).strip()


def grant_form(cold: str, warm: str, seed_api_url: str) -> str:
    """grant-ml-ops-permissions with the flags of its own help text (inference-chain/x/inference/
    module/commands.go, v0.2.13), the cold key's file keyring, the seed's chain RPC."""
    return (f"./inferenced tx inference grant-ml-ops-permissions {cold} {warm} --from {cold} "
            f"--keyring-backend file --gas auto --gas-adjustment 1.5 --gas-prices 10ngonka "
            f"--node {seed_api_url}/chain-rpc/")


def _cfg(tmp_path, **kw):
    return load(write_node(tmp_path, conf_text(**kw)))


@pytest.mark.parametrize(("cold", "seed"), [
    ("gonka-account-key", "http://node2.gonka.ai:8000"),
    ("my.cold_key-2", "https://seed.example.org:8443"),
])
def test_grant_command_has_the_current_clis_flags_and_real_values(tmp_path, cold, seed):
    cfg = _cfg(tmp_path, COLD_KEY_NAME=cold, SEED_API_URL=seed)
    cmd = grant_command(cfg, WARM)
    assert one_line(cmd) == grant_form(cold, WARM, seed)
    assert "--gas 2000000" not in cmd  # the docs' fixed gas predates the fee grant the tx now carries
    # every line but the last ends in a continuation, so it pastes into a shell as one command
    lines = cmd.splitlines()
    assert all(ln.endswith(" \\") for ln in lines[:-1]) and not lines[-1].endswith("\\")


def test_grant_command_default_cold_key_and_trailing_slash_in_seed_url(tmp_path):
    cfg = _cfg(tmp_path, SEED_API_URL="http://node2.gonka.ai:8000/")
    assert one_line(grant_command(cfg, WARM)) == grant_form("gonka-account-key", WARM, "http://node2.gonka.ai:8000")


def test_grant_command_without_warm_address_points_at_the_file(tmp_path):
    cmd = one_line(grant_command(_cfg(tmp_path), None))
    assert "warm_address.txt" in cmd
    assert cmd.startswith("./inferenced tx inference grant-ml-ops-permissions gonka-account-key ")


def _report(cfg, account=None, models=(), **kw):
    kw.setdefault("files", ["config.env", "known_hosts", "report.txt", "verification.txt", "warm_address.txt",
                            "warm_key.txt"])
    return report_text(cfg, failed=kw.pop("failed", None), log_path="logs/node-a_20250101-000000.log",
                       warm_address=WARM, verification={"PASS": 11, "WARN": 1, "FAIL": 0},
                       after=AfterJoin(chain_id="gonka-testnet-7", account=account, models=list(models)), **kw)


def test_report_of_a_completed_deploy(tmp_path):
    cfg = _cfg(tmp_path, COLD_KEY_NAME="cold-1", SEED_API_URL="http://198.51.100.9:8000")
    text = _report(cfg, Account("present", 120_500_000_000), MODELS)
    assert text.splitlines()[0] == "Deployment of node-a on 198.51.100.7 completed (verify: 11 PASS, 1 WARN, 0 FAIL)."
    # one line per file, each saying what it is
    for name in ["config.env", "known_hosts", "report.txt", "verification.txt", "warm_address.txt", "warm_key.txt"]:
        line = next(ln for ln in text.splitlines() if ln.strip().startswith(name + " "))
        assert len(line.split(None, 1)[1]) > 5, line
    assert "logs/node-a_20250101-000000.log" in text
    # the participant link is the participant (/v2), the account link is the account (/v1)
    assert f"participant:  http://198.51.100.9:8000/v2/participants/{cfg.cold_address}" in text
    assert f"http://198.51.100.9:8000/v1/participants/{cfg.cold_address}" in text.split("Cold account", 1)[1]
    assert "http://198.51.100.7:8000/" in text
    # the grant command, whole, as item 1 of what is left to do with the cold key
    assert grant_form("cold-1", WARM, "http://198.51.100.9:8000") in one_line(text)
    marker = next(i for i, ln in enumerate(text.splitlines()) if "LEFT TO DO" in ln)
    assert "cold key" in text.splitlines()[marker]
    assert "grant-ml-ops-permissions" in "\n".join(text.splitlines()[marker:marker + 5])
    assert "warm_key.txt" in text.split("Back up", 1)[1]
    assert ".dapi/gonka.db" in text.split("Back up", 1)[1]
    assert cfg["KEYRING_PASSWORD"] not in text


def test_report_states_the_cold_balance_and_what_the_fee_allowance_needs(tmp_path):
    cfg = _cfg(tmp_path)
    rich = _report(cfg, Account("present", 120_500_000_000))
    assert "balance 120500000000 ngonka (120.5 GNK)" in rich
    assert "10 GNK (10000000000 ngonka)" in rich and "100 GNK" in rich
    assert "TOP IT UP" not in rich
    poor = _report(cfg, Account("present", 2_000_000_000))
    assert "balance 2000000000 ngonka (2 GNK)" in poor and "TOP IT UP" in poor
    assert "no such account" in _report(cfg, Account("absent"))
    assert "never signed" in _report(cfg, Account("no_pubkey"))
    assert "balance unknown (the seed did not answer)" in _report(cfg, None)


def test_report_prints_collateral_and_poc_commands_filled_in(tmp_path):
    cfg = _cfg(tmp_path, COLD_KEY_NAME="cold-1", SEED_API_URL="http://198.51.100.9:8000",
               MODEL="moonshotai/Kimi-K2.6")
    text = one_line(_report(cfg, Account("present", 10**11), MODELS))
    tail = "--from cold-1 --keyring-backend file --node http://198.51.100.9:8000/chain-rpc/ --chain-id gonka-testnet-7"
    assert f"./inferenced tx collateral deposit-collateral <DEPOSIT>ngonka {tail}" in text
    poc = f"{tail} --gas auto --gas-adjustment 1.3 -y"
    assert f"./inferenced tx inference declare-poc-intent moonshotai/Kimi-K2.6 {poc}" in text
    for other in ("MiniMaxAI/MiniMax-M2.7", "deepseek-ai/DeepSeek-V4-Flash-0731"):
        assert f"./inferenced tx inference set-poc-delegation {other} <DELEGATEE_ADDRESS> {poc}" in text
        assert f"./inferenced tx inference refuse-poc-delegation {other} {poc}" in text
    assert "set-poc-delegation moonshotai/Kimi-K2.6" not in text  # the served model is not delegated
    # without the governance list the commands still come, with a placeholder model
    assert "refuse-poc-delegation <MODEL_ID>" in one_line(_report(cfg))


def test_report_of_a_failed_deploy_names_the_phase(tmp_path):
    cfg = _cfg(tmp_path)
    text = report_text(cfg, failed="phase 4 (start-base): node RPC not ready", log_path="logs/x.log",
                       warm_address=None, files=["report.txt"])
    assert text.splitlines()[0] == "Deployment of node-a FAILED: phase 4 (start-base): node RPC not ready"
    assert "rerun" in text.splitlines()[1]
    assert "grant-ml-ops-permissions" in text
    assert "--chain-id gonka-mainnet" in text  # upstream's chain id when the seed was not asked


# ----------------------------------------------------------------- the verification report's log scan
def test_log_scan_quotes_each_container_once_with_secrets_masked():
    from gonka_tasks.phases.verify import scan_logs  # noqa: PLC0415
    from gonka_tasks.session.log import Redactor  # noqa: PLC0415

    secret = "pa$$ 'word' 123"
    text = "\n".join([
        "api-1      | time=x level=INFO msg=started",
        f"bridge     | ERROR keyring: cannot unlock with {secret}",
        f"bridge     | ERROR keyring: cannot unlock with {secret}",
        "node       | panic: runtime error: index out of range",
        "tmkms      | connection refused, reconnecting",
        *["proxy      | connect() failed (111: Connection refused)"] * 12,
        "mlnode-308 | torch.OutOfMemoryError: CUDA out of memory",
    ])
    hits = scan_logs(text, Redactor([secret]))
    assert hits == [
        "error in bridge: 'ERROR keyring: cannot unlock with ***' (x2)",
        "panic in node: 'panic: runtime error: index out of range'",
        "out of memory in mlnode-308: 'torch.OutOfMemoryError: CUDA out of memory'",
        "connection refused storm in proxy: 12 lines",
    ]


def test_log_scan_of_unprefixed_lines_and_a_quiet_log():
    from gonka_tasks.phases.verify import scan_logs  # noqa: PLC0415

    assert scan_logs("all good\nlevel=INFO ready\n", str) == []
    assert scan_logs("ERROR boom", str) == ["error: 'ERROR boom'"]
    assert scan_logs("connection refused\n" * 9, str) == []
    # words that merely contain a pattern are no trouble
    assert scan_logs("api-1 | no room left in the queue, zoom level 3, errors=0", str) == []
    # the specific label wins over the generic one
    assert scan_logs("mlnode-1 | level=error msg=\"CUDA error: an illegal memory access\"", str) == [
        "CUDA error in mlnode-1: 'level=error msg=\"CUDA error: an illegal memory access\"'"]


def test_listening_addresses_from_ss():
    from gonka_tasks.core.preflight import parse_listen_ports as listening  # noqa: PLC0415

    ss = ("LISTEN 0      5          0.0.0.0:5050  0.0.0.0:*\n"
          "LISTEN 0      5        127.0.0.1:9200  0.0.0.0:*\n"
          "LISTEN 0      4096          [::]:8080     [::]:*\n"
          "LISTEN 0      5      127.0.10.2:26657 0.0.0.0:*\n")
    assert listening(ss) == {5050: ["0.0.0.0"], 9200: ["127.0.0.1"], 8080: ["::"], 26657: ["127.0.10.2"]}
