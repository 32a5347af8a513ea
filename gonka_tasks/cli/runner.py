"""Running a task's work on its nodes: load each config, start its run, the preflight, the work.

`run_task` is what every task calls; `run_mixed` runs network nodes before ML-node servers (which
register with a running network node). Failures end as exit codes, never tracebacks.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

from invoke.exceptions import Exit

from gonka_tasks.cli.fleet import run_fleet
from gonka_tasks.cli.selection import host_string, kinds, node_paths, project_dir
from gonka_tasks.core.preflight import probes as prerequisite_probes
from gonka_tasks.errors import ConfigError, DeployError
from gonka_tasks.operations.add_ml_node import add_ml_node
from gonka_tasks.phases.deploy import deploy, phase_named
from gonka_tasks.phases.prereqs import server_checks
from gonka_tasks.session.run import (
    Run,
    confirm,
    guarded,
    load_node,
    parameter_rows,
    parameters_table,
    report_config_error,
    start_run,
)

# phases 1 and 2 are also an ML-node server's (its disk and model); the rest are the network node's
ML_SERVER_PHASES = ("prepare-server", "download-model")


def preflight(run: Run, *, ask: bool = True) -> None:
    """Show the parameters, ask once (unless --yes or plan), then connect and check root access."""
    run.log.table(f"parameters of {run.cfg.key_name}", ("parameter", "value"), parameter_rows(run.cfg, run.target),
                  text="parameters:\n" + parameters_table(run.cfg, run.target), styles={})
    if ask and not run.plan:
        confirm("Proceed?", yes=bool(run.opt("yes")))
    run.remote  # noqa: B018 - connects and checks root access now, before any phase


def run_task(c, node, nodes, work: Callable[[Run], object], opts: dict, *, ask: bool = True,
             checks: bool = False, network_only: str = "") -> None:
    """Load each node, run `work` on it after the preflight, exit non-zero if any node failed.

    `checks`: the task changes the server (or is `validate`): the server's prerequisites are
    checked first, read-only, and any FAIL stops it before anything changes. `network_only`: the
    task's name when it has no meaning on an ML-node server (refused before connecting)."""
    project = project_dir(c)
    try:
        paths = node_paths(node, nodes, host_string(c), project)
    except DeployError as e:
        print(f"error: {e}", file=sys.stderr)
        raise Exit(code=1) from None
    if not paths:
        print("error: no node given; use --node nodes/<name>.conf (see nodes/example.conf)", file=sys.stderr)
        raise Exit(code=1)
    if network_only and len(paths) > 1:  # `--nodes 'nodes/*.conf'` over a fleet with ML-node servers in it
        paths, ml = kinds(paths, project)
        if ml:
            names = ", ".join(Path(p).stem for p in ml)
            print(f"{network_only}: leaving out the ML-node servers {names} (`fab ml-nodes` shows them)",
                  file=sys.stderr)
        if not paths:
            print(f"error: {network_only} works on network nodes, and none was given", file=sys.stderr)
            raise Exit(code=1)

    def one(path: str, console=None, prefix: str = "") -> tuple[int, Run | None]:
        try:
            cfg = load_node(path, project)
            if network_only and cfg.is_mlnode:
                raise ConfigError([f"{network_only} works on a network node; this is an ML-node server "
                                   "(NODE_KIND=mlnode): deploy it with add-ml-node, see it with "
                                   "`ml-nodes --node <it>`, take it out with remove-ml-node"], path)
        except ConfigError as e:
            report_config_error(path, e, console, prefix)
            return 1, None
        try:
            run = start_run(cfg, host_string=host_string(c), opts=opts, console=console, prefix=prefix,
                            fabric_config=c.config)
        except DeployError as e:
            report_config_error(path, ConfigError([str(e)], path), console, prefix)
            return 1, None

        def body(r: Run) -> None:
            if checks:
                r.prefetch = prerequisite_probes(r.cfg)  # asked together with the root check
            preflight(r, ask=ask)
            if checks:
                server_checks(r)
            work(r)
        return guarded(run, body), run

    rc = run_fleet(paths, one, parallel=int(opts.get("parallel") or 1))
    if rc:
        raise Exit(code=rc)


def run_mixed(c, node, nodes, work: Callable[[Run], object], opts: dict, **kw) -> None:
    """run_task over the network nodes first, then the ML nodes (they register with a running network node)."""
    project = project_dir(c)
    try:
        paths = node_paths(node, nodes, host_string(c), project)
    except DeployError:
        paths = []
    net, ml = kinds(paths, project)
    if not (net and ml):
        run_task(c, node, nodes, work, opts, **kw)
        return
    rc = 0
    for group in (net, ml):
        try:
            run_task(c, group, None, work, opts, **kw)
        except Exit as e:
            rc = rc or e.code
    if rc:
        raise Exit(code=rc)


def deploy_node(run: Run) -> None:
    """A network node: phases 1-7; an ML-node server: add-ml-node."""
    if run.cfg.is_mlnode:
        add_ml_node(run)
    else:
        deploy(run)


def phase_work(phase_name: str) -> Callable[[Run], None]:
    """The work of one phase's task."""
    def work(run: Run) -> None:
        phase_named(phase_name).run(run)
    return work


def run_phase(c, name: str, node, nodes, **opts) -> None:
    """A phase as its own task: the preflight's checks first; phases 3-7 refuse an ML-node server."""
    run_task(c, node, nodes, phase_work(name), opts, checks=True,
             network_only="" if name in ML_SERVER_PHASES else name)
