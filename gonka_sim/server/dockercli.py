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
import sys

from . import engine, gotemplate, simenv
from .cliparts import (
    API_VERSION,
    COMPOSE_VERSION,
    DOCKER_BUILD,
    DOCKER_VERSION,
    DockerError,
    add_image,
    command_of,
    docker_fail,
    env_opts,
    err,
    follow,
    images,
    labels,
    parse_opts,
    print_rows,
    ps_row,
    publishers,
    read_log,
    run_in,
    table,
    trunc,
)
from .compose import ComposeError
from .composecli import compose_main

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
    if "nvidia" not in daemon_runtimes():
        del doc["Runtimes"]["nvidia"]
    if o.get("--format"):
        print(gotemplate.render(o["--format"], doc))
        return 0
    print(f"Client: Docker Engine - Community\n Version:    {DOCKER_VERSION}\n Context:    default\n Plugins:\n"
          f"  compose: Docker Compose (Docker Inc.)\n    Version:  v{COMPOSE_VERSION}\n"
          "    Path:     /usr/libexec/docker/cli-plugins/docker-compose\n\n"
          f"Server:\n Containers: {len(conts)}\n  Running: {running}\n  Paused: 0\n  Stopped: {len(conts) - running}\n"
          f" Images: {len(images())}\n Server Version: {DOCKER_VERSION}\n Storage Driver: overlay2\n"
          " Logging Driver: json-file\n Cgroup Driver: systemd\n Cgroup Version: 2\n"
          f" Runtimes: {' '.join(sorted(doc['Runtimes']))}\n Default Runtime: runc\n"
          " Operating System: Ubuntu 22.04.5 LTS\n OSType: linux\n Architecture: x86_64\n"
          " Docker Root Dir: /var/lib/docker")
    return 0


def docker_pull(args: list[str]) -> int:
    o, pos = parse_opts(args, {"--platform"}, {"--quiet", "--all-tags"}, aliases={"-q": "--quiet", "-a": "--all-tags"})
    if len(pos) != 1:
        raise DockerError('"docker pull" requires exactly 1 argument.')
    image = pos[0] if ":" in pos[0].rsplit("/", 1)[-1] or "@" in pos[0] else pos[0] + ":latest"
    from . import registry  # noqa: PLC0415

    try:
        registry.pull(image, say=(lambda line: None) if o.get("--quiet") else (lambda line: print(line, flush=True)))
    except registry.PullError as e:
        raise DockerError(f"Error response from daemon: {e}") from None
    add_image(image)
    print(image)
    return 0


def docker_image_inspect(args: list[str]) -> int:
    o, pos = parse_opts(args, {"--format"}, set(), aliases={"-f": "--format"})
    have = set(images())
    docs, rc = [], 0
    for ref in pos:
        image = ref if ":" in ref.rsplit("/", 1)[-1] or "@" in ref else ref + ":latest"
        if image not in have:
            err(f"Error response from daemon: No such image: {ref}")
            rc = 1
            continue
        docs.append({"Id": "sha256:" + hashlib.sha256(image.encode()).hexdigest(), "RepoTags": [image],
                     "Architecture": "amd64", "Os": "linux"})
    if o.get("--format"):
        for d in docs:
            print(gotemplate.render(o["--format"], d))
    elif docs:
        print(json.dumps(docs, indent=4))
    return rc


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


DAEMON_DOWN = "Cannot connect to the Docker daemon at unix:///var/run/docker.sock. Is the docker daemon running?"
# where the CLI finds the Compose v2 plugin (docker-compose-plugin installs it there)
COMPOSE_PLUGIN = "usr/libexec/docker/cli-plugins/docker-compose"


def compose_plugin_present() -> bool:
    """The plugin file exists (in the host's root, or the sim tree these programs run from)."""
    tree = simenv.LIB_DIR.parents[3]  # <root>/usr/local/lib/gonka-sim -> <root>
    return (tree / COMPOSE_PLUGIN).is_file() and not simenv.knob("no_compose_plugin")


def daemon_runtimes() -> dict:
    """The runtimes dockerd registered from /etc/docker/daemon.json at its last start."""
    return engine.daemon_config().get("runtimes") or {}


def docker_manifest(args: list[str]) -> int:
    """`docker manifest inspect [-v] IMAGE`: the registry's answer (a client-side call: no daemon).

    The registry is the sim's image catalog (`registry.image_size`); knob ``registry_unreachable``
    makes the lookup fail as a DNS failure does."""
    from . import registry  # noqa: PLC0415

    if not args or args[0] != "inspect":
        raise DockerError("Usage:  docker manifest COMMAND\n\nManage Docker image manifests and manifest lists")
    o, pos = parse_opts(args[1:], set(), {"--verbose", "--insecure"}, aliases={"-v": "--verbose"})
    if len(pos) != 1:
        raise DockerError('"docker manifest inspect" requires at least 1 and at most 2 arguments.')
    image = pos[0]
    host = image.split("/", 1)[0] if "/" in image and "." in image.split("/", 1)[0] else "registry-1.docker.io"
    if simenv.knob("registry_unreachable"):
        raise DockerError(f'Get "https://{host}/v2/": dial tcp: lookup {host} on 127.0.0.53:53: no such host')
    doc = registry.manifest(image, verbose=bool(o.get("--verbose")))
    if doc is None:
        raise DockerError(f"no such manifest: {image}")
    print(json.dumps(doc, indent=3))
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
    if cmd == "compose" and not compose_plugin_present():
        raise DockerError("docker: 'compose' is not a docker command.\nSee 'docker --help'")
    if simenv.knob("docker_daemon_down") and cmd not in ("compose", "manifest"):
        if cmd == "version" and not args:
            print(f"Client: Docker Engine - Community\n Version:           {DOCKER_VERSION}")
        raise DockerError(DAEMON_DOWN)
    if simenv.knob("docker_daemon_down") and cmd == "compose":
        raise DockerError(DAEMON_DOWN)
    if cmd == "manifest":
        return docker_manifest(args)
    if cmd == "container" and args:
        cmd, args = {"ls": "ps", "list": "ps"}.get(args[0], args[0]), args[1:]
    if cmd == "image" and args:
        cmd, args = {"ls": "images", "list": "images", "pull": "pull", "inspect": "image-inspect"}.get(
            args[0], "image " + args[0]), args[1:]
    simple = {"ps": docker_ps, "logs": docker_logs, "exec": docker_exec, "inspect": docker_inspect,
              "version": docker_version, "info": docker_info, "pull": docker_pull, "images": docker_images,
              "image-inspect": docker_image_inspect,
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


def compose_plugin_main(argv: list[str] | None = None) -> int:
    """The plugin binary run directly: `docker-compose compose ...` (how the CLI calls plugins)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["docker-cli-plugin-metadata"]:
        print(json.dumps({"SchemaVersion": "0.1.0", "Vendor": "Docker Inc.", "Version": f"v{COMPOSE_VERSION}",
                          "ShortDescription": "Docker Compose"}))
        return 0
    return main(argv if argv[:1] == ["compose"] else ["compose", *argv])
