"""Simulated ``docker`` CLI (engine 27 + Compose v2 plugin) over the sim's containers.

docker:  --version | version | info | ps | logs | exec | inspect | start | stop | restart | rm | kill |
         pull | images | container <ls|ps|inspect|logs|exec|start|stop|restart|rm> | compose ...
compose: up | down | ps | logs | restart | stop | start | rm | pull | run | exec | config | ls | version

Every call is logged as one JSON line {"t","cwd","argv"} to /var/log/gonka-sim/docker.log.
Knob ``docker_fail`` ({"pattern": "compose up", "rc": 17, "message": ..., "times": N}, or a list
of them) fails matching calls: the pattern's words must appear in argv in that order.
"""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from . import engine, gotemplate, simenv
from .compose import ComposeError, Project, load_project

DOCKER_VERSION = "27.3.1"
DOCKER_BUILD = "ce12230"
COMPOSE_VERSION = "2.29.7"
API_VERSION = "1.47"


class DockerError(Exception):
    def __init__(self, message: str, code: int = 1):
        super().__init__(message)
        self.code = code


def err(line: str = "") -> None:
    sys.stderr.write(line + "\n")
    sys.stderr.flush()


def progress(kind: str, name: str, action: str) -> None:
    """Compose's plain (non-TTY) progress line, on stderr."""
    err(f" {kind} {name}  {action}")


# ----------------------------------------------------------------------------- option parsing

def parse_opts(args: list[str], values: set[str], bools: set[str], repeat: set[str] = frozenset(),
               interspersed: bool = True, aliases: dict | None = None) -> tuple[dict, list[str]]:
    """Cobra-like parsing: --x=v, --x v, -x v, combined short bools; positionals collected."""
    aliases = aliases or {}
    opts: dict = {}
    pos: list[str] = []
    i = 0
    while i < len(args):
        a = args[i]
        if a == "--":
            pos.extend(args[i + 1:])
            break
        if not a.startswith("-") or a == "-":
            pos.append(a)
            if not interspersed:
                pos.extend(args[i + 1:])
                break
            i += 1
            continue
        name, eq, val = a.partition("=")
        if not name.startswith("--") and len(name) > 2 and not eq:
            shorts = [f"-{c}" for c in name[1:]]
            if all(aliases.get(s, s) in bools for s in shorts):
                for s in shorts:
                    opts[aliases.get(s, s)] = True
                i += 1
                continue
            if aliases.get(shorts[0], shorts[0]) in values:  # -n5 style
                name, val, eq = shorts[0], name[2:], "="
        key = aliases.get(name, name)
        if key in values:
            if not eq:
                if i + 1 >= len(args):
                    raise DockerError(f"flag needs an argument: {name}")
                val = args[i + 1]
                i += 1
            if key in repeat:
                opts.setdefault(key, []).append(val)
            else:
                opts[key] = val
        elif key in bools:
            opts[key] = (val.lower() not in ("false", "0")) if eq else True
        elif key in ("--help", "-h"):
            raise DockerError("help is not simulated", 0)
        else:
            raise DockerError(f"unknown flag: {name}" if name.startswith("--")
                              else f"unknown shorthand flag: '{name[1:2]}' in {a}")
        i += 1
    return opts, pos


# ----------------------------------------------------------------------------- knobs

def docker_fail(argv: list[str]) -> tuple[int, str] | None:
    spec = simenv.knob("docker_fail")
    if not spec:
        return None
    for s in spec if isinstance(spec, list) else [spec]:
        if not isinstance(s, dict):
            continue
        words = str(s.get("pattern", "")).split()
        it = iter(argv)
        if words and all(any(w == a for a in it) for w in words):
            times = s.get("times")
            if times is not None:
                used = simenv.bump_counter(f"docker_fail:{s.get('pattern')}")
                if used > int(times):
                    continue
            return int(s.get("rc", 1)), str(s.get("message") or "simulated failure (gonka-sim knob docker_fail)")
    return None


# ----------------------------------------------------------------------------- views of a container

