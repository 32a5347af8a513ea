"""What every parser shares: its error type, JSON read safely, and values made safe to show."""

from __future__ import annotations

import json
import re


class FactError(ValueError):
    """Command output that cannot be understood."""


def load_json(text: str, what: str):
    try:
        return json.loads(text)
    except (ValueError, TypeError, RecursionError) as e:
        raise FactError(f"{what}: not JSON ({e.__class__.__name__})") from None


_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


def is_uuid(text: str | None) -> bool:
    """A filesystem UUID as blkid prints it (and nothing else: it is pasted into mkfs/mount commands)."""
    return bool(text and _UUID.fullmatch(text))


def shown(text: str, limit: int = 60) -> str:
    """A value read from a file or the server, safe to put in a message: one line, escaped, cut short."""
    return text[:limit].encode("unicode_escape").decode("ascii") + ("..." if len(text) > limit else "")


def parse_kv_lines(text: str) -> dict[str, str]:
    """`name value` lines (first word is the name) -> dict."""
    out = {}
    for line in text.splitlines():
        parts = line.split(None, 1)
        if parts:
            out[parts[0]] = parts[1].strip() if len(parts) > 1 else ""
    return out
