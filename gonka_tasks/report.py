"""The final report of a deploy: outcome, files, links and the grant command the operator runs."""

from __future__ import annotations

from .config import NodeConfig

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


def grant_command(cfg: NodeConfig, warm_address: str | None) -> str:
    """The seed's grant-ml-ops-permissions command with this node's values filled in."""
    cold = cfg["COLD_KEY_NAME"]
    warm = warm_address or "<warm-address: see warm_address.txt>"
    return (f"./inferenced tx inference grant-ml-ops-permissions {cold} {warm} \\\n"
            f"    --from {cold} --keyring-backend file --gas 2000000 \\\n"
            f"    --node {cfg.seed_api_url}/chain-rpc/")


def report_text(cfg: NodeConfig, *, failed: str | None, log_path: str, warm_address: str | None,
                files: list[str], verification: dict | None = None) -> str:
    host = f"[{cfg.server_ip}]" if ":" in cfg.server_ip else cfg.server_ip
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
              f"  participant:  {cfg.seed_api_url}/v1/participants/{cfg.cold_address}",
              f"  chain status: {cfg.seed_api_url}/chain-rpc/status", ""]
    lines += ["THE ONE THING LEFT TO DO, on your own machine with the cold key:", "",
              grant_command(cfg, warm_address), "",
              "It fails with 'failed to get account details' until the registration has landed; grants "
              "expire after 365 days.", "",
              "Back up now, offline: warm_key.txt, KEYRING_PASSWORD, and the key material "
              f"(`fab backup-keys --node {cfg.path}` copies .tmkms/, .inference/keyring-file/ and node_key.json)."]
    return "\n".join(lines) + "\n"
