"""The final report of a deploy: outcome, files, links, the cold account, and the commands the
operator runs with the cold key on their own machine (this tool never holds that key).

Sources (upstream gonka v0.2.13 and the host docs):
- grant: `inferenced tx inference grant-ml-ops-permissions` (inference-chain/x/inference/module/
  commands.go). Since v0.2.12 the same transaction also grants the warm key a fee allowance of
  10 GNK paid by the cold account. Flags as the command's own help gives them (`--gas auto
  --gas-adjustment 1.5 --gas-prices 10ngonka`: the transaction bundles ~20 grants and a fee grant);
  the docs quickstart's `--gas 2000000` predates the fee grant.
- collateral: `tx collateral deposit-collateral <amount>ngonka` (x/collateral/module/autocli.go;
  docs quickstart step 5 for the amount).
- PoC participation per governance model: `tx inference set-poc-delegation <model> <delegatee>`,
  `refuse-poc-delegation <model>`, `declare-poc-intent <model>` (x/inference/module/autocli.go;
  docs quickstart "PoC delegation and refusal").
"""

from __future__ import annotations

from dataclasses import dataclass, field

from gonka_tasks.config import NodeConfig
from gonka_tasks.core import participant

FILE_NOTES = {
    "config.env": "environment for docker compose (holds KEYRING_PASSWORD; 0600)",
    "node-config.json": "ML node definition read by the API on its first start",
    "warm_key.txt": "SECRET: the warm key's mnemonic, the only way to recover it (0600)",
    "warm_address.txt": "the warm key's address (used in the grant command)",
    "registration.txt": "output of register-new-participant",
    "volume.txt": "UUID of the data disk's filesystem (how the disk is recognised as ours)",
    "verification.txt": "results of the last verify, as on the console",
    "verification.json": "the same results, machine-readable",
    "backup": "key backups made by backup-keys (dirs 0700, files 0600)",
    "known_hosts": "the server's pinned SSH host key",
    "report.txt": "this report",
    "last_run.json": "steps and remote commands of the last run (machine-readable)",
}


@dataclass
class AfterJoin:
    """What the seed says that the after-join part of the report needs (all optional)."""

    chain_id: str = participant.DEFAULT_CHAIN_ID
    account: participant.Account | None = None
    models: list[str] = field(default_factory=list)
    """Governance-approved model ids (empty when the seed could not be asked)."""


def _command(head: str, flags: list[str]) -> str:
    """A command over several lines, each but the last ending in a continuation."""
    return " \\\n    ".join([head, *flags])


def grant_command(cfg: NodeConfig, warm_address: str | None) -> str:
    """grant-ml-ops-permissions with this node's values, flags as the command's help gives them."""
    cold = cfg["COLD_KEY_NAME"]
    warm = warm_address or "<warm-address: see warm_address.txt>"
    return _command(f"./inferenced tx inference grant-ml-ops-permissions {cold} {warm}",
                    [f"--from {cold} --keyring-backend file",
                     "--gas auto --gas-adjustment 1.5 --gas-prices 10ngonka",
                     f"--node {cfg.seed_api_url}/chain-rpc/"])


def _cold_tx_flags(cfg: NodeConfig, chain_id: str) -> list[str]:
    """The flags of the docs' cold-key transactions (quickstart, PoC delegation section)."""
    return [f"--from {cfg['COLD_KEY_NAME']} --keyring-backend file",
            f"--node {cfg.seed_api_url}/chain-rpc/ --chain-id {chain_id}"]


def collateral_command(cfg: NodeConfig, chain_id: str) -> str:
    return _command("./inferenced tx collateral deposit-collateral <DEPOSIT>ngonka", _cold_tx_flags(cfg, chain_id))


def poc_commands(cfg: NodeConfig, chain_id: str, models: list[str]) -> list[str]:
    """The per-model PoC choices: the served MODEL's intent, and delegate-or-refuse for the others."""
    flags = [*_cold_tx_flags(cfg, chain_id), "--gas auto --gas-adjustment 1.3 -y"]
    lines = [f"  {cfg['MODEL']} (served by this node): its ML node runs PoC; only in a new model's bootstrap "
             "window declare the intent:", "",
             _command(f"./inferenced tx inference declare-poc-intent {cfg['MODEL']}", flags), ""]
    others = [m for m in models if m != cfg["MODEL"]] or ["<MODEL_ID>"]
    for model in others:
        lines += [f"  {model}: EITHER delegate its PoC to a host that runs it:", "",
                  _command(f"./inferenced tx inference set-poc-delegation {model} <DELEGATEE_ADDRESS>", flags), "",
                  f"  OR refuse {model}:", "",
                  _command(f"./inferenced tx inference refuse-poc-delegation {model}", flags), ""]
    return lines


