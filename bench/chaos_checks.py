"""What a converged deploy looks like, checked on the host as an operator would: every service up,
the data disk formatted once and mounted from one fstab line, the warm key made once with its
mnemonic saved locally, one registration, the chain settings, nothing pending, no temp files."""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the package importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import tomlkit  # noqa: E402

from bench.chaos_host import (  # noqa: E402
    COMPOSE_FILES,
    DISK,
    JOIN,
    MOUNT,
    PENDING_DIR,
    STATE_DIR,
    TIMESTAMP_RE,
    _changed_lines,
    _services,
    mkfs_calls,
    mnemonic_address,
    server_key_address,
    sim_counters,
)
from gonka_sim.hosts import lab as lablib  # noqa: E402
from gonka_tasks import facts  # noqa: E402
from gonka_tasks.config.address import cold_address  # noqa: E402


# ------------------------------------------------------------------------------ the checks
def state_problems(host, lab: lablib.Lab, seed, name: str) -> list[str]:
    """What differs from the end state of an uninterrupted deploy of node `name` ([] = converged)."""
    problems: list[str] = []
    values = lab.values(name)
    art = lab.nodes / values["KEY_NAME"]

    # every service of both compose files runs, Prometheus too
    for workdir, files in ((JOIN, COMPOSE_FILES), (f"{MOUNT}/prometheus", ("docker-compose.yml",))):
        expected, states = _services(host, workdir, files)
        if not expected:
            problems.append(f"no compose services found in {workdir}")
        bad = {s: states.get(s, "missing") for s in expected if states.get(s) != "running"}
        if bad:
            problems.append(f"services not running in {workdir}: {bad}")

    # the data disk: formatted once, one fstab line, volume.txt = the filesystem's UUID, mounted
    volume = (art / "volume.txt").read_text().strip() if (art / "volume.txt").exists() else ""
    uuid = host.run(["blkid", "-s", "UUID", "-o", "value", DISK], check=False).stdout.strip()
    if not volume or volume != uuid:
        problems.append(f"volume.txt {volume!r} != blkid UUID {uuid!r}")
    fstab = host.run(["cat", "/etc/fstab"], check=False).stdout
    entries = facts.fstab_entries_for(fstab, MOUNT)
    if len(entries) != 1 or f"UUID={uuid}" not in entries[0].split():
        problems.append(f"fstab entries for {MOUNT}: {entries}")
    source = host.run(["findmnt", "-n", "-o", "SOURCE", "--mountpoint", MOUNT], check=False).stdout.strip()
    if source != DISK:
        problems.append(f"{MOUNT} mounted from {source or 'nothing'}, want {DISK}")
    if (n := mkfs_calls(host)) != 1:
        problems.append(f"mkfs.ext4 ran {n} times")

    # the warm key: created once, saved 0600 with the mnemonic of the server's key
    counters = sim_counters(host)
    if counters.get("keys_add") != 1:
        problems.append(f"keys add ran {counters.get('keys_add', 0)} times")
    server_addr = server_key_address(host)
    local_addr = (art / "warm_address.txt").read_text().strip() if (art / "warm_address.txt").exists() else ""
    if not server_addr or server_addr != local_addr:
        problems.append(f"server key address {server_addr!r} != warm_address.txt {local_addr!r}")
    key_file = art / "warm_key.txt"
    if not key_file.exists():
        problems.append("warm_key.txt missing")
    else:
        if key_file.stat().st_mode & 0o777 != 0o600:
            problems.append(f"warm_key.txt mode {key_file.stat().st_mode & 0o777:o}, want 600")
        text = key_file.read_text()
        mnemonic = facts.parse_mnemonic(text)
        if not mnemonic:
            problems.append("warm_key.txt holds no mnemonic")
        elif mnemonic_address(mnemonic) != server_addr:
            problems.append(f"warm_key.txt mnemonic is of {mnemonic_address(mnemonic)}, not the server key {server_addr}")
        if f"address: {server_addr}" not in text:
            problems.append("warm_key.txt address line differs from the server key")

    # one registration at the seed, under the cold address
    seed.wait_idle()
    cold = cold_address(values["ACCOUNT_PUBKEY"])
    posts = [p for p in seed.posts if isinstance(p, dict) and p.get("pub_key") == values["ACCOUNT_PUBKEY"]]
    if cold not in seed.participants or not seed.is_visible(cold):
        problems.append(f"participant {cold} not registered at the seed")
    if len(posts) != 1:
        problems.append(f"{len(posts)} registration POSTs at the seed for {cold}, want 1")

    # peers and pruning set; the diff against the backups shows only those keys
    cfg_dir = f"{JOIN}/.inference/config"
    want = {"config.toml": [f'persistent_peers = "{values["PERSISTENT_PEERS"]}"'],
            "app.toml": ['pruning = "custom"', f'pruning-keep-recent = "{values.get("PRUNING_KEEP_RECENT") or 20000}"',
                         f'pruning-interval = "{values.get("PRUNING_INTERVAL") or 512}"']}
    for fname, lines in want.items():
        now = host.run(["cat", f"{cfg_dir}/{fname}"], check=False).stdout
        orig = host.run(["cat", f"{cfg_dir}/{fname}.gonka-deploy.orig"], check=False).stdout
        try:
            tomlkit.parse(now)
        except Exception as e:  # tomlkit raises several types
            problems.append(f"{fname} is not valid TOML: {e}")
        added = sorted(d[1:] for d in _changed_lines(orig, now) if d.startswith("+"))
        if added != sorted(lines):
            problems.append(f"{fname} changes vs its backup: {added}, want {sorted(lines)}")

    # configuration uploaded whole, nothing pending, no temp files anywhere
    local_env = (art / "config.env").read_text() if (art / "config.env").exists() else None
    remote_env = host.run(["cat", f"{JOIN}/config.env"], check=False)
    if local_env is None or remote_env.stdout != local_env:
        problems.append("config.env on the server differs from nodes/<KEY_NAME>/config.env")
    mode = host.run(["stat", "-c", "%a", f"{JOIN}/config.env"], check=False).stdout.strip()
    if mode != "600":
        problems.append(f"config.env on the server has mode {mode}, want 600")
    leftovers = host.run(f"ls -A {STATE_DIR} {PENDING_DIR} 2>/dev/null | grep -E 'pending|keys-add|\\.rc$' || true",
                         check=False).stdout.split()
    if leftovers:
        problems.append(f"leftover markers in {STATE_DIR} or {PENDING_DIR}: {leftovers}")
    remote_tmp = host.run(f"find {MOUNT} /etc -name '*.tmp' 2>/dev/null || true", check=False, timeout=60).stdout.split()
    if remote_tmp:
        problems.append(f"*.tmp left on the server: {remote_tmp[:5]}")
    local_tmp = [str(p.relative_to(lab.workdir)) for d in ("nodes", "logs") if (lab.workdir / d).is_dir()
                 for p in (lab.workdir / d).rglob("*.tmp")]
    if local_tmp:
        problems.append(f"*.tmp left locally: {local_tmp[:5]}")
    return problems


