"""Day-2 operations on ML nodes, through the network node's admin API (over SSH, 127.0.0.1:9200):
list, enable/disable, remove (the documented decommission), model change outside PoC (the image
roll is roll_ml_nodes.py).

Upstream: decentralized-api v0.2.13 admin `node_handlers.go`; docs `host/mlnode-management.md`
(disable: stays active until the epoch ends, not in the next one) and `host/multiple-nodes.md`.
"""

from __future__ import annotations

from gonka_tasks.connectors import adminapi
from gonka_tasks.core import mlnodes
from gonka_tasks.core.shell import COMPOSE_MLNODE
from gonka_tasks.errors import DeployError
from gonka_tasks.operations.add_ml_node import (
    apply_update,
    health_probe,
    ml_snapshot,
    wanted_registration,
)
from gonka_tasks.operations.network_node import admin_nodes, epoch_of, ml_configs_of, network_of, network_run
from gonka_tasks.phases import download_model
from gonka_tasks.phases.common import compose, wait_until


# ------------------------------------------------------------------------------------ list
def list_nodes(run) -> None:
    """`ml-nodes`: the admin API's nodes joined with each ML server's health as the network node sees it."""
    with network_of(run) as net:
        nodes = admin_nodes(net)
        ml_configs = ml_configs_of(net.cfg)
        configs = {c["ML_NODE_ID"]: c.path.name for c in ml_configs}
        hosts = {n.id: (n.host, n.poc_port) for n in nodes}
        for c in ml_configs:
            hosts.setdefault(c["ML_NODE_ID"], (c.private_ip, int(c["PORT"])))
        probes = {nid: health_probe(h, p) for nid, (h, p) in hosts.items() if h and p and "/" not in h}
        answers = net.remote.probe_many(probes, what="ML nodes' /health from the network node") if probes else {}
        health = {nid: mlnodes.health_word(r.stdout) for nid, r in answers.items()}
        rows = mlnodes.table_rows(nodes, health, configs)
        text = "\n".join("  ".join(r) for r in [mlnodes.TABLE_COLUMNS, *rows])
        run.log.table(f"ML nodes of {net.cfg.key_name}", mlnodes.TABLE_COLUMNS, rows, text=text)


# -------------------------------------------------------------------------- enable/disable
def set_enabled(run, net, nid: str, enabled: bool) -> None:
    """POST /admin/v1/nodes/:id/enable|disable, SKIP when the admin state already says so."""
    verb = "enable" if enabled else "disable"

    def check():
        got = mlnodes.find(admin_nodes(net), nid)
        if got is None:
            raise DeployError(f"ML node {nid} is not registered with {net.cfg.key_name}", "`fab ml-nodes` lists them")
        return got.enabled == enabled, f"{'enabled' if got.enabled else 'disabled'}"

    def act():
        ans = adminapi.call(net.remote, "POST", adminapi.admin_path(nid, verb), what=f"{verb} ML node {nid}")
        if not ans.ok:
            raise DeployError(f"{verb} ML node {nid}: HTTP {ans.status}: {adminapi.error_of(ans)}")
    run.steps.run(f"ML node {nid} {verb}d", check, act)


def enable(run, enabled: bool) -> None:
    """`enable-ml-node` / `disable-ml-node` for the ML node of the config (or --ml-node on a network config)."""
    with network_of(run) as net:
        set_enabled(run, net, target_id(run), enabled)


def target_id(run) -> str:
    if run.cfg.is_mlnode:
        return run.cfg["ML_NODE_ID"]
    nid = run.opt("ml_node")
    if not nid:
        raise DeployError("which ML node? give the ML node's config as --node, or --ml-node <id> with the network "
                          "node's config", "`fab ml-nodes --node <network node>` lists the ids")
    return nid


