"""The `fab` tasks of ML nodes on their own servers (docs host/multiple-nodes, host/mlnode-management):
thin wrappers like tasks.py's, each calling a phase function of phases/mlnode.py or phases/mlops.py."""

from __future__ import annotations

from pathlib import Path

from fabric import task
from invoke.exceptions import Exit

from .errors import DeployError

ML_HELP = {"node": "the ML node's config (NODE_KIND=mlnode; its NETWORK_NODE names the network node)"}


def _common():
    from . import tasks  # noqa: PLC0415 - tasks.py imports this module at its end
    return tasks


def kinds(paths: list[str], project: Path) -> tuple[list[str], list[str]]:
    """(network node configs, ML-node configs) of `paths`, each in order (NODE_KIND as written)."""
    from dotenv import dotenv_values  # noqa: PLC0415

    from .config import resolve_node_path  # noqa: PLC0415

    net, ml = [], []
    for p in paths:
        try:
            kind = dotenv_values(resolve_node_path(p, project / "nodes"), interpolate=False).get("NODE_KIND") or ""
        except (OSError, UnicodeDecodeError):
            kind = ""
        (ml if kind.strip().lower() == "mlnode" else net).append(p)
    return net, ml


def deploy_node(run) -> None:
    """A network node: phases 1-7; an ML-node server: add-ml-node."""
    from . import phases  # noqa: PLC0415

    if run.cfg.is_mlnode:
        from .phases.mlnode import add_ml_node as add  # noqa: PLC0415
        add(run)
    else:
        phases.deploy(run)


def run_mixed(c, node, nodes, work, opts: dict, **kw) -> None:
    """run_task over the network nodes first, then the ML nodes (they register with a running network node)."""
    t = _common()
    project = t.project_dir(c)
    try:
        paths = t.node_paths(node, nodes, t._host_string(c), project)
    except DeployError:
        paths = []
    net, ml = kinds(paths, project)
    if not (net and ml):
        t.run_task(c, node, nodes, work, opts, **kw)
        return
    rc = 0
    for group in (net, ml):
        try:
            t.run_task(c, group, None, work, opts, **kw)
        except Exit as e:
            rc = rc or e.code
    if rc:
        raise Exit(code=rc)


INSTALL_HELP = ("when the preflight finds Docker Engine, its Compose plugin or the NVIDIA container toolkit "
                "missing (and nothing else), install them with apt first")


@task(iterable=["node"], help={"parallel": "prepare this many ML servers at the same time", "install_prereqs": INSTALL_HELP,
                               "wipe_disk": "allow formatting a DATA_DISK that is not blank (asks for the device name)",
                               **ML_HELP})
def add_ml_node(c, node=None, nodes=None, yes=False, plan=False, wipe_disk=False, accept_new_host_key=False,
                parallel=1, install_prereqs=False):
    """Add an ML-node server (NODE_KIND=mlnode) to its network node: disk, preflight, model download,
    docker-compose.mlnode.yml only with its ports on PRIVATE_IP and fenced (DOCKER-USER) to the network node,
    the network node's PoC callback on its PRIVATE_IP:9100, registration through its admin API, and a check
    from the network node. A rerun changes nothing."""
    from .phases.mlnode import add_ml_node as add  # noqa: PLC0415
    _common().run_task(c, node, nodes, add, {"yes": yes, "plan": plan, "wipe_disk": wipe_disk, "parallel": parallel,
                                             "accept_new_host_key": accept_new_host_key,
                                             "install_prereqs": install_prereqs}, checks=True)


@task(iterable=["node"], help={"node": "the network node's config (or an ML node's: its network node)"})
def ml_nodes(c, node=None, nodes=None, plan=False, accept_new_host_key=False):
    """Read-only: the ML nodes registered with a network node (GET /admin/v1/nodes: enabled, status, PoC) joined
    with each one's /health as the network node reaches it and the ML-node configs in nodes/."""
    from .phases.mlops import list_nodes  # noqa: PLC0415
    _common().run_task(c, node, nodes, list_nodes, {"yes": True, "plan": plan,
                                                    "accept_new_host_key": accept_new_host_key}, ask=False)


