"""Phase 6, final launch: every service of docker-compose.yml + docker-compose.mlnode.yml running,
with the internal ports bound to INTERNAL_BIND_ADDRESS (127.0.0.1 by default).

SKIP when every service runs and the configuration they were started with (config.env,
node-config.json, compose files; a hash kept on the server) is the current one.
"""

from __future__ import annotations

import time

from .. import facts, render
from ..errors import DeployError
from ..ports import bind_internal_ports, exposed_mappings
from .common import COMPOSE_ALL, compose, expected_services, q, require, wait_until
from .model import require_model
from .services import require_config_env, running_services

INTERNAL_FIXED = (9100, 9200)


def internal_ports(run) -> set[int]:
    cfg = run.cfg
    return {int(cfg["PORT"]), int(cfg["INFERENCE_PORT"]), *INTERNAL_FIXED}


def bind_ports(run) -> None:
    """Internal ports bound to INTERNAL_BIND_ADDRESS in the compose files themselves."""
    cfg = run.cfg
    env = render.config_env_values(cfg)
    ports, address = internal_ports(run), cfg["INTERNAL_BIND_ADDRESS"]
    if address in ("0.0.0.0", "::"):
        run.log.warn(f"INTERNAL_BIND_ADDRESS={address}: ports {sorted(ports)} will be open on every interface")
        return
    for name in COMPOSE_ALL:
        path = f"{cfg.join_dir}/{name}"

        def check(path=path):
            text = run.remote.read_file(path) or ""
            exposed = exposed_mappings(text, ports, env)
            return not exposed, (f"open on all interfaces: {', '.join(exposed)}" if exposed else f"bound to {address}")

        def act(path=path, name=name):
            text = run.remote.read_file(path) or ""
            stamp = time.strftime("%Y%m%d-%H%M%S")
            run.remote.run(f"cp -p {q(path)} {q(path + '.bak-' + stamp)}", what=f"back up {name}")
            run.remote.write_file(path, bind_internal_ports(text, ports, address, env), mode=0o644,
                                  what=f"bind internal ports of {name} to {address}")

        run.steps.run(f"internal ports of {name} on {address}", check, act)


def launch_hash_cmd(run) -> str:
    files = " ".join(["config.env", "node-config.json", *COMPOSE_ALL])
    return f"cd {q(run.cfg.join_dir)} && cat {files} | sha256sum | cut -d' ' -f1"


def launch(run) -> None:
    """Phase 6."""
    cfg = run.cfg
    require_config_env(run)
    require_model(run)
    bind_ports(run)
    marker = f"{cfg.state_dir}/launched.sha256"
    services = expected_services(run)

    def status() -> tuple[list[str], list[facts.Container]]:
        ps = running_services(run, COMPOSE_ALL)
        up = {c.service for c in ps if c.running}
        return [s for s in services if s not in up], ps

    def check():
        missing, _ = status()
        r = run.remote.probe_many({"now": launch_hash_cmd(run), "then": f"cat {q(marker)}"})
        current = r["now"].out == r["then"].out and bool(r["now"].out)
        if missing:
            return False, f"not running: {', '.join(missing)}"
        if not current:
            return False, "configuration changed since the last launch"
        return True, f"{len(services)} services running"

    def act():
        run.remote.run(compose(run, "up -d", COMPOSE_ALL), what="docker compose (base + mlnode) up -d", timeout=3600)

        def all_up():
            missing, ps = status()
            dead = [c for c in ps if c.state in ("exited", "dead")]
            if dead:
                raise DeployError(f"container(s) stopped during launch: "
                                  f"{', '.join(f'{c.service} (exit code {c.exit_code})' for c in dead)}",
                                  "see `docker compose logs <service>` on the server, fix the cause and rerun")
            return not missing, f"waiting for {', '.join(missing)}"
        wait_until(run, "all services running", all_up, deadline_s=cfg.seconds("LAUNCH_TIMEOUT"))
        run.remote.run(f"mkdir -p {q(cfg.state_dir)} && {launch_hash_cmd(run)} > {q(marker)}",
                       what="record the launched configuration")

    require(bool(services), "no services found in the compose files", "check the gonka checkout")
    run.steps.run("all services running (base + ML node)", check, act)
