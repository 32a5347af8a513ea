"""Knob defaults of the sandbox harness: upstream waits that only cost time on a sandbox host.

Sandbox hosts serve the tests, the benchmarks and `fab demo`. The simulated server keeps
upstream's timings by default; a few of them are shortened on sandbox hosts through
`/etc/gonka-sim/knobs.defaults.json`, which `simenv.knobs()` reads under knobs.json (so a test
that writes its own knobs.json keeps these unless it sets them itself).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

HARNESS_KNOBS: dict[str, object] = {
    # register-new-participant polls /v2/participants for 30 s and, against upstream's own API,
    # always runs into the timeout (its decoder wants a string status): one tick is enough here
    "register_poll_s": 3,
}


def knob_defaults_tree(cache: Path) -> Path:
    """A provision tree holding etc/gonka-sim/knobs.defaults.json with HARNESS_KNOBS (built once)."""
    text = json.dumps(HARNESS_KNOBS, sort_keys=True) + "\n"
    tree = Path(cache) / f"knob-defaults-{hashlib.sha256(text.encode()).hexdigest()[:12]}"
    target = tree / "etc" / "gonka-sim" / "knobs.defaults.json"
    if not target.exists() or target.read_text() != text:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_suffix(".tmp")
        tmp.write_text(text)
        tmp.replace(target)
    return tree
