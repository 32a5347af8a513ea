"""add-ml-node: an ML-node server (NODE_KIND=mlnode) prepared, started and registered with its network
node, as gonka-docs `host/multiple-nodes.md` describes, every step CHECK -> SKIP | EXEC -> OK.

On the ML server: phase 1 (disk), the gonka checkout and the model download (phase 2's job), a
config.env with only what `docker-compose.mlnode.yml` interpolates, its ports bound to PRIVATE_IP,
the image pull job for that file only, `docker compose -f docker-compose.mlnode.yml up -d`, and a
DOCKER-USER fence letting only the network node's private address reach 8080/5050 (persisted).
On the network node (a second SSH connection, same log): config.env's PoC callback on its
PRIVATE_IP:9100 with 9100 bound there (phases 3 and 6, which skip when nothing changed), then the
registration through the admin API on 127.0.0.1:9200 and a check from its side.
"""

from __future__ import annotations

import hashlib

from gonka_tasks import facts
from gonka_tasks.connectors import adminapi
from gonka_tasks.core import aptget, firewall, mlnodes, recipes, render
from gonka_tasks.core.shell import COMPOSE_MLNODE, IMAGE_OVERRIDE, q
from gonka_tasks.errors import DeployError
from gonka_tasks.operations.network_node import admin_nodes, epoch_of, network_run
from gonka_tasks.phases import configure, download_model, images, launch, recipe
from gonka_tasks.phases.common import Snapshot, compose, compose_files, require, wait_until
from gonka_tasks.phases.launch import bind_ports
from gonka_tasks.phases.prepare_server import prepare_server

HEALTH_PATH = "/health"  # mlnode api health.py: 200 {"status": "healthy", ...}
ML_COMPOSE = COMPOSE_MLNODE[0]  # docker-compose.mlnode.yml: its snapshot key is its name, as bind_ports reads it


def health_probe(host: str, port: int | str) -> str:
    """`<status>\\n<body>` of the ML node's /health at host:port (000 when it does not answer)."""
    url = f"http://{host}:{int(port)}{HEALTH_PATH}"
    return f"curl -s -m 5 -o /tmp/.gd-health.$$ -w '%{{http_code}}' {q(url)}; echo; cat /tmp/.gd-health.$$; rm -f /tmp/.gd-health.$$"


def callback_on_private_ip(net) -> None:
    """Network node: DAPI_API__POC_CALLBACK_URL = http://<PRIVATE_IP>:9100 and 9100 bound there only
    (config.env and the compose binding, rendered from its PRIVATE_IP); the api restarted with them by
    launch. Both phases skip when nothing changed."""
    net.log.info(f"=== network node {net.cfg.key_name}: PoC callback {render.poc_callback_url(net.cfg)}")
    net.steps.phase = "network-node"
    configure.configure(net)
    launch.launch(net)


# ------------------------------------------------------------------------------ ML server
def mlnode_service(compose_text: str) -> str:
    """The ML node's service in docker-compose.mlnode.yml (`mlnode-308` at v0.2.13; not the nginx)."""
    try:
        services = facts.compose_services(compose_text)
    except facts.FactError as e:
        raise DeployError(f"cannot read docker-compose.mlnode.yml: {e}") from None
    named = [s for s in services if s.startswith("mlnode")] or [s for s in services if s != "inference"]
    if not named:
        raise DeployError("docker-compose.mlnode.yml has no ML node service", "check the gonka checkout (GONKA_REF)")
    return named[0]


def upload_small(run, snap: Snapshot, key: str, path: str, content: str, what: str) -> None:
    """A deployer-owned, untracked file (no secret): SKIP when its hash matches."""
    want = hashlib.sha256(content.encode()).hexdigest()
    run.steps.run(what, lambda: (snap[key].out.startswith(want), "up to date" if snap[key].out.startswith(want)
                                 else "absent or different"),
                  lambda: run.remote.write_file(path, content, mode=0o644, what=what), refresh=snap.refresh)


