"""Which simulated program a compose service runs, and the container ports that program listens on.

Keyed by service name first (gonka's compose files name services consistently), then by image.
Anything unknown just sleeps until stopped, like a container whose program we do not model.
"""

from __future__ import annotations

KINDS = ("tmkms", "node", "api", "proxy", "mlnode", "inference", "explorer", "bridge", "versiond",
         "prometheus", "node-exporter", "grafana", "generic")

# container port -> what listens there (the runtime attaches a handler per entry)
PORTS: dict[str, dict[int, str]] = {
    "tmkms": {},
    "node": {26656: "p2p", 26657: "rpc", 26658: "privval", 26660: "metrics", 1317: "rest", 9090: "grpc"},
    "api": {9000: "public", 9100: "ml", 9200: "admin"},
    "proxy": {80: "http", 443: "https"},
    "mlnode": {8080: "http", 5000: "http"},
    "inference": {8080: "http", 5000: "http"},
    "explorer": {5173: "http"},
    "bridge": {},
    "versiond": {8080: "http"},  # /healthz and the per-version proxy
    "prometheus": {9090: "http"},
    "node-exporter": {9100: "http"},
    "grafana": {3000: "http"},
    "generic": {},
}

# EXPOSE of each image (what `docker ps` lists as container ports even when nothing publishes them)
EXPOSED = {"node": (26656, 26657), "api": (9000, 9100, 9200), "proxy": (80, 443), "mlnode": (8080,),
           "inference": (80,), "explorer": (5173,), "prometheus": (9090,), "node-exporter": (9100,),
           "grafana": (3000,)}

# Programs that come with the chain binary in their image (inferenced on PATH inside).
# (versiond is an alpine image with only the versiond binary: no inferenced)
CHAIN_KINDS = {"node", "api"}

IMAGES = {
    "tmkms": "ghcr.io/product-science/tmkms-softsign-with-keygen",
    "node": "ghcr.io/product-science/inferenced",
    "api": "ghcr.io/product-science/api",
    "proxy": "ghcr.io/product-science/proxy",
}


def kind_of(service: str, image: str = "") -> str:
    """The simulated program for a service (by name, then by image)."""
    s = service.lower()
    if s.startswith("mlnode"):
        return "mlnode"
    if s in KINDS and s != "generic":
        return s
    img = (image or "").lower().split("@")[0]
    base = img.rsplit("/", 1)[-1].split(":")[0]
    for kind, prefix in IMAGES.items():
        if img.startswith(prefix):
            return kind
    if base == "mlnode":
        return "mlnode"
    if base == "nginx" and "inference" in s:
        return "inference"
    if base in ("prometheus",):
        return "prometheus"
    if base in ("node-exporter", "node_exporter"):
        return "node-exporter"
    if base == "grafana":
        return "grafana"
    return "generic"


def served_ports(kind: str) -> dict[int, str]:
    return PORTS.get(kind, {})
