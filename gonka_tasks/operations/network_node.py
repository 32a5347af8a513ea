"""The other server of an ML-node task: the network node (or an ML server) as a second run on the same
log and steps, its admin API and epoch, and the ML-node configs that name it.

The second run has its own SSH connection and its own pinned host key; secrets of the network node's
config are masked in the shared log.
"""

from __future__ import annotations

import contextlib
import glob
from collections.abc import Iterator

from gonka_tasks.connectors import adminapi
from gonka_tasks.core import mlnodes
from gonka_tasks.errors import ConfigError, DeployError
from gonka_tasks.session.run import Run, load_node
from gonka_tasks.session.target import configured_user, resolve_target


@contextlib.contextmanager
def network_run(run) -> Iterator:
    """The ML node's network node as a second Run on the same log and steps (its own SSH connection,
    its own pinned host key). Closed (connection only) on leaving."""
    cfg = run.cfg
    path = mlnodes.network_path_of(cfg)
    try:
        net_cfg = load_node(str(path), cfg.project_dir)
    except ConfigError as e:
        raise DeployError(f"NETWORK_NODE={cfg['NETWORK_NODE']}: the network node's config cannot be used:\n{e}",
                          f"fix {path}, or point NETWORK_NODE at the network node's config") from None
    if net_cfg.is_mlnode:
        raise DeployError(f"NETWORK_NODE={cfg['NETWORK_NODE']} ({path}) is itself an ML-node config",
                          "point NETWORK_NODE at the network node's config (NODE_KIND=network)")
    if not net_cfg.private_ip:
        raise DeployError(f"{path}: PRIVATE_IP is not set on the network node; its ML nodes call it back there "
                          "(DAPI_API__POC_CALLBACK_URL) and it reaches them from there",
                          f"set PRIVATE_IP in {path} to the network node's address on the private network")
    for s in net_cfg.secrets:
        run.log.add_secret(s)
    with side_run(run, net_cfg) as net:
        yield net


@contextlib.contextmanager
def side_run(run, cfg) -> Iterator:
    """Another server (`cfg`) as a second Run on the same log and steps: its own SSH connection and
    pinned host key, closed (connection only) on leaving."""
    ssh_config = getattr(run.fabric_config, "base_ssh_config", None)
    target = resolve_target(cfg, None, ssh_config, fabric_user=configured_user(run.fabric_config))
    other = Run(cfg=cfg, log=run.log, target=target, opts=run.opts, steps=run.steps, fabric_config=run.fabric_config)
    try:
        yield other
    finally:
        if other._remote is not None:
            with contextlib.suppress(Exception):
                other._remote.conn.close()


def admin_nodes(net) -> list[mlnodes.Registered]:
    ans = adminapi.call(net.remote, "GET", "/admin/v1/nodes", what="ML nodes registered with the network node")
    if not ans.ok:
        raise DeployError(f"GET /admin/v1/nodes on the network node: HTTP {ans.status}: {adminapi.error_of(ans)}")
    return mlnodes.parse_nodes(ans.data)


def epoch_of(net) -> mlnodes.Epoch:
    ans = adminapi.call(net.remote, "GET", "/v1/epochs/latest", what="the current epoch and phase",
                        base=adminapi.public_url(net.cfg["API_PORT"]))
    if not ans.ok:
        raise DeployError(f"GET /v1/epochs/latest on the network node: HTTP {ans.status}: {adminapi.error_of(ans)}")
    return mlnodes.parse_epoch(ans.data)


def ml_configs_of(net_cfg) -> list:
    """The project's ML-node configs whose NETWORK_NODE is this network node (by file), sorted by name."""
    out = []
    for path in sorted(glob.glob(str(net_cfg.project_dir / "nodes" / "*.conf"))):
        if path.endswith("example.conf"):
            continue
        try:
            c = load_node(path, net_cfg.project_dir)
        except ConfigError:
            continue
        if c.is_mlnode and mlnodes.same_file(mlnodes.network_path_of(c), net_cfg.path):
            out.append(c)
    return out


def network_of(run):
    """The network node of a task run on an ML-node config: `network_run`; on a network config: itself."""
    if run.cfg.is_mlnode:
        return network_run(run)
    return contextlib.nullcontext(run)
