"""Where gonka-sim keeps its state, how it reads knobs, and the small helpers every part shares.

All paths hang off ``$GONKA_SIM_ROOT`` (default ``/``), so the programs can be unit-tested in a
temporary directory without root. Environment variables (all optional):

GONKA_SIM_ROOT         prefix of every sim path (state, logs, knobs; unmapped container paths)
GONKA_SIM_PORT_OFFSET  added to every *published* host port a container binds (tests on the runner)
GONKA_SIM_NET          first three octets of the per-service loopback addresses (default 127.0.10)
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import fcntl
import json
import os
import time
import urllib.parse
from pathlib import Path

LIB_DIR = Path(__file__).resolve().parent.parent  # /usr/local/lib/gonka-sim in a host (see install.py)

# Compose service names get fixed loopback addresses (last octet), the same in every project, so
# that /etc/hosts.sandbox can name them statically. Unpublished container ports bind there, which
# keeps them off the host's 127.0.0.1 like a real container network does.
SERVICE_IPS = {
    "node": 2, "api": 3, "tmkms": 4, "proxy": 5, "explorer": 6, "bridge": 7, "versiond": 8,
    "inference": 9, "mlnode-308": 10, "proxy-ssl": 11, "prometheus": 20, "node-exporter": 21,
    "grafana": 22, "cadvisor": 23,
}
DEFAULT_NET = "127.0.10"


def root() -> Path:
    """The directory standing for ``/`` (the real root on a sandbox host)."""
    return Path(os.environ.get("GONKA_SIM_ROOT") or "/")


def host_path(path: str | os.PathLike) -> Path:
    """An absolute path of the simulated machine as a real path (under GONKA_SIM_ROOT)."""
    return root() / str(path).lstrip("/")


def state_dir() -> Path:
    return host_path("/var/lib/gonka-sim")


def containers_dir() -> Path:
    return state_dir() / "containers"


def logs_dir() -> Path:
    return state_dir() / "logs"


def run_dir() -> Path:
    return state_dir() / "run"


def log_dir() -> Path:
    return host_path("/var/log/gonka-sim")


def knobs_path() -> Path:
    return host_path("/etc/gonka-sim/knobs.json")


def knob_defaults_path() -> Path:
    """The harness's knob defaults (a sandbox host's provision): knobs.json overrides them."""
    return host_path("/etc/gonka-sim/knobs.defaults.json")


def knobs() -> dict:
    """The knobs object: knobs.json over knobs.defaults.json; a missing or broken file means
    defaults (re-read on every call)."""
    merged: dict = {}
    for path in (knob_defaults_path(), knobs_path()):
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(data, dict):
            merged.update(data)
    return merged


def knob(name: str, default=None):
    return knobs().get(name, default)


def port_offset() -> int:
    try:
        return int(os.environ.get("GONKA_SIM_PORT_OFFSET") or 0)
    except ValueError:
        return 0


def net_prefix() -> str:
    return os.environ.get("GONKA_SIM_NET") or DEFAULT_NET


def service_ip(service: str) -> str:
    """Loopback address of a compose service (unknown names get one from a hash)."""
    last = SERVICE_IPS.get(service)
    if last is None:
        last = 100 + sum(service.encode()) % 150
    return f"{net_prefix()}.{last}"


def sim_env() -> dict[str, str]:
    """The GONKA_SIM_* variables of this process, to hand on to the processes it starts."""
    return {k: v for k, v in os.environ.items()
            if k in ("GONKA_SIM_ROOT", "GONKA_SIM_PORT_OFFSET", "GONKA_SIM_NET") and v}


def sim_addr(host: str, port: int, self_ip: str | None = None) -> tuple[str, int]:
    """Where a connection to host:port really goes.

    Service names resolve to their loopback addresses (the sandbox's /etc/hosts says the same;
    on a test runner only this table knows them). ``localhost`` inside a container means the
    container itself (`self_ip`).
    """
    if host in ("localhost", "127.0.0.1") and self_ip:
        return self_ip, port
    if host in SERVICE_IPS:
        return service_ip(host), port
    return host, port


def sim_url(url: str, self_ip: str | None = None) -> str:
    """`url` with its host rewritten by `sim_addr`."""
    parts = urllib.parse.urlsplit(url)
    if not parts.hostname:
        return url
    port = parts.port or (443 if parts.scheme == "https" else 80)
    host, port2 = sim_addr(parts.hostname, port, self_ip)
    if (host, port2) == (parts.hostname, port):
        return url
    netloc = f"{host}:{port2}"
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def read_json(path: Path, default=None):
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return default


def write_json(path: Path, obj, mode: int = 0o644) -> None:
    """Atomic JSON write (temp file + rename) so readers never see half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w") as f:
        json.dump(obj, f, indent=1, sort_keys=True)
        f.write("\n")
    os.chmod(tmp, mode)
    os.replace(tmp, path)


