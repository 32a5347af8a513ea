"""Reading compose files the way Docker Compose v2 does, for the subset gonka's files use.

Covers: file discovery (-f list, COMPOSE_FILE, compose.yaml/docker-compose.yml), project name
and directory, the ``.env`` file, variable interpolation (``$VAR``, ``${VAR}``, ``${VAR:-d}``,
``${VAR-d}``, ``${VAR:?e}``, ``${VAR?e}``, ``${VAR:+a}``, ``${VAR+a}``, ``$$``, nested defaults),
merging several files, profiles, ports, environment (list and map), volumes, depends_on.

One module on purpose (~470 lines): Compose's file model (discovery, interpolation, merging,
profiles) is one concept whose parts call each other.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

DEFAULT_FILES = ("compose.yaml", "compose.yml", "docker-compose.yml", "docker-compose.yaml")
NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class ComposeError(Exception):
    """A problem compose reports and exits 1 for (message printed as is)."""


# ----------------------------------------------------------------------------- interpolation

def interpolate(text: str, env: dict, missing: set | None = None) -> str:
    """Expand variables in one string like compose does (unset without default -> "")."""
    out: list[str] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c != "$":
            out.append(c)
            i += 1
            continue
        if i + 1 < n and text[i + 1] == "$":
            out.append("$")
            i += 2
            continue
        if i + 1 < n and text[i + 1] == "{":
            end = _matching_brace(text, i + 1)
            if end < 0:
                raise ComposeError(f"Invalid template: {text!r}")
            out.append(_expand_braced(text[i + 2:end], env, missing, text))
            i = end + 1
            continue
        m = NAME_RE.match(text, i + 1)
        if m:
            out.append(_lookup(m.group(0), env, missing))
            i = m.end()
            continue
        out.append(c)
        i += 1
    return "".join(out)


def _matching_brace(text: str, start: int) -> int:
    depth = 0
    for j in range(start, len(text)):
        if text[j] == "{":
            depth += 1
        elif text[j] == "}":
            depth -= 1
            if depth == 0:
                return j
    return -1


def _lookup(name: str, env: dict, missing: set | None) -> str:
    if name in env:
        return env[name]
    if missing is not None:
        missing.add(name)
    return ""


def _expand_braced(body: str, env: dict, missing: set | None, whole: str) -> str:
    m = NAME_RE.match(body)
    if not m:
        raise ComposeError(f"Invalid template: {whole!r}")
    name, rest = m.group(0), body[m.end():]
    if not rest:
        return _lookup(name, env, missing)
    for op in (":-", ":?", ":+", "-", "?", "+"):
        if rest.startswith(op):
            arg = rest[len(op):]
            break
    else:
        raise ComposeError(f"Invalid template: {whole!r}")
    is_set = name in env
    non_empty = is_set and env[name] != ""
    ok = non_empty if op.startswith(":") else is_set
    if op.endswith("-"):
        return env[name] if ok else interpolate(arg, env, missing)
    if op.endswith("+"):
        return interpolate(arg, env, missing) if ok else ""
    if not ok:  # ? and :? -> required variable
        msg = interpolate(arg, env, missing) or f"required variable {name} is missing a value"
        raise ComposeError(f"required variable {name} is missing a value: {msg}" if arg else msg)
    return env[name]


def interpolate_tree(obj, env: dict, missing: set):
    if isinstance(obj, str):
        return interpolate(obj, env, missing)
    if isinstance(obj, list):
        return [interpolate_tree(v, env, missing) for v in obj]
    if isinstance(obj, dict):
        return {k: interpolate_tree(v, env, missing) for k, v in obj.items()}
    return obj


def read_dotenv(path: Path) -> dict:
    """KEY=VALUE lines of an env file (``export`` prefix, quotes and comments allowed)."""
    out: dict[str, str] = {}
    try:
        lines = Path(path).read_text().splitlines()
    except OSError:
        return out
    for line in lines:
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("export "):
            line = line[7:].lstrip()
        if "=" not in line:
            continue
        key, val = line.split("=", 1)
        key, val = key.strip(), val.strip()
        if len(val) >= 2 and val[0] == val[-1] and val[0] in "'\"":
            val = val[1:-1]
        elif " #" in val:
            val = val.split(" #", 1)[0].rstrip()
        out[key] = val
    return out


# ----------------------------------------------------------------------------- model

@dataclass
class Port:
    """One published/exposed port: host ip ("" = all interfaces), host port (None = not published)."""

    container: int
    host: int | None = None
    ip: str = ""
    proto: str = "tcp"


@dataclass
class Volume:
    source: str  # absolute host path for binds, name for named volumes
    target: str
    mode: str = "rw"
    kind: str = "bind"


@dataclass
class Service:
    name: str
    raw: dict
    image: str = ""
    container_name: str | None = None
    hostname: str | None = None
    ports: list[Port] = field(default_factory=list)
    expose: list[int] = field(default_factory=list)
    environment: dict = field(default_factory=dict)
    volumes: list[Volume] = field(default_factory=list)
    depends_on: dict = field(default_factory=dict)  # name -> {"condition", "required"}
    profiles: list = field(default_factory=list)
    command: list | str | None = None
    entrypoint: list | str | None = None
    working_dir: str | None = None
    healthcheck: dict | None = None
    restart: str = "no"
    gpu: bool = False

    def container_name_in(self, project: str) -> str:
        return self.container_name or f"{project}-{self.name}-1"

    def config_hash(self) -> str:
        """Changes whenever anything that shapes the container changes (then `up` recreates)."""
        blob = json.dumps(self.raw, sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()


@dataclass
class Project:
    name: str
    directory: Path
    files: list[Path]
    services: dict[str, Service]
    disabled: dict[str, Service]
    warnings: list[str]

    def service(self, name: str) -> Service:
        if name in self.services:
            return self.services[name]
        raise ComposeError(f"no such service: {name}")

    def closure(self, names: list[str], with_deps: bool = True) -> list[str]:
        """`names` plus (if with_deps) their dependencies, dependencies first."""
        order: list[str] = []
        seen: set[str] = set()

        def visit(n: str, parent: str | None):
            if n in seen:
                return
            svc = self.services.get(n)
            if svc is None:
                if parent is None:
                    raise ComposeError(f"no such service: {n}")
                raise ComposeError(f'service "{parent}" depends on undefined service "{n}": '
                                   "invalid compose project")
            seen.add(n)
            if with_deps:
                for dep, spec in svc.depends_on.items():
                    if dep not in self.services and not spec.get("required", True):
                        continue
                    visit(dep, n)
            order.append(n)

        for n in names:
            visit(n, None)
        return order


def normalize_project_name(name: str) -> str:
    name = re.sub(r"[^a-z0-9_-]", "", name.lower())
    return name.lstrip("_-") or "default"


def find_files(cwd: Path, files: list[str]) -> list[Path]:
    """The compose files: -f list, else $COMPOSE_FILE, else a default name in cwd or a parent."""
    if not files and os.environ.get("COMPOSE_FILE"):
        files = os.environ["COMPOSE_FILE"].split(os.environ.get("COMPOSE_PATH_SEPARATOR", ":"))
    if files:
        out = []
        for f in files:
            p = Path(f) if os.path.isabs(f) else cwd / f
            if not p.is_file():
                raise ComposeError(f"open {p}: no such file or directory")
            out.append(p)
        return out
    d = cwd
    while True:
        for name in DEFAULT_FILES:
            if (d / name).is_file():
                return [d / name]
        if d.parent == d:
            break
        d = d.parent
    raise ComposeError("no configuration file provided: not found")


def load_project(cwd: Path, files: list[str], *, project_name: str | None = None,
                 project_dir: str | None = None, env_files: list[str] | None = None,
                 profiles: list[str] | None = None, targets: list[str] | None = None,
                 environ: dict | None = None) -> Project:
    """Load, interpolate and merge the compose files into a Project."""
    paths = find_files(cwd, files)
    directory = Path(project_dir) if project_dir else paths[0].parent
    if not directory.is_absolute():
        directory = cwd / directory
    environ = dict(os.environ if environ is None else environ)
    dotenv: dict[str, str] = {}
    for ef in env_files or [str(directory / ".env")]:
        p = Path(ef) if os.path.isabs(ef) else cwd / ef
        if env_files and not p.is_file():
            raise ComposeError(f"couldn't find env file: {p}")
        dotenv.update(read_dotenv(p))
    env = {**dotenv, **environ}  # the shell wins over .env, like compose
    warnings: list[str] = []
    missing: set[str] = set()
    merged: dict[str, dict] = {}
    top_name = None
    for p in paths:
        try:
            doc = yaml.safe_load(p.read_text()) or {}
        except yaml.YAMLError as e:
            raise ComposeError(f"yaml: {p}: {e}".replace("\n", " ")) from None
        if not isinstance(doc, dict):
            raise ComposeError(f"{p}: Top-level object must be a mapping")
        if "version" in doc:
            warnings.append(f"{p}: the attribute `version` is obsolete, it will be ignored, "
                            "please remove it to avoid potential confusion")
        doc = interpolate_tree(doc, env, missing)
        top_name = doc.get("name") or top_name
        for sname, sdef in (doc.get("services") or {}).items():
            if not isinstance(sdef, dict):
                sdef = {}
            merged[sname] = _merge_service(merged.get(sname, {}), sdef)
    warnings[:0] = [f'The "{name}" variable is not set. Defaulting to a blank string.' for name in sorted(missing)]
    name = normalize_project_name(project_name or os.environ.get("COMPOSE_PROJECT_NAME")
                                  or top_name or directory.name)
    active = set(profiles or [])
    if environ.get("COMPOSE_PROFILES"):
        active |= {p for p in environ["COMPOSE_PROFILES"].split(",") if p}
    for t in targets or []:
        if t in merged:
            active |= set(merged[t].get("profiles") or [])
    services: dict[str, Service] = {}
    disabled: dict[str, Service] = {}
    for sname, sdef in merged.items():
        svc = build_service(sname, sdef, directory, name, environ)
        if svc.profiles and not (set(svc.profiles) & active) and "*" not in active:
            disabled[sname] = svc
        else:
            services[sname] = svc
    return Project(name=name, directory=directory, files=paths, services=services, disabled=disabled,
                   warnings=warnings)


def _merge_service(base: dict, over: dict) -> dict:
    out = dict(base)
    for key, val in over.items():
        if key == "environment" and key in out:
            out[key] = {**_env_dict(out[key]), **_env_dict(val)}
        elif key in ("ports", "expose") and key in out:
            out[key] = list(out[key]) + [v for v in val if v not in out[key]]
        elif key == "volumes" and key in out:
            keep = {_vol_target(v): v for v in out[key]}
            keep.update({_vol_target(v): v for v in val})
            out[key] = list(keep.values())
        elif key == "depends_on" and key in out:
            out[key] = {**_deps_dict(out[key]), **_deps_dict(val)}
        else:
            out[key] = val
    return out


def _vol_target(v) -> str:
    if isinstance(v, dict):
        return str(v.get("target"))
    parts = str(v).split(":")
    return parts[1] if len(parts) > 1 else parts[0]


def _env_dict(env) -> dict:
    """environment as a dict; list items "K" / map values None mean "take it from the shell"."""
    if isinstance(env, dict):
        return {str(k): (None if v is None else _scalar(v)) for k, v in env.items()}
    out = {}
    for item in env or []:
        item = str(item)
        if "=" in item:
            k, v = item.split("=", 1)
            out[k] = v
        else:
            out[item] = None
    return out


def _scalar(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


def _deps_dict(deps) -> dict:
    if isinstance(deps, dict):
        return {k: {"condition": (v or {}).get("condition", "service_started"),
                    "required": (v or {}).get("required", True)} for k, v in deps.items()}
    return {d: {"condition": "service_started", "required": True} for d in deps or []}


def parse_port(spec) -> list[Port]:
    """Short ("8000:80", "127.0.0.1:9200:9200", "26657", "5000-5001:5000-5001/udp") or long syntax."""
    if isinstance(spec, dict):
        host = spec.get("published")
        return [Port(container=int(spec["target"]), host=int(host) if host not in (None, "") else None,
                     ip=str(spec.get("host_ip") or ""), proto=spec.get("protocol", "tcp"))]
    text = str(spec)
    proto = "tcp"
    if "/" in text:
        text, proto = text.rsplit("/", 1)
    parts = text.rsplit(":", 2) if not text.startswith("[") else _split_v6(text)
    ip, host, cont = "", None, parts[-1]
    if len(parts) == 2:
        host = parts[0]
    elif len(parts) == 3:
        ip, host = parts[0], parts[1]
    ip = ip.strip("[]")
    try:
        conts = _port_range(cont)
        hosts = _port_range(host) if host else [None] * len(conts)
    except ValueError:
        raise ComposeError(f"invalid port specification: {spec!r}") from None
    if len(hosts) == 1 and len(conts) > 1:
        hosts = hosts * len(conts)
    return [Port(container=c, host=h, ip=ip, proto=proto) for c, h in zip(conts, hosts, strict=False)]


def _split_v6(text: str) -> list[str]:
    ip, rest = text[1:].split("]", 1)
    return [ip, *rest.lstrip(":").split(":")]


def _port_range(text: str) -> list[int]:
    if "-" in text:
        a, b = text.split("-", 1)
        return list(range(int(a), int(b) + 1))
    return [int(text)]


def parse_volume(spec, directory: Path, project: str) -> Volume:
    if isinstance(spec, dict):
        kind = spec.get("type", "volume")
        src = str(spec.get("source") or "")
        mode = "ro" if spec.get("read_only") else "rw"
        target = str(spec["target"])
    else:
        parts = str(spec).split(":")
        if len(parts) == 1:
            return Volume(source="", target=parts[0], kind="volume")
        src, target = parts[0], parts[1]
        mode = parts[2] if len(parts) > 2 else "rw"
        kind = "bind" if (src.startswith((".", "/", "~")) or src == "") else "volume"
    if kind == "bind":
        src = os.path.expanduser(src)
        src = str((directory / src).resolve()) if not os.path.isabs(src) else os.path.normpath(src)
    elif src:
        src = f"{project}_{src}"
    return Volume(source=src, target=target, mode=mode, kind=kind)


def build_service(name: str, d: dict, directory: Path, project: str, environ: dict) -> Service:
    env_raw = _env_dict(d.get("environment"))
    environment: dict[str, str] = {}
    for ef in _as_list(d.get("env_file")):
        path = ef.get("path") if isinstance(ef, dict) else ef
        environment.update(read_dotenv(directory / str(path)))
    for k, v in env_raw.items():
        if v is None:
            if k in environ:
                environment[k] = environ[k]
        else:
            environment[k] = v
    ports: list[Port] = []
    for p in d.get("ports") or []:
        ports.extend(parse_port(p))
    expose = []
    for e in d.get("expose") or []:
        with contextlib.suppress(ValueError):
            expose.extend(_port_range(str(e).split("/")[0]))
    devices = (((d.get("deploy") or {}).get("resources") or {}).get("reservations") or {}).get("devices")
    gpu = bool(d.get("gpus")) or d.get("runtime") == "nvidia" or any(
        "gpu" in (dev.get("capabilities") or []) or dev.get("driver") == "nvidia"
        for dev in (devices or []) if isinstance(dev, dict))
    if not d.get("image") and not d.get("build"):
        raise ComposeError(f'service "{name}" has neither an image nor a build context specified: '
                           "invalid compose project")
    return Service(
        name=name, raw=d, image=str(d.get("image") or f"{project}-{name}"),
        container_name=d.get("container_name"), hostname=d.get("hostname"), ports=ports, expose=expose,
        environment=environment,
        volumes=[parse_volume(v, directory, project) for v in d.get("volumes") or []],
        depends_on=_deps_dict(d.get("depends_on")), profiles=list(d.get("profiles") or []),
        command=d.get("command"), entrypoint=d.get("entrypoint"), working_dir=d.get("working_dir"),
        healthcheck=d.get("healthcheck"), restart=str(d.get("restart") or "no"), gpu=gpu,
    )


def _as_list(v) -> list:
    if v is None:
        return []
    return v if isinstance(v, list) else [v]

