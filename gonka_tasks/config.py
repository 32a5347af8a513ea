"""NodeConfig: one node's `nodes/<name>.conf` (dotenv format) read, defaulted and validated.

The file is read with python-dotenv's parser (never into `os.environ`), without `${VAR}` interpolation
so that a password containing `$` stays what the operator typed. Validation collects every problem
and raises one `ConfigError` listing them all as `KEY: what is wrong (got '...')`. Secrets are
masked however the line is mistyped: any key that looks like a secret's name has its value hidden,
and every value such a key holds is masked wherever else it shows up in a message.
Defaults follow GONKA.md; everything that changes with the network (model, ref, URLs, peers,
pruning) is a key here, not a constant in code.
"""

from __future__ import annotations

import base64
import binascii
import difflib
import functools
import io
import ipaddress
import json
import re
import shlex
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple
from urllib.parse import urlsplit

from dotenv.parser import parse_stream

from . import paths
from .address import cold_address, pubkey_bytes
from .errors import ConfigError
from .log import MASK, MIN_SECRET_LEN

SECRET_KEYS = frozenset({"KEYRING_PASSWORD", "HF_TOKEN"})
# A key whose letters (case, separators, quotes and invisible characters ignored) contain one of
# these, or come within a typo of one, names a secret: KEYRNG_PASSWORD, keyring-pass, HF TOKEN, MY_SECRET.
_SECRET_WORDS = ("pass", "pasw", "pwd", "token", "tokn", "secret", "mnemonic", "keyring", "privkey", "apikey",
                 "credential")
_SECRET_NEAR = ("password", "passphrase", "token", "secret", "mnemonic", "keyringpassword", "hftoken")
_SECRET_NAMES = ("keyringpassword", "hftoken")
MAX_SHOWN_BAD_KEYS = 10  # ADMIN_SSH_KEYS problems listed one by one; the rest are counted
MAX_SHOWN_LINES = 20  # the same for broken lines and unknown keys (a wrong file given as the config)
TRUE_WORDS = {"1", "true", "yes", "on"}
FALSE_WORDS = {"0", "false", "no", "off", ""}

# key -> default ("" = empty/optional, None = required). Order is the order of `fab validate`'s table.
DEFAULTS: dict[str, str | None] = {
    # server
    "SERVER_IP": None,
    "SSH_USER": "root",
    "SSH_PORT": "22",
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
    "HF_TOKEN": "",
    "HF_ENDPOINT": "",
    "PIP_INDEX_URL": "",
    # disk
    "DATA_DISK": "/dev/vdc",
    "MOUNT_POINT": "/mnt/ssd",
    "ADOPT_DISK": "false",
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
}
KNOWN_KEYS = frozenset(DEFAULTS)

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