@contextlib.contextmanager
def locked(name: str = "state"):
    """An exclusive lock shared by every sim process of this machine (flock on a file)."""
    state_dir().mkdir(parents=True, exist_ok=True)
    with open(state_dir() / f".{name}.lock", "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def bump_counter(name: str, n: int = 1) -> int:
    """Add `n` to counters.json[name] and return the new value."""
    with locked("counters"):
        path = state_dir() / "counters.json"
        data = read_json(path, {}) or {}
        data[name] = int(data.get(name, 0)) + n
        write_json(path, data)
        return data[name]


def counters() -> dict:
    return read_json(state_dir() / "counters.json", {}) or {}


def log_call(tool: str, argv: list[str], **extra) -> None:
    """One JSON line per call to /var/log/gonka-sim/<tool>.log (never secrets: argv only)."""
    log_dir().mkdir(parents=True, exist_ok=True)
    line = {"t": round(time.time(), 3), "cwd": os.getcwd(), "argv": list(argv), **extra}
    with open(log_dir() / f"{tool}.log", "a") as f:
        f.write(json.dumps(line) + "\n")


def rfc3339(ts: float | None = None, nanos: bool = True) -> str:
    """Docker-style UTC timestamp: 2026-01-02T03:04:05.123456789Z."""
    ts = time.time() if ts is None else ts
    d = _dt.datetime.fromtimestamp(ts, _dt.timezone.utc)
    if not nanos:
        return d.strftime("%Y-%m-%dT%H:%M:%SZ")
    return d.strftime("%Y-%m-%dT%H:%M:%S.") + f"{d.microsecond:06d}" + "000Z"


def human_duration(seconds: float) -> str:
    """Docker's go-units HumanDuration ("Less than a second", "About a minute", "3 hours")."""
    s = int(seconds)
    if s < 1:
        return "Less than a second"
    if s == 1:
        return "1 second"
    if s < 60:
        return f"{s} seconds"
    m = s // 60
    if m == 1:
        return "About a minute"
    if m < 60:
        return f"{m} minutes"
    h = round(s / 3600)
    if h == 1:
        return "About an hour"
    if h < 48:
        return f"{h} hours"
    if h < 24 * 7 * 2:
        return f"{h // 24} days"
    if h < 24 * 30 * 2:
        return f"{h // (24 * 7)} weeks"
    if h < 24 * 365 * 2:
        return f"{h // (24 * 30)} months"
    return f"{h // (24 * 365)} years"


def version_of(image: str, default: str = "0.2.13") -> str:
    """The tag of an image reference without a leading v (ghcr.io/x/api:0.2.12 -> 0.2.12)."""
    ref = (image or "").split("@", 1)[0]
    last = ref.rsplit("/", 1)[-1]
    if ":" in last:
        tag = last.split(":", 1)[1]
        return tag[1:] if tag.startswith("v") else tag
    return default


def fill_filesystem(path: str | os.PathLike) -> Path:
    """Fill the filesystem holding `path` to the last block, as a model download filling the data disk
    would; returns the filler file (at the filesystem's top, named .gonka-sim-filler)."""
    top = Path(path)
    while not top.is_dir():
        top = top.parent
    while top != top.parent and os.stat(top).st_dev == os.stat(top.parent).st_dev:
        top = top.parent
    filler = top / ".gonka-sim-filler"
    with open(filler, "ab", buffering=0) as f:
        st = os.statvfs(top)
        with contextlib.suppress(OSError):  # most of it at once...
            os.posix_fallocate(f.fileno(), f.seek(0, 2), max(st.f_bfree - 64, 0) * st.f_frsize)
        block = b"\0" * 4096
        while True:  # ... then block by block (root may use the reserved blocks too) until ENOSPC
            try:
                f.seek(0, 2)
                f.write(block)
            except OSError:
                break
    return filler