def command_of(st: dict) -> str:
    cmd = st.get("command")
    if cmd is None:
        cmd = {"node": ["sh", "./init-docker.sh"], "tmkms": ["/usr/bin/tmkms", "start", "-c", "/root/.tmkms/tmkms.toml"],
               "api": ["/usr/bin/decentralized-api"], "proxy": ["/docker-entrypoint.sh", "nginx", "-g", "daemon off;"],
               "inference": ["/docker-entrypoint.sh", "nginx", "-g", "daemon off;"],
               "mlnode": ["uvicorn", "api.app:app", "--host=0.0.0.0", "--port=8080"],
               "explorer": ["docker-entrypoint.sh", "npm", "run", "preview"],
               "prometheus": ["/bin/prometheus", "--config.file=/etc/prometheus/prometheus.yml"],
               "node-exporter": ["/bin/node_exporter"]}.get(st.get("kind"), ["sleep", "infinity"])
    return cmd if isinstance(cmd, str) else " ".join(str(c) for c in cmd)


def labels(st: dict) -> dict:
    return {
        "com.docker.compose.config-hash": st.get("config_hash", ""),
        "com.docker.compose.container-number": "1",
        "com.docker.compose.depends_on": "",
        "com.docker.compose.image": "sha256:" + st["id"],
        "com.docker.compose.oneoff": "False",
        "com.docker.compose.project": st.get("project", ""),
        "com.docker.compose.project.config_files": ",".join(st.get("config_files", [])),
        "com.docker.compose.project.working_dir": st.get("project_dir", ""),
        "com.docker.compose.service": st.get("service", ""),
        "com.docker.compose.version": COMPOSE_VERSION,
    }


def publishers(st: dict) -> list[dict]:
    out = []
    internal = simenv.net_prefix() + "."
    published_cports = set()
    for ip, port, cport in st.get("listen", []):
        if ip.startswith(internal):
            continue
        published_cports.add(cport)
        out.append({"URL": ip, "TargetPort": cport, "PublishedPort": port, "Protocol": "tcp"})
        if ip == "0.0.0.0":
            out.append({"URL": "::", "TargetPort": cport, "PublishedPort": port, "Protocol": "tcp"})
    for c in st.get("expose", []):
        if c not in published_cports:
            out.append({"URL": "", "TargetPort": c, "PublishedPort": 0, "Protocol": "tcp"})
    return sorted(out, key=lambda p: (p["TargetPort"], p["URL"] != "0.0.0.0", p["URL"]))


def ports_text(st: dict) -> str:
    parts = []
    for p in publishers(st):
        if p["PublishedPort"]:
            host = "[::]" if p["URL"] == "::" else p["URL"]
            parts.append(f"{host}:{p['PublishedPort']}->{p['TargetPort']}/tcp")
        else:
            parts.append(f"{p['TargetPort']}/tcp")
    return ", ".join(parts)


def created_at(st: dict) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S +0000 UTC", time.gmtime(st.get("created_at") or time.time()))


def ps_row(st: dict) -> dict:
    lab = labels(st)
    mounts = [src for src, _t, _m, _k in st.get("volumes", [])]
    return {
        "Command": json.dumps(command_of(st), ensure_ascii=False), "CreatedAt": created_at(st), "ID": st["id"][:12],
        "Image": st.get("image", ""), "Labels": ",".join(f"{k}={v}" for k, v in sorted(lab.items())),
        "LabelsMap": lab, "LocalVolumes": "0", "Mounts": ",".join(m[:20] + "…" if len(m) > 20 else m for m in mounts),
        "Names": st["name"], "Networks": f"{st.get('project')}_default", "Ports": ports_text(st),
        "RunningFor": simenv.human_duration(time.time() - (st.get("created_at") or time.time())) + " ago",
        "Size": "0B", "State": st["status"], "Status": engine.status_text(st),
    }


def compose_row(st: dict) -> dict:
    row = ps_row(st)
    row.update({"ExitCode": st.get("exit_code", 0) if st["status"] == "exited" else 0,
                "Health": engine.health(st), "Name": st["name"], "Project": st.get("project", ""),
                "Publishers": publishers(st), "Service": st.get("service", "")})
    return row


def _public(row: dict) -> dict:
    return {k: v for k, v in row.items() if k != "LabelsMap"}


