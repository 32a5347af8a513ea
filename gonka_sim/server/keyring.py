"""Cosmos SDK keyrings (``file`` and ``test`` backends) as files on disk, with the real prompts.

Layout like the SDK's: ``<home>/keyring-file/NAME.info`` and ``<hexaddr>.address`` (both
encrypted with the passphrase, JWE-looking) plus ``keyhash`` (a hash of the passphrase, written
the first time a passphrase is set). ``keyring-test`` uses the fixed passphrase "test" and never
asks. Passphrase handling follows the SDK's file backend: the passphrase is read from stdin
(prompts shown only on a terminal), asked twice while there is no keyhash yet, at least 8
characters, 3 attempts.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
import sys
import time
from pathlib import Path

MIN_PASS = 8
ATTEMPTS = 3
ROUNDS = 8192


class KeyringError(Exception):
    """Printed as ``Error: <message>`` by the CLI."""


class KeyNotFound(KeyringError):
    pass


def _b64u(b: bytes) -> str:
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def _unb64u(s: str) -> bytes:
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def _keys(password: str, salt: bytes) -> tuple[bytes, bytes]:
    k = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, ROUNDS)
    return hashlib.sha256(k + b"enc").digest(), hashlib.sha256(k + b"mac").digest()


def _stream(key: bytes, iv: bytes, n: int) -> bytes:
    out = bytearray()
    counter = 0
    while len(out) < n:
        out += hashlib.sha256(key + iv + counter.to_bytes(8, "big")).digest()
        counter += 1
    return bytes(out[:n])


def seal(plain: bytes, password: str) -> str:
    salt, iv = secrets.token_bytes(16), secrets.token_bytes(12)
    enc, mac = _keys(password, salt)
    ct = bytes(a ^ b for a, b in zip(plain, _stream(enc, iv, len(plain)), strict=True))
    tag = hmac.new(mac, iv + ct, hashlib.sha256).digest()[:16]
    header = {"alg": "PBES2-HS256+A128KW", "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
              "enc": "A256GCM", "p2c": ROUNDS, "p2s": _b64u(salt)}
    return ".".join([_b64u(json.dumps(header, separators=(",", ":")).encode()), _b64u(salt), _b64u(iv), _b64u(ct),
                     _b64u(tag)])


def unseal(blob: str, password: str) -> bytes:
    try:
        _h, salt, iv, ct, tag = (_unb64u(p) for p in blob.strip().split("."))
    except ValueError:
        raise KeyringError("square/go-jose: compact JWE format must have five parts") from None
    enc, mac = _keys(password, salt)
    if not hmac.compare_digest(hmac.new(mac, iv + ct, hashlib.sha256).digest()[:16], tag):
        raise KeyringError("aes.KeyUnwrap(): integrity check failed.")
    return bytes(a ^ b for a, b in zip(ct, _stream(enc, iv, len(ct)), strict=True))


class LineReader:
    """Lines from stdin, shared by every prompt of one command (like the SDK's bufio reader)."""

    def __init__(self, stream=None):
        self.stream = stream if stream is not None else sys.stdin.buffer

    def readline(self) -> str | None:
        line = self.stream.readline()
        if not line:
            return None
        return line.decode(errors="replace").rstrip("\r\n")


def _tty() -> bool:
    try:
        return os.isatty(0)
    except OSError:
        return False


def prompt(text: str) -> None:
    """Prompts only appear on a terminal, as with the SDK's input package."""
    if _tty():
        sys.stderr.write(text + " ")
        sys.stderr.flush()


class Keyring:
    def __init__(self, keyring_dir: Path, backend: str, reader: LineReader):
        if backend not in ("file", "test"):
            if backend == "os":
                raise KeyringError("failed to open keyring: The name org.freedesktop.secrets was not provided "
                                   "by any .service files")
            raise KeyringError(f"unknown keyring backend {backend}")
        self.backend = backend
        self.dir = Path(keyring_dir) / f"keyring-{backend}"
        self.reader = reader
        self.password: str | None = "test" if backend == "test" else None

    # -- passphrase --------------------------------------------------------------------------

    def unlock(self) -> str:
        if self.password is not None:
            return self.password
        keyhash_file = self.dir / "keyhash"
        stored = keyhash_file.read_text().strip() if keyhash_file.exists() else None
        for attempt in range(1, ATTEMPTS + 1):
            prompt(f"Enter keyring passphrase (attempt {attempt}/{ATTEMPTS}):")
            pw = self.reader.readline()
            if pw is None:  # the SDK's prompt prints the read error and tries again
                print("EOF", file=sys.stderr)
                continue
            pw = pw.strip()
            if len(pw) < MIN_PASS:
                print(f"password must be at least {MIN_PASS} characters", file=sys.stderr)
                continue
            if stored is not None:
                if not _check_hash(stored, pw):
                    print("incorrect passphrase", file=sys.stderr)
                    continue
                self.password = pw
                return pw
            prompt("Re-enter keyring passphrase:")
            again = (self.reader.readline() or "").strip()
            if again != pw:
                print("passphrase do not match", file=sys.stderr)
                continue
            self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd = os.open(keyhash_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(_make_hash(pw))
            self.password = pw
            return pw
        raise KeyringError("too many failed passphrase attempts")

    # -- records -----------------------------------------------------------------------------

    def has(self, name: str) -> bool:
        return (self.dir / f"{name}.info").is_file()

    def names(self) -> list[str]:
        if not self.dir.is_dir():
            return []
        return sorted(p.name[:-5] for p in self.dir.glob("*.info"))

    def get(self, name: str) -> dict:
        path = self.dir / f"{name}.info"
        if not path.is_file():
            raise KeyNotFound(f"{name}.info: key not found")
        pw = self.unlock()
        return json.loads(unseal(path.read_text(), pw))

    def by_address_hex(self, hexaddr: str) -> dict | None:
        path = self.dir / f"{hexaddr.lower()}.address"
        if not path.is_file():
            return None
        name = unseal(path.read_text(), self.unlock()).decode()
        return self.get(name[:-5] if name.endswith(".info") else name)

    def put(self, record: dict, account_hex: str) -> None:
        pw = self.unlock()
        self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        for fname, data in ((f"{record['name']}.info", json.dumps(record).encode()),
                            (f"{account_hex}.address", f"{record['name']}.info".encode())):
            # like Go's os.WriteFile: truncate, write; an error leaves what was written (maybe nothing)
            path = self.dir / fname
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
                with os.fdopen(fd, "w", buffering=1) as f:
                    f.write(seal(data, pw))
            except OSError as e:
                raise KeyringError(f"write {path}: {(e.strerror or str(e)).lower()}") from None

    def delete(self, name: str) -> None:
        rec = self.get(name)
        (self.dir / f"{name}.info").unlink(missing_ok=True)
        if rec.get("account_hex"):
            (self.dir / f"{rec['account_hex']}.address").unlink(missing_ok=True)


def _make_hash(pw: str) -> str:
    salt = secrets.token_bytes(16)
    return f"$pbkdf2-sha256${ROUNDS}${salt.hex()}${hashlib.pbkdf2_hmac('sha256', pw.encode(), salt, ROUNDS).hex()}"


def _check_hash(stored: str, pw: str) -> bool:
    try:
        _, _, rounds, salt, digest = stored.split("$")
        calc = hashlib.pbkdf2_hmac("sha256", pw.encode(), bytes.fromhex(salt), int(rounds)).hex()
    except ValueError:
        return False
    return hmac.compare_digest(calc, digest)
