"""Benchmark of sandbox hosts: up, reset, down, and the cost of SSH on top.

Run as root from the repository root::

    python -m bench.bench_sandbox [--rounds 5] [--idx N]

Each round brings a host up, opens a Fabric connection, runs a few commands, dirties the
host like a deploy would (mkfs, mount, fstab), resets it and takes it down. Prints the
median, minimum and maximum of each step in milliseconds. State goes under
$GONKA_SANDBOX_BASE; the index defaults to $GONKA_SANDBOX_IDX0 + 40, away from test hosts.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the package importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gonka_sim.hosts import host as sandbox  # noqa: E402

STEPS = ("up", "ssh connect", "ssh run (each)", "deploy-like disk work", "reset", "down")


def one_round(name: str, idx: int, base: Path, runs: int = 10) -> dict[str, float]:
    """Seconds per step for one host life cycle."""
    t: dict[str, float] = {}
    t0 = time.perf_counter()
    host = sandbox.SandboxHost.up(name, idx, base=base)
    t["up"] = time.perf_counter() - t0
    try:
        c = host.connection()
        t0 = time.perf_counter()
        c.open()
        t["ssh connect"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        for _ in range(runs):
            c.run("true", hide=True, timeout=30)
        t["ssh run (each)"] = (time.perf_counter() - t0) / runs
        t0 = time.perf_counter()
        c.run("mkfs.ext4 -q /dev/vdc && mkdir -p /mnt/ssd && "
              "echo \"UUID=$(blkid -s UUID -o value /dev/vdc) /mnt/ssd ext4 defaults 0 2\" >> /etc/fstab && "
              "mount -a && dd if=/dev/zero of=/mnt/ssd/f bs=1M count=16 status=none", hide=True, timeout=60)
        t["deploy-like disk work"] = time.perf_counter() - t0
        c.close()
        t0 = time.perf_counter()
        host.reset()
        t["reset"] = time.perf_counter() - t0
    finally:
        t0 = time.perf_counter()
        host.down()
        t["down"] = time.perf_counter() - t0
    return t


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Time sandbox host up/reset/down.")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--idx", type=int, default=sandbox.first_index() + 40)
    args = p.parse_args(argv)
    if why := sandbox.missing_prerequisites():
        print("cannot run sandbox hosts: " + "; ".join(why), file=sys.stderr)
        return 2
    base = sandbox.base_dir()
    sandbox.sweep(base)
    rounds = [one_round(f"b{args.idx}", args.idx, base) for _ in range(args.rounds)]
    print(f"sandbox host timings over {args.rounds} rounds (ms)")
    print(f"{'step':<24}{'median':>9}{'min':>9}{'max':>9}")
    for step in STEPS:
        ms = [r[step] * 1000 for r in rounds if step in r]
        print(f"{step:<24}{statistics.median(ms):>9.1f}{min(ms):>9.1f}{max(ms):>9.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
