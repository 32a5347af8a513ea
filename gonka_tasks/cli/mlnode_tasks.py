"""The `fab` tasks of ML nodes on their own servers (docs host/multiple-nodes, host/mlnode-management):
thin wrappers like tasks.py's, each calling an operation of operations/add_ml_node.py,
operations/ml_nodes.py or operations/roll_ml_nodes.py."""

from __future__ import annotations

from gonka_tasks.cli.options import ML_NODE_HELP, node_task
from gonka_tasks.cli.runner import run_task
from gonka_tasks.operations.add_ml_node import add_ml_node as add
from gonka_tasks.operations.ml_nodes import change_model, enable, list_nodes, remove
from gonka_tasks.operations.roll_ml_nodes import roll


@node_task(parallel="prepare this many ML servers at the same time", node=ML_NODE_HELP)
def add_ml_node(c, node=None, nodes=None, yes=False, plan=False, wipe_disk=False, accept_new_host_key=False,
                parallel=1, install_prereqs=False):
    """Add an ML-node server (NODE_KIND=mlnode) to its network node: disk, preflight, model download,
    docker-compose.mlnode.yml only with its ports on PRIVATE_IP and fenced (DOCKER-USER) to the network node,
    the network node's PoC callback on its PRIVATE_IP:9100, registration through its admin API, and a check
    from the network node. A rerun changes nothing."""
    run_task(c, node, nodes, add, {"yes": yes, "plan": plan, "wipe_disk": wipe_disk, "parallel": parallel,
                                  "accept_new_host_key": accept_new_host_key,
                                  "install_prereqs": install_prereqs}, checks=True)


@node_task(node="PATH: the network node's config (or an ML node's: its network node)")
def ml_nodes(c, node=None, nodes=None, plan=False, accept_new_host_key=False):
    """Read-only: the ML nodes registered with a network node (GET /admin/v1/nodes: enabled, status, PoC) joined
    with each one's /health as the network node reaches it and the ML-node configs in nodes/."""
    run_task(c, node, nodes, list_nodes, {"yes": True, "plan": plan,
                                         "accept_new_host_key": accept_new_host_key}, ask=False)


@node_task(ml_node="the node's id, with the network node's config as --node", node=ML_NODE_HELP)
def disable_ml_node(c, node=None, nodes=None, ml_node=None, yes=False, plan=False, accept_new_host_key=False):
    """Disable an ML node (POST /admin/v1/nodes/:id/disable): it serves to the end of the epoch and is left out
    of the next PoC and epoch."""
    run_task(c, node, nodes, lambda r: enable(r, False),
            {"yes": yes, "plan": plan, "ml_node": ml_node, "accept_new_host_key": accept_new_host_key})


@node_task(ml_node="the node's id, with the network node's config as --node", node=ML_NODE_HELP)
def enable_ml_node(c, node=None, nodes=None, ml_node=None, yes=False, plan=False, accept_new_host_key=False):
    """Enable a disabled ML node again (POST /admin/v1/nodes/:id/enable)."""
    run_task(c, node, nodes, lambda r: enable(r, True),
            {"yes": yes, "plan": plan, "ml_node": ml_node, "accept_new_host_key": accept_new_host_key})


@node_task(
    timeout="seconds to wait for the next epoch and for the node to leave it (default 2 days)",
    ml_node="with the network node's config as --node: the id of an ML node whose server is gone "
            "(its registration only)", node=ML_NODE_HELP)
def remove_ml_node(c, node=None, nodes=None, ml_node=None, yes=False, plan=False, timeout=None,
                   accept_new_host_key=False):
    """Decommission an ML node as documented: disable, wait for the next epoch, confirm it left the epoch's
    participants (/v1/epochs/current/participants), delete it (DELETE /admin/v1/nodes/:id), stop its containers.
    A rerun resumes where it stopped. For a server that is gone: the network node's config and --ml-node ID."""
    run_task(c, node, nodes, remove, {"yes": yes, "plan": plan, "timeout": timeout, "ml_node": ml_node,
                                     "accept_new_host_key": accept_new_host_key})


@node_task(wait_poc="wait for the end of the node's PoC timeslot instead of refusing",
           timeout="seconds to wait for the end of PoC (default 6 hours)", node=ML_NODE_HELP)
def ml_node_model(c, node=None, nodes=None, yes=False, plan=False, wait_poc=False, timeout=None,
                  accept_new_host_key=False):
    """Apply the ML node config's MODEL/MODEL_ARGS to the registered node: the weights downloaded on its server
    first, then PUT /admin/v1/nodes/:id outside the node's PoC timeslot (refused there, or waited for)."""
    run_task(c, node, nodes, change_model, {"yes": yes, "plan": plan, "wait_poc": wait_poc,
                                           "timeout": timeout, "accept_new_host_key": accept_new_host_key})


@node_task(iterable=("node", "ml_node"), node="PATH: the network node's config",
           ml_node="ID: only this ML node (repeat --ml-node for several)")
def roll_ml_nodes(c, node=None, nodes=None, ml_node=None, yes=False, plan=False, accept_new_host_key=False):
    """Roll each ML node of a network node to its config's MLNODE_IMAGE, one at a time: pull (job, progress),
    disable, recreate, wait healthy, enable, next. Stops at the first failure: that node back on its old image,
    running; the rest untouched."""
    run_task(c, node, nodes, roll, {"yes": yes, "plan": plan, "ml_node": ml_node,
                                   "accept_new_host_key": accept_new_host_key})


TASKS = (add_ml_node, ml_nodes, disable_ml_node, enable_ml_node, remove_ml_node, ml_node_model, roll_ml_nodes)
