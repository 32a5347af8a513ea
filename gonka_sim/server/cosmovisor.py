"""Cosmovisor's directory as the node and api images' entrypoints leave it (`cosmovisor init
/usr/bin/<daemon>` on first start): `<DAEMON_HOME>/cosmovisor/genesis/bin/<DAEMON_NAME>`, a copy of
the image's binary, and `current`, a symlink to the genesis dir by its absolute container path.
Upgrades live beside them in `cosmovisor/upgrades/<plan name>/bin/`; the sim never switches `current`
(no upgrade height is ever reached), so pre-staged upgrades stay where they were put.
"""

from __future__ import annotations

import os
from pathlib import Path


def stand_in(name: str, version: str) -> str:
    """The simulated image's /usr/bin/<name>: a script that says which build it is."""
    return f"#!/bin/sh\n# gonka-sim stand-in for {name} {version} (the image's /usr/bin/{name})\necho {version}\n"


def init(home: Path, container_home: str, name: str, version: str) -> None:
    """`cosmovisor init` once: genesis/bin/<name> (0755) and current -> <container_home>/cosmovisor/genesis."""
    root = home / "cosmovisor"
    if root.exists():
        return
    bin_dir = root / "genesis" / "bin"
    bin_dir.mkdir(parents=True, exist_ok=True)
    binary = bin_dir / name
    binary.write_text(stand_in(name, version))
    os.chmod(binary, 0o755)
    os.symlink(f"{container_home}/cosmovisor/genesis", root / "current")
