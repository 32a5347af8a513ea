"""`fab status`: a read-only table of the phases, from live probes of the server (not local flags),
plus containers, block height and sync, disk use, model, warm address and registration.

Two round trips to the server (one batched probe, one RPC status) and one HTTP call to the seed.
"""

from __future__ import annotations

import hashlib
import json

from gonka_tasks import facts
from gonka_tasks.connectors.artefacts import read_artefact, warm_address
from gonka_tasks.connectors.httpclient import HttpError, request
from gonka_tasks.core import chaincfg, render
from gonka_tasks.core.shell import COMPOSE_ALL, q
from gonka_tasks.phases.common import compose
from gonka_tasks.phases.launch import launch_hash_cmd
from gonka_tasks.phases.start_base import participant_url


def gather(run) -> dict:
    cfg = run.cfg
    join, mp = q(cfg.join_dir), q(cfg.mount_point)
    model_dir = q(f"{cfg.hf_home}/hub/models--{cfg['MODEL'].replace('/', '--')}")
    r = run.remote.probe_many({
        "mount": f"findmnt -n -o SOURCE,FSTYPE --mountpoint {mp}",
        "fstab": f"awk '$2==\"{cfg.mount_point}\"' /etc/fstab",
        "df": f"df -h --output=used,size,pcent {mp} | tail -1",
        "repo": f"git -C {q(cfg.gonka_dir)} rev-parse HEAD && git -C {q(cfg.gonka_dir)} rev-parse -q --verify "
                f"{q(cfg['GONKA_REF'] + '^{commit}')}",
        "job": f"cat {q(cfg.hf_home + '/.gonka-download/state.json')}",
        "snapshots": f"ls {model_dir}/snapshots 2>/dev/null | head -3",
        "config": f"cd {join} && sha256sum config.env node-config.json",
        "ps": compose(run, "ps -a --format json", COMPOSE_ALL, source_env=False),
        "app": f"cat {join}/.inference/config/app.toml",
        "peers": f"grep -m1 '^persistent_peers' {join}/.inference/config/config.toml",
        "launched": f"{launch_hash_cmd(run)}; cat {q(cfg.state_dir + '/launched.sha256')}",
        "rpc": facts.RPC_STATUS_PROBE,
    }, what="server state")
    try:
        reg = request(participant_url(run), attempts=2, what="participant lookup").status == 200
    except HttpError:
        reg = None
    return {"r": r, "registered": reg}


def phase_states(run, g: dict) -> list[tuple[str, str, str]]:
    """(phase, done|pending|broken|running, detail) for phases 1-6."""
    cfg, r = run.cfg, g["r"]
    rows = []
    mounted = r["mount"].ok and bool(r["mount"].out)
    fstab = bool(r["fstab"].out)
    if mounted and fstab:
        rows.append(("prepare-server", "done", f"{r['mount'].out} at {cfg.mount_point}"))
    elif fstab and not mounted:
        rows.append(("prepare-server", "broken", f"fstab entry for {cfg.mount_point} but not mounted"))
    else:
        rows.append(("prepare-server", "pending", "data disk not mounted"))

    heads = r["repo"].out.split()
    job = _json(r["job"].out) if r["job"].ok else {}
    model_ok = job.get("state") == "complete" or (not job and bool(r["snapshots"].out))
    if not heads:
        rows.append(("download-model", "pending", "gonka repo not cloned"))
    elif job.get("state") in ("running", "starting"):
        done, total = job.get("done", 0), job.get("total", 0) or 1
        rows.append(("download-model", "running", f"model download {100 * done / total:.0f}%"))
    elif job.get("state") == "failed":
        rows.append(("download-model", "broken", f"download failed: {job.get('error', '')[:60]}"))
    elif model_ok:
        at = "at GONKA_REF" if len(heads) > 1 and heads[0] == heads[1] else f"at {heads[0][:12]} (not GONKA_REF)"
        rows.append(("download-model", "done", f"repo {at}, model {cfg['MODEL']} present"))
    else:
        rows.append(("download-model", "pending", "model not downloaded"))

    # node-config.json carries the recipe configure derived from the GPUs: compare with what it uploaded
    nc = read_artefact(cfg.artefacts, "node-config.json") or render.node_config_json(cfg)
    want = {name: hashlib.sha256(text.encode()).hexdigest() for name, text in
            (("config.env", render.config_env(cfg)), ("node-config.json", nc))}
    have = {ln.split()[1]: ln.split()[0] for ln in r["config"].out.splitlines() if len(ln.split()) == 2}
    if not have:
        rows.append(("configure", "pending", "config.env not on the server"))
    elif all(have.get(k) == v for k, v in want.items()):
        rows.append(("configure", "done", "config.env and node-config.json up to date"))
    else:
        rows.append(("configure", "pending", "server files differ from the node config"))

    try:
        ps = facts.parse_compose_ps(r["ps"].stdout) if r["ps"].ok else []
    except facts.FactError:
        ps = []
    up = {c.service for c in ps if c.running}
    base_up = {"tmkms", "node"} <= up
    if base_up and g["registered"]:
        rows.append(("start-base", "done", "tmkms + node running, participant registered"))
    elif base_up:
        rows.append(("start-base", "pending", "running, registration not confirmed"))
    elif any(c.service in ("tmkms", "node") for c in ps):
        rows.append(("start-base", "broken", "tmkms/node not running"))
    else:
        rows.append(("start-base", "pending", "base services not started"))

    try:
        pruning = chaincfg.pruning(r["app"].stdout) if r["app"].ok else None
    except chaincfg.ChainConfigError:
        pruning = None
    peers_ok = not cfg.persistent_peers or ",".join(cfg.persistent_peers) in r["peers"].out
    if pruning and pruning == ("custom", cfg["PRUNING_KEEP_RECENT"], cfg["PRUNING_INTERVAL"]) and peers_ok:
        rows.append(("configure-chain", "done", f"pruning custom {pruning[1]}/{pruning[2]}"))
    else:
        rows.append(("configure-chain", "pending", "pruning/peers not set" if pruning else "no chain config yet"))

    hashes = r["launched"].out.split()
    exited = [c.service for c in ps if c.state in ("exited", "dead")]
    if exited and len(up) > 2:
        rows.append(("launch", "broken", f"stopped: {', '.join(exited)}"))
    elif len(hashes) == 2 and hashes[0] == hashes[1] and any(s.startswith("mlnode") for s in up):
        rows.append(("launch", "done", f"{len(up)} services running"))
    else:
        rows.append(("launch", "pending", "ML node not launched with the current config"))
    return rows


