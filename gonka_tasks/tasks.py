"""The `fab` tasks: thin wrappers that parse options, build the run and call phase functions.

Every task takes the node as `--node nodes/<name>.conf` (or a bare name); the SSH target comes
from the node config unless `fab -H` names it. Every task validates the config first and stops
with exit 1 and a clear message on any failure.
"""

from __future__ import annotations

import glob
import inspect
import sys
from collections.abc import Callable, Iterable
from pathlib import Path

from fabric import Connection, task
from invoke import Collection
from invoke.exceptions import Exit

from . import phases
from .errors import ConfigError, DeployError
from .phases.prereqs import server_checks
from .preflight import probes as prerequisite_probes
from .session import (
    Run,
    confirm,
    guarded,
    load_node,
    parameter_rows,
    parameters_table,
    report_config_error,
    start_run,
)

COMMON_HELP = {
    "node": "node config: nodes/<name>.conf or a bare name (repeat for several nodes)",
    "nodes": "glob of node configs, e.g. 'nodes/*.conf'",
    "yes": "do not ask for confirmation (needed without a terminal)",
    "plan": "run the read-only checks for real and print what each step would do; change nothing",
    "accept_new_host_key": "forget the pinned SSH host key of this server and pin the one it shows now",
    "accept_lost_mnemonic": "go on although the warm key's mnemonic was never saved here (backs the keyring up "
                            "first and records it in warm_key.lost)",
}


INSTALL_HELP = ("when the preflight finds Docker Engine, its Compose plugin or the NVIDIA container toolkit "
                "missing (and nothing else), install them with apt from the vendors' repositories first")


def node_task(**extra_help: str):
    """@task for node tasks: --node repeatable, help for the common flags the function has."""
    def wrap(fn):
        params = inspect.signature(fn).parameters
        helps = {k: v for k, v in COMMON_HELP.items() if k in params}
        return task(iterable=["node"], help={**helps, **extra_help})(fn)
    return wrap


def _host_string(c) -> str | None:
    """What `fab -H` said for this call (None when the task runs without -H)."""
    return getattr(c, "original_host", None) if isinstance(c, Connection) else None


def project_dir(c) -> Path:
    """The project this task runs from: where fab found its fabfile/tasks (`fab -r DIR`), else the cwd.
    Its nodes/ and logs/ hold every node's artefacts and logs."""
    prefix = getattr(c.config, "_project_prefix", None)  # set by invoke from the loaded collection's place
    return Path(prefix) if prefix else Path.cwd()


def _server_names(path: str, project: Path) -> set[str]:
    """SERVER_IP and SSH_HOST of a node config (what `fab -H` may name it by)."""
    from dotenv import dotenv_values  # noqa: PLC0415

    from .config import resolve_node_path  # noqa: PLC0415

    try:
        values = dotenv_values(resolve_node_path(path, project / "nodes"), interpolate=False)
    except (OSError, UnicodeDecodeError):
        return set()
    return {v.strip() for v in (values.get("SERVER_IP"), values.get("SSH_HOST")) if v and v.strip()}


def nodes_for_host(host_string: str, candidates: list[str] | None = None, project: Path | None = None) -> list[str]:
    """The node configs (default: the project's nodes/*.conf) whose SERVER_IP or SSH_HOST is the `fab -H` host."""
    from .session import parse_host_string  # noqa: PLC0415

    _, host, _ = parse_host_string(host_string)
    project = project or Path.cwd()
    if candidates is None:
        candidates = [p for p in sorted(glob.glob(str(project / "nodes" / "*.conf"))) if not p.endswith("example.conf")]
    return [p for p in candidates if host in _server_names(p, project)]


