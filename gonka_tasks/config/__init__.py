"""Node configs: `nodes/<name>.conf` -> a validated `NodeConfig`, or every problem at once.

`load` (node.py) reads the file (configfile.py), fills defaults (confkeys.py), validates
(validation.py, with nodekind.py, paths.py and address.py) and masks secrets however a line is
mistyped (secretnames.py). Pure but for reading the file: no connection, no log, no console.
"""

from gonka_tasks.config.node import (
    DEFAULTS,
    KNOWN_KEYS,
    SECRET_KEYS,
    NodeConfig,
    apply_defaults,
    load,
    looks_secret,
    mask,
    parse_text,
    resolve_node_path,
    validate,
)

__all__ = ["DEFAULTS", "KNOWN_KEYS", "SECRET_KEYS", "NodeConfig", "apply_defaults", "load", "looks_secret", "mask",
           "parse_text", "resolve_node_path", "validate"]
