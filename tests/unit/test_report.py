"""The final report: the grant command in exactly the seed's form, filled in with the node's values."""

from __future__ import annotations

import re

import pytest

from gonka_tasks.config import load
from gonka_tasks.report import grant_command, report_text
from tests.helpers import conf_text, write_node

WARM = "gonka1qyqszqgpqyqszqgpqyqszqgpqyqszqgpjnp7du"


def one_line(command: str) -> str:
    """A shell command with its `\\`-newline continuations joined and runs of blanks collapsed."""
    return re.sub(r"\s+", " ", command.replace("\\\n", " ")).strip()


def seed_form(cold: str, warm: str, seed_api_url: str) -> str:
    """GONKA.md, joining step 7: what the operator runs locally with the cold key."""
    return (f"./inferenced tx inference grant-ml-ops-permissions {cold} {warm} --from {cold} "
            f"--keyring-backend file --gas 2000000 --node {seed_api_url}/chain-rpc/")


def _cfg(tmp_path, **kw):
    return load(write_node(tmp_path, conf_text(**kw)))


@pytest.mark.parametrize(("cold", "seed"), [
    ("gonka-account-key", "http://node2.gonka.ai:8000"),
    ("my.cold_key-2", "https://seed.example.org:8443"),
])
def test_grant_command_is_the_seeds_form_with_real_values(tmp_path, cold, seed):
    cfg = _cfg(tmp_path, COLD_KEY_NAME=cold, SEED_API_URL=seed)
    cmd = grant_command(cfg, WARM)
    assert one_line(cmd) == seed_form(cold, WARM, seed)
    # every line but the last ends in a continuation, so it pastes into a shell as one command
    lines = cmd.splitlines()
    assert all(ln.endswith(" \\") for ln in lines[:-1]) and not lines[-1].endswith("\\")


def test_grant_command_default_cold_key_and_trailing_slash_in_seed_url(tmp_path):
    cfg = _cfg(tmp_path, SEED_API_URL="http://node2.gonka.ai:8000/")
    assert one_line(grant_command(cfg, WARM)) == seed_form("gonka-account-key", WARM, "http://node2.gonka.ai:8000")


def test_grant_command_without_warm_address_points_at_the_file(tmp_path):
    cmd = one_line(grant_command(_cfg(tmp_path), None))
    assert "warm_address.txt" in cmd
    assert cmd.startswith("./inferenced tx inference grant-ml-ops-permissions gonka-account-key ")


def test_report_of_a_completed_deploy(tmp_path):
    cfg = _cfg(tmp_path, COLD_KEY_NAME="cold-1", SEED_API_URL="http://198.51.100.9:8000")
    files = ["config.env", "known_hosts", "report.txt", "verification.txt", "warm_address.txt", "warm_key.txt"]
    text = report_text(cfg, failed=None, log_path="logs/node-a_20250101-000000.log", warm_address=WARM,
                       files=files, verification={"PASS": 11, "WARN": 1, "FAIL": 0})
    assert text.splitlines()[0] == "Deployment of node-a on 198.51.100.7 completed (verify: 11 PASS, 1 WARN, 0 FAIL)."
    # one line per file, each saying what it is
    for name in files:
        line = next(ln for ln in text.splitlines() if ln.strip().startswith(name + " "))
        assert len(line.split(None, 1)[1]) > 5, line
    assert "logs/node-a_20250101-000000.log" in text
    assert f"http://198.51.100.9:8000/v1/participants/{cfg.cold_address}" in text
    assert "http://198.51.100.7:8000/" in text
    # the grant command, whole, after the line marking it as the operator's one remaining job
    assert seed_form("cold-1", WARM, "http://198.51.100.9:8000") in one_line(text)
    marker = next(i for i, ln in enumerate(text.splitlines()) if "THE ONE THING LEFT TO DO" in ln)
    assert "grant-ml-ops-permissions" in "\n".join(text.splitlines()[marker:marker + 4])
    assert "warm_key.txt" in text.split("Back up", 1)[1]
    assert cfg["KEYRING_PASSWORD"] not in text


def test_report_of_a_failed_deploy_names_the_phase(tmp_path):
    cfg = _cfg(tmp_path)
    text = report_text(cfg, failed="phase 4 (start-base): node RPC not ready", log_path="logs/x.log",
                       warm_address=None, files=["report.txt"])
    assert text.splitlines()[0] == "Deployment of node-a FAILED: phase 4 (start-base): node RPC not ready"
    assert "rerun" in text.splitlines()[1]
    assert "grant-ml-ops-permissions" in text


# ----------------------------------------------------------------- the verification report's log scan
def test_log_scan_quotes_each_container_once_with_secrets_masked():
    from gonka_tasks.log import Redactor  # noqa: PLC0415
    from gonka_tasks.phases.verify import scan_logs  # noqa: PLC0415

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
    from gonka_tasks.phases.verify import listening  # noqa: PLC0415

    ss = ("LISTEN 0      5          0.0.0.0:5050  0.0.0.0:*\n"
          "LISTEN 0      5        127.0.0.1:9200  0.0.0.0:*\n"
          "LISTEN 0      4096          [::]:8080     [::]:*\n"
          "LISTEN 0      5      127.0.10.2:26657 0.0.0.0:*\n")
    assert listening(ss) == {5050: ["0.0.0.0"], 9200: ["127.0.0.1"], 8080: ["::"], 26657: ["127.0.10.2"]}
