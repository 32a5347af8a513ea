"""Pure renderers: config.env, node-config.json, the fstab line. No I/O here."""

from __future__ import annotations

import json
import shlex

from gonka_tasks.config import NodeConfig

# config.env variables in GONKA.md's order: (name, value from the config)
CONFIG_ENV_ORDER = (
    "KEY_NAME", "KEYRING_PASSWORD", "API_PORT", "API_SSL_PORT", "PUBLIC_URL", "P2P_EXTERNAL_ADDRESS",
    "ACCOUNT_PUBKEY", "NODE_CONFIG", "HF_HOME", "SEED_API_URL", "SEED_NODE_RPC_URL", "SEED_NODE_P2P_URL",
    "DAPI_API__POC_CALLBACK_URL", "DAPI_CHAIN_NODE__URL", "DAPI_CHAIN_NODE__P2P_URL",
    "RPC_SERVER_URL_1", "RPC_SERVER_URL_2", "PORT", "INFERENCE_PORT", "KEYRING_BACKEND",
)


def config_env_values(cfg: NodeConfig) -> dict[str, str]:
    """The variables of config.env (GONKA.md's table) with this node's values."""
    v = cfg.values
    return {
        "KEY_NAME": v["KEY_NAME"],
        "KEYRING_PASSWORD": v["KEYRING_PASSWORD"],
        "API_PORT": v["API_PORT"],
        "API_SSL_PORT": v["API_SSL_PORT"],
        "PUBLIC_URL": v["PUBLIC_URL"],
        "P2P_EXTERNAL_ADDRESS": v["P2P_EXTERNAL_ADDRESS"],
        "ACCOUNT_PUBKEY": v["ACCOUNT_PUBKEY"],
        "NODE_CONFIG": "./node-config.json",
        "HF_HOME": cfg.hf_home,
        "SEED_API_URL": v["SEED_API_URL"],
        "SEED_NODE_RPC_URL": v["SEED_NODE_RPC_URL"],
        "SEED_NODE_P2P_URL": v["SEED_NODE_P2P_URL"],
        "DAPI_API__POC_CALLBACK_URL": poc_callback_url(cfg),
        "DAPI_CHAIN_NODE__URL": "http://node:26657",
        "DAPI_CHAIN_NODE__P2P_URL": "http://node:26656",
        "RPC_SERVER_URL_1": v["RPC_SERVER_URL_1"],
        "RPC_SERVER_URL_2": v["RPC_SERVER_URL_2"],
        "PORT": v["PORT"],
        "INFERENCE_PORT": v["INFERENCE_PORT"],
        "KEYRING_BACKEND": "file",
    }


def poc_callback_url(cfg: NodeConfig) -> str:
    """Where ML nodes send PoC batches: the api on the compose network, or, once the network node has a
    PRIVATE_IP, that address (docs host/multiple-nodes: ML nodes on other servers must reach it)."""
    ip = cfg.values.get("PRIVATE_IP", "")
    if not ip:
        return "http://api:9100"
    return f"http://[{ip}]:9100" if ":" in ip else f"http://{ip}:9100"


MLNODE_ENV_ORDER = ("HF_HOME", "PORT", "INFERENCE_PORT")


def mlnode_env(cfg: NodeConfig) -> str:
    """config.env of an ML-node server: only what docker-compose.mlnode.yml interpolates (no secret),
    so that `source config.env && docker compose -f docker-compose.mlnode.yml up -d` works by hand too."""
    values = {"HF_HOME": cfg.hf_home, "PORT": cfg.values["PORT"], "INFERENCE_PORT": cfg.values["INFERENCE_PORT"]}
    lines = ["# Written by gonka-deploy for an ML-node server (NODE_KIND=mlnode); rerun `fab add-ml-node` to change it."]
    lines += [f"export {name}={shlex.quote(values[name])}" for name in MLNODE_ENV_ORDER]
    return "\n".join(lines) + "\n"


def image_override(service: str, image: str) -> str:
    """A compose override file that runs `service` from `image` (JSON is YAML: no quoting pitfalls)."""
    return ("# Written by gonka-deploy: the ML node image (MLNODE_IMAGE); not a file of the gonka repository.\n"
            + json.dumps({"services": {service: {"image": image}}}, indent=2) + "\n")


def config_env(cfg: NodeConfig) -> str:
    """config.env: `export NAME=value` lines, every value quoted for bash (it is `source`d)."""
    values = config_env_values(cfg)
    lines = [
        "# Written by gonka-deploy from the node config; edit the node config and rerun `fab configure`.",
        "# Holds KEYRING_PASSWORD: keep this file mode 0600.",
    ]
    lines += [f"export {name}={shlex.quote(values[name])}" for name in CONFIG_ENV_ORDER]
    return "\n".join(lines) + "\n"


def node_config(cfg: NodeConfig, args: list[str] | None = None, hardware: list[dict] | None = None) -> list[dict]:
    """node-config.json's content (upstream apiconfig.InferenceNodeConfig): one ML node serving MODEL
    with its vLLM `args` (the recipe's; MODEL_ARGS when not given) and its GPUs as `hardware`
    (`[{"type": "<name> | <N>GB", "count": n}]`, see recipes.hardware)."""
    return [{
        "id": cfg["ML_NODE_ID"],
        "host": cfg["ML_NODE_HOST"],
        "inference_port": int(cfg["ML_INFERENCE_PORT"]),
        "poc_port": int(cfg["ML_POC_PORT"]),
        "max_concurrent": cfg.max_concurrent,
        "models": {cfg["MODEL"]: {"args": cfg.model_args if args is None else list(args)}},
        "hardware": list(hardware or []),
    }]


def node_config_json(cfg: NodeConfig, **kw) -> str:
    return json.dumps(node_config(cfg, **kw), indent=2) + "\n"


def fstab_line(uuid: str, mount_point: str, fstype: str = "ext4") -> str:
    """One fstab entry keyed on UUID; `nofail` so a missing disk never blocks boot."""
    return f"UUID={uuid} {mount_point} {fstype} defaults,nofail 0 2"


def json_differences(old: str, new: str, limit: int = 8) -> list[str]:
    """Where two JSON texts differ, as paths (`[0].models`, `[0].hardware`); the whole text (`(all)`)
    when either is not JSON. At most `limit` paths, the deepest that still name one field."""
    try:
        a, b = json.loads(old), json.loads(new)
    except ValueError:
        return ["(all)"]
    out: list[str] = []

    def walk(x, y, path: str, depth: int) -> None:
        if x == y or len(out) >= limit:
            return
        if depth < 3 and isinstance(x, dict) and isinstance(y, dict):
            for k in sorted(x.keys() | y.keys(), key=str):
                walk(x.get(k), y.get(k), f"{path}.{k}", depth + 1)
        elif depth < 3 and isinstance(x, list) and isinstance(y, list) and len(x) == len(y):
            for i, (u, v) in enumerate(zip(x, y, strict=True)):
                walk(u, v, f"{path}[{i}]", depth + 1)
        else:
            out.append(path.lstrip(".") or "(all)")

    walk(a, b, "", 0)
    return out