@dataclass(frozen=True)
class NodeConfig:
    """A validated node: typed values plus where its artefacts and logs go."""

    path: Path
    values: dict[str, str]
    warnings: tuple[str, ...] = ()
    artefacts_root: Path = field(default=Path("nodes"))
    hidden: tuple[str, ...] = ()  # values of mistyped secret keys (KEYRNG_PASSWORD=...): masked in the log too

    def __getitem__(self, key: str) -> str:
        return self.values[key]

    # server
    @property
    def server_ip(self) -> str:
        return self.values["SERVER_IP"]

    @property
    def ssh_user(self) -> str:
        return self.values["SSH_USER"]

    @property
    def ssh_port(self) -> int:
        return int(self.values["SSH_PORT"])

    @property
    def ssh_key(self) -> str:
        return self.values["SSH_KEY"]

    # identity
    @property
    def key_name(self) -> str:
        return self.values["KEY_NAME"]

    @property
    def keyring_password(self) -> str:
        return self.values["KEYRING_PASSWORD"]

    @property
    def cold_address(self) -> str:
        return cold_address(self.values["ACCOUNT_PUBKEY"])

    @property
    def secrets(self) -> list[str]:
        """Every value the log must mask: the secret keys' values and those of mistyped secret keys."""
        found = [self.values[k] for k in sorted(SECRET_KEYS) if self.values.get(k)]
        return found + [h for h in self.hidden if h not in found]

    # network / model / disk, typed
    @property
    def api_port(self) -> int:
        return int(self.values["API_PORT"])

    @property
    def seed_api_url(self) -> str:
        return self.values["SEED_API_URL"].rstrip("/")

    @property
    def model_args(self) -> list[str]:
        return parse_model_args(self.values["MODEL_ARGS"])

    @property
    def max_concurrent(self) -> int:
        return int(self.values["MAX_CONCURRENT"])

    @property
    def admin_ssh_keys(self) -> list[str]:
        return split_ssh_keys(self.values["ADMIN_SSH_KEYS"])

    @property
    def persistent_peers(self) -> list[str]:
        return [p.strip() for p in self.values["PERSISTENT_PEERS"].split(",") if p.strip()]

    @property
    def mount_point(self) -> str:
        """MOUNT_POINT normalised (`/mnt//ssd/.` is `/mnt/ssd`): the one form every command and check uses."""
        return paths.normalise(self.values["MOUNT_POINT"]) or self.values["MOUNT_POINT"]

    @property
    def data_disk(self) -> str:
        return self.values["DATA_DISK"]

    @property
    def gonka_dir(self) -> str:
        return f"{self.mount_point}/gonka"

    @property
    def join_dir(self) -> str:
        return f"{self.mount_point}/gonka/deploy/join"

    @property
    def hf_home(self) -> str:
        return f"{self.mount_point}/hf"

    def seconds(self, key: str) -> int:
        return int(self.values[key])

    @property
    def state_dir(self) -> str:
        """The deployer's own markers on the server (outside the git checkout)."""
        return f"{self.mount_point}/.gonka-deploy"

    def flag(self, key: str) -> bool:
        return self.values[key].strip().lower() in TRUE_WORDS

    # local places
    @property
    def artefacts(self) -> Path:
        """`nodes/<KEY_NAME>/`: generated files of this node (git-ignored)."""
        return self.artefacts_root / self.key_name

    @property
    def logs_dir(self) -> Path:
        return self.artefacts_root.parent / "logs"

    def display_rows(self) -> list[tuple[str, str]]:
        """(key, value) rows for the parameter table, secrets masked."""
        return [(k, mask(k, self.values[k])) for k in DEFAULTS]


def mask(key: str, value: str) -> str:
    """Show a value as it may appear on a console: a secret's (however short) becomes `***`."""
    if key in SECRET_KEYS or looks_secret(key):
        return MASK if value else ""
    return value


# ---------------------------------------------------------------------------- secrets in messages
def _name_tokens(text: str) -> Iterator[tuple[str, int]]:
    """The letter/digit runs of `text`, lower case and NFKC-folded, each with the index where it ends.

    Unicode format characters (zero-width space, bidi marks: category Cf) are skipped as if absent,
    so `KEY\u200bRING` reads as `keyring`; anything else that is not a letter or digit separates.
    """
    run, end = "", 0
    for i, ch in enumerate(text):
        if not ch.isascii():
            if unicodedata.category(ch) == "Cf":
                continue
            ch = unicodedata.normalize("NFKC", ch)
        if ch.isalnum():
            run, end = run + ch.lower(), i + 1
        elif run:
            yield run, end
            run = ""
    if run:
        yield run, end


def _near(word: str, names: Iterable[str]) -> bool:
    """Within a typo of one of `names`: difflib ratio >= 0.8, after two cheap upper bounds of it
    (lengths, then letters in common) have ruled out the words that are far off, which most are."""
    letters = None
    for n in names:
        total = len(word) + len(n)
        if 2 * min(len(word), len(n)) < 0.8 * total:
            continue
        letters = letters or Counter(word)
        if 2 * sum((letters & Counter(n)).values()) >= 0.8 * total \
                and difflib.SequenceMatcher(None, word, n).ratio() >= 0.8:
            return True
    return False


