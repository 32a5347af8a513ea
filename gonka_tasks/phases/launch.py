"""Phase 6, final launch: every service of docker-compose.yml + docker-compose.mlnode.yml running,
with the internal ports bound to INTERNAL_BIND_ADDRESS (127.0.0.1 by default).

SKIP when every service runs and the configuration they were started with (config.env,
node-config.json, compose files; a hash kept on the server) is the current one.
"""

from __future__ import annotations

import time

from gonka_tasks import facts
from gonka_tasks.core import bindings, shell
from gonka_tasks.core.bindings import (
    ADMIN_PORTS,
    INTERNAL_FIXED,
    binding_problems,
    binds_internal,
    bound_text,
)
from gonka_tasks.core.shell import COMPOSE_ALL, q
from gonka_tasks.errors import DeployError
from gonka_tasks.phases import images
from gonka_tasks.phases.common import Snapshot, compose, require, services_of, wait_until, write_tracked
from gonka_tasks.phases.download_model import require_model

__all__ = ["ADMIN_PORTS", "INTERNAL_FIXED", "bind_ports", "internal_ports", "launch"]


def internal_ports(run) -> set[int]:
    return bindings.internal_ports(run.cfg)


def bind_ports(run, snap: Snapshot, files: tuple[str, ...] = COMPOSE_ALL) -> bool:
    """Internal ports bound to INTERNAL_BIND_ADDRESS, and the node's P2P port published at P2P_PORT,
    in the compose files themselves; True if a file changed. Each write is recorded (bindings.py) so
    that a later `--update-repo` can restore the file before moving to another release."""
    cfg = run.cfg
    ports, address = internal_ports(run), cfg["INTERNAL_BIND_ADDRESS"]
    if not binds_internal(cfg):
        run.log.warn(f"INTERNAL_BIND_ADDRESS={address}: ports {sorted(ports)} will be open on every interface")
    where = address if binds_internal(cfg) else f"P2P port {cfg['P2P_PORT']}"
    changed = False
    for name in files:
        path = f"{cfg.join_dir}/{name}"

        def check(name=name):
            wrong = binding_problems(cfg, snap[name].stdout)
            return not wrong, (f"not as wanted: {', '.join(wrong)}" if wrong else f"bound to {where}")

        def act(path=path, name=name):
            stamp = time.strftime("%Y%m%d-%H%M%S")
            run.remote.run(shell.stamped_backup(path, f"{path}.bak-{stamp}"), what=f"back up {name}")
            write_tracked(run, path, bound_text(cfg, snap[name].stdout), mode=0o644,
                          what=f"bind the ports of {name} ({where})")

        label = f"internal ports of {name} on {address}" if binds_internal(cfg) else f"P2P port of {name}"
        changed |= run.steps.run(label, check, act, refresh=snap.refresh) == "done"
    return changed


def launch_hash_cmd(run) -> str:
    files = " ".join(["config.env", "node-config.json", *COMPOSE_ALL])
    return f"cd {q(run.cfg.join_dir)} && cat {files} | sha256sum | cut -d' ' -f1"


def launch(run) -> None:
    """Phase 6."""
    cfg = run.cfg
    marker = f"{cfg.state_dir}/launched.sha256"
    join = q(cfg.join_dir)
    snap = Snapshot(run, {
        "config": f"test -f {join}/config.env",
        **{name: f"cat {join}/{name}" for name in COMPOSE_ALL},
        "ps": compose(run, "ps -a --format json", COMPOSE_ALL),
        "now": launch_hash_cmd(run),
        "then": f"cat {q(marker)}",
    }, what="compose files, containers, launched configuration")
    require(snap["config"].ok, f"{cfg.join_dir}/config.env not found", "run `fab configure` first")
    require_model(run)
    # a rewritten mapping only takes effect when compose recreates the container
    rebound = bind_ports(run, snap)
    try:
        services = services_of(snap[name].stdout for name in COMPOSE_ALL)
    except facts.FactError as e:
        raise DeployError(f"cannot read the compose files in {cfg.join_dir}: {e}") from None
    require(bool(services), "no services found in the compose files", "check the gonka checkout")

    def missing_from(ps_text: str) -> tuple[list[str], list[facts.Container]]:
        try:
            ps = facts.parse_compose_ps(ps_text)
        except facts.FactError:
            ps = []
        up = {c.service for c in ps if c.running}
        return [s for s in services if s not in up], ps

    def check():
        missing, _ = missing_from(snap["ps"].stdout)
        if missing:
            return False, f"not running: {', '.join(missing)}"
        if rebound:
            return False, "port bindings changed"
        if not (snap["now"].out and snap["now"].out == snap["then"].out):
            return False, "configuration changed since the last launch"
        return True, f"{len(services)} services running"

    def act():
        nonlocal rebound
        images.require_images(run, COMPOSE_ALL)  # the pull job of phase 2, waited for with its progress
        run.remote.run(compose(run, "up -d", COMPOSE_ALL), what="docker compose (base + mlnode) up -d", timeout=3600)
        rebound = False

        def all_up():
            missing, ps = missing_from(run.remote.probe(compose(run, "ps -a --format json", COMPOSE_ALL)).stdout)
            dead = [c for c in ps if c.state in ("exited", "dead")]
            if dead:
                raise DeployError(f"container(s) stopped during launch: "
                                  f"{', '.join(f'{c.service} (exit code {c.exit_code})' for c in dead)}",
                                  "see `docker compose logs <service>` on the server, fix the cause and rerun")
            return not missing, f"waiting for {', '.join(missing)}"
        wait_until(run, "all services running", all_up, deadline_s=cfg.seconds("LAUNCH_TIMEOUT"))
        run.remote.run(f"mkdir -p {q(cfg.state_dir)} && {launch_hash_cmd(run)} > {q(marker)}",
                       what="record the launched configuration")

    run.steps.run("all services running (base + ML node)", check, act, refresh=snap.refresh)
