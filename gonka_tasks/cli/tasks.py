"""The network node's `fab` tasks: the full deploy, each phase on its own, and the read-only and
day-2 tasks of a network node. Thin wrappers: parse options, hand the work to `runner.run_task`.

Every task takes the node as `--node nodes/<name>.conf` (or a bare name); the SSH target comes
from the node config unless `fab -H` names it. Every task validates the config first and stops
with exit 1 and a clear message on any failure.
"""

from __future__ import annotations

from gonka_tasks.cli.options import node_task
from gonka_tasks.cli.runner import deploy_node, phase_work, run_mixed, run_phase, run_task
from gonka_tasks.operations.stage_upgrade import stage_upgrade as stage
from gonka_tasks.operations.status import status as show
from gonka_tasks.phases.backup import backup_keys as backup


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
    parallel="deploy this many nodes at the same time",
    no_pipeline="download the model before phase 3 instead of alongside phases 3-5 (as the seed does)",
)
def deploy(c, node=None, nodes=None, yes=False, plan=False, from_=None, only=None, wipe_disk=False,
           update_repo=False, accept_new_host_key=False, parallel=1, no_pipeline=False, accept_lost_mnemonic=False,
           install_prereqs=False):
    """Full deploy: validate and preflight, then phases 1-7 on one connection (each step skips what is done)."""
    # ML-node configs in the mix deploy after the network nodes they register with
    run_mixed(c, node, nodes, deploy_node, checks=only not in ("verify", "7"), opts={
        "yes": yes, "plan": plan, "from_": from_, "only": only, "wipe_disk": wipe_disk,
        "update_repo": update_repo, "accept_new_host_key": accept_new_host_key, "parallel": parallel,
        "no_pipeline": no_pipeline, "accept_lost_mnemonic": accept_lost_mnemonic, "install_prereqs": install_prereqs})


@node_task()
def prepare_server(c, node=None, nodes=None, yes=False, plan=False, wipe_disk=False, accept_new_host_key=False,
                   install_prereqs=False):
    """Phase 1: add admin SSH keys, format (only if blank) and mount the data disk, start Prometheus."""
    run_phase(c, "prepare-server", node, nodes, yes=yes, plan=plan, wipe_disk=wipe_disk,
              accept_new_host_key=accept_new_host_key, install_prereqs=install_prereqs)


@node_task(no_wait="start the download job on the server and return at once")
def download_model(c, node=None, nodes=None, yes=False, plan=False, no_wait=False, update_repo=False,
                   accept_new_host_key=False):
    """Phase 2: clone the gonka repo at GONKA_REF, pull the images and download MODEL on the server (jobs, resumable)."""
    run_phase(c, "download-model", node, nodes, yes=yes, plan=plan, no_wait=no_wait, update_repo=update_repo,
              accept_new_host_key=accept_new_host_key)


@node_task()
def configure(c, node=None, nodes=None, yes=False, plan=False, accept_new_host_key=False):
    """Phase 3: render config.env and node-config.json locally and upload them to deploy/join."""
    run_phase(c, "configure", node, nodes, yes=yes, plan=plan, accept_new_host_key=accept_new_host_key)


@node_task()
def start_base(c, node=None, nodes=None, yes=False, plan=False, accept_new_host_key=False,
               accept_lost_mnemonic=False):
    """Phase 4: start tmkms + node, create the warm key (once) and register the participant."""
    run_phase(c, "start-base", node, nodes, yes=yes, plan=plan, accept_new_host_key=accept_new_host_key,
              accept_lost_mnemonic=accept_lost_mnemonic)


@node_task()
def configure_chain(c, node=None, nodes=None, yes=False, plan=False, accept_new_host_key=False):
    """Phase 5: set persistent_peers and pruning in the chain's TOML files; restart node if changed."""
    run_phase(c, "configure-chain", node, nodes, yes=yes, plan=plan, accept_new_host_key=accept_new_host_key)


@node_task()
def launch(c, node=None, nodes=None, yes=False, plan=False, accept_new_host_key=False):
    """Phase 6: start all services with the ML node (docker-compose.yml + docker-compose.mlnode.yml)."""
    run_phase(c, "launch", node, nodes, yes=yes, plan=plan, accept_new_host_key=accept_new_host_key)


@node_task(parallel="check this many nodes at the same time")
def verify(c, node=None, nodes=None, plan=False, accept_new_host_key=False, parallel=1):
    """Phase 7: check the running host (registration, RPC, dashboard, ML node, GPU, logs, exposure)."""
    # read-only on the server: --plan changes nothing here (it is accepted like on every task)
    run_task(c, node, nodes, phase_work("verify"),
             {"yes": True, "plan": plan, "accept_new_host_key": accept_new_host_key, "parallel": parallel}, ask=False,
             network_only="verify")


@node_task(parallel="query this many nodes at the same time")
def status(c, node=None, nodes=None, plan=False, accept_new_host_key=False, parallel=1):
    """Read-only: a table of the phases (from live probes), containers, height, disk, model, keys."""
    run_task(c, node, nodes, show, {"yes": True, "plan": plan, "accept_new_host_key": accept_new_host_key,
                                    "parallel": parallel}, ask=False, network_only="status")


@node_task()
def backup_keys(c, node=None, nodes=None, plan=False, accept_new_host_key=False):
    """Copy .tmkms/, the warm keyring, node_key.json and the API's .dapi config and database into
    nodes/<KEY_NAME>/backup/<time>/ (checksummed)."""
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
    run_task(c, node, nodes, stage, {"yes": yes, "plan": plan, "accept_new_host_key": accept_new_host_key,
                                     "version": version, "checksums": checksums, "releases_url": releases_url},
             network_only="stage-upgrade")




TASKS = (deploy, validate, prepare_server, download_model, configure, start_base, configure_chain, launch, verify,
         status, backup_keys, stage_upgrade)