# ----------------------------------------------------------------------------------- remove
def remove(run) -> None:
    """`remove-ml-node`: disable, wait for the next epoch, confirm the node left the epoch's participants,
    DELETE it, then stop its containers on its server. Each step rechecks, so a rerun resumes."""
    cfg = run.cfg
    # with the network node's config and --ml-node: the ML server is gone, only its registration is removed
    nid = target_id(run)
    adminapi.admin_path(nid)  # refuses an id that is no ML node id before anything is asked
    timeout = float(run.opt("timeout") or 2 * 86400)
    with network_of(run) as net:
        listed = mlnodes.find(admin_nodes(net), nid)
        if listed is not None:
            set_enabled(run, net, nid, False)
            got = mlnodes.find(admin_nodes(net), nid)
            since = got.disabled_epoch if got and got.disabled_epoch is not None else epoch_of(net).index

            def next_epoch():
                e = epoch_of(net)
                return e.index > since, f"epoch {e.index} ({e.phase}); disabled in epoch {since}"
            run.steps.run(f"an epoch passed since {nid} was disabled",
                          lambda: next_epoch(),
                          lambda: wait_until(run, f"the epoch after {since}", next_epoch, deadline_s=timeout,
                                             interval_s=30, report_every_s=60,
                                             hint="rerun remove-ml-node later: it resumes here (the node stays disabled)"))
            participant = net.cfg.cold_address

            def left():
                ans = adminapi.call(net.remote, "GET", "/v1/epochs/current/participants",
                                    what="the current epoch's participants", base=adminapi.public_url(net.cfg["API_PORT"]))
                inside = mlnodes.node_in_epoch(ans.data, participant, nid) if ans.ok else None
                if ans.ok and inside is None:
                    return True, f"{participant} has no ML nodes in the current epoch"
                return inside is False, ("not among the epoch's ML nodes" if inside is False else
                                         "still in the current epoch" if inside else f"HTTP {ans.status}")
            run.steps.run(f"{nid} left the current epoch's participants", left,
                          lambda: wait_until(run, f"{nid} to leave the epoch", left, deadline_s=timeout,
                                             interval_s=30, report_every_s=60, hint="rerun remove-ml-node later"))

            def delete():
                ans = adminapi.call(net.remote, "DELETE", adminapi.admin_path(nid), what=f"delete ML node {nid}")
                if not ans.ok:
                    raise DeployError(f"delete ML node {nid}: HTTP {ans.status}: {adminapi.error_of(ans)}")
            run.steps.run(f"{nid} removed from {net.cfg.key_name}",
                          lambda: mlnodes.find(admin_nodes(net), nid) is None, delete)
        else:
            run.log.info(f"ML node {nid} is not registered with {net.cfg.key_name}"
                         + (": stopping its containers only" if cfg.is_mlnode else ""))
        if not cfg.is_mlnode:
            run.log.warn(f"the containers of ML node {nid} were not stopped (its server was not given): stop them "
                         "there, or run remove-ml-node --node <its config> once it is reachable")
            return
        ps = compose(run, "ps -q", COMPOSE_MLNODE, source_env=False)
        run.steps.run(f"ML node containers stopped on {cfg.server_ip}",
                      lambda: not run.remote.probe(ps).out,
                      lambda: run.remote.run(compose(run, "down", COMPOSE_MLNODE), what="docker compose (mlnode) down",
                                             timeout=900))


# ---------------------------------------------------------------------------- model change
def change_model(run) -> None:
    """`ml-node-model`: the ML config's MODEL/MODEL_ARGS applied to a registered node: the weights
    downloaded on its server first (phase 2's job, waited for), then PUT outside its PoC timeslot."""
    cfg = run.cfg
    if not cfg.is_mlnode:
        raise DeployError("ml-node-model takes the ML node's config (MODEL, MODEL_ARGS there)",
                          "give --node <the ML node's config>")
    nid = cfg["ML_NODE_ID"]
    with network_run(run) as net:
        download_model.ensure_download(run, wait=True, pull=False)
        want = wanted_registration(run, ml_snapshot(run))
        got = mlnodes.find(admin_nodes(net), nid)
        if got is None:
            raise DeployError(f"ML node {nid} is not registered with {net.cfg.key_name}", "run `fab add-ml-node` first")
        run.steps.run(f"ML node {nid} serves {cfg['MODEL']}",
                      lambda: (not mlnodes.differences(want, got), "; ".join(mlnodes.differences(want, got)) or "as configured"),
                      lambda: apply_update(run, net, want, got, wait=bool(run.opt("wait_poc")),
                                           timeout_s=float(run.opt("timeout") or 0)),
                      recheck=False)
