"""Line-level TOML edits, as the node image's start script makes them (it edits in place too).

Only the ``key = value`` line changes; comments, order and every other line stay as they are.
"""

from __future__ import annotations

import json
import re

HEADER = re.compile(r"^\s*\[\s*([^\]\s]+)\s*\]\s*(#.*)?$")


def _key_re(key: str) -> re.Pattern:
    return re.compile(r"^(\s*)(" + re.escape(key) + r"|\"" + re.escape(key) + r"\")\s*=\s*(.*)$")


def section_span(lines: list[str], section: str) -> tuple[int, int] | None:
    """[start, end) line range of a section's body ("" = top level, before the first header)."""
    start = 0 if section == "" else None
    for i, line in enumerate(lines):
        m = HEADER.match(line)
        if not m:
            continue
        if start is not None:
            return start, i
        if m.group(1) == section:
            start = i + 1
    return (start, len(lines)) if start is not None else None


def literal(value: str, like: str | None = None) -> str:
    """TOML literal for a string from the environment: keep the kind of the old value if known."""
    if like is not None:
        if like.lstrip().startswith(('"', "'")):
            return json.dumps(value)
        return value
    if value in ("true", "false") or re.fullmatch(r"-?\d+(\.\d+)?", value):
        return value
    return json.dumps(value)


def set_value(text: str, section: str, key: str, value_literal: str) -> str:
    """Set ``key = value_literal`` in `section`, appending the key (or the section) if missing."""
    lines = text.splitlines()
    span = section_span(lines, section)
    if span is None:
        lines += ["", f"[{section}]", f"{key} = {value_literal}"]
        return "\n".join(lines) + "\n"
    start, end = span
    rx = _key_re(key)
    for i in range(start, end):
        m = rx.match(lines[i])
        if m:
            lines[i] = f"{m.group(1)}{key} = {value_literal}"
            return "\n".join(lines) + "\n"
    insert = end
    while insert > start and not lines[insert - 1].strip():
        insert -= 1
    lines.insert(insert, f"{key} = {value_literal}")
    return "\n".join(lines) + "\n"


def get_raw(text: str, section: str, key: str) -> str | None:
    """The raw value text of a key (None if absent); comments after the value are kept."""
    lines = text.splitlines()
    span = section_span(lines, section)
    if span is None:
        return None
    rx = _key_re(key)
    for i in range(*span):
        m = rx.match(lines[i])
        if m:
            return m.group(3)
    return None


def set_from_env(text: str, section: str, key: str, value: str) -> str:
    """Set a key to a string that came from the environment, keeping the TOML type of the old value."""
    return set_value(text, section, key, literal(value, get_raw(text, section, key)))
