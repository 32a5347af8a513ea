"""The vendors' apt repository hosts, as a server's installer meets them: Docker's
(`download.docker.com`) and NVIDIA's container toolkit (`nvidia.github.io`), over HTTPS.

Served (paths as the vendors' install guides name them):

- `https://download.docker.com/linux/{ubuntu,debian}/gpg`: Docker's repository key, armored
- `https://nvidia.github.io/libnvidia-container/gpgkey`: NVIDIA's repository key, armored
- `https://nvidia.github.io/libnvidia-container/stable/deb/nvidia-container-toolkit.list`: the
  sources line the guide pipes through `sed` to add `signed-by`

The keys are real OpenPGP keys made with `gpg` once per process; the TLS certificate for both
names is signed by a sandbox CA. `serve_for(host)` binds port 443 on the host's runner-side
address and makes the host trust it: the CA joins the host's CA bundle and `/etc/hosts` maps the
two names to the runner. The simulated apt-get (`gonka_sim/server/aptsim.py`) then knows the
vendor packages once `apt-get update` has read a sources line for them with its key.
"""

from __future__ import annotations

import datetime
import http.server
import ipaddress
import os
import ssl
import subprocess
import tempfile
import threading
from functools import lru_cache
from pathlib import Path

NAMES = ("download.docker.com", "nvidia.github.io")
NVIDIA_LIST = "deb https://nvidia.github.io/libnvidia-container/stable/deb/$(ARCH) /\n"


@lru_cache(maxsize=1)
def pgp_keys() -> dict[str, bytes]:
    """{"docker": armored public key, "nvidia": ...}, made with gpg in a throwaway home."""
    out = {}
    with tempfile.TemporaryDirectory(prefix="gonka-sim-gpg-") as home:
        os.chmod(home, 0o700)
        for name, uid in (("docker", "Docker Release (CE deb) <docker@docker.com>"),
                          ("nvidia", "NVIDIA CORPORATION (Open Source Projects) <cudatools@nvidia.com>")):
            subprocess.run(["gpg", "--batch", "--homedir", home, "--passphrase", "", "--quick-gen-key", uid,
                            "ed25519", "sign", "never"], check=True, capture_output=True, timeout=60)
            out[name] = subprocess.run(["gpg", "--batch", "--homedir", home, "--armor", "--export", uid],
                                       check=True, capture_output=True, timeout=60).stdout
    return out


@lru_cache(maxsize=4)
def tls_material(names: tuple[str, ...] = NAMES) -> tuple[bytes, bytes, bytes]:
    """(CA cert PEM, server cert PEM, server key PEM) for `names` (default: the vendor names)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "gonka-sim sandbox CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
          .not_valid_after(now + datetime.timedelta(days=30))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                       content_commitment=False, key_encipherment=False, data_encipherment=False,
                                       key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=30))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), critical=False)
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    pem = serialization.Encoding.PEM
    return (ca.public_bytes(pem), cert.public_bytes(pem),
            key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))


def content(host: str, path: str) -> bytes | None:
    """What the vendor host serves at `path`, or None (404)."""
    keys = pgp_keys()
    if host == "download.docker.com" and path in ("/linux/ubuntu/gpg", "/linux/debian/gpg"):
        return keys["docker"]
    if host == "nvidia.github.io" and path == "/libnvidia-container/gpgkey":
        return keys["nvidia"]
    if host == "nvidia.github.io" and path == "/libnvidia-container/stable/deb/nvidia-container-toolkit.list":
        return NVIDIA_LIST.encode()
    return None


def send_octets(handler: http.server.BaseHTTPRequestHandler, status: int, body: bytes, location: str = "") -> None:
    """One whole answer as a file download (the vendors' and GitHub's release hosts answer alike)."""
    handler.send_response(status)
    if location:
        handler.send_header("Location", location)
    handler.send_header("Content-Type", "application/octet-stream")
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body)


class _Handler(http.server.BaseHTTPRequestHandler):
    server_version = "GitHub.com"

    def do_GET(self):  # noqa: N802 - http.server's name
        host = (self.headers.get("Host") or "").split(":")[0]
        body = content(host, self.path.split("?")[0])
        self.server.hits.append((host, self.path, 200 if body is not None else 404))
        send_octets(self, 200 if body is not None else 404, body if body is not None else b"404: Not Found")

    def log_message(self, *args):
        pass


class VendorRepos:
    """The HTTPS server for one host's runner-side address (port 443, as the vendors')."""

    def __init__(self, ip: str, port: int = 443):
        ca, cert, key = tls_material()
        with tempfile.TemporaryDirectory() as d:
            Path(d, "cert.pem").write_bytes(cert + ca)
            Path(d, "key.pem").write_bytes(key)
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(f"{d}/cert.pem", f"{d}/key.pem")
        ipaddress.ip_address(ip)
        self.httpd = http.server.ThreadingHTTPServer((ip, port), _Handler)
        self.httpd.hits = []
        self.httpd.socket = ctx.wrap_socket(self.httpd.socket, server_side=True)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    @property
    def hits(self) -> list[tuple[str, str, int]]:
        return self.httpd.hits

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


def trust_on(host) -> None:
    """Make a sandbox host reach the vendor names at its runner address and trust their certificate."""
    ca = tls_material()[0].decode()
    host.run("cat >> /etc/ssl/certs/ca-certificates.crt", input=ca)
    host.run("cat >> /etc/hosts", input="".join(f"{host.runner_ip}\t{n}\n" for n in NAMES))


def serve_for(host) -> VendorRepos:
    """Start the vendor repos for `host` (close() when done) and make the host use them."""
    repos = VendorRepos(host.runner_ip)
    trust_on(host)
    return repos
