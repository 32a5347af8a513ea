"""What the simulated docker and compose CLIs share: versions, errors, option parsing, the failure
knob, how a container is shown (ps rows, tables, templates), running a command in a container,
its logs and the image store."""


import json
import os
import signal
import subprocess
import sys
import time

from . import engine, gotemplate, simenv

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
