"""Secret-looking config keys and the masking of their values in every message.

A key whose letters (case, separators, quotes and invisible characters ignored) name a secret has
its value hidden, however the line around it is mistyped, and every value such a key holds is
masked wherever else it shows up.
"""

from __future__ import annotations

import difflib
import functools
import json
import re
import shlex
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterable, Iterator

from gonka_tasks.config.confkeys import KNOWN_KEYS, SECRET_KEYS

MASK = "***"
# shorter values would mask ordinary words; config validation demands longer secrets anyway
MIN_SECRET_LEN = 4

# A key whose letters (case, separators, quotes and invisible characters ignored) contain one of
# these, or come within a typo of one, names a secret: KEYRNG_PASSWORD, keyring-pass, HF TOKEN, MY_SECRET.
_SECRET_WORDS = ("pass", "pasw", "pwd", "token", "tokn", "secret", "mnemonic", "keyring", "privkey", "apikey",
                 "credential")
_SECRET_NEAR = ("password", "passphrase", "token", "secret", "mnemonic", "keyringpassword", "hftoken")
_SECRET_NAMES = ("keyringpassword", "hftoken")


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


def redactor(secrets: Iterable[str]) -> Callable[[str], str]:
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


def echo(text: str, redact: Callable[[str], str] = str) -> str:
    """A piece of the file for a message: what follows a secret's name hidden, other secrets masked,
    at most 60 characters on one line."""
    text = redact((text.strip().splitlines() or [""])[0])
    end = secret_end(text)
    if end is not None and text[end:]:  # a mistyped `KEYRING PASSWORD=...` line still holds the password
        text = text[:end] + MASK
    return text[:60].encode("unicode_escape").decode("ascii")


def show(key: str, value: str, redact: Callable[[str], str] = str) -> str:
    shown = redact(mask(key, value))
    if len(shown) > 60:
        shown = shown[:57] + "..."
    return shown.encode("unicode_escape").decode("ascii")


_HEAD = re.compile(r"(line \d+|file|[A-Z0-9_]+): ")


def mask_message(text: str, redact: Callable[[str], str]) -> str:
    """Mask secrets in a problem or warning; its head (a known key, `line N`, `file`) stays readable."""
    m = _HEAD.match(text)
    if m and (m.group(1) in KNOWN_KEYS or m.group(1) == "file" or m.group(1).startswith("line ")):
        return m.group(0) + redact(text[m.end():])
    return redact(text)
