"""TOML edits as the node image's start script makes them, on tomlkit (comments and layout kept).

The start script sets `CONFIG_<section>__<key>` values from the environment: a value keeps the
TOML type the key already has (a quoted string stays a string, `true` stays a boolean); a new key
is typed from its text.
"""

from __future__ import annotations

import re

import tomlkit
import tomlkit.exceptions
from tomlkit.items import String


def _typed(value: str, old) -> object:
    if isinstance(old, String) or (old is None and not (value in ("true", "false")
                                                         or re.fullmatch(r"-?\d+(\.\d+)?", value))):
        return value
    if value in ("true", "false"):
        return value == "true"
    try:
        return int(value) if re.fullmatch(r"-?\d+", value) else float(value)
    except ValueError:
        return value


def set_value(text: str, section: str, key: str, value: object) -> str:
    """Set `key` in `section` ("" = top level) to a Python value, adding the key or section if missing."""
    doc = tomlkit.parse(text)
    table = doc if section == "" else doc.setdefault(section, tomlkit.table())
    table[key] = value
    return tomlkit.dumps(doc)


def set_from_env(text: str, section: str, key: str, value: str) -> str:
    """Set a key to a string that came from the environment, keeping the TOML type of the old value.

    A file that does not parse is left as it is (the start script's line edits would not match
    either); the node then reports the error when it reads the file.
    """
    try:
        doc = tomlkit.parse(text)
    except tomlkit.exceptions.TOMLKitError:
        return text
    table = doc if section == "" else doc.get(section)
    old = table.get(key) if table is not None else None
    return set_value(text, section, key, _typed(value, old))