def _json(text: str) -> dict:
    try:
        v = json.loads(text)
        return v if isinstance(v, dict) else {}
    except ValueError:
        return {}


def status(run) -> None:
    """Print the table; changes nothing anywhere."""
    cfg = run.cfg
    g = gather(run)
    rows = phase_states(run, g)
    last = _json(read_artefact(cfg.artefacts, "verification.json") or "")
    if last:
        c = last.get("counts", {})
        rows.append(("verify", "done" if not c.get("FAIL") else "broken",
                     f"last run {last.get('time')}: {c.get('PASS', 0)} PASS, {c.get('WARN', 0)} WARN, {c.get('FAIL', 0)} FAIL"))
    else:
        rows.append(("verify", "pending", "never run from here"))
    width = max(len(p) for p, _, _ in rows)
    lines = [f"{'phase'.ljust(width)}  state    detail", f"{'-' * width}  -------  ------"]
    lines += [f"{p.ljust(width)}  {s.ljust(7)}  {d}" for p, s, d in rows]
    facts_lines = _fact_lines(run, g)
    title = f"status of {cfg.key_name} ({cfg.server_ip})"
    # on a terminal: the phases as a table (states coloured), the facts under it
    run.log.table(title, ("phase", "state", "detail"), rows, caption="\n".join(facts_lines),
                  text=f"{title}:\n" + "\n".join([*lines, "", *facts_lines]))
    run.status_rows = rows


def _fact_lines(run, g: dict) -> list[str]:
    """containers, chain, disk, model, warm key, participant: one line each."""
    cfg, r = run.cfg, g["r"]
    try:
        ps = facts.parse_compose_ps(r["ps"].stdout) if r["ps"].ok else []
    except facts.FactError:
        ps = []
    lines = ["containers:  " + (", ".join(f"{c.service} {c.state}" for c in ps) or "none")]
    try:
        s = facts.parse_rpc_status(r["rpc"].stdout) if r["rpc"].ok else None
    except facts.FactError:
        s = None
    lines.append("chain:       " + (f"height {s.height}, {'catching up' if s.catching_up else 'in sync'}" if s else "RPC not answering"))
    lines.append(f"disk:        {r['df'].out or 'not mounted'} ({cfg.mount_point})")
    lines.append(f"model:       {cfg['MODEL']} {'present' if r['snapshots'].out else 'absent'}")
    addr = warm_address(cfg.artefacts)
    lines.append(f"warm key:    {addr or 'unknown (no address in warm_address.txt)'}")
    reg = {True: "registered", False: "not registered", None: "seed unreachable"}[g["registered"]]
    lines.append(f"participant: {cfg.cold_address} {reg}")
    return lines
