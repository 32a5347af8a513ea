"""Simulated ``docker compose`` (v2 plugin): up | down | ps | logs | restart | stop | start | rm | pull |
run | exec | config | ls | version, over the compose files as `compose.py` reads them.

At ~430 lines it stays one module: one class, one method per subcommand, sharing its helpers.
"""


import json
import os
import shlex
import shutil
import sys
import time
from pathlib import Path

from . import engine, simenv
from .cliparts import (
    COMPOSE_VERSION,
    DockerError,
    add_image,
    command_of,
    compose_row,
    env_opts,
    err,
    follow,
    images,
    parse_opts,
    print_rows,
    progress,
    read_log,
    run_in,
    table,
    trunc,
)
from .compose import Project, load_project

# ----------------------------------------------------------------------------- compose

COMPOSE_GLOBAL_VALUES = {"--file", "--project-name", "--project-directory", "--profile", "--env-file", "--ansi",
                         "--progress", "--parallel"}
COMPOSE_GLOBAL_BOOLS = {"--compatibility", "--dry-run", "--all-resources", "--verbose"}
COMPOSE_ALIASES = {"-f": "--file", "-p": "--project-name"}


class Compose:
    def __init__(self, gopts: dict):
        self.g = gopts
        self.cwd = Path(os.getcwd())

    def project(self, targets: list[str] | None = None, quiet: bool = False) -> Project:
        proj = load_project(self.cwd, self.g.get("--file", []), project_name=self.g.get("--project-name"),
                            project_dir=self.g.get("--project-directory"), env_files=self.g.get("--env-file"),
                            profiles=self.g.get("--profile"), targets=targets)
        if not quiet:
            for w in proj.warnings:
                err(f"WARN[0000] {w}")
        return proj

    # -- up and friends ----------------------------------------------------------------------------

    def up(self, args: list[str]) -> int:
        o, services = parse_opts(args, {"--wait-timeout", "--pull", "--scale", "--timeout", "--exit-code-from",
                                        "--attach", "--no-attach", "-t"},
                                 {"--detach", "--no-deps", "--force-recreate", "--no-recreate", "--build", "--no-build",
                                  "--remove-orphans", "--wait", "--quiet-pull", "--no-start", "--renew-anon-volumes",
                                  "--always-recreate-deps", "--abort-on-container-exit", "--no-color",
                                  "--no-log-prefix", "--timestamps", "--yes", "--menu", "--watch"},
                                 aliases={"-d": "--detach", "-V": "--renew-anon-volumes", "-t": "--timeout",
                                          "-y": "--yes", "-w": "--watch"})
        proj = self.project(services)
        if not o.get("--detach") and not o.get("--no-start"):
            raise DockerError("gonka-sim: attached `docker compose up` (without -d) is not simulated: it would "
                              "stream logs until interrupted")
        names = proj.closure(services or list(proj.services), with_deps=not o.get("--no-deps"))
        with simenv.locked():
            self._orphans(proj, o.get("--remove-orphans", False))
            self._pull_missing(proj, names, quiet=o.get("--quiet-pull", False))
            self._network(proj)
            for name in names:
                self._up_one(proj, name, o)
        if o.get("--wait"):
            return self._wait(proj, names, float(o.get("--wait-timeout") or 120))
        return 0

    def _orphans(self, proj: Project, remove: bool) -> None:
        known = set(proj.services) | set(proj.disabled)
        orphans = [c for c in engine.project_containers(proj.name) if c["service"] not in known]
        if not orphans:
            return
        if remove:
            for c in orphans:
                progress("Container", c["name"], "Stopping")
                engine.remove(c)
                progress("Container", c["name"], "Removed")
        else:
            names = ", ".join(c["name"] for c in orphans)
            err(f"WARN[0000] Found orphan containers ([{names}]) for this project. If you removed or renamed this "
                "service in your compose file, you can run this command with the --remove-orphans flag to clean it up.")

    def _pull_missing(self, proj: Project, names: list[str], quiet: bool) -> None:
        have = set(images())
        self._pull(proj, [n for n in names if proj.services[n].image not in have], quiet)

    @staticmethod
    def _pull(proj: Project, names: list[str], quiet: bool) -> None:
        """Each service's image from the simulated registry (taking its time), as compose does."""
        from . import registry  # noqa: PLC0415

        for n in names:
            if not quiet:
                err(f" {n} Pulling ")
        for n in names:
            image = proj.services[n].image
            try:
                registry.pull(image, say=lambda line: None)
            except registry.PullError as e:
                if not quiet:
                    err(f" {n} Error {e}")
                raise DockerError(f"Error response from daemon: {e}") from None
            add_image(image)
            if not quiet:
                err(f" {n} Pulled ")

    def _network(self, proj: Project) -> None:
        marker = simenv.state_dir() / "networks" / f"{proj.name}_default"
        if not marker.exists():
            progress("Network", f"{proj.name}_default", "Creating")
            marker.parent.mkdir(parents=True, exist_ok=True)
            marker.write_text(str(time.time()))
            progress("Network", f"{proj.name}_default", "Created")

    def _up_one(self, proj: Project, name: str, o: dict) -> None:
        svc = proj.services[name]
        cname = svc.container_name_in(proj.name)
        st = engine.load(cname)
        for other in engine.project_containers(proj.name):  # container_name changed: old one goes
            if other["service"] == name and other["name"] != cname:
                engine.remove(other)
        if st and st.get("project") != proj.name:
            raise DockerError(f'Error response from daemon: Conflict. The container name "/{cname}" is already in use '
                              f'by container "{st["id"]}". You have to remove (or rename) that container to be able '
                              "to reuse that name.")
        fresh = False
        if st and (st.get("config_hash") == svc.config_hash() and not o.get("--force-recreate")
                   or o.get("--no-recreate")):
            if st["status"] == "running":
                progress("Container", cname, "Running")
                return
        elif st:
            progress("Container", cname, "Recreate")
            engine.remove(st)
            st = engine.new_state(proj, svc)
            engine.save(st)
            simenv.bump_counter("container_recreates")
            progress("Container", cname, "Recreated")
            fresh = True
        else:
            progress("Container", cname, "Creating")
            st = engine.new_state(proj, svc)
            engine.save(st)
            progress("Container", cname, "Created")
            fresh = True
        if o.get("--no-start"):
            return
        self._wait_deps(proj, svc)
        progress("Container", cname, "Starting")
        problem = engine.start(st, fresh_log=fresh)
        if problem:
            raise DockerError(f"Error response from daemon: {problem}")
        progress("Container", cname, "Started")

    def _wait_deps(self, proj: Project, svc) -> None:
        for dep, spec in svc.depends_on.items():
            cond = spec.get("condition", "service_started")
            if cond == "service_started" or dep not in proj.services:
                continue
            dst = engine.load(proj.services[dep].container_name_in(proj.name))
            if dst is None:
                continue
            progress("Container", dst["name"], "Waiting")
            deadline = time.time() + 120
            while time.time() < deadline:
                dst = engine.load(dst["name"])
                if dst["status"] == "exited":
                    if cond == "service_completed_successfully" and dst.get("exit_code") == 0:
                        break
                    raise DockerError(f"dependency failed to start: container {dst['name']} exited "
                                      f"({dst.get('exit_code')})")
                if cond == "service_healthy" and engine.health(dst) in ("healthy", ""):
                    break
                time.sleep(0.2)
            else:
                raise DockerError(f"dependency failed to start: container {dst['name']} is unhealthy")
            progress("Container", dst["name"], "Healthy" if cond == "service_healthy" else "Exited")

    def _wait(self, proj: Project, names: list[str], timeout: float) -> int:
        deadline = time.time() + timeout
        pending = [proj.services[n].container_name_in(proj.name) for n in names]
        while pending and time.time() < deadline:
            for cname in list(pending):
                st = engine.load(cname)
                if st is None or st["status"] == "exited":
                    raise DockerError(f"container {cname} exited ({(st or {}).get('exit_code', 1)})")
                if engine.is_ready(st) and engine.health(st) in ("healthy", ""):
                    progress("Container", cname, "Healthy" if st.get("healthcheck") else "Started")
                    pending.remove(cname)
            time.sleep(0.1)
        if pending:
            raise DockerError(f"timeout waiting for {', '.join(pending)}")
        return 0

    def _containers(self, proj: Project, services: list[str], all_project: bool = False) -> list[dict]:
        for s in services:
            if s not in proj.services and s not in proj.disabled:
                raise DockerError(f"no such service: {s}")
        out = []
        for c in engine.project_containers(proj.name):
            if services and c["service"] not in services:
                continue
            if not all_project and not services and c["service"] not in proj.services:
                continue
            out.append(c)
        order = {n: i for i, n in enumerate(proj.closure(list(proj.services)))}
        return sorted(out, key=lambda c: (order.get(c["service"], 999), c["name"]))

    def down(self, args: list[str]) -> int:
        o, pos = parse_opts(args, {"--rmi", "--timeout", "-t"}, {"--volumes", "--remove-orphans"},
                            aliases={"-v": "--volumes", "-t": "--timeout"})
        proj = self.project()
        with simenv.locked():
            victims = list(reversed(self._containers(proj, pos)))
            if o.get("--remove-orphans"):
                known = set(proj.services)
                victims += [c for c in engine.project_containers(proj.name) if c["service"] not in known]
            else:
                self._orphans(proj, False)
            timeout = float(o.get("--timeout") or 10)
            for c in victims:
                if c["status"] == "running":
                    progress("Container", c["name"], "Stopping")
                    engine.stop(c, timeout)
                    progress("Container", c["name"], "Stopped")
                progress("Container", c["name"], "Removing")
                engine.remove(c)
                progress("Container", c["name"], "Removed")
            marker = simenv.state_dir() / "networks" / f"{proj.name}_default"
            if marker.exists() and not engine.project_containers(proj.name):
                progress("Network", f"{proj.name}_default", "Removing")
                marker.unlink()
                progress("Network", f"{proj.name}_default", "Removed")
            if o.get("--volumes"):
                vols = simenv.state_dir() / "volumes"
                for v in vols.glob(f"{proj.name}_*") if vols.is_dir() else []:
                    shutil.rmtree(v, ignore_errors=True)
        return 0

    def ps(self, args: list[str]) -> int:
        o, services = parse_opts(args, {"--format", "--status", "--filter"},
                                 {"--all", "--quiet", "--services", "--no-trunc", "--orphans"},
                                 repeat={"--status", "--filter"}, aliases={"-a": "--all", "-q": "--quiet"})
        proj = self.project(quiet=True)
        rows = self._containers(proj, services, all_project=o.get("--orphans", True))
        statuses = set(o.get("--status", []))
        for f in o.get("--filter", []):
            k, _, v = f.partition("=")
            if k == "status":
                statuses.add(v)
        if statuses:
            rows = [c for c in rows if c["status"] in statuses]
        elif not o.get("--all"):
            rows = [c for c in rows if c["status"] == "running"]
        if o.get("--services"):
            for c in rows:
                print(c["service"])
            return 0
        data = [compose_row(c) for c in rows]
        for d, c in zip(data, rows, strict=False):
            d["Command"] = json.dumps(command_of(c), ensure_ascii=False) if o.get("--no-trunc") else json.dumps(trunc(command_of(c)), ensure_ascii=False)
            d["Created"] = d["RunningFor"]
            d["ID"] = c["id"] if o.get("--no-trunc") else c["id"][:12]
        print_rows(data, o.get("--format"), [("NAME", "Name"), ("IMAGE", "Image"), ("COMMAND", "Command"),
                                             ("SERVICE", "Service"), ("CREATED", "Created"), ("STATUS", "Status"),
                                             ("PORTS", "Ports")], "ID", o.get("--quiet", False))
        return 0

    def logs(self, args: list[str]) -> int:
        o, services = parse_opts(args, {"--tail", "--since", "--until", "--index", "-n"},
                                 {"--follow", "--timestamps", "--no-color", "--no-log-prefix"},
                                 aliases={"-f": "--follow", "-t": "--timestamps", "-n": "--tail"})
        proj = self.project(quiet=True)
        conts = self._containers(proj, services)
        width = max((len(c["name"]) for c in conts), default=0)
        prefix = (lambda c: "") if o.get("--no-log-prefix") else (lambda c: f"{c['name'].ljust(width)}  | ")
        positions = {}
        for c in conts:
            lines, positions[c["name"]] = read_log(c["name"], o.get("--tail"))
            for line in lines:
                sys.stdout.write(prefix(c) + line)
        sys.stdout.flush()
        if o.get("--follow"):
            follow({c["name"]: prefix(c) for c in conts}, positions)
        return 0

    def _simple(self, args: list[str], action: str) -> int:
        o, services = parse_opts(args, {"--timeout", "-t"}, {"--no-deps", "--force", "--stop", "--volumes"},
                                 aliases={"-t": "--timeout", "-f": "--force", "-s": "--stop", "-v": "--volumes"})
        proj = self.project()
        timeout = float(o.get("--timeout") or 10)
        with simenv.locked():
            conts = self._containers(proj, services)
            if action == "start" and services and not conts:
                raise DockerError(f'service "{services[0]}" has no container to start')
            for c in (reversed(conts) if action == "stop" else conts):
                if action == "restart":
                    progress("Container", c["name"], "Restarting")
                    engine.stop(c, timeout)
                    problem = engine.start(c)
                    if problem:
                        raise DockerError(f"Error response from daemon: {problem}")
                    progress("Container", c["name"], "Started")
                elif action == "stop" and c["status"] == "running":
                    progress("Container", c["name"], "Stopping")
                    engine.stop(c, timeout)
                    progress("Container", c["name"], "Stopped")
                elif action == "start" and c["status"] != "running":
                    progress("Container", c["name"], "Starting")
                    problem = engine.start(c)
                    if problem:
                        raise DockerError(f"Error response from daemon: {problem}")
                    progress("Container", c["name"], "Started")
                elif action == "rm":
                    if c["status"] == "running":
                        if not o.get("--stop"):
                            continue
                        engine.stop(c, timeout)
                    progress("Container", c["name"], "Removing")
                    engine.remove(c)
                    progress("Container", c["name"], "Removed")
        return 0

    def pull(self, args: list[str]) -> int:
        o, services = parse_opts(args, {"--policy"}, {"--quiet", "--ignore-pull-failures", "--include-deps",
                                                      "--ignore-buildable", "--no-parallel", "--parallel"},
                                 aliases={"-q": "--quiet"})
        proj = self.project(services)
        names = proj.closure(services or list(proj.services), with_deps=bool(o.get("--include-deps")))
        self._pull(proj, names, bool(o.get("--quiet")))
        return 0

    def run(self, args: list[str]) -> int:
        o, pos = parse_opts(args, {"--env", "--entrypoint", "--workdir", "--name", "--user", "--publish", "--volume",
                                   "--label", "--pull", "--cap-add", "--cap-drop", "--env-from-file"},
                            {"--rm", "--detach", "--no-deps", "--no-TTY", "--interactive", "--tty", "--service-ports",
                             "--use-aliases", "--build", "--quiet-pull", "--remove-orphans", "--quiet"},
                            repeat={"--env", "--publish", "--volume", "--label", "--cap-add", "--cap-drop"},
                            interspersed=False,
                            aliases={"-e": "--env", "-w": "--workdir", "-u": "--user", "-p": "--publish",
                                     "-v": "--volume", "-l": "--label", "-d": "--detach", "-T": "--no-TTY",
                                     "-i": "--interactive", "-t": "--tty", "-P": "--service-ports", "-q": "--quiet"})
        if not pos:
            raise DockerError('"docker compose run" requires at least 1 argument.')
        name, cmd = pos[0], pos[1:]
        proj = self.project([name])
        svc = proj.service(name)
        if not o.get("--no-deps"):
            deps = [d for d in proj.closure([name]) if d != name]
            with simenv.locked():
                self._network(proj)
                for d in deps:
                    self._up_one(proj, d, {})
        st = engine.new_state(proj, svc)
        st["name"] = o.get("--name") or f"{proj.name}-{name}-run-{st['id'][:12]}"
        st["listen"] = []  # a one-off container publishes nothing unless --service-ports
        st["env"].update(env_opts(o.get("--env")))
        engine.prepare_volumes(st)
        if o.get("--entrypoint"):
            cmd = shlex.split(o["--entrypoint"]) + cmd
        if not cmd:
            raise DockerError("gonka-sim: `compose run` without a command (the service's own program) is not "
                              "simulated")
        return run_in(st, cmd, {}, stdin_pass=True, workdir=o.get("--workdir"))

    def exec(self, args: list[str]) -> int:
        o, pos = parse_opts(args, {"--env", "--workdir", "--user", "--index"},
                            {"--detach", "--no-TTY", "--interactive", "--tty", "--privileged"},
                            repeat={"--env"}, interspersed=False,
                            aliases={"-e": "--env", "-w": "--workdir", "-u": "--user", "-d": "--detach",
                                     "-T": "--no-TTY", "-i": "--interactive", "-t": "--tty"})
        if len(pos) < 2:
            raise DockerError('"docker compose exec" requires at least 2 arguments.')
        name, cmd = pos[0], pos[1:]
        proj = self.project(quiet=True)
        if name not in proj.services:
            raise DockerError(f"no such service: {name}")
        st = engine.service_container(proj.name, name)
        if st is None or st["status"] != "running":
            raise DockerError(f'service "{name}" is not running')
        return run_in(st, cmd, env_opts(o.get("--env")), stdin_pass=not o.get("--detach"),
                      workdir=o.get("--workdir"))

    def config(self, args: list[str]) -> int:
        import yaml

        o, _pos = parse_opts(args, {"--format", "--output", "-o"},
                             {"--services", "--images", "--quiet", "--volumes", "--profiles", "--no-interpolate",
                              "--resolve-image-digests", "--hash", "--no-normalize", "--no-path-resolution"},
                             aliases={"-q": "--quiet", "-o": "--output"})
        proj = self.project()
        if o.get("--quiet"):
            return 0
        if o.get("--services"):
            for n in proj.services:
                print(n)
            return 0
        if o.get("--images"):
            for n, s in proj.services.items():
                if not _pos or n in _pos:  # `config --images [SERVICE...]`
                    print(s.image)
            return 0
        doc = {"name": proj.name, "services": {n: s.raw for n, s in proj.services.items()}}
        if o.get("--format") == "json":
            print(json.dumps(doc, indent=4))
        else:
            sys.stdout.write(yaml.safe_dump(doc, sort_keys=True, default_flow_style=False))
        return 0

    def ls(self, args: list[str]) -> int:
        o, _ = parse_opts(args, {"--format", "--filter"}, {"--all", "--quiet"}, aliases={"-a": "--all", "-q": "--quiet"})
        projects: dict[str, list[dict]] = {}
        for c in engine.all_containers():
            projects.setdefault(c["project"], []).append(c)
        rows = []
        for name, cs in sorted(projects.items()):
            running = sum(1 for c in cs if c["status"] == "running")
            if not running and not o.get("--all"):
                continue
            status = f"running({running})" if running == len(cs) else \
                ", ".join(f"{s}({n})" for s, n in sorted({c['status']: sum(1 for x in cs if x['status'] == c['status'])
                                                          for c in cs}.items()))
            rows.append({"Name": name, "Status": status, "ConfigFiles": cs[0].get("config_files", [""])[0]})
        if o.get("--quiet"):
            for r in rows:
                print(r["Name"])
        elif o.get("--format") == "json":
            print(json.dumps(rows))
        else:
            print(table([["NAME", "STATUS", "CONFIG FILES"]] + [[r["Name"], r["Status"], r["ConfigFiles"]] for r in rows]))
        return 0


