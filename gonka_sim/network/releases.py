"""GitHub's release downloads for gonka, as a server's curl meets them: the upgrade zips of a
version at `https://github.com/gonka-ai/gonka/releases/download/release%2F<version>/<asset>`, which
answer 302 to `release-assets.githubusercontent.com`, where the bytes are.

Assets (upstream's `make build-for-upgrade`: a flat zip of the build output, fixed timestamps):
- `inferenced-amd64.zip`: inferenced, libwasmvm_muslc.x86_64.a, libgcc_s.so.1, wrapped_token.wasm
- `decentralized-api-amd64.zip`: decentralized-api, inferenced, libwasmvm_muslc.x86_64.a, libgcc_s.so.1

The binaries are small stand-in scripts. `checksums(version)` gives the sha256sum lines an upgrade
announcement publishes (the zips and the unpacked binaries); upstream publishes no checksums asset.
Test knobs: `corrupt(version, asset)` serves altered bytes for one asset (its published sum stays),
`extra[path] = bytes` serves any other file on github.com (e.g. an operator's checksums URL), `hits`
lists the requests. `serve_for(host)` binds port 443 on the host's runner-side address (so not
together with `vendorrepos.serve_for` on the same host) and makes the host trust it and resolve the
two names to the runner.
"""

from __future__ import annotations

import hashlib
import http.server
import io
import ssl
import tempfile
import threading
import urllib.parse
import zipfile
from pathlib import Path

from . import vendorrepos

NAMES = ("github.com", "release-assets.githubusercontent.com")
PREFIX = "/gonka-ai/gonka/releases/download/"
ASSETS = {
    "inferenced-amd64.zip": ("inferenced", "libwasmvm_muslc.x86_64.a", "libgcc_s.so.1", "wrapped_token.wasm"),
    "decentralized-api-amd64.zip": ("decentralized-api", "inferenced", "libwasmvm_muslc.x86_64.a", "libgcc_s.so.1"),
}
HOMES = {"inferenced": ".inference", "decentralized-api": ".dapi"}
DAEMON = {"inferenced-amd64.zip": "inferenced", "decentralized-api-amd64.zip": "decentralized-api"}


def member(name: str, version: str, asset: str) -> bytes:
    """One file of a release zip: the daemons are scripts that print their version."""
    if name in ("inferenced", "decentralized-api"):
        return f"#!/bin/sh\n# gonka-sim {name} {version} (from {asset})\necho {version}\n".encode()
    return f"gonka-sim {name} for {version}\n".encode() * 64


def make_zip(version: str, asset: str) -> bytes:
    """The asset as `zip -X -r` of the flat build output makes it (fixed time, unix modes 0755)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for name in ASSETS[asset]:
            info = zipfile.ZipInfo(name, date_time=(2000, 1, 1, 0, 0, 0))
            info.external_attr = (0o100755 << 16)
            info.compress_type = zipfile.ZIP_DEFLATED
            z.writestr(info, member(name, version, asset))
    return buf.getvalue()


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def checksums(version: str) -> str:
    """The lines an announcement publishes: each zip, then each unpacked daemon by its staged path."""
    lines = [f"{sha256(make_zip(version, a))}  {a}" for a in ASSETS]
    for asset, daemon in DAEMON.items():
        lines.append(f"{sha256(member(daemon, version, asset))}  "
                     f"{HOMES[daemon]}/cosmovisor/upgrades/{version}/bin/{daemon}")
    return "\n".join(lines) + "\n"


class _Handler(http.server.BaseHTTPRequestHandler):
    server_version = "GitHub.com"

    def do_GET(self):  # noqa: N802 - http.server's name
        host = (self.headers.get("Host") or "").split(":")[0]
        path = self.path.split("?")[0]
        status, body, location = self.server.owner.answer(host, path)
        self.server.owner.hits.append((host, self.path, status))
        vendorrepos.send_octets(self, status, body, location or "")

    def log_message(self, *args):
        pass


class Releases:
    """The HTTPS server of github.com's release downloads for one host's runner-side address."""

    def __init__(self, ip: str, port: int = 443):
        self.versions: set[str] = set()
        self.corrupted: set[tuple[str, str]] = set()
        self.extra: dict[str, bytes] = {}
        self.hits: list[tuple[str, str, int]] = []
        ca, cert, key = vendorrepos.tls_material(NAMES)
        self.ca = ca
        with tempfile.TemporaryDirectory() as d:
            Path(d, "cert.pem").write_bytes(cert + ca)
            Path(d, "key.pem").write_bytes(key)
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(f"{d}/cert.pem", f"{d}/key.pem")
        self.httpd = http.server.ThreadingHTTPServer((ip, port), _Handler)
        self.httpd.owner = self
        self.httpd.socket = ctx.wrap_socket(self.httpd.socket, server_side=True)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def publish(self, version: str) -> str:
        """Make `version`'s assets downloadable; returns its published checksums text."""
        self.versions.add(version)
        return checksums(version)

    def corrupt(self, version: str, asset: str) -> None:
        """Serve altered bytes for one asset (a broken mirror or a tampered download)."""
        self.corrupted.add((version, asset))

    def asset(self, version: str, asset: str) -> bytes:
        data = make_zip(version, asset)
        return data[:-1] + bytes([data[-1] ^ 0xFF]) if (version, asset) in self.corrupted else data

    def answer(self, host: str, path: str) -> tuple[int, bytes, str]:
        """(status, body, Location) for a GET."""
        if host == "github.com" and path in self.extra:
            return 200, self.extra[path], ""
        if host == "github.com" and path.startswith(PREFIX):
            tag, _, asset = urllib.parse.unquote(path[len(PREFIX):]).rpartition("/")
            version = tag.removeprefix("release/")
            if tag.startswith("release/") and version in self.versions and asset in ASSETS:
                return 302, b"", f"https://release-assets.githubusercontent.com/gonka/{version}/{asset}?sp=r"
        if host == "release-assets.githubusercontent.com" and path.startswith("/gonka/"):
            version, _, asset = path[len("/gonka/"):].partition("/")
            if version in self.versions and asset in ASSETS:
                return 200, self.asset(version, asset), ""
        return 404, b"Not Found", ""

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


def serve_for(host) -> Releases:
    """Start the release host for `host` (close() when done) and make the host reach and trust it."""
    rel = Releases(host.runner_ip)
    host.run("cat >> /etc/ssl/certs/ca-certificates.crt", input=rel.ca.decode())
    host.run("cat >> /etc/hosts", input="".join(f"{host.runner_ip}\t{n}\n" for n in NAMES))
    return rel