def table(rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = []
    for r in rows:
        lines.append("   ".join(c.ljust(widths[i]) if i < len(r) - 1 else c for i, c in enumerate(r)).rstrip())
    return "\n".join(lines)


def trunc(s: str, n: int = 20) -> str:
    return s if len(s) <= n else s[: n - 1] + "…"


def print_rows(rows: list[dict], fmt: str | None, default_cols: list[tuple[str, str]], quiet_key: str | None,
               quiet: bool) -> None:
    if quiet:
        for r in rows:
            print(r[quiet_key])
        return
    if fmt in ("json", "{{json .}}"):
        for r in rows:
            print(json.dumps(_public(r), separators=(",", ":"), ensure_ascii=False))
        return
    if fmt and fmt != "table":
        is_table = fmt.startswith("table")
        tmpl = fmt[5:].lstrip() if is_table else fmt
        try:
            out = [gotemplate.header(tmpl).split("\t")] if is_table else []
            for r in rows:
                text = gotemplate.render(tmpl, r)
                if is_table:
                    out.append(text.split("\t"))
                else:
                    print(text)
        except gotemplate.TemplateError as e:
            raise DockerError(str(e)) from None
        if is_table:
            print(table(out))
        return
    out = [[h for h, _ in default_cols]]
    for r in rows:
        out.append([r[k] for _, k in default_cols])
    print(table(out))


# ----------------------------------------------------------------------------- running commands in containers

def run_in(st: dict, cmd: list[str], env_extra: dict, stdin_pass: bool, workdir: str | None = None) -> int:
    env = engine.exec_env(st, env_extra)
    cwd = str(engine.host_path_of(st, workdir)) if workdir else engine.exec_cwd(st)
    if not os.path.isdir(cwd):
        cwd = st.get("project_dir") or "/"
    try:
        p = subprocess.run([cmd[0], *engine.rewrite_paths(st, cmd[1:])], env=env, cwd=cwd,
                           stdin=None if stdin_pass else subprocess.DEVNULL)
    except FileNotFoundError:
        err(f'OCI runtime exec failed: exec failed: unable to start container process: exec: "{cmd[0]}": '
            "executable file not found in $PATH: unknown")
        return 127
    except PermissionError:
        err(f'OCI runtime exec failed: exec failed: unable to start container process: exec: "{cmd[0]}": '
            "permission denied: unknown")
        return 126
    except KeyboardInterrupt:
        return 130
    rc = p.returncode
    return 128 - rc if rc < 0 else rc


def env_opts(values: list[str] | None) -> dict:
    out = {}
    for e in values or []:
        if "=" in e:
            k, v = e.split("=", 1)
            out[k] = v
        elif e in os.environ:
            out[e] = os.environ[e]
    return out


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
        missing = [n for n in names if proj.services[n].image not in have]
        for n in missing:
            if not quiet:
                err(f" {n} Pulling ")
        for n in missing:
            add_image(proj.services[n].image)
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
        for n in names:
            if not o.get("--quiet"):
                err(f" {n} Pulling ")
        for n in names:
            add_image(proj.services[n].image)
            if not o.get("--quiet"):
                err(f" {n} Pulled ")
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
            for s in proj.services.values():
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


# ----------------------------------------------------------------------------- logs helpers

def read_log(name: str, tail: str | None) -> tuple[list[str], int]:
    path = engine.log_path(name)
    try:
        data = path.read_bytes()
    except OSError:
        return [], 0
    lines = data.decode(errors="replace").splitlines(keepends=True)
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n"
    if tail not in (None, "all"):
        try:
            n = int(tail)
        except ValueError:
            raise DockerError(f'invalid value "{tail}" for flag --tail') from None
        lines = lines[-n:] if n > 0 else []
    return lines, len(data)


def follow(prefixes: dict[str, str], positions: dict[str, int]) -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    while True:
        alive = False
        for name, prefix in prefixes.items():
            st = engine.load(name)
            alive = alive or bool(st and st["status"] == "running")
            try:
                with open(engine.log_path(name), "rb") as f:
                    f.seek(positions.get(name, 0))
                    chunk = f.read()
            except OSError:
                continue
            if chunk:
                positions[name] = positions.get(name, 0) + len(chunk)
                for line in chunk.decode(errors="replace").splitlines(keepends=True):
                    sys.stdout.write(prefix + line)
                sys.stdout.flush()
        if not alive:
            return
        time.sleep(0.3)


# ----------------------------------------------------------------------------- images

def images() -> list[str]:
    return simenv.read_json(simenv.state_dir() / "images.json", []) or []


def add_image(image: str) -> None:
    with simenv.locked("images"):
        have = images()
        if image not in have:
            simenv.write_json(simenv.state_dir() / "images.json", have + [image])


# ----------------------------------------------------------------------------- plain docker commands

def need(ref: str) -> dict:
    st = engine.find(ref)
    if st is None:
        raise DockerError(f"Error response from daemon: No such container: {ref}")
    return st


def docker_ps(args: list[str]) -> int:
    o, _ = parse_opts(args, {"--format", "--filter", "--last"}, {"--all", "--quiet", "--no-trunc", "--latest", "--size"},
                      repeat={"--filter"}, aliases={"-a": "--all", "-q": "--quiet", "-f": "--filter", "-n": "--last",
                                                    "-l": "--latest", "-s": "--size"})
    rows = engine.all_containers()
    if not o.get("--all"):
        rows = [c for c in rows if c["status"] == "running"]
    for f in o.get("--filter", []):
        k, _, v = f.partition("=")
        if k == "name":
            rows = [c for c in rows if v.lstrip("^").rstrip("$") in c["name"]]
        elif k == "status":
            rows = [c for c in rows if c["status"] == v]
        elif k == "label":
            lk, _, lv = v.partition("=")
            rows = [c for c in rows if lk in labels(c) and (not lv or labels(c)[lk] == lv)]
        elif k == "id":
            rows = [c for c in rows if c["id"].startswith(v)]
    rows.sort(key=lambda c: -(c.get("created_at") or 0))
    data = [ps_row(c) for c in rows]
    for d, c in zip(data, rows, strict=False):
        if o.get("--no-trunc"):
            d["ID"] = c["id"]
        else:
            d["Command"] = json.dumps(trunc(command_of(c)), ensure_ascii=False)
    print_rows(data, o.get("--format"), [("CONTAINER ID", "ID"), ("IMAGE", "Image"), ("COMMAND", "Command"),
                                         ("CREATED", "RunningFor"), ("STATUS", "Status"), ("PORTS", "Ports"),
                                         ("NAMES", "Names")], "ID", o.get("--quiet", False))
    return 0


def docker_logs(args: list[str]) -> int:
    o, pos = parse_opts(args, {"--tail", "--since", "--until"}, {"--follow", "--timestamps", "--details"},
                        aliases={"-n": "--tail", "-f": "--follow", "-t": "--timestamps"})
    if len(pos) != 1:
        raise DockerError('"docker logs" requires exactly 1 argument.')
    st = need(pos[0])
    lines, pos_ = read_log(st["name"], o.get("--tail"))
    sys.stdout.write("".join(lines))
    sys.stdout.flush()
    if o.get("--follow"):
        follow({st["name"]: ""}, {st["name"]: pos_})
    return 0


def docker_exec(args: list[str]) -> int:
    o, pos = parse_opts(args, {"--env", "--env-file", "--user", "--workdir", "--detach-keys"},
                        {"--detach", "--interactive", "--tty", "--privileged"}, repeat={"--env", "--env-file"},
                        interspersed=False, aliases={"-e": "--env", "-u": "--user", "-w": "--workdir", "-d": "--detach",
                                                     "-i": "--interactive", "-t": "--tty"})
    if len(pos) < 2:
        raise DockerError('"docker exec" requires at least 2 arguments.')
    st = need(pos[0])
    if st["status"] != "running":
        raise DockerError(f"Error response from daemon: container {st['id']} is not running")
    if o.get("--tty") and not os.isatty(0):
        raise DockerError("the input device is not a TTY")
    extra = env_opts(o.get("--env"))
    return run_in(st, pos[1:], extra, stdin_pass=bool(o.get("--interactive")), workdir=o.get("--workdir"))


def inspect_doc(st: dict) -> dict:
    h = engine.health(st)
    state = {
        "Status": st["status"], "Running": st["status"] == "running", "Paused": False, "Restarting": False,
        "OOMKilled": False, "Dead": False, "Pid": st.get("pid") or 0,
        "ExitCode": st.get("exit_code", 0) if st["status"] == "exited" else 0, "Error": "",
        "StartedAt": simenv.rfc3339(st["started_at"]) if st.get("started_at") else "0001-01-01T00:00:00Z",
        "FinishedAt": simenv.rfc3339(st["finished_at"]) if st.get("finished_at") else "0001-01-01T00:00:00Z",
    }
    if h:
        state["Health"] = {"Status": h, "FailingStreak": 0, "Log": []}
    env = [f"{k}={v}" for k, v in engine.base_env(st).items()]
    ports = {}
    bindings = {}
    for p in publishers(st):
        key = f"{p['TargetPort']}/tcp"
        if p["PublishedPort"]:
            ports.setdefault(key, []).append({"HostIp": p["URL"], "HostPort": str(p["PublishedPort"])})
            if p["URL"] != "::":
                bindings.setdefault(key, []).append({"HostIp": "" if p["URL"] == "0.0.0.0" else p["URL"],
                                                     "HostPort": str(p["PublishedPort"])})
        else:
            ports.setdefault(key, None)
    cmd = command_of(st)
    return {
        "Id": st["id"], "Created": simenv.rfc3339(st.get("created_at")), "Path": cmd.split()[0] if cmd else "",
        "Args": cmd.split()[1:], "State": state, "Image": "sha256:" + st["id"], "Name": "/" + st["name"],
        "RestartCount": st.get("restart_count", 0), "Driver": "overlay2", "Platform": "linux",
        "HostConfig": {"RestartPolicy": {"Name": st.get("restart", "no"), "MaximumRetryCount": 0},
                       "PortBindings": bindings, "NetworkMode": f"{st.get('project')}_default",
                       "DeviceRequests": [{"Driver": "nvidia", "Count": -1, "Capabilities": [["gpu"]]}]
                       if st.get("gpu") else None},
        "Mounts": [{"Type": k, "Source": s, "Destination": t, "Mode": "" if m == "rw" else m, "RW": m != "ro",
                    "Propagation": "rprivate" if k == "bind" else ""} for s, t, m, k in st.get("volumes", [])],
        "Config": {"Hostname": st.get("hostname") or st["id"][:12], "Env": env, "Cmd": cmd.split(),
                   "Image": st.get("image", ""), "Labels": labels(st),
                   "ExposedPorts": {f"{c}/tcp": {} for c in st.get("expose", [])}},
        "NetworkSettings": {"Ports": ports, "Networks": {f"{st.get('project')}_default": {
            "IPAddress": st.get("ip", ""), "Aliases": [st["name"], st.get("service", "")]}}},
    }


def docker_inspect(args: list[str]) -> int:
    o, pos = parse_opts(args, {"--format", "--type"}, {"--size"}, aliases={"-f": "--format", "-s": "--size"})
    if not pos:
        raise DockerError('"docker inspect" requires at least 1 argument.')
    docs, missing = [], []
    for ref in pos:
        st = engine.find(ref)
        if st is None:
            missing.append(ref)
        else:
            docs.append(inspect_doc(st))
    if o.get("--format"):
        for d in docs:
            try:
                print(gotemplate.render(o["--format"], d))
            except gotemplate.TemplateError as e:
                raise DockerError(str(e)) from None
    else:
        print(json.dumps(docs, indent=4))
    if missing:
        for ref in missing:
            err(f"Error: No such object: {ref}")
        return 1
    return 0


def docker_lifecycle(args: list[str], action: str) -> int:
    o, pos = parse_opts(args, {"--time", "--signal"}, {"--force", "--volumes", "--link", "--attach", "--interactive"},
                        aliases={"-t": "--time", "-s": "--signal", "-f": "--force", "-v": "--volumes",
                                 "-a": "--attach", "-i": "--interactive"})
    if not pos:
        raise DockerError(f'"docker {action}" requires at least 1 argument.')
    rc = 0
    for ref in pos:
        st = engine.find(ref)
        if st is None:
            err(f"Error response from daemon: No such container: {ref}")
            rc = 1
            continue
        with simenv.locked():
            timeout = float(o.get("--time") or 10)
            if action in ("stop", "kill"):
                engine.stop(st, 0 if action == "kill" else timeout)
            elif action == "restart":
                engine.stop(st, timeout)
                problem = engine.start(st)
                if problem:
                    err(f"Error response from daemon: {problem}")
                    rc = 1
                    continue
            elif action == "start":
                if st["status"] != "running":
                    problem = engine.start(st)
                    if problem:
                        err(f"Error response from daemon: {problem}")
                        rc = 1
                        continue
            elif action == "rm":
                if st["status"] == "running" and not o.get("--force"):
                    err(f"Error response from daemon: cannot remove container \"/{st['name']}\": container is "
                        "running: stop the container before removing or force remove")
                    rc = 1
                    continue
                engine.remove(st)
        print(ref)
    return rc


def docker_version(args: list[str]) -> int:
    o, _ = parse_opts(args, {"--format"}, set(), aliases={"-f": "--format"})
    doc = {"Client": {"Version": DOCKER_VERSION, "ApiVersion": API_VERSION, "GitCommit": DOCKER_BUILD,
                      "GoVersion": "go1.22.7", "Os": "linux", "Arch": "amd64"},
           "Server": {"Version": DOCKER_VERSION, "ApiVersion": API_VERSION, "MinAPIVersion": "1.24",
                      "GitCommit": "41ca978", "GoVersion": "go1.22.7", "Os": "linux", "Arch": "amd64"}}
    if o.get("--format"):
        print(gotemplate.render(o["--format"], doc))
        return 0
    print(f"Client: Docker Engine - Community\n Version:           {DOCKER_VERSION}\n API version:       {API_VERSION}\n"
          f" Go version:        go1.22.7\n Git commit:        {DOCKER_BUILD}\n OS/Arch:           linux/amd64\n"
          f" Context:           default\n\nServer: Docker Engine - Community\n Engine:\n  Version:          "
          f"{DOCKER_VERSION}\n  API version:      {API_VERSION} (minimum version 1.24)\n  Go version:       go1.22.7\n"
          "  OS/Arch:          linux/amd64\n containerd:\n  Version:          1.7.22\n nvidia:\n"
          "  Version:          1.17.0")
    return 0


def docker_info(args: list[str]) -> int:
    o, _ = parse_opts(args, {"--format"}, set(), aliases={"-f": "--format"})
    conts = engine.all_containers()
    running = sum(1 for c in conts if c["status"] == "running")
    doc = {"ID": "GSIM:DOCK:ER00", "Containers": len(conts), "ContainersRunning": running, "ContainersPaused": 0,
           "ContainersStopped": len(conts) - running, "Images": len(images()), "Driver": "overlay2",
           "DockerRootDir": "/var/lib/docker", "ServerVersion": DOCKER_VERSION, "OperatingSystem": "Ubuntu 22.04.5 LTS",
           "OSType": "linux", "Architecture": "x86_64", "NCPU": os.cpu_count() or 1, "CgroupDriver": "systemd",
           "DefaultRuntime": "runc",
           "Runtimes": {"io.containerd.runc.v2": {"path": "runc"}, "nvidia": {"path": "nvidia-container-runtime"},
                        "runc": {"path": "runc"}}}
    if o.get("--format"):
        print(gotemplate.render(o["--format"], doc))
        return 0
    print(f"Client: Docker Engine - Community\n Version:    {DOCKER_VERSION}\n Context:    default\n Plugins:\n"
          f"  compose: Docker Compose (Docker Inc.)\n    Version:  v{COMPOSE_VERSION}\n"
          "    Path:     /usr/libexec/docker/cli-plugins/docker-compose\n\n"
          f"Server:\n Containers: {len(conts)}\n  Running: {running}\n  Paused: 0\n  Stopped: {len(conts) - running}\n"
          f" Images: {len(images())}\n Server Version: {DOCKER_VERSION}\n Storage Driver: overlay2\n"
          " Logging Driver: json-file\n Cgroup Driver: systemd\n Cgroup Version: 2\n"
          " Runtimes: io.containerd.runc.v2 nvidia runc\n Default Runtime: runc\n"
          " Operating System: Ubuntu 22.04.5 LTS\n OSType: linux\n Architecture: x86_64\n"
          " Docker Root Dir: /var/lib/docker")
    return 0


def docker_pull(args: list[str]) -> int:
    o, pos = parse_opts(args, {"--platform"}, {"--quiet", "--all-tags"}, aliases={"-q": "--quiet", "-a": "--all-tags"})
    if len(pos) != 1:
        raise DockerError('"docker pull" requires exactly 1 argument.')
    image = pos[0] if ":" in pos[0].rsplit("/", 1)[-1] or "@" in pos[0] else pos[0] + ":latest"
    if not o.get("--quiet"):
        repo, _, tag = image.rpartition(":")
        print(f"{tag}: Pulling from {repo}\nDigest: sha256:{'0' * 64}\nStatus: Downloaded newer image for {image}")
    add_image(image)
    print(image)
    return 0


def docker_images(args: list[str]) -> int:
    o, _ = parse_opts(args, {"--format", "--filter"}, {"--all", "--quiet", "--digests", "--no-trunc"},
                      repeat={"--filter"}, aliases={"-a": "--all", "-q": "--quiet", "-f": "--filter"})
    rows = [["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE"]]
    for img in images():
        repo, _, tag = img.rpartition(":") if ":" in img.rsplit("/", 1)[-1] else (img, "", "latest")
        iid = hashlib.sha256(img.encode()).hexdigest()[:12]
        rows.append([repo, tag, iid, "2 weeks ago", "1.2GB"])
    if o.get("--quiet"):
        for r in rows[1:]:
            print(r[2])
    else:
        print(table(rows))
    return 0


DOCKER_GLOBAL_VALUES = {"--host", "--context", "--config", "--log-level", "--tlscacert", "--tlscert", "--tlskey"}
DOCKER_GLOBAL_BOOLS = {"--debug", "--tls", "--tlsverify", "--version", "--help"}


def dispatch(argv: list[str]) -> int:
    gopts, rest = parse_opts(argv, DOCKER_GLOBAL_VALUES, DOCKER_GLOBAL_BOOLS, interspersed=False,
                             aliases={"-H": "--host", "-c": "--context", "-l": "--log-level", "-D": "--debug",
                                      "-v": "--version"})
    if gopts.get("--version"):
        print(f"Docker version {DOCKER_VERSION}, build {DOCKER_BUILD}")
        return 0
    if not rest:
        print("Usage:  docker [OPTIONS] COMMAND\n\nA self-sufficient runtime for containers")
        return 0
    cmd, args = rest[0], rest[1:]
    if cmd == "container" and args:
        cmd, args = {"ls": "ps", "list": "ps"}.get(args[0], args[0]), args[1:]
    if cmd == "image" and args:
        cmd, args = {"ls": "images", "list": "images", "pull": "pull"}.get(args[0], "image " + args[0]), args[1:]
    simple = {"ps": docker_ps, "logs": docker_logs, "exec": docker_exec, "inspect": docker_inspect,
              "version": docker_version, "info": docker_info, "pull": docker_pull, "images": docker_images,
              "compose": compose_main}
    if cmd in simple:
        return simple[cmd](args)
    if cmd in ("start", "stop", "restart", "rm", "kill"):
        return docker_lifecycle(args, cmd)
    raise DockerError(f"docker: '{cmd}' is not a docker command.\nSee 'docker --help'")


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    simenv.log_call("docker", argv)
    fail = docker_fail(argv)
    if fail:
        err(f"Error response from daemon: {fail[1]}")
        return fail[0]
    try:
        return dispatch(argv)
    except ComposeError as e:
        err(str(e))
        return 1
    except DockerError as e:
        if str(e):
            err(str(e))
        return e.code
    except BrokenPipeError:
        return 1
    except KeyboardInterrupt:
        return 130

