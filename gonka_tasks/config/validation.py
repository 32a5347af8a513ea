"""Validation of a defaulted node config: every problem as `KEY: what is wrong (got '...')`.

Each `check_*` returns None when a value is fine, else a short description of what is wrong; the
messages name the key and the fix, with secret values masked.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import re
import unicodedata
from collections.abc import Iterable
from pathlib import Path
from urllib.parse import urlsplit

from gonka_tasks.config import nodekind, paths
from gonka_tasks.config.address import pubkey_bytes
from gonka_tasks.config.confkeys import (
    DEFAULTS,
    FALSE_WORDS,
    SECRET_KEYS,
    TRUE_WORDS,
    parse_model_args,
    split_ssh_keys,
)
from gonka_tasks.config.secretnames import mask_message, redactor, show

MAX_SHOWN_BAD_KEYS = 10  # ADMIN_SSH_KEYS problems listed one by one; the rest are counted
_HOST_LABEL = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$")
_KEY_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
_MODEL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9][A-Za-z0-9_.-]*$")
_GIT_REF = re.compile(r"^(?!.*\.\.)(?!/)[A-Za-z0-9][A-Za-z0-9._/+-]{0,199}$")
_DEVICE = re.compile(r"^/dev/[A-Za-z0-9][A-Za-z0-9/_.:-]*$")
_MOUNT = re.compile(r"^/[A-Za-z0-9_.@/-]+$")
_PEER = re.compile(r"^([0-9a-f]{40})@([^:@\s]+|\[[0-9A-Fa-f:]+\]):(\d{1,5})$")
_SSH_KEY_TYPES = {
    "ssh-ed25519", "ssh-rsa", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521",
    "sk-ssh-ed25519@openssh.com", "sk-ecdsa-sha2-nistp256@openssh.com", "ssh-dss",
}


# ---------------------------------------------------------------------------- validators
# Each returns None when the value is fine, else a short description of what is wrong.

def check_host(v: str) -> str | None:
    try:
        ipaddress.ip_address(v.strip("[]"))
        return None
    except ValueError:
        pass
    if len(v) > 253 or not all(_HOST_LABEL.match(label) for label in v.rstrip(".").split(".")):
        return "not an IPv4/IPv6 address or host name"
    if v.rstrip(".").split(".")[-1].isdigit():
        return "not a valid IPv4 address"
    return None


def check_port(v: str) -> str | None:
    # ASCII digits only: str.isdigit() accepts '²', which int() then rejects.
    if not re.fullmatch(r"[0-9]{1,5}", v) or not 1 <= int(v) <= 65535:
        return "must be a port number 1-65535"
    return None


def _bad_chars(v: str) -> str | None:
    # urlsplit drops tabs and newlines and keeps spaces: a URL that reads fine here breaks on the server
    if any(ch.isspace() or unicodedata.category(ch).startswith("C") for ch in v):
        return "must not contain spaces, tabs, line breaks or control/invisible characters"
    return None


def check_url(v: str, schemes: tuple[str, ...] = ("http", "https")) -> str | None:
    if what := _bad_chars(v):
        return what
    try:
        parts = urlsplit(v)
        port = parts.port
    except ValueError as e:
        return f"not a valid URL ({e})"
    if parts.scheme not in schemes:
        return f"must start with {' or '.join(s + '://' for s in schemes)}"
    if not parts.hostname:
        return "has no host"
    if port is not None and not 1 <= port <= 65535:
        return "port must be 1-65535"
    return check_host(parts.hostname) and "has an invalid host"


def check_repo_url(v: str) -> str | None:
    if v.startswith("-"):  # `git clone --upload-pack=...` runs a command
        return "must not start with '-' (git would read it as an option)"
    if what := _bad_chars(v):
        return what
    m = re.match(r"^[A-Za-z0-9_.-]+@([A-Za-z0-9_.-]+):\S+$", v)  # scp-like git@host:org/repo.git
    if m:
        return check_host(m.group(1)) and "has an invalid host"
    return check_url(v, ("https", "http", "ssh", "git", "file"))


def is_public_host(host: str) -> bool:
    """False for loopback, private, link-local, reserved or unspecified addresses and `localhost`."""
    if host.lower() in ("localhost", "localhost.localdomain") or host.lower().endswith(".localhost"):
        return False
    try:
        ip = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return True  # a host name: the chain resolves it, we cannot judge it here
    return not (ip.is_private or ip.is_loopback or ip.is_link_local or ip.is_reserved
                or ip.is_unspecified or ip.is_multicast)


def check_ssh_public_key(line: str) -> str | None:
    """An OpenSSH public key line: `type base64 [comment]`, the blob naming the same type."""
    fields = line.split()
    if len(fields) < 2:
        return "not an OpenSSH public key ('type base64 [comment]')"
    ktype, blob = fields[0], fields[1]
    if ktype not in _SSH_KEY_TYPES:
        return f"unknown key type {ktype!r}"
    try:
        raw = base64.b64decode(blob, validate=True)
    except (binascii.Error, ValueError):
        return "key data is not base64"
    if len(raw) < 4:
        return "key data too short"
    n = int.from_bytes(raw[:4], "big")
    if raw[4:4 + n] != ktype.encode():
        return "key data does not match its type"
    return None


def check_peer(p: str) -> str | None:
    m = _PEER.match(p)
    if not m:
        return f"peer {p!r} is not id@host:port (id = 40 hex chars)"
    host = m.group(2)
    return (check_host(host) and f"peer {p!r} has an invalid host") or check_port(m.group(3))


def _check_bool(v: str) -> str | None:
    return None if v.strip().lower() in TRUE_WORDS | FALSE_WORDS else "must be true or false"


def _check_int(v: str, lo: int, hi: int) -> str | None:
    # ASCII digits and a length cap: int() refuses strings of more than 4300 digits.
    if not re.fullmatch(r"[0-9]{1,20}", v) or not lo <= int(v) <= hi:
        return f"must be a whole number {lo}-{hi}"
    return None


def validate(values: dict[str, str], *, base_dir: Path | None = None, secrets: Iterable[str] = (),
             raw: dict[str, str] | None = None) -> list[str]:
    """Every problem of a defaulted config, as `KEY: what is wrong (got '...')` lines, secrets masked.

    `secrets`: more values to mask (those of mistyped secret keys); the secret keys' own are added.
    `raw`: the values as written (before defaults), for the keys a node kind refuses.
    """
    problems: list[str] = []
    redact = redactor([*secrets, *(values.get(k, "") for k in sorted(SECRET_KEYS))])

    def bad(key: str, what: str | None) -> None:
        if what:
            problems.append(f"{key}: {what} (got '{show(key, values.get(key, ''), redact)}')")

    mlnode = nodekind.kind_of(values) == nodekind.MLNODE
    for key, default in DEFAULTS.items():
        if default is None and not values.get(key, "").strip() and not (mlnode and key in nodekind.NETWORK_REQUIRED):
            problems.append(f"{key}: required, missing or empty")
    v = values.get

    if v("SERVER_IP"):
        bad("SERVER_IP", check_host(v("SERVER_IP")))
    if v("SSH_HOST"):
        alias = re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,252}", v("SSH_HOST")) or not check_host(v("SSH_HOST"))
        bad("SSH_HOST", None if alias else "not an address, a host name or a ~/.ssh/config alias")
    if v("SSH_USER") and not re.fullmatch(r"[a-z_][a-z0-9_-]{0,31}\$?", v("SSH_USER")):
        bad("SSH_USER", "not a valid user name")
    if v("SSH_PORT"):  # empty: ~/.ssh/config's Port for SSH_HOST, else 22
        bad("SSH_PORT", check_port(v("SSH_PORT")))
    for k in ("API_PORT", "API_SSL_PORT", "P2P_PORT", "ML_INFERENCE_PORT", "ML_POC_PORT",
              "PORT", "INFERENCE_PORT"):
        bad(k, check_port(v(k, "")))
    # the host ports the compose files publish: Docker cannot bind one of them twice. P2P_PORT may be
    # any free port (configure writes it into docker-compose.yml's "<P2P_PORT>:26656" mapping).
    taken = {9100: "the api's fixed port 9100", 9200: "the admin API's fixed port 9200"}
    for k in ("P2P_PORT", "API_PORT", "API_SSL_PORT", "PORT", "INFERENCE_PORT"):
        if not check_port(v(k, "")):
            port = int(v(k, ""))
            if port in taken:
                bad(k, f"the same host port as {taken[port]}; each published port must be different")
            else:
                taken[port] = k
    if v("SSH_KEY"):
        try:
            key_path = Path(v("SSH_KEY")).expanduser()
            if base_dir and not key_path.is_absolute():
                key_path = base_dir / key_path
            found = key_path.is_file()
        except (RuntimeError, OSError, ValueError):  # ~unknown-user, a name too long for the file system
            found = False
        if not found:
            bad("SSH_KEY", "private key file not found")
    if v("KEY_NAME") and not _KEY_NAME.match(v("KEY_NAME")):
        bad("KEY_NAME", "use letters, digits, '.', '_' or '-' (max 63), starting with a letter or digit")
    elif v("KEY_NAME", "").lower().endswith(".conf"):  # nodes/<KEY_NAME>/ would be a node config's name
        bad("KEY_NAME", "must not end in .conf: its folder nodes/<KEY_NAME>/ would clash with the node "
                        "config files; use a plain name, e.g. node1")
    pw = v("KEYRING_PASSWORD", "")
    # spaces at the ends do not count: the log masks a secret only by what is between them
    if pw and len(pw.strip()) < 12:
        ends = " (spaces at the ends do not count)" if pw != pw.strip() else ""
        bad("KEYRING_PASSWORD", f"too short: {len(pw.strip())} characters, at least 12 needed{ends}")
    if pw and ("\n" in pw or "\r" in pw or "\0" in pw):
        bad("KEYRING_PASSWORD", "must be one line without NUL characters")
    hf = v("HF_TOKEN", "")
    if hf and not re.fullmatch(r"[!-~]{8,}", hf):  # also long enough for the log to mask it
        bad("HF_TOKEN", "must be one line of printable ASCII without spaces, at least 8 characters; a Hugging "
                        "Face token looks like hf_... (huggingface.co/settings/tokens)")
    if v("ACCOUNT_PUBKEY"):
        try:
            pubkey_bytes(v("ACCOUNT_PUBKEY"))
        except ValueError as e:
            bad("ACCOUNT_PUBKEY", str(e))
    if v("COLD_KEY_NAME") is not None and not _KEY_NAME.match(v("COLD_KEY_NAME", "")):
        bad("COLD_KEY_NAME", "use letters, digits, '.', '_' or '-'")

    allow_private = v("ALLOW_PRIVATE_ADDRESSES", "").strip().lower() in TRUE_WORDS
    url_keys = ("PUBLIC_URL", "SEED_API_URL", "SEED_NODE_RPC_URL", "RPC_SERVER_URL_1", "RPC_SERVER_URL_2")
    for k in url_keys:
        if v(k):
            bad(k, check_url(v(k)))
    for k in ("HF_ENDPOINT", "PIP_INDEX_URL"):
        if v(k):
            bad(k, check_url(v(k)))
    for k in ("P2P_EXTERNAL_ADDRESS", "SEED_NODE_P2P_URL"):
        if v(k):
            bad(k, check_url(v(k), ("tcp",)))
    allow_private = allow_private or mlnode  # an ML-node server announces nothing to the chain
    if v("PUBLIC_URL") and not check_url(v("PUBLIC_URL")) and not allow_private:
        host = urlsplit(v("PUBLIC_URL")).hostname or ""
        if not is_public_host(host):
            bad("PUBLIC_URL", "is a loopback/private/link-local address, which the chain rejects; use the "
                              "server's public address (or ALLOW_PRIVATE_ADDRESSES=true on a test network)")
    # behind NAT the server's own address is private: what peers dial must be the public one
    p2p = v("P2P_EXTERNAL_ADDRESS")
    if p2p and not check_url(p2p, ("tcp",)) and not allow_private and not is_public_host(urlsplit(p2p).hostname or ""):
        bad("P2P_EXTERNAL_ADDRESS", "is a loopback/private/link-local address that other nodes cannot dial; set it "
                                    "to tcp://<public address>:<P2P_PORT> (or ALLOW_PRIVATE_ADDRESSES=true on a test "
                                    "network)")
    if v("INTERNAL_BIND_ADDRESS"):
        try:
            ipaddress.ip_address(v("INTERNAL_BIND_ADDRESS"))
        except ValueError:
            bad("INTERNAL_BIND_ADDRESS", "must be an IP address (127.0.0.1 keeps internal ports off the internet)")
    for p in [p.strip() for p in v("PERSISTENT_PEERS", "").split(",") if p.strip()]:
        what = check_peer(p)
        if what:
            bad("PERSISTENT_PEERS", what)

    if v("MODEL") and not _MODEL.match(v("MODEL")):
        bad("MODEL", "must be a Hugging Face repo id like Org/Name")
    if v("MODEL_REVISION") and not _GIT_REF.match(v("MODEL_REVISION")):
        bad("MODEL_REVISION", "not a valid revision (branch, tag or commit sha)")
    try:
        parse_model_args(v("MODEL_ARGS", ""))
    except ValueError as e:
        bad("MODEL_ARGS", f"cannot parse: {e}")
    bad("MAX_CONCURRENT", _check_int(v("MAX_CONCURRENT", ""), 1, 100000))
    if v("ML_NODE_ID") and not _KEY_NAME.match(v("ML_NODE_ID")):
        bad("ML_NODE_ID", "use letters, digits, '.', '_' or '-'")
    if v("ML_NODE_HOST") and ("://" in v("ML_NODE_HOST") or check_host(v("ML_NODE_HOST"))):
        bad("ML_NODE_HOST", "a host name without scheme, e.g. inference")

    if not _DEVICE.match(v("DATA_DISK", "")) or ".." in v("DATA_DISK", ""):
        bad("DATA_DISK", "must be a block device path under /dev/, e.g. /dev/vdc")
    mp = v("MOUNT_POINT", "")
    norm = paths.normalise(mp) if _MOUNT.match(mp) else None
    if norm is None:
        bad("MOUNT_POINT", "must be an absolute path without spaces or '..', e.g. /mnt/ssd")
    elif where := paths.system_dir(norm):
        what = f"is the system directory {where}" if where == norm else f"lies in the system directory {where}"
        bad("MOUNT_POINT", f"{what}; mounting the data disk there would hide the system's files at every boot; "
                           "use e.g. /mnt/ssd")

    bad("GONKA_REPO", check_repo_url(v("GONKA_REPO", "")))
    if v("PROMETHEUS_REPO"):
        bad("PROMETHEUS_REPO", check_repo_url(v("PROMETHEUS_REPO")))
    if not _GIT_REF.match(v("GONKA_REF", "")):
        bad("GONKA_REF", "not a valid git ref (tag, branch or commit)")
    bad_keys = 0
    for i, line in enumerate(split_ssh_keys(v("ADMIN_SSH_KEYS", "")), 1):
        what = check_ssh_public_key(line)
        if what:
            bad_keys += 1
            if bad_keys <= MAX_SHOWN_BAD_KEYS:  # thousands of lines would bury every other problem
                problems.append(f"ADMIN_SSH_KEYS: key {i}: {what} (got '{show('ADMIN_SSH_KEYS', line, redact)}')")
    if bad_keys > MAX_SHOWN_BAD_KEYS:
        problems.append(f"ADMIN_SSH_KEYS: ... and {bad_keys - MAX_SHOWN_BAD_KEYS} more bad keys")
    bad("PRUNING_KEEP_RECENT", _check_int(v("PRUNING_KEEP_RECENT", ""), 2, 10**9))
    bad("PRUNING_INTERVAL", _check_int(v("PRUNING_INTERVAL", ""), 10, 10**9))
    if not re.fullmatch(r"[1-9][0-9]?", v("DOWNLOAD_WORKERS", "8")) or int(v("DOWNLOAD_WORKERS", "8")) > 64:
        bad("DOWNLOAD_WORKERS", "a whole number from 1 to 64")
    try:
        if not 0 <= float(v("CHAIN_DATA_GB", "0")) < 1e6:
            raise ValueError
    except ValueError:
        bad("CHAIN_DATA_GB", "not a number of GB (e.g. 200)")
    for k in ("RPC_TIMEOUT", "REGISTRATION_TIMEOUT", "LAUNCH_TIMEOUT"):
        bad(k, _check_int(v(k, ""), 1, 86400))
    for k in ("ALLOW_PRIVATE_ADDRESSES", "ALLOW_UNAPPROVED_MODEL", "ADOPT_DISK"):
        bad(k, _check_bool(v(k, "")))
    problems += nodekind.kind_problems(raw if raw is not None else values, values)
    # checks quote values in their own words (a peer, a URL's port): mask secrets there too
    return [mask_message(p, redact) for p in problems]