@functools.lru_cache(maxsize=1024)  # a key is looked at twice: for its value, then for its message
def secret_end(text: str) -> int | None:
    """Where a secret's name in `text` ends (an index into it), or None when `text` names no secret.

    A line names a secret when a word of it contains a secret word (password, token, ...) or is a
    typo of one, or its first words run together are a typo of KEYRING_PASSWORD/HF_TOKEN. A name
    split in two (`KEYRING PASSWORD`) is taken whole, so that only what follows it is hidden.
    """
    joined, prev, end = "", "", None
    for n, (tok, stop) in enumerate(_name_tokens(text)):
        if end is not None:
            if not any(name.startswith(joined + tok) for name in _SECRET_NAMES):
                return end
            joined, end = joined + tok, stop
            continue
        if n == 0 and tok == "export":
            continue
        joined = (joined + tok)[:40]
        if (any(w in prev + tok for w in _SECRET_WORDS) or (n < 4 and 4 <= len(tok) <= 40 and _near(tok, _SECRET_NEAR))
                or (n < 4 and _near(joined, _SECRET_NAMES))):
            end = stop
        prev = tok[-12:]
    return end


def looks_secret(key: str) -> bool:
    """True when a key (however mistyped) names a secret: its value must never be shown."""
    return secret_end(key) is not None


def _redactor(secrets: Iterable[str]) -> Callable[[str], str]:
    """A function masking each secret as typed, escaped (`\\u00e9`), quoted by repr(), shlex or JSON.

    Like the log's Redactor, values shorter than MIN_SECRET_LEN are left alone (validation refuses
    such secrets); plain substring tests keep it fast with many values and many messages.
    """
    forms: set[str] = set()
    for s in secrets:
        if len(s.strip()) >= MIN_SECRET_LEN:
            forms |= {s, s.encode("unicode_escape").decode("ascii"), repr(s)[1:-1], shlex.quote(s), json.dumps(s)[1:-1]}
    ordered = sorted(forms, key=len, reverse=True)  # a quoted form is masked whole, not around its inner part

    def redact(text: str) -> str:
        for form in ordered:
            if form in text:
                text = text.replace(form, MASK)
        return text
    return redact


def _echo(text: str, redact: Callable[[str], str] = str) -> str:
    """A piece of the file for a message: what follows a secret's name hidden, other secrets masked,
    at most 60 characters on one line."""
    text = redact((text.strip().splitlines() or [""])[0])
    end = secret_end(text)
    if end is not None and text[end:]:  # a mistyped `KEYRING PASSWORD=...` line still holds the password
        text = text[:end] + MASK
    return text[:60].encode("unicode_escape").decode("ascii")


def _show(key: str, value: str, redact: Callable[[str], str] = str) -> str:
    shown = redact(mask(key, value))
    if len(shown) > 60:
        shown = shown[:57] + "..."
    return shown.encode("unicode_escape").decode("ascii")


_HEAD = re.compile(r"(line \d+|file|[A-Z0-9_]+): ")


def _mask_message(text: str, redact: Callable[[str], str]) -> str:
    """Mask secrets in a problem or warning; its head (a known key, `line N`, `file`) stays readable."""
    m = _HEAD.match(text)
    if m and (m.group(1) in KNOWN_KEYS or m.group(1) == "file" or m.group(1).startswith("line ")):
        return m.group(0) + redact(text[m.end():])
    return redact(text)


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


def resolve_node_path(node: str, nodes_dir: Path = Path("nodes")) -> Path:
    """`--node nodes/x.conf`, `--node x.conf` or a bare name `x` -> the config file path."""
    p = Path(node).expanduser()
    if p.suffix == ".conf" or "/" in node:
        return p
    return nodes_dir / f"{node}.conf"


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