def mlnode_files(run, snap: Snapshot) -> None:
    """config.env (HF_HOME, PORT, INFERENCE_PORT) and, with MLNODE_IMAGE, the image override."""
    cfg, join = run.cfg, run.cfg.join_dir
    upload_small(run, snap, "env", f"{join}/config.env", render.mlnode_env(cfg), "ML node config.env")
    if cfg["MLNODE_IMAGE"]:
        service = mlnode_service(snap[ML_COMPOSE].stdout)
        upload_small(run, snap, "override", f"{join}/{IMAGE_OVERRIDE}",
                     render.image_override(service, cfg["MLNODE_IMAGE"]), f"ML node image {cfg['MLNODE_IMAGE']}")
    elif snap["override"].ok:
        run.steps.run("no ML node image override (MLNODE_IMAGE empty)", lambda: False,
                      lambda: run.remote.run(f"rm -f {q(join + '/' + IMAGE_OVERRIDE)}", what="remove the image override"),
                      recheck=False)


def launched_marker(run, files: tuple[str, ...] | None = None) -> tuple[str, str]:
    """(marker path, command printing the hash of config.env + the compose files the ML node runs)."""
    cfg = run.cfg
    names = " ".join(q(f) for f in files or compose_files(run))
    return (f"{cfg.state_dir}/mlnode-launched.sha256",
            f"cd {q(cfg.join_dir)} && cat config.env {names} | sha256sum | cut -d' ' -f1")


def record_launched(run) -> None:
    marker, hash_cmd = launched_marker(run)
    run.remote.run(f"mkdir -p {q(run.cfg.state_dir)} && {hash_cmd} > {q(marker)}", what="record the started configuration")


def mlnode_up(run, snap: Snapshot) -> None:
    """`docker compose -f docker-compose.mlnode.yml [-f override] up -d`, SKIP when both services run
    from the configured images and the files they started from are unchanged."""
    files = compose_files(run)

    def check():
        try:
            ps = facts.parse_compose_ps(snap["ps"].stdout)
            services = facts.compose_services(snap[ML_COMPOSE].stdout)
        except facts.FactError as e:
            return False, str(e)
        up = {c.service for c in ps if c.running}
        missing = [s for s in services if s not in up]
        if missing:
            return False, f"not running: {', '.join(missing)}"
        if not (snap["now"].out and snap["now"].out == snap["then"].out):
            return False, "configuration changed since the last start"
        return True, f"{len(services)} services running"

    def act():
        images.require_images(run, files)
        run.remote.run(compose(run, "up -d", files), what=f"docker compose {' + '.join(files)} up -d", timeout=3600)
        wait_healthy(run)
        record_launched(run)

    run.steps.run("ML node running (docker-compose.mlnode.yml)", check, act, refresh=snap.refresh)


def wait_healthy(run, *, deadline_s: float | None = None) -> None:
    """The ML node answers /health as healthy on its private address (from the server itself)."""
    cfg = run.cfg

    def probe():
        word = mlnodes.health_word(run.remote.probe(health_probe(cfg.private_ip, cfg["PORT"])).stdout)
        return word == "healthy", word
    wait_until(run, f"ML node {cfg['ML_NODE_ID']} healthy", probe,
               deadline_s=deadline_s or cfg.seconds("LAUNCH_TIMEOUT"),
               hint="see `docker compose -f docker-compose.mlnode.yml logs` on the ML server")