def fingerprint(host, lab: lablib.Lab, name: str) -> dict:
    """A host-independent summary of a deployed node, to compare with an uninterrupted deploy."""
    art = lab.nodes / lab.values(name)["KEY_NAME"]
    _, states = _services(host, JOIN, COMPOSE_FILES)
    _, prom = _services(host, f"{MOUNT}/prometheus", ("docker-compose.yml",))
    listing = host.run(f"ls -A {JOIN} {STATE_DIR} {MOUNT}", check=False).stdout
    return {
        "artefacts": sorted(p.name for p in art.iterdir()) if art.is_dir() else [],
        "services": sorted(f"{s}={st}" for s, st in {**states, **prom}.items()),
        # backups are named by time: compare which files have one, not when it was made
        "server files": sorted({TIMESTAMP_RE.sub("<time>", n) for n in listing.split()}),
    }


def fingerprint_problems(got: dict, reference: dict | None) -> list[str]:
    if not reference:
        return []
    out = []
    for key, want in reference.items():
        if got.get(key) != want:
            if isinstance(want, list):
                extra, missing = sorted(set(got.get(key, [])) - set(want)), sorted(set(want) - set(got.get(key, [])))
                out.append(f"{key} differ from the uninterrupted deploy: extra {extra}, missing {missing}")
            else:
                out.append(f"{key}: {got.get(key)!r}, uninterrupted deploy: {want!r}")
    return out
