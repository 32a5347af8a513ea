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

from gonka_tasks.connectors.artefacts import write_artefact
from gonka_tasks.core import recipes, render, shell
from gonka_tasks.core.ports import p2p_mismatches, publish_p2p
from gonka_tasks.core.shell import q
from gonka_tasks.errors import DeployError
from gonka_tasks.phases import recipe
from gonka_tasks.phases.common import Snapshot, require, write_tracked


def approved_models(run, entries: list[dict] | None = None) -> list[str] | None:
    """The ids of the seed's governance models, or None when the seed cannot be asked."""
    entries = recipe.governance_models(run) if entries is None else entries
    return None if entries is None else [m["id"] for m in entries]


def check_model(run, entries: list[dict] | None = None) -> None:
    cfg = run.cfg
    run.log.check(f"MODEL {cfg['MODEL']} approved by the network")
    models = approved_models(run, entries)
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


def differences(run, name: str, content: str) -> list[str]:
    """What differs between the server's `name` and `content`: config.env's variable names (compared by
    per-variable hashes computed on the server: no value travels back), node-config.json's fields."""
    if name == "config.env":
        local = render.config_env_values(run.cfg)
        theirs = remote_env_hashes(run)
        return [k for k in render.CONFIG_ENV_ORDER if theirs.get(k) != _value_hash(local[k])]
    theirs = run.remote.probe(f"cat {q(run.cfg.join_dir + '/' + name)}", what=f"{name} on the server").stdout
    return render.json_differences(theirs, content)


def upload(run, snap: Snapshot, name: str, content: str, mode: int) -> None:
    """One file into deploy/join: SKIP when the hash matches; else back up, name the changes, replace.
    The check names what differs (so `--plan` shows it); the action only writes."""
    path = f"{run.cfg.join_dir}/{name}"
    want = hashlib.sha256(content.encode()).hexdigest()
    changed: list[str] = []

    def check():
        if not snap[name].ok:
            return False, "absent"
        lines = snap[name].out.splitlines()
        same = bool(lines) and lines[0].startswith(want)
        mode_ok = len(lines) > 1 and lines[1] == f"{mode:o}"
        if same and mode_ok:
            return True, "up to date"
        if not lines:
            return False, "absent"
        if same:
            return False, f"mode {lines[-1]}"
        changed[:] = differences(run, name, content)
        return False, f"differs in: {', '.join(changed)}" if changed else "content differs"

    def act():
        if snap[name].ok:
            what = f"differs in: {', '.join(changed)}" if changed else "differs from the rendered one"
            run.log.warn(f"{name} on the server {what} (replacing it)")
            run.remote.run(shell.private_backup(path, mode), what=f"back up {name} to {name}.bak")
        if name == "config.env":  # git-ignored, and holds the password: no hash of it is kept
            run.remote.write_file(path, content, mode=mode, what=f"upload {name}")
        else:  # tracked in the gonka checkout: recorded, so that --update-repo may restore it
            write_tracked(run, path, content, mode=mode, what=f"upload {name}")

    run.steps.run(f"{name} on the server", check, act, refresh=snap.refresh)


def p2p_port(run, snap: Snapshot) -> None:
    """docker-compose.yml publishes the node's P2P port (26656) at P2P_PORT: upstream's file says
    `"5000:26656"` literally. Done here, before start-base first starts the node, and kept in the file
    so that the operator's own `docker compose up` publishes the same port."""
    cfg = run.cfg
    path, port = f"{cfg.join_dir}/docker-compose.yml", int(cfg["P2P_PORT"])
    env = render.config_env_values(cfg)

    def check():
        if not snap["compose_text"].ok:
            return (True, "no docker-compose.yml yet (plan)") if run.plan else (False, "docker-compose.yml not readable")
        wrong = p2p_mismatches(snap["compose_text"].stdout, port, env)
        return not wrong, (f"publishes {', '.join(wrong)}" if wrong else f"{port}:26656")

    def act():
        require(bool(snap["compose_text"].stdout.strip()), f"{path} is empty or unreadable",
                "check the gonka checkout (`fab download-model --update-repo`)")
        write_tracked(run, path, publish_p2p(snap["compose_text"].stdout, port, env), mode=0o644,
                      what=f"publish the node's P2P port at {port} in docker-compose.yml")

    run.steps.run(f"P2P port {port} in docker-compose.yml", check, act, refresh=snap.refresh)


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
    entries = recipe.governance_models(run)
    check_model(run, entries)
    join = q(cfg.join_dir)
    snap = Snapshot(run, {
        "compose": f"test -f {join}/docker-compose.yml",
        "compose_text": f"cat {join}/docker-compose.yml",
        "config.env": f"cd {join} && sha256sum config.env && stat -c %a config.env",
        "node-config.json": f"cd {join} && sha256sum node-config.json && stat -c %a node-config.json",
        "api_nodes": ADMIN_NODES,
        "gpus": recipe.GPU_PROBE,  # node-config.json's args and hardware come from the GPUs found now
    }, what=f"configuration files in {cfg.join_dir}")
    model_recipe, gpus = recipe.model_recipe(run, snap["gpus"], entries)
    run.log.info(recipes.summary(cfg["MODEL"], model_recipe, gpus))
    env_text = render.config_env(cfg)
    nc_text = render.node_config_json(cfg, args=model_recipe.args, hardware=recipes.hardware(gpus))
    if not run.plan:
        write_artefact(cfg.artefacts, "config.env", env_text, 0o600)
        write_artefact(cfg.artefacts, "node-config.json", nc_text, 0o644)
        run.log.info(f"rendered {cfg.artefacts}/config.env (0600) and node-config.json")
    require(snap["compose"].ok or run.plan, f"{cfg.join_dir}/docker-compose.yml not found (no gonka checkout)",
            "run `fab download-model` first (it clones the gonka repo)")
    upload(run, snap, "config.env", env_text, 0o600)
    p2p_port(run, snap)
    upload(run, snap, "node-config.json", nc_text, 0o644)
    warn_if_api_differs(run, snap, json.loads(nc_text))