def node_paths(node: Iterable[str] | None, nodes: str | None, host_string: str | None = None,
               project: Path | None = None) -> list[str]:
    """--node values plus the --nodes glob, in order, without repeats; with only `-H`, the matching configs."""
    out: list[str] = list(node or [])
    if host_string and not out and not nodes:
        out = nodes_for_host(host_string, project=project)
        if not out:
            raise DeployError(f"no node config in nodes/ has SERVER_IP or SSH_HOST {host_string}; give --node")
        if len(out) > 1:
            raise DeployError(f"-H {host_string} matches several node configs: {', '.join(out)}",
                              "name the one to use with --node")
        return out
    if nodes:
        matched = sorted(glob.glob(nodes))
        matched = [m for m in matched if not m.endswith("example.conf")]
        if not matched:
            raise DeployError(f"--nodes {nodes!r} matches no file")
        out += matched
    seen: set[str] = set()
    out = [p for p in out if not (p in seen or seen.add(p))]
    if host_string and len(out) > 1:
        # `fab -H a,b task --node A --node B` calls the task once per host: each call takes its own node
        out = nodes_for_host(host_string, out, project) or out
    return out


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
        paths = node_paths(node, nodes, _host_string(c), project)
    except DeployError as e:
        print(f"error: {e}", file=sys.stderr)
        raise Exit(code=1) from None
    if not paths:
        print("error: no node given; use --node nodes/<name>.conf (see nodes/example.conf)", file=sys.stderr)
        raise Exit(code=1)
    if network_only and len(paths) > 1:  # `--nodes 'nodes/*.conf'` over a fleet with ML-node servers in it
        from .mltasks import kinds  # noqa: PLC0415

        paths, ml = kinds(paths, project)
        if ml:
            names = ", ".join(Path(p).stem for p in ml)
            print(f"{network_only}: leaving out the ML-node servers {names} (`fab ml-nodes` shows them)",
                  file=sys.stderr)
        if not paths:
            print(f"error: {network_only} works on network nodes, and none was given", file=sys.stderr)
            raise Exit(code=1)
    from .fleet import run_fleet  # noqa: PLC0415 - fleets pull in the thread pool only when used

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
            run = start_run(cfg, host_string=_host_string(c), opts=opts, console=console, prefix=prefix,
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


def _phase_task(phase_name: str) -> Callable[[Run], None]:
    def work(run: Run) -> None:
        phases.phase_named(phase_name).run(run)
    return work


# ----------------------------------------------------------------------------- tasks
@node_task()
def validate(c, node=None, nodes=None, yes=False, plan=False, accept_new_host_key=False):
    """Check a node config, SSH access, root rights and the server's prerequisites (Docker, Compose, NVIDIA
    driver and runtime, GPU memory for the model, disk space, RAM, ports, reach of git, registry, hub and
    seed: PASS/WARN/FAIL with a fix each); show the parameters and ask to proceed."""
    run_task(c, node, nodes, lambda run: run.log.ok("node config valid, SSH and root access work, prerequisites met"),
             {"yes": yes, "plan": plan, "accept_new_host_key": accept_new_host_key}, checks=True)


@node_task(
    from_="start at this phase (name or number), e.g. --from configure",
    only="run only this phase",
    wipe_disk="allow formatting a DATA_DISK that is not blank (asks you to type the device name)",
    update_repo="move the gonka checkout to GONKA_REF when it is on another ref",
    parallel="deploy this many nodes at the same time",
    no_pipeline="download the model before phase 3 instead of alongside phases 3-5 (as the seed does)",
    install_prereqs=INSTALL_HELP,
)
def deploy(c, node=None, nodes=None, yes=False, plan=False, from_=None, only=None, wipe_disk=False,
           update_repo=False, accept_new_host_key=False, parallel=1, no_pipeline=False, accept_lost_mnemonic=False,
           install_prereqs=False):
    """Full deploy: validate and preflight, then phases 1-7 on one connection (each step skips what is done)."""
    from .mltasks import deploy_node, run_mixed  # noqa: PLC0415 - ML-node configs deploy after network nodes
    run_mixed(c, node, nodes, deploy_node, checks=only not in ("verify", "7"), opts={
        "yes": yes, "plan": plan, "from_": from_, "only": only, "wipe_disk": wipe_disk,
        "update_repo": update_repo, "accept_new_host_key": accept_new_host_key, "parallel": parallel,
        "no_pipeline": no_pipeline, "accept_lost_mnemonic": accept_lost_mnemonic, "install_prereqs": install_prereqs})


# phases 1 and 2 are also an ML-node server's (its disk and model); the rest are the network node's
ML_SERVER_PHASES = ("prepare-server", "download-model")


def _phase(c, name: str, node, nodes, **opts) -> None:
    run_task(c, node, nodes, _phase_task(name), opts, checks=True,
             network_only="" if name in ML_SERVER_PHASES else name)


@node_task(
    wipe_disk="allow formatting a DATA_DISK that is not blank (asks you to type the device name)",
    install_prereqs=INSTALL_HELP)
def prepare_server(c, node=None, nodes=None, yes=False, plan=False, wipe_disk=False, accept_new_host_key=False,
                   install_prereqs=False):
    """Phase 1: add admin SSH keys, format (only if blank) and mount the data disk, start Prometheus."""
    _phase(c, "prepare-server", node, nodes, yes=yes, plan=plan, wipe_disk=wipe_disk,
           accept_new_host_key=accept_new_host_key, install_prereqs=install_prereqs)


@node_task(
    no_wait="start the download job on the server and return at once",
    update_repo="move the gonka checkout to GONKA_REF when it is on another ref")
def download_model(c, node=None, nodes=None, yes=False, plan=False, no_wait=False, update_repo=False,
                   accept_new_host_key=False):
    """Phase 2: clone the gonka repo at GONKA_REF, pull the images and download MODEL on the server (jobs, resumable)."""
    _phase(c, "download-model", node, nodes, yes=yes, plan=plan, no_wait=no_wait, update_repo=update_repo,
           accept_new_host_key=accept_new_host_key)


@node_task()
def configure(c, node=None, nodes=None, yes=False, plan=False, accept_new_host_key=False):
    """Phase 3: render config.env and node-config.json locally and upload them to deploy/join."""
    _phase(c, "configure", node, nodes, yes=yes, plan=plan, accept_new_host_key=accept_new_host_key)


@node_task()
def start_base(c, node=None, nodes=None, yes=False, plan=False, accept_new_host_key=False,
               accept_lost_mnemonic=False):
    """Phase 4: start tmkms + node, create the warm key (once) and register the participant."""
    _phase(c, "start-base", node, nodes, yes=yes, plan=plan, accept_new_host_key=accept_new_host_key,
           accept_lost_mnemonic=accept_lost_mnemonic)


@node_task()
def configure_chain(c, node=None, nodes=None, yes=False, plan=False, accept_new_host_key=False):
    """Phase 5: set persistent_peers and pruning in the chain's TOML files; restart node if changed."""
    _phase(c, "configure-chain", node, nodes, yes=yes, plan=plan, accept_new_host_key=accept_new_host_key)


@node_task()
def launch(c, node=None, nodes=None, yes=False, plan=False, accept_new_host_key=False):
    """Phase 6: start all services with the ML node (docker-compose.yml + docker-compose.mlnode.yml)."""
    _phase(c, "launch", node, nodes, yes=yes, plan=plan, accept_new_host_key=accept_new_host_key)


@node_task(parallel="check this many nodes at the same time")
def verify(c, node=None, nodes=None, plan=False, accept_new_host_key=False, parallel=1):
    """Phase 7: check the running host (registration, RPC, dashboard, ML node, GPU, logs, exposure)."""
    # read-only on the server: --plan changes nothing here (it is accepted like on every task)
    run_task(c, node, nodes, _phase_task("verify"),
             {"yes": True, "plan": plan, "accept_new_host_key": accept_new_host_key, "parallel": parallel}, ask=False,
             network_only="verify")


@node_task(parallel="query this many nodes at the same time")
def status(c, node=None, nodes=None, plan=False, accept_new_host_key=False, parallel=1):
    """Read-only: a table of the phases (from live probes), containers, height, disk, model, keys."""
    from .phases.status import status as show  # noqa: PLC0415
    run_task(c, node, nodes, show, {"yes": True, "plan": plan, "accept_new_host_key": accept_new_host_key,
                                    "parallel": parallel}, ask=False, network_only="status")


@node_task()
def backup_keys(c, node=None, nodes=None, plan=False, accept_new_host_key=False):
    """Copy .tmkms/, the warm keyring, node_key.json and the API's .dapi config and database into
    nodes/<KEY_NAME>/backup/<time>/ (checksummed)."""
    from .phases.backup import backup_keys as backup  # noqa: PLC0415
    run_task(c, node, nodes, backup, {"yes": True, "plan": plan, "accept_new_host_key": accept_new_host_key},
             ask=False, network_only="backup-keys")


@node_task(
    version="the upgrade's plan name, e.g. v0.2.14 (Cosmovisor's upgrades/<version>/ directory)",
    checksums="the published sha256 sums: a local file or an http(s) URL (`<sha256>  <file>` lines for "
              "inferenced-amd64.zip and decentralized-api-amd64.zip, optionally the unpacked binaries)",
    releases_url="where the release zips are (default https://github.com/gonka-ai/gonka/releases/download)")
def stage_upgrade(c, node=None, nodes=None, version=None, checksums=None, releases_url=None, yes=False, plan=False,
                  accept_new_host_key=False):
    """Pre-stage a chain upgrade: download the chain and API binaries of --version on the server, check them
    with `sha256sum --check` against --checksums, check the free space Cosmovisor's backup needs, and place
    them in .inference/ and .dapi/cosmovisor/upgrades/<version>/ (never the running binary); a rerun skips."""
    from .phases.upgrade import stage_upgrade as stage  # noqa: PLC0415
    run_task(c, node, nodes, stage, {"yes": yes, "plan": plan, "accept_new_host_key": accept_new_host_key,
                                     "version": version, "checksums": checksums, "releases_url": releases_url},
             network_only="stage-upgrade")


def build_namespace() -> Collection:
    """The collection `fab` shows: every task of the mission."""
    ns = Collection()
    for t in (deploy, validate, prepare_server, download_model, configure, start_base, configure_chain,
              launch, verify, status, backup_keys, stage_upgrade):
        ns.add_task(t)
    from .mltasks import TASKS as ML_TASKS  # noqa: PLC0415 - ML nodes on their own servers
    for t in ML_TASKS:
        ns.add_task(t)
    try:
        from gonka_sim.demo import demo  # noqa: PLC0415 - the demo is optional (needs the simulated world)
        ns.add_task(demo)
    except ImportError:
        pass
    return ns