def compose_main(args: list[str]) -> int:
    gopts, rest = parse_opts(args, COMPOSE_GLOBAL_VALUES, COMPOSE_GLOBAL_BOOLS,
                             repeat={"--file", "--profile", "--env-file"}, interspersed=False, aliases=COMPOSE_ALIASES)
    if not rest:
        print("Usage:  docker compose [OPTIONS] COMMAND\n\nDefine and run multi-container applications with Docker")
        return 0
    sub, args = rest[0], rest[1:]
    if sub == "version":
        o, _ = parse_opts(args, {"--format", "-f"}, {"--short"}, aliases={"-f": "--format"})
        if o.get("--short"):
            print(COMPOSE_VERSION)
        elif o.get("--format") == "json":
            print(json.dumps({"version": f"v{COMPOSE_VERSION}"}))
        else:
            print(f"Docker Compose version v{COMPOSE_VERSION}")
        return 0
    c = Compose(gopts)
    handlers = {"up": c.up, "down": c.down, "ps": c.ps, "logs": c.logs, "pull": c.pull, "run": c.run,
                "exec": c.exec, "config": c.config, "ls": c.ls,
                "restart": lambda a: c._simple(a, "restart"), "stop": lambda a: c._simple(a, "stop"),
                "start": lambda a: c._simple(a, "start"), "rm": lambda a: c._simple(a, "rm")}
    if sub not in handlers:
        raise DockerError(f'unknown docker command: "compose {sub}"')
    return handlers[sub](args)