def validate(values: dict[str, str], *, base_dir: Path | None = None, secrets: Iterable[str] = ()) -> list[str]:
    """Every problem of a defaulted config, as `KEY: what is wrong (got '...')` lines, secrets masked.

    `secrets`: more values to mask (those of mistyped secret keys); the secret keys' own are added.
    """
    problems: list[str] = []
    redact = _redactor([*secrets, *(values.get(k, "") for k in sorted(SECRET_KEYS))])

    def bad(key: str, what: str | None) -> None:
        if what:
            problems.append(f"{key}: {what} (got '{_show(key, values.get(key, ''), redact)}')")

    for key, default in DEFAULTS.items():
        if default is None and not values.get(key, "").strip():
            problems.append(f"{key}: required, missing or empty")
    v = values.get

    if v("SERVER_IP"):
        bad("SERVER_IP", check_host(v("SERVER_IP")))
    if v("SSH_USER") and not re.fullmatch(r"[a-z_][a-z0-9_-]{0,31}\$?", v("SSH_USER")):
        bad("SSH_USER", "not a valid user name")
    for k in ("SSH_PORT", "API_PORT", "API_SSL_PORT", "P2P_PORT", "ML_INFERENCE_PORT", "ML_POC_PORT",
              "PORT", "INFERENCE_PORT"):
        bad(k, check_port(v(k, "")))
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
    if v("PUBLIC_URL") and not check_url(v("PUBLIC_URL")) and not allow_private:
        host = urlsplit(v("PUBLIC_URL")).hostname or ""
        if not is_public_host(host):
            bad("PUBLIC_URL", "is a loopback/private/link-local address, which the chain rejects; use the "
                              "server's public address (or ALLOW_PRIVATE_ADDRESSES=true on a test network)")
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
                problems.append(f"ADMIN_SSH_KEYS: key {i}: {what} (got '{_show('ADMIN_SSH_KEYS', line, redact)}')")
    if bad_keys > MAX_SHOWN_BAD_KEYS:
        problems.append(f"ADMIN_SSH_KEYS: ... and {bad_keys - MAX_SHOWN_BAD_KEYS} more bad keys")
    bad("PRUNING_KEEP_RECENT", _check_int(v("PRUNING_KEEP_RECENT", ""), 2, 10**9))
    bad("PRUNING_INTERVAL", _check_int(v("PRUNING_INTERVAL", ""), 10, 10**9))
    for k in ("RPC_TIMEOUT", "REGISTRATION_TIMEOUT", "LAUNCH_TIMEOUT"):
        bad(k, _check_int(v(k, ""), 1, 86400))
    for k in ("ALLOW_PRIVATE_ADDRESSES", "ALLOW_UNAPPROVED_MODEL", "ADOPT_DISK"):
        bad(k, _check_bool(v(k, "")))
    # checks quote values in their own words (a peer, a URL's port): mask secrets there too
    return [_mask_message(p, redact) for p in problems]


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


class Parsed(NamedTuple):
    """A config file's text, read: values of known keys, problems, warnings, and what to mask."""

    values: dict[str, str]
    problems: list[str]
    warnings: list[str]
    secrets: list[str]  # values of keys that look like a secret's name, mistyped ones included
    typos: dict[str, str]  # known key -> the mistyped key (and its line) that probably meant it


def _lines(numbers: list[int]) -> str:
    head = ", ".join(str(n) for n in numbers[:-1])
    return f"lines {head} and {numbers[-1]}"


def _typo_of(key: str) -> str | None:
    """The known key a mistyped one probably meant (case, `-`, `.`, spaces and invisible characters aside)."""
    plain = re.sub(r"[-. ]", "_", "".join(ch for ch in key if unicodedata.category(ch) != "Cf")).upper()
    close = difflib.get_close_matches(plain[:60], sorted(KNOWN_KEYS), n=1)
    return close[0] if close else None


def _first_line(binding) -> str:
    return (binding.original.string.strip().splitlines() or [""])[0]


def _secrets_in(bindings: list) -> list[str]:
    """The values of every key that looks like a secret's name, and of every broken line that starts with one."""
    found = []
    for b in bindings:
        if b.error:
            first = _first_line(b)
            end = secret_end(first)
            if end is not None:  # the value is whatever follows the name
                found.append(first[end:].strip(" \t=:'\""))
        elif b.key is not None and looks_secret(b.key) and b.value:
            found.append(b.value)
    return found


