"""The warm key: `keys add`'s output, addresses and mnemonics, the keyring listing, the pending output
of an interrupted `keys add`, and the irreversible decision `decide_warm_key` (create only after a clear
"not found")."""

from __future__ import annotations

import re
from dataclasses import dataclass
from shlex import quote

from gonka_tasks.facts.base import FactError

_ADDRESS = re.compile(r"\b(gonka1[02-9ac-hj-np-z]{38,58})\b")
_MNEMONIC_LINE = re.compile(r"^\s*([a-z]+(?: [a-z]+){11,23})\s*$")


@dataclass
class NewKey:
    address: str
    mnemonic: str


def parse_keys_add(text: str) -> NewKey:
    """Output of `inferenced keys add` (YAML record + mnemonic, on whichever streams) -> address, mnemonic."""
    addr = None
    for line in text.splitlines():
        m = re.match(r"^\s*(?:-\s*)?address:\s*(\S+)\s*$", line)  # not \s*-?\s*: quadratic on blank lines
        if m and _ADDRESS.fullmatch(m.group(1)):
            addr = m.group(1)
            break
    words = [m.group(1) for line in text.splitlines() if (m := _MNEMONIC_LINE.match(line))]
    mnemonic = next((w for w in reversed(words) if len(w.split()) in (12, 15, 18, 21, 24)), None)
    if not addr:
        raise FactError("keys add: no gonka1... address in the output")
    if not mnemonic:
        raise FactError("keys add: no mnemonic phrase in the output")
    return NewKey(addr, mnemonic)


def is_address(text: str) -> bool:
    return bool(_ADDRESS.fullmatch(text))


def parse_address(text: str) -> str | None:
    """The first gonka1... address in a text (`keys show -a`)."""
    m = _ADDRESS.search(text)
    return m.group(1) if m else None


def parse_mnemonic(text: str) -> str | None:
    """A stored warm_key.txt: the mnemonic line (12-24 lowercase words)."""
    for line in text.splitlines():
        m = _MNEMONIC_LINE.match(line)
        if m and len(m.group(1).split()) in (12, 15, 18, 21, 24):
            return m.group(1)
    return None


@dataclass
class KeyState:
    """What the server says about the warm key: `present` (with its address), `absent`, or
    `unknown` (anything else: a failed or cut probe, an unexpected answer). Only `absent` lets
    `keys add` run; `bad_password` is a known `unknown` with its own fix."""

    state: str  # "present" | "absent" | "unknown" | "bad_password" | "broken"
    address: str | None = None
    reason: str = ""


KEYRING_LISTED = "__GD_KEYRING_LISTED__"
KEYRING_NO_DIR = "__GD_KEYRING_NO_DIR__"


def keyring_listing_probe(keyring_dir: str) -> str:
    """A shell probe whose output `parse_keyring_listing` reads: the file names of the keyring
    directory and a marker, or the marker of a directory that does not exist. Anything else
    (permission denied, not a directory, a cut connection) gives neither marker."""
    d = quote(keyring_dir)
    return (f"if [ -d {d} ]; then ls -A {d} && echo {KEYRING_LISTED}; "
            f"elif [ ! -e {d} ] && [ ! -L {d} ]; then echo {KEYRING_NO_DIR}; fi")


def parse_keyring_listing(text: str) -> set[str] | None:
    """File names in the keyring directory (empty when it does not exist), None when unknown."""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    if lines == [KEYRING_NO_DIR]:
        return set()
    if lines and lines[-1] == KEYRING_LISTED:
        return set(lines[:-1])
    return None


# a keyring entry that exists but does not decode: a write cut short (the file keyring's jose parser)
_BROKEN_ENTRY = ("go-jose", "unexpected end of JSON input", "compact JWE format")
_PASSWORD_ERRORS = ("integrity check failed", "incorrect passphrase", "too many failed passphrase attempts")


def decide_warm_key(name: str, exit_code: int | None, output: str, keyring_files: set[str] | None) -> KeyState:
    """Read `inferenced keys show NAME -a --keyring-backend file` (stdout and stderr together) and
    the keyring directory's listing.

    The Cosmos SDK's `keys show` (client/keys/show.go) exits 1 with
    `NAME is not a valid name or address: <why>` as its last line on stderr (inferenced prints it
    bare; other builds prefix `Error: `) when the name is not in the keyring; <why> is the bech32
    error of reading NAME as an address (`decoding bech32 failed: ...`) or `... key not found`. A key is `absent` only when that exact answer comes back AND the keyring
    directory was listed without `NAME.info`; every other answer is `unknown`.
    """
    lines = [ln.strip() for ln in (output or "").splitlines() if ln.strip()]
    addresses = [ln for ln in lines if _ADDRESS.fullmatch(ln)]
    if exit_code == 0:
        if len(set(addresses)) == 1:
            return KeyState("present", addresses[0], f"address {addresses[0]}")
        return KeyState("unknown", reason="`keys show` exited 0 without one address in its output")
    low = "\n".join(lines).lower()
    if any(e in low for e in _PASSWORD_ERRORS):
        return KeyState("bad_password", reason="KEYRING_PASSWORD does not open the server's keyring")
    prefix = f"{name} is not a valid name or address: "
    if exit_code == 1 and keyring_files and f"{name}.info" in keyring_files and any(
            ln.removeprefix("Error: ").startswith(prefix) and any(b in ln for b in _BROKEN_ENTRY) for ln in lines):
        return KeyState("broken", reason=f"the keyring entry {name}.info cannot be read ({lines[-1][:160]})")
    said_absent = exit_code == 1 and any(
        ln.removeprefix("Error: ").startswith(prefix)
        and (ln.removeprefix("Error: ")[len(prefix):].startswith("decoding bech32 failed") or "key not found" in ln)
        for ln in lines)
    if not said_absent:
        tail = lines[-1][:200] if lines else "no output"
        code = "timed out" if exit_code is None else f"exit code {exit_code}"
        return KeyState("unknown", reason=f"`keys show` gave no clear answer ({code}: {tail})")
    if keyring_files is None:
        return KeyState("unknown", reason="`keys show` says no key, but the keyring directory could not be listed")
    if f"{name}.info" in keyring_files:
        return KeyState("unknown", reason=f"`keys show` says no key, but the keyring holds {name}.info")
    return KeyState("absent", reason="no key of that name in the keyring")


@dataclass
class PendingOutput:
    """A key creation's output kept on the server, as the deployer reads it back."""

    text: str                # what `keys add` printed (markers and NUL padding removed)
    exit_code: int | None    # None while it runs (or if it died before finishing)
    alive: bool              # the creating process still runs


def parse_pending_output(text: str, rc_mark: str, pid_mark: str, alive_mark: str) -> PendingOutput:
    """The pending file as `cat`-ed with the liveness marker appended -> PendingOutput."""
    out, code, alive = [], None, False
    for line in text.replace("\0", "").splitlines():
        if line.startswith(rc_mark):
            rest = line[len(rc_mark):].strip()
            code = int(rest) if rest.isdigit() else -1
        elif line.strip() == alive_mark:
            alive = True
        elif not line.startswith(pid_mark):
            out.append(line)
    return PendingOutput("\n".join(out), code, alive)