def fence(run, net_ip: str, snap: Snapshot) -> None:
    """DOCKER-USER: only the network node reaches PORT and INFERENCE_PORT; persisted in rules.v4."""
    cfg = run.cfg
    wanted = firewall.fence_rules(net_ip, [int(cfg["PORT"]), int(cfg["INFERENCE_PORT"])])

    run.steps.run(f"DOCKER-USER fence: {cfg['PORT']}, {cfg['INFERENCE_PORT']} from {net_ip} only",
                  lambda: firewall.fence_state(snap["chain"].stdout, wanted),
                  lambda: run.remote.run(firewall.apply_script(wanted), what="DOCKER-USER rules of the ML node"),
                  refresh=snap.refresh)

    def persisted():
        ok = snap["persist_tool"].ok and firewall.persisted_ok(snap["rules_v4"].stdout, wanted)
        return ok, f"in {firewall.RULES_V4}" if ok else f"not in {firewall.RULES_V4} (or no iptables-persistent)"

    def persist():
        if not snap["persist_tool"].ok:
            preseed = ("printf '%s\\n' 'iptables-persistent iptables-persistent/autosave_v4 boolean false' "
                       "'iptables-persistent iptables-persistent/autosave_v6 boolean false' | debconf-set-selections")
            run.remote.run(f"{preseed}; {aptget.install_script(['iptables-persistent'])}",
                           what="install iptables-persistent (apt)", timeout=1800)
        # the operator's own rules in the file are kept: only a file read in full is merged into
        if not snap["rules_v4"].ok:
            raise DeployError(f"cannot read {firewall.RULES_V4} on {cfg.server_ip}",
                              "check the file (its other rules are kept when the fence is added), then rerun")
        text = firewall.persisted(snap["rules_v4"].stdout, wanted)
        run.remote.write_file(firewall.RULES_V4, text, mode=0o640, what=f"save the fence in {firewall.RULES_V4}")
    run.steps.run("fence persisted across reboots", persisted, persist, refresh=snap.refresh)


def ml_snapshot(run) -> Snapshot:
    cfg, join = run.cfg, q(run.cfg.join_dir)
    marker, hash_cmd = launched_marker(run)
    return Snapshot(run, {
        ML_COMPOSE: f"cat {join}/{ML_COMPOSE}",
        "now": hash_cmd,  # config.env + compose files now, and when the ML node was last started
        "then": f"cat {q(marker)}",
        "env": f"sha256sum {join}/config.env",
        "override": f"sha256sum {join}/{IMAGE_OVERRIDE}",
        "ps": compose(run, "ps -a --format json", COMPOSE_MLNODE, source_env=False),
        "chain": f"iptables -S {firewall.CHAIN}",
        # absent: empty and ok; present but unreadable: not ok (never rewritten from nothing)
        "rules_v4": f"test ! -e {firewall.RULES_V4} || cat {firewall.RULES_V4}",
        "persist_tool": "command -v netfilter-persistent",
        "gpus": recipe.GPU_PROBE,
    }, what=f"ML node files, containers and firewall on {cfg.server_ip}")


def bind_ml_ports(run, snap: Snapshot) -> None:
    """PORT and INFERENCE_PORT of docker-compose.mlnode.yml published on PRIVATE_IP only (recorded as
    the deployer's edit, bindings.py, so a release change restores and re-applies it)."""
    bind_ports(run, snap, COMPOSE_MLNODE)


# -------------------------------------------------------------------------- registration
def wanted_registration(run, snap: Snapshot) -> dict:
    """The admin API body: args and hardware from the recipe for MODEL on this server's GPUs."""
    cfg = run.cfg
    models = recipe.governance_models(run)
    plan, gpus = recipe.model_recipe(run, snap["gpus"], models)
    return mlnodes.registration(cfg, plan.args, recipes.hardware(gpus))


def register(run, net, want: dict) -> None:
    """POST /admin/v1/nodes when the node is not listed; a listed node whose settings differ is updated
    (PUT, outside its PoC timeslot for a model change: `apply_update`)."""
    nid = want["id"]
    nodes: list[mlnodes.Registered] = []

    def check():
        nonlocal nodes
        nodes = admin_nodes(net)
        got = mlnodes.find(nodes, nid)
        if got is None:
            return False, "not registered"
        diffs = mlnodes.differences(want, got)
        return not diffs, ("registered as configured" if not diffs else "; ".join(diffs))

    def act():
        got = mlnodes.find(nodes, nid)
        if got is not None:
            apply_update(run, net, want, got)
            return
        ans = adminapi.call(net.remote, "POST", "/admin/v1/nodes", want, what=f"register ML node {nid}")
        if not ans.ok:
            raise DeployError(f"the network node refused ML node {nid}: HTTP {ans.status}: {adminapi.error_of(ans)}",
                              "check MODEL (a governance model), the ports and that the id/host are not used by "
                              "another node (GET /admin/v1/nodes)")
        kept = (ans.data or {}).get("models") if isinstance(ans.data, dict) else None
        if isinstance(kept, dict) and want["models"] and not set(want["models"]) <= set(kept):
            raise DeployError(f"the network node dropped model(s) {', '.join(set(want['models']) - set(kept))} of "
                              f"ML node {nid}: not governance models",
                              "set MODEL to an approved model (the seed's /v1/governance/models)")

    run.steps.run(f"ML node {nid} registered with {net.cfg.key_name}", check, act)