def parse_text(text: str, source: str = "node config") -> Parsed:
    """dotenv text -> values of known keys, syntax problems, warnings (unknown or repeated keys), secrets."""
    problems: list[str] = []
    warnings: list[str] = []
    typos: dict[str, str] = {}
    if "\0" in text:
        problems.append("file: contains NUL bytes; it is not a text config file")
        return Parsed({}, problems, warnings, [], typos)
    bindings = list(parse_stream(io.StringIO(text)))
    secrets = _secrets_in(bindings)
    redact = _redactor(secrets)  # first, so that no message (cut at 60 characters) shows a piece of one
    values: dict[str, str] = {}
    seen: dict[str, list[int]] = {}
    unknown: list[str] = []
    broken = unknowns = 0  # counted; the first MAX_SHOWN_LINES of each are shown
    for binding in bindings:
        line = binding.original.line
        if binding.error:
            broken += 1
            if broken <= MAX_SHOWN_LINES:
                problems.append(f"line {line}: cannot parse, expected KEY=value "
                                f"(got '{_echo(_first_line(binding), redact)}')")
            continue
        key, value = binding.key, "" if binding.value is None else binding.value
        if key is None:
            continue
        if key in KNOWN_KEYS:
            seen.setdefault(key, []).append(line)
            values[key] = value
            continue
        valid = re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key) is not None
        unknowns, broken = unknowns + valid, broken + (not valid)
        meant = _typo_of(key)
        shown_here = (unknowns if valid else broken) <= MAX_SHOWN_LINES
        if not shown_here and (not meant or meant in typos):
            continue
        shown = _echo(key[:60], redact)
        hint = f"; did you mean {meant}?" if meant else ""
        if meant:
            typos.setdefault(meant, f"line {line} sets {shown}")
        if shown_here and valid:
            unknown.append(f"{shown}: unknown key (line {line}), ignored{hint}")
        elif shown_here:
            problems.append(f"line {line}: {shown}: not a valid key name (use A-Z, 0-9 and _){hint}")
    if broken > MAX_SHOWN_LINES:
        problems.append(f"file: ... and {broken - MAX_SHOWN_LINES} more broken lines")
    if unknowns > MAX_SHOWN_LINES:
        unknown.append(f"file: ... and {unknowns - MAX_SHOWN_LINES} more unknown keys, ignored")
    for key, lines in seen.items():
        if len(lines) > 1:
            times = "twice" if len(lines) == 2 else f"{len(lines)} times"
            warnings.append(f"{key}: set {times} ({_lines(lines)}); the last one is used")
    if not text.strip():
        problems.append("file: is empty; copy nodes/example.conf and fill it in")
    return Parsed(values, [_mask_message(p, redact) for p in problems],
                  [_mask_message(w, redact) for w in unknown + warnings], secrets, typos)


def load(path: Path | str) -> NodeConfig:
    """Read, default and validate a node config file; raise ConfigError with every problem."""
    path = Path(path)
    source = str(path)
    if not path.is_file():
        raise ConfigError([f"file: not found; create it from nodes/example.conf (looked at {path})"], source)
    data = path.read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ConfigError([f"file: not UTF-8 text (byte {e.start}); save it as UTF-8"], source) from None
    if text.startswith("\ufeff"):
        text = text[1:]
    parsed = parse_text(text, source)
    raw, problems = parsed.values, parsed.problems
    values = apply_defaults(raw)
    if not problems or raw:
        problems += validate(values, base_dir=path.parent.parent, secrets=parsed.secrets)
    if problems:
        # a required key that is missing because it was mistyped: say where the typo is
        typos = parsed.typos
        problems = [f"{p} ({typos[p.split(':')[0]]}: a typo?)"
                    if p.endswith(": required, missing or empty") and p.split(":")[0] in typos else p
                    for p in problems]
        raise ConfigError(problems, source)
    return NodeConfig(path=path, values=values, warnings=tuple(parsed.warnings), artefacts_root=path.parent,
                      hidden=tuple(dict.fromkeys(s for s in parsed.secrets if s)))
