"""Reading a node config file's text: python-dotenv's parser (never into `os.environ`, no `${VAR}`
interpolation, so a password containing `$` stays what the operator typed), with every broken line,
unknown key, duplicate and mistyped secret reported, values masked.
"""

from __future__ import annotations

import difflib
import io
import re
import unicodedata
from typing import NamedTuple

from dotenv.parser import parse_stream

from gonka_tasks.config.confkeys import KNOWN_KEYS
from gonka_tasks.config.secretnames import echo, looks_secret, mask_message, redactor, secret_end

MAX_SHOWN_LINES = 20  # the same for broken lines and unknown keys (a wrong file given as the config)


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
    redact = redactor(secrets)  # first, so that no message (cut at 60 characters) shows a piece of one
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
                                f"(got '{echo(_first_line(binding), redact)}')")
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
        shown = echo(key[:60], redact)
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
    return Parsed(values, [mask_message(p, redact) for p in problems],
                  [mask_message(w, redact) for w in unknown + warnings], secrets, typos)