def apply_update(run, net, want: dict, got: mlnodes.Registered, *, wait: bool = False,
                 timeout_s: float = 0) -> None:
    """PUT /admin/v1/nodes/:id: a model (or args) change only outside the node's PoC timeslot:
    waits for it with `wait`, else refuses saying when to retry."""
    nid = want["id"]
    diffs = mlnodes.differences(want, got)
    if any(d.startswith("models ") for d in diffs):
        def outside():
            reason = mlnodes.poc_reason(epoch_of(net), mlnodes.find(admin_nodes(net), nid))
            return not reason, reason or "outside PoC"
        ok, reason = outside()
        if not ok and not wait:
            raise DeployError(f"not changing the model of ML node {nid} now: {reason}; a change during its PoC "
                              "timeslot would cost it the epoch's PoC",
                              "rerun after the PoC phase (the Inference phase), or with --wait-poc to wait for it")
        if not ok:
            wait_until(run, f"the end of PoC for ML node {nid}", outside, deadline_s=timeout_s or 6 * 3600,
                       interval_s=30, report_every_s=60, hint="rerun later; nothing was changed")
    ans = adminapi.call(net.remote, "PUT", adminapi.admin_path(nid), want, what=f"update ML node {nid} ({'; '.join(diffs)})")
    if not ans.ok:
        raise DeployError(f"the network node refused the update of ML node {nid}: HTTP {ans.status}: "
                          f"{adminapi.error_of(ans)}", "check MODEL is a governance model")


def verify_from_network(run, net) -> None:
    """From the network node: the admin API lists the node (with its state) and its /health answers."""
    cfg = run.cfg
    nid = cfg["ML_NODE_ID"]
    got = mlnodes.find(admin_nodes(net), nid)
    require(got is not None, f"ML node {nid} is not listed by the network node", "rerun add-ml-node")
    word = mlnodes.health_word(net.remote.probe(health_probe(cfg.private_ip, cfg["PORT"]),
                                                what=f"ML node {nid} /health from the network node").stdout)
    if word != "healthy":
        raise DeployError(f"the network node does not reach ML node {nid} at {cfg.private_ip}:{cfg['PORT']}: {word}",
                          "check the private network and the DOCKER-USER fence (the network node's PRIVATE_IP "
                          "must be the address it connects from)")
    run.log.ok(f"ML node {nid}: registered (enabled {'yes' if got.enabled else 'no'}, status "
               f"{got.current_status or '?'}), healthy as the network node sees it")


def add_ml_node(run) -> None:
    """The whole add-ml-node sequence (see the module docstring)."""
    cfg = run.cfg
    if not cfg.is_mlnode:
        raise DeployError(f"{cfg.path} is not an ML-node config (NODE_KIND={cfg['NODE_KIND']})",
                          "give the ML node's config (NODE_KIND=mlnode, NETWORK_NODE, PRIVATE_IP)")
    with network_run(run) as net:
        net_ip = net.cfg.private_ip
        run.steps.phase = "prepare-server"
        run.log.info(f"=== ML node {cfg['ML_NODE_ID']} on {cfg.server_ip} (private {cfg.private_ip}) for network node "
                     f"{net.cfg.key_name} (private {net_ip})")
        prepare_server(run)
        run.steps.phase = "download-model"
        download_model.ensure_download(run, wait=False, pull=False)  # the checkout now; the weights meanwhile
        run.steps.phase = "ml-node"
        snap = ml_snapshot(run)
        mlnode_files(run, snap)
        bind_ml_ports(run, snap)
        images.ensure_pull(run, wait=False, snap=None)
        want = wanted_registration(run, snap)
        fence(run, net_ip, snap)
        download_model.require_model(run)
        mlnode_up(run, snap)
        callback_on_private_ip(net)
        net.steps.phase = "register"
        register(run, net, want)
        verify_from_network(run, net)
