"""Edits of the chain's TOML files with tomlkit, which keeps comments and layout.

Only the keys the node's start script does not re-apply on every start are edited here:
`[p2p] persistent_peers` in config.toml and the top-level pruning keys of app.toml.
"""

from __future__ import annotations

import tomlkit
from tomlkit.exceptions import TOMLKitError


class ChainConfigError(ValueError):
    """A chain TOML file that cannot be parsed or lacks what the edit needs."""


def _parse(text: str, name: str):
    try:
        doc = tomlkit.parse(text)
        doc.unwrap()  # tables split across the file are merged lazily: surface their conflicts here
        return doc
    except (TOMLKitError, ValueError) as e:
        raise ChainConfigError(f"{name}: not valid TOML ({e})") from None


def persistent_peers(text: str) -> str:
    doc = _parse(text, "config.toml")
    p2p = doc.get("p2p")
    if not isinstance(p2p, dict) or "persistent_peers" not in p2p:  # absent, or `p2p = 5`, or [[p2p]]
        raise ChainConfigError("config.toml: no [p2p] persistent_peers (not a CometBFT config?)")
    return str(p2p["persistent_peers"])


def set_persistent_peers(text: str, peers: list[str]) -> str:
    """config.toml with `[p2p] persistent_peers` set to the comma-joined peers."""
    doc = _parse(text, "config.toml")
    persistent_peers(text)
    doc["p2p"]["persistent_peers"] = ",".join(peers)
    return tomlkit.dumps(doc)


def pruning(text: str) -> tuple[str, str, str]:
    doc = _parse(text, "app.toml")
    return (str(doc.get("pruning", "")), str(doc.get("pruning-keep-recent", "")), str(doc.get("pruning-interval", "")))


def set_pruning(text: str, keep_recent: int, interval: int) -> str:
    """app.toml with `pruning = "custom"` and the keep-recent/interval values (strings, as the SDK writes them)."""
    doc = _parse(text, "app.toml")
    if "pruning" not in doc:
        raise ChainConfigError("app.toml: no top-level pruning key (not a Cosmos SDK app.toml?)")
    doc["pruning"] = "custom"
    doc["pruning-keep-recent"] = str(keep_recent)
    doc["pruning-interval"] = str(interval)
    return tomlkit.dumps(doc)
