"""What each simulated container program does: files it creates, endpoints it answers, log lines.

tmkms      creates .tmkms/ (consensus key) once, then connects to node:26658 and hands over its key
node       first start: .inference/config/{config,app,client}.toml, node_key.json, genesis, data/;
           every start: re-applies p2p.external_address, rpc.laddr, priv_validator_laddr, statesync
           and CONFIG_<section>__<key> env vars (never persistent_peers or pruning); RPC :26657
api        node-config.json read once into .dapi/gonka.db; admin :9200, ML callback :9100, public :9000
proxy      nginx in front of api (/v1), explorer (/) and its own /health
versiond   devshard process manager: polls api:9100/versions, /healthz on :8080; its children open
           the keyring with KEYRING_PASSWORD (versiond.py)
mlnode     uvicorn-style ML node: /health, /api/v1/state, /api/v1/gpu/devices, /v1/models
inference  nginx per the mounted nginx.conf, forwarding to the ML node
explorer, prometheus, node-exporter, grafana: small pages; anything else idles
"""

from __future__ import annotations

from .behaviour import Behaviour, Idle
from .chainnode import Node, Tmkms
from .dapi import Api
from .mlnode import Inference, MLNode
from .versiond import Versiond
from .webfront import Explorer, Grafana, NodeExporter, Prometheus, Proxy

CLASSES = {"tmkms": Tmkms, "node": Node, "api": Api, "proxy": Proxy, "explorer": Explorer, "mlnode": MLNode,
           "inference": Inference, "versiond": Versiond, "prometheus": Prometheus, "node-exporter": NodeExporter, "grafana": Grafana}


def make(rt) -> Behaviour:
    return CLASSES.get(rt.state.get("kind", "generic"), Idle)(rt)