def account_lines(cfg: NodeConfig, account: participant.Account | None) -> list[str]:
    """The cold account's balance and what the grant needs of it."""
    need = (f"The grant also gives the warm key a fee allowance of up to {participant.gnk(participant.FEE_ALLOWANCE_NGONKA)}"
            f" GNK ({participant.FEE_ALLOWANCE_NGONKA} ngonka) on this account: the warm key's transaction fees are "
            f"paid from it (since v0.2.12); the host docs ask for about {participant.DOCS_COLD_BALANCE_GNK} GNK in it, "
            "plus the collateral below.")
    head = f"Cold account {cfg.cold_address} ({participant.account_url(cfg)}):"
    if account is None or account.state == "unknown":
        why = account.detail if account is not None and account.detail else "the seed did not answer"
        return [head, f"  balance unknown ({why})", f"  {need}"]
    if account.state == "absent":
        return [head, "  no such account on chain yet (balance 0): the registration creates it", f"  {need}",
                f"  Fund it with at least {participant.gnk(participant.FEE_ALLOWANCE_NGONKA)} GNK before the warm key "
                "has fees to pay."]
    if account.state == "no_pubkey":
        return [head, "  it holds coins but has never signed a transaction (the seed shows no balance for it)",
                f"  {need}"]
    lines = [head, f"  balance {participant.balance_text(account)}", f"  {need}"]
    if (account.balance or 0) < participant.FEE_ALLOWANCE_NGONKA:
        lines.append(f"  TOP IT UP: it holds less than the {participant.gnk(participant.FEE_ALLOWANCE_NGONKA)} GNK "
                     "the fee allowance may spend.")
    return lines


def report_text(cfg: NodeConfig, *, failed: str | None, log_path: str, warm_address: str | None,
                files: list[str], verification: dict | None = None, after: AfterJoin | None = None) -> str:
    host = f"[{cfg.server_ip}]" if ":" in cfg.server_ip else cfg.server_ip
    after = after or AfterJoin()
    lines = []
    if failed:
        lines += [f"Deployment of {cfg.key_name} FAILED: {failed}", "Fix the cause and rerun: every step "
                  "checks what is already done and continues from there.", ""]
    else:
        v = ""
        if verification:
            v = f" (verify: {verification['PASS']} PASS, {verification['WARN']} WARN, {verification['FAIL']} FAIL)"
        lines += [f"Deployment of {cfg.key_name} on {cfg.server_ip} completed{v}.", ""]
    lines.append(f"Files in {cfg.artefacts}/:")
    for name in files:
        lines.append(f"  {name:18} {FILE_NOTES.get(name, '')}".rstrip())
    lines += ["", f"Full log: {log_path}", "", "Links:",
              f"  dashboard:    http://{host}:{cfg.api_port}/",
              f"  participant:  {participant.participant_url(cfg)}",
              f"  chain status: {cfg.seed_api_url}/chain-rpc/status", ""]
    lines += [*account_lines(cfg, after.account), ""]
    lines += ["LEFT TO DO, on your own machine with the cold key (this tool never holds it and runs none of these):",
              "", "1. Grant the warm key its permissions (required: the node cannot work without it):", "",
              grant_command(cfg, warm_address), "",
              "It fails with 'failed to get account details' until the registration has landed; grants "
              "expire after 365 days.", "",
              "2. Deposit collateral (without it the node earns only the base weight of its PoC); size DEPOSIT "
              "as the host docs' quickstart step 5 shows:", "",
              collateral_command(cfg, after.chain_id), "",
              "3. Choose PoC participation for each governance model (a model with no choice costs a "
              "per-epoch penalty):", "",
              *poc_commands(cfg, after.chain_id, after.models),
              "Back up now, offline: warm_key.txt, KEYRING_PASSWORD, and the key material "
              f"(`fab backup-keys --node {cfg.path}` copies .tmkms/, .inference/keyring-file/, node_key.json, "
              ".dapi/api-config.yaml and .dapi/gonka.db)."]
    return "\n".join(lines) + "\n"
