"""The keys of a node config: their defaults, which ones are secret, and how their values read.

Defaults follow the Gonka host docs; everything that changes with the network (model, ref, URLs,
peers, pruning) is a key here, not a constant in code.
"""

from __future__ import annotations

import json
import shlex

SECRET_KEYS = frozenset({"KEYRING_PASSWORD", "HF_TOKEN"})
TRUE_WORDS = {"1", "true", "yes", "on"}
FALSE_WORDS = {"0", "false", "no", "off", ""}

# key -> default ("" = empty/optional, None = required). Order is the order of `fab validate`'s table.
DEFAULTS: dict[str, str | None] = {
    # server
    "SERVER_IP": None,
    # how SSH reaches it: SSH_HOST may be a ~/.ssh/config alias (HostName, User, Port, ProxyJump,
    # IdentityFile apply); empty SSH_USER/SSH_PORT come from there, else root and 22
    "SSH_HOST": "",
    "SSH_USER": "",
    "SSH_PORT": "",
    "SSH_KEY": "",
    # identity and secrets
    "KEY_NAME": None,
    "KEYRING_PASSWORD": None,
    "ACCOUNT_PUBKEY": None,
    "COLD_KEY_NAME": "gonka-account-key",
    # network
    "PUBLIC_URL": "",
    "P2P_EXTERNAL_ADDRESS": "",
    "API_PORT": "8000",
    "API_SSL_PORT": "8443",
    "P2P_PORT": "5000",
    "SEED_API_URL": "http://node2.gonka.ai:8000",
    "SEED_NODE_RPC_URL": "http://node2.gonka.ai:8000/chain-rpc/",
    "SEED_NODE_P2P_URL": "tcp://node2.gonka.ai:5000",
    "RPC_SERVER_URL_1": "http://node1.gonka.ai:8000/chain-rpc/",
    "RPC_SERVER_URL_2": "http://node2.gonka.ai:8000/chain-rpc/",
    "ALLOW_PRIVATE_ADDRESSES": "false",
    "INTERNAL_BIND_ADDRESS": "127.0.0.1",
    "PERSISTENT_PEERS": "",
    # model
    "MODEL": "MiniMaxAI/MiniMax-M2.7",
    "MODEL_REVISION": "main",
    "MODEL_ARGS": "[]",
    "MAX_CONCURRENT": "500",
    "ML_NODE_ID": "node1",
    "ML_NODE_HOST": "inference",
    "ML_INFERENCE_PORT": "5000",
    "ML_POC_PORT": "8080",
    "PORT": "8080",
    "INFERENCE_PORT": "5050",
    "ALLOW_UNAPPROVED_MODEL": "false",
    # model files fetched at once (a hub's CDN caps each connection well below a server's link)
    "DOWNLOAD_WORKERS": "8",
    "HF_TOKEN": "",
    "HF_ENDPOINT": "",
    "PIP_INDEX_URL": "",
    # disk
    "DATA_DISK": "/dev/vdc",
    "MOUNT_POINT": "/mnt/ssd",
    "ADOPT_DISK": "false",
    # room kept on the data disk for the chain's data (it grows for as long as the node runs; the
    # docs ask for a 1 TB disk in all), checked by the preflight next to the model's size
    "CHAIN_DATA_GB": "200",
    # repos
    "GONKA_REPO": "https://github.com/gonka-ai/gonka.git",
    "GONKA_REF": "main",
    "PROMETHEUS_REPO": "",
    # admins and chain tuning
    "ADMIN_SSH_KEYS": "",
    "PRUNING_KEEP_RECENT": "20000",
    "PRUNING_INTERVAL": "512",
    # how long to wait (seconds)
    "RPC_TIMEOUT": "300",
    "REGISTRATION_TIMEOUT": "180",
    "LAUNCH_TIMEOUT": "900",
    # several servers (docs host/multiple-nodes): NODE_KIND=mlnode is a server running only the ML
    # node, tied to its network node (NETWORK_NODE: that node's config, a name or a path).
    # PRIVATE_IP: this server's address on the private network (an ML node is reached there; a
    # network node gets its ML nodes' PoC callbacks there, on 9100). MLNODE_IMAGE: another ML node
    # image than the compose file's (a compose override file; `fab roll-ml-nodes` rolls it out).
    "NODE_KIND": "network",
    "NETWORK_NODE": "",
    "PRIVATE_IP": "",
    "MLNODE_IMAGE": "",
}
KNOWN_KEYS = frozenset(DEFAULTS)


def parse_model_args(text: str) -> list[str]:
    """MODEL_ARGS is a JSON list of strings, or a shell-style word list."""
    text = text.strip()
    if not text:
        return []
    if text.startswith("["):
        try:
            value = json.loads(text)
        except RecursionError:  # "[[[[..." deeper than the JSON decoder goes
            raise ValueError("JSON nested too deeply") from None
        if not isinstance(value, list) or not all(isinstance(a, str) for a in value):
            raise ValueError("must be a JSON list of strings")
        return value
    return shlex.split(text)


def split_ssh_keys(text: str) -> list[str]:
    """ADMIN_SSH_KEYS holds one OpenSSH public key per line, or several separated by `;`."""
    return [k.strip() for chunk in text.splitlines() for k in chunk.split(";") if k.strip()]


def apply_defaults(raw: dict[str, str]) -> dict[str, str]:
    """Fill defaults and the values derived from SERVER_IP (PUBLIC_URL, P2P_EXTERNAL_ADDRESS)."""
    values = {k: (raw.get(k) if raw.get(k) not in (None, "") else (d or "")) for k, d in DEFAULTS.items()}
    ip = values["SERVER_IP"]
    host = f"[{ip}]" if ":" in ip and not ip.startswith("[") else ip
    if ip and not values["PUBLIC_URL"]:
        values["PUBLIC_URL"] = f"http://{host}:{values['API_PORT']}"
    if ip and not values["P2P_EXTERNAL_ADDRESS"]:
        values["P2P_EXTERNAL_ADDRESS"] = f"tcp://{host}:{values['P2P_PORT']}"
    return values
