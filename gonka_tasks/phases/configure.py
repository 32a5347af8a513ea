"""Phase 3, configuration: config.env and node-config.json rendered locally into nodes/<KEY_NAME>/,
then uploaded to deploy/join atomically (config.env 0600; its content only ever travels over stdin).

Unchanged remote files are SKIP (compared by hash). A changed file is backed up first (one
`<name>.bak`, replacing the previous one: config.env's copies hold the password), and the
WARN names the variables that differ, compared by per-variable hashes computed on the server, so
an old password never travels back. The model is checked against the seed's approved list.
"""

from __future__ import annotations

import hashlib
import json

from .. import render
from ..artefacts import write_artefact
from ..errors import DeployError
from ..httpclient import HttpError, get_json
from .common import Snapshot, q, require


def approved_models(run) -> list[str] | None:
    """The seed's governance model list, or None when the seed cannot be asked."""
    url = f"{run.cfg.seed_api_url}/v1/governance/models"
    try:
        status, data = get_json(url, attempts=3, what="approved models")
    except HttpError as e:
        run.log.warn(f"cannot check MODEL against the seed's approved list: {e.message}")
        return None
    if status != 200 or not isinstance(data, dict) or not isinstance(data.get("models"), list):
        run.log.warn(f"cannot check MODEL: {url} answered HTTP {status} without a model list")
        return None
    return [m.get("id") for m in data["models"] if isinstance(m, dict) and m.get("id")]


def check_model(run) -> None:
    cfg = run.cfg
    run.log.check(f"MODEL {cfg['MODEL']} approved by the network")
    models = approved_models(run)
    if models is None:
        return
    if cfg["MODEL"] in models:
        run.log.ok(f"MODEL {cfg['MODEL']} is approved")
        return
    listed = ", ".join(models) or "(empty list)"
    if cfg.flag("ALLOW_UNAPPROVED_MODEL"):
        run.log.warn(f"MODEL {cfg['MODEL']} is NOT on the approved list ({listed}); going on because "
                     "ALLOW_UNAPPROVED_MODEL=true")
        return
    raise DeployError(f"MODEL {cfg['MODEL']} is not approved by the network; approved: {listed}",
                      "set MODEL to an approved model (and its MODEL_ARGS), or ALLOW_UNAPPROVED_MODEL=true")


def _value_hash(value: str) -> str:
    return hashlib.sha256((value + "\n").encode()).hexdigest()[:16]


def remote_env_hashes(run) -> dict[str, str]:
    """Per-variable hashes of the server's config.env (values never leave the server)."""
    names = " ".join(render.CONFIG_ENV_ORDER)
    r = run.remote.probe(f"cd {q(run.cfg.join_dir)} && bash -c '. ./config.env >/dev/null 2>&1; "
                         f"for k in {names}; do printf \"%s %s\\n\" \"$k\" \"$(printenv \"$k\" | sha256sum | cut -c1-16)\"; done'")
    return dict(ln.split(" ", 1) for ln in r.out.splitlines() if " " in ln)


def backup_command(path: str, mode: int) -> str:
    """Keep ONE backup, `<path>.bak` (given `mode`, replaced each time): config.env's copies hold the
    keyring password, so the timestamped `.bak-*` copies of earlier versions are removed too."""
    bak = q(path + ".bak")
    # umask 077: the copy is never readable by others, not even before its chmod
    return (f"rm -f {q(path)}.bak-* && (umask 077 && cp {q(path)} {bak}.tmp && chmod {mode:o} {bak}.tmp "
            f"&& mv -f {bak}.tmp {bak})")


def upload(run, snap: Snapshot, name: str, content: str, mode: int) -> None:
    """One file into deploy/join: SKIP when the hash matches; else back up, name the changes, replace."""
    path = f"{run.cfg.join_dir}/{name}"
    want = hashlib.sha256(content.encode()).hexdigest()

    def check():
        if not snap[name].ok:
            return False, "absent"
        lines = snap[name].out.splitlines()
        same = bool(lines) and lines[0].startswith(want)
        mode_ok = len(lines) > 1 and lines[1] == f"{mode:o}"
        if same and mode_ok:
            return True, "up to date"
        return False, ("absent" if not lines else "content differs" if not same else f"mode {lines[-1]}")

    def act():
        if snap[name].ok:
            if name == "config.env":
                local = render.config_env_values(run.cfg)
                theirs = remote_env_hashes(run)
                changed = [k for k in render.CONFIG_ENV_ORDER if theirs.get(k) != _value_hash(local[k])]
                if changed:
                    run.log.warn(f"config.env on the server differs in: {', '.join(changed)} (replacing it)")
            else:
                run.log.warn(f"{name} on the server differs from the rendered one (replacing it)")
            run.remote.run(backup_command(path, mode), what=f"back up {name} to {name}.bak")
        run.remote.write_file(path, content, mode=mode, what=f"upload {name}")

    run.steps.run(f"{name} on the server", check, act, refresh=snap.refresh)


ADMIN_NODES = ("curl -fsS -m 5 http://127.0.0.1:9200/admin/v1/nodes 2>/dev/null || "
               "wget -qO- -T 5 http://127.0.0.1:9200/admin/v1/nodes 2>/dev/null")


def warn_if_api_differs(run, snap: Snapshot, nodes: list[dict]) -> None:
    """node-config.json is read once by the API: say so when what it merged differs."""
    r = snap["api_nodes"]
    if not r.ok or not r.out:
        return
    try:
        merged = json.loads(r.out)
    except ValueError:
        return
    if isinstance(merged, dict):
        merged = merged.get("nodes", [])

    def summary(items) -> set:
        out = set()
        for n in items if isinstance(items, list) else []:
            node = n.get("node", n) if isinstance(n, dict) else {}
            if isinstance(node, dict):
                out.add((node.get("id"), tuple(sorted((node.get("models") or {}).keys()))))
        return out
    if summary(merged) != summary(nodes):
        nid = nodes[0]["id"]
        run.log.warn("node-config.json differs from what the API already merged (it reads the file only on its "
                     f"first start); apply the change through the admin API on the server, e.g. "
                     f"curl -X PUT -H 'Content-Type: application/json' -d @<entry.json> "
                     f"http://127.0.0.1:9200/admin/v1/nodes/{nid}")


def configure(run) -> None:
    """Phase 3."""
    cfg = run.cfg
    env_text = render.config_env(cfg)
    nc_text = render.node_config_json(cfg)
    if not run.plan:
        write_artefact(cfg.artefacts, "config.env", env_text, 0o600)
        write_artefact(cfg.artefacts, "node-config.json", nc_text, 0o644)
        run.log.info(f"rendered {cfg.artefacts}/config.env (0600) and node-config.json")
    check_model(run)
    join = q(cfg.join_dir)
    snap = Snapshot(run, {
        "compose": f"test -f {join}/docker-compose.yml",
        "config.env": f"cd {join} && sha256sum config.env && stat -c %a config.env",
        "node-config.json": f"cd {join} && sha256sum node-config.json && stat -c %a node-config.json",
        "api_nodes": ADMIN_NODES,
    }, what=f"configuration files in {cfg.join_dir}")
    require(snap["compose"].ok or run.plan, f"{cfg.join_dir}/docker-compose.yml not found (no gonka checkout)",
            "run `fab download-model` first (it clones the gonka repo)")
    upload(run, snap, "config.env", env_text, 0o600)
    upload(run, snap, "node-config.json", nc_text, 0o644)
    warn_if_api_differs(run, snap, json.loads(nc_text))