@task(iterable=["node"], help={"ml_node": "the node's id, with the network node's config as --node", **ML_HELP})
def disable_ml_node(c, node=None, nodes=None, ml_node=None, yes=False, plan=False, accept_new_host_key=False):
    """Disable an ML node (POST /admin/v1/nodes/:id/disable): it serves to the end of the epoch and is left out
    of the next PoC and epoch."""
    from .phases.mlops import enable  # noqa: PLC0415
    _common().run_task(c, node, nodes, lambda r: enable(r, False),
                       {"yes": yes, "plan": plan, "ml_node": ml_node, "accept_new_host_key": accept_new_host_key})


@task(iterable=["node"], help={"ml_node": "the node's id, with the network node's config as --node", **ML_HELP})
def enable_ml_node(c, node=None, nodes=None, ml_node=None, yes=False, plan=False, accept_new_host_key=False):
    """Enable a disabled ML node again (POST /admin/v1/nodes/:id/enable)."""
    from .phases.mlops import enable  # noqa: PLC0415
    _common().run_task(c, node, nodes, lambda r: enable(r, True),
                       {"yes": yes, "plan": plan, "ml_node": ml_node, "accept_new_host_key": accept_new_host_key})


@task(iterable=["node"], help={
    "timeout": "seconds to wait for the next epoch and for the node to leave it (default 2 days)",
    "ml_node": "with the network node's config as --node: the id of an ML node whose server is gone "
               "(its registration only)", **ML_HELP})
def remove_ml_node(c, node=None, nodes=None, ml_node=None, yes=False, plan=False, timeout=None,
                   accept_new_host_key=False):
    """Decommission an ML node as documented: disable, wait for the next epoch, confirm it left the epoch's
    participants (/v1/epochs/current/participants), delete it (DELETE /admin/v1/nodes/:id), stop its containers.
    A rerun resumes where it stopped. For a server that is gone: the network node's config and --ml-node ID."""
    from .phases.mlops import remove  # noqa: PLC0415
    _common().run_task(c, node, nodes, remove, {"yes": yes, "plan": plan, "timeout": timeout, "ml_node": ml_node,
                                                "accept_new_host_key": accept_new_host_key})


@task(iterable=["node"], help={"wait_poc": "wait for the end of the node's PoC timeslot instead of refusing",
                               "timeout": "seconds to wait for the end of PoC (default 6 hours)", **ML_HELP})
def ml_node_model(c, node=None, nodes=None, yes=False, plan=False, wait_poc=False, timeout=None,
                  accept_new_host_key=False):
    """Apply the ML node config's MODEL/MODEL_ARGS to the registered node: the weights downloaded on its server
    first, then PUT /admin/v1/nodes/:id outside the node's PoC timeslot (refused there, or waited for)."""
    from .phases.mlops import change_model  # noqa: PLC0415
    _common().run_task(c, node, nodes, change_model, {"yes": yes, "plan": plan, "wait_poc": wait_poc,
                                                      "timeout": timeout, "accept_new_host_key": accept_new_host_key})


@task(iterable=["node", "ml_node"], help={"node": "the network node's config", "ml_node": "only this ML node id (repeat)"})
def roll_ml_nodes(c, node=None, nodes=None, ml_node=None, yes=False, plan=False, accept_new_host_key=False):
    """Roll each ML node of a network node to its config's MLNODE_IMAGE, one at a time: pull (job, progress),
    disable, recreate, wait healthy, enable, next. Stops at the first failure: that node back on its old image,
    running; the rest untouched."""
    from .phases.mlops import roll  # noqa: PLC0415
    _common().run_task(c, node, nodes, roll, {"yes": yes, "plan": plan, "ml_node": ml_node,
                                              "accept_new_host_key": accept_new_host_key})


TASKS = (add_ml_node, ml_nodes, disable_ml_node, enable_ml_node, remove_ml_node, ml_node_model, roll_ml_nodes)
