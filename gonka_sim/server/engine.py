"""Simulated containers: state on disk, processes that stand for them, and their life cycle.

A container is a JSON file ``/var/lib/gonka-sim/containers/<name>.json`` plus, while it runs, a
process (``container-init <name>``, its own session, all fds on the container log
``/var/lib/gonka-sim/logs/<name>.log``). The process writes ``run/<name>.ready`` once it
listens and ``run/<name>.exit`` (its exit code) when it ends. Liveness is checked by pid plus
start time, so a recycled pid is never taken for the container.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from . import catalog, firewall, simenv
from .compose import Project, Service

CONTAINER_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
PYTHON = sys.executable  # the interpreter this program runs on: the host's (see install.py)


def state_path(name: str) -> Path:
    return simenv.containers_dir() / f"{name}.json"


def log_path(name: str) -> Path:
    return simenv.logs_dir() / f"{name}.log"


def run_file(name: str, what: str) -> Path:
    return simenv.run_dir() / f"{name}.{what}"


def save(st: dict) -> None:
    # 0600: the environment holds secrets (KEYRING_PASSWORD), as docker's own config files do.
    simenv.write_json(state_path(st["name"]), st, mode=0o600)


def load(name: str) -> dict | None:
    st = simenv.read_json(state_path(name))
    return refresh(st) if st else None


def all_containers() -> list[dict]:
    out = []
    d = simenv.containers_dir()
    if d.is_dir():
        for p in sorted(d.glob("*.json")):
            st = simenv.read_json(p)
            if st:
                out.append(refresh(st))
    return out


def find(ref: str) -> dict | None:
    """A container by name or (prefix of) id, like `docker exec NAME`."""
    ref = ref.lstrip("/")
    st = load(ref)
    if st:
        return st
    if len(ref) >= 4:
        for c in all_containers():
            if c["id"].startswith(ref):
                return c
    return None


def proc_start_time(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2:].split()
    if fields[0] in ("Z", "X"):
        return None
    return int(fields[19])


def is_alive(st: dict) -> bool:
    pid = st.get("pid")
    return bool(pid) and proc_start_time(pid) == st.get("pid_start")


def refresh(st: dict) -> dict:
    """Notice a container whose process ended on its own (crash, kill) and record its exit."""
    if st.get("status") == "running" and not is_alive(st):
        code_file = run_file(st["name"], "exit")
        try:
            st["exit_code"] = int(code_file.read_text().strip())
            st["finished_at"] = code_file.stat().st_mtime
        except (OSError, ValueError):
            st["exit_code"] = 137
            st["finished_at"] = time.time()
        st["status"] = "exited"
        st["pid"] = None
        if state_path(st["name"]).exists():
            save(st)
    return st


def is_ready(st: dict) -> bool:
    f = run_file(st["name"], "ready")
    return st.get("status") == "running" and f.exists() and f.stat().st_mtime >= (st.get("started_at") or 0) - 1


def health(st: dict) -> str:
    """"" without a healthcheck, else starting/healthy/unhealthy like docker."""
    if not st.get("healthcheck"):
        return ""
    if st.get("status") != "running":
        return "unhealthy" if st.get("status") == "exited" else "starting"
    return "healthy" if is_ready(st) else "starting"


def status_text(st: dict) -> str:
    """Docker's human Status column: "Up 5 minutes (healthy)", "Exited (1) 3 seconds ago"."""
    now = time.time()
    if st["status"] == "running":
        h = health(st)
        text = "Up " + simenv.human_duration(now - (st.get("started_at") or now))
        return f"{text} ({'health: starting' if h == 'starting' else h})" if h else text
    if st["status"] == "exited":
        ago = simenv.human_duration(now - (st.get("finished_at") or now))
        return f"Exited ({st.get('exit_code', 0)}) {ago} ago"
    return "Created"


def new_state(project: Project, svc: Service) -> dict:
    kind = catalog.kind_of(svc.name, svc.image)
    offset = simenv.port_offset()
    ip = simenv.service_ip(svc.name)
    cports = sorted(set(catalog.served_ports(kind)) | {p.container for p in svc.ports} | set(svc.expose))
    listen = [[ip, c, c] for c in cports]
    for p in svc.ports:
        if p.host is not None and p.proto == "tcp":
            listen.append([p.ip or "0.0.0.0", p.host + offset, p.container])
    return {
        "id": secrets.token_hex(32),
        "name": svc.container_name_in(project.name),
        "service": svc.name,
        "project": project.name,
        "project_dir": str(project.directory),
        "config_files": [str(f) for f in project.files],
        "config_hash": svc.config_hash(),
        "image": svc.image,
        "kind": kind,
        "env": dict(svc.environment),
        "volumes": [[v.source, v.target, v.mode, v.kind] for v in svc.volumes],
        "ports": [{"container": p.container, "host": p.host, "ip": p.ip, "proto": p.proto} for p in svc.ports],
        "expose": sorted(set(catalog.EXPOSED.get(kind, ())) | set(svc.expose)),
        "listen": listen,
        "ip": ip,
        "hostname": svc.hostname or "",
        "command": svc.command,
        "entrypoint": svc.entrypoint,
        "working_dir": svc.working_dir,
        "restart": svc.restart,
        "healthcheck": bool(svc.healthcheck) and not (svc.healthcheck or {}).get("disable"),
        "gpu": svc.gpu,
        "status": "created",
        "pid": None,
        "pid_start": None,
        "exit_code": 0,
        "restart_count": 0,
        "created_at": time.time(),
        "started_at": None,
        "finished_at": None,
    }


def volume_map(st: dict) -> list[list[str]]:
    return [[src, dst] for src, dst, _mode, kind in st.get("volumes", []) if kind == "bind" or src]


def host_path_of(st: dict, cpath: str) -> Path:
    """Where a path inside the container lives on the host (longest volume target wins)."""
    return map_container_path(volume_map(st), cpath, st.get("project"))


def map_container_path(volumes: list[list[str]], cpath: str, project: str | None = None) -> Path:
    cpath = os.path.normpath(cpath)
    for src, _dst in volumes:  # already a host path (rewritten by `rewrite_paths`)
        if os.path.isabs(src) and src != "/" and (cpath == src or cpath.startswith(src.rstrip("/") + "/")):
            return Path(cpath)
    best = None
    for src, dst in volumes:
        dst = os.path.normpath(dst)
        if (cpath == dst or cpath.startswith(dst.rstrip("/") + "/")) and (best is None or len(dst) > len(best[1])):
            best = (src, dst)
    if best is None:
        return simenv.host_path(cpath)
    src, dst = best
    if not os.path.isabs(src):  # named volume
        src = str(simenv.state_dir() / "volumes" / src / "_data")
    rest = cpath[len(dst):].lstrip("/")
    return Path(src) / rest if rest else Path(src)


def prepare_volumes(st: dict) -> None:
    """Create missing bind sources as directories and named volumes, like the docker daemon."""
    for src, _dst, _mode, kind in st.get("volumes", []):
        if kind == "bind" and src and not os.path.exists(src):
            os.makedirs(src, exist_ok=True)
        elif kind == "volume" and src:
            (simenv.state_dir() / "volumes" / src / "_data").mkdir(parents=True, exist_ok=True)


def base_env(st: dict) -> dict:
    env = {"PATH": CONTAINER_PATH, "HOME": "/root", "HOSTNAME": st.get("hostname") or st["id"][:12]}
    env.update(st.get("env", {}))
    return env


def exec_env(st: dict, extra: dict | None = None) -> dict:
    """Environment of a command run in the container (exec / run): its env plus the sim's tools."""
    env = base_env(st)
    bins = [str(simenv.LIB_DIR / "bin-common")]
    if st.get("kind") in catalog.CHAIN_KINDS:
        bins.insert(0, str(simenv.LIB_DIR / "bin-chain"))
    if st.get("gpu"):
        bins.insert(0, str(simenv.LIB_DIR / "bin-gpu"))
    env["PATH"] = ":".join(bins) + ":" + env.get("PATH", CONTAINER_PATH)
    if st.get("kind") == "mlnode":
        env["PYTHONPATH"] = str(simenv.LIB_DIR / "pystub")
    env.update(simenv.sim_env())
    env["GONKA_SIM_CONTAINER"] = st["name"]
    env["GONKA_SIM_SELF_IP"] = st.get("ip", "")
    env["GONKA_SIM_IMAGE"] = st.get("image", "")
    env["GONKA_SIM_VOLUMES"] = json.dumps(volume_map(st))
    env.update(extra or {})
    return env


def exec_cwd(st: dict) -> str:
    """Working directory of exec'd commands: the service's working_dir if it is a volume, else the
    project directory (the image WORKDIR /root is not on the host)."""
    wd = st.get("working_dir")
    if wd:
        p = host_path_of(st, wd)
        if p.is_dir():
            return str(p)
    return st.get("project_dir") or "/"


def rewrite_paths(st: dict, args: list[str]) -> list[str]:
    """Container paths in a command's arguments (also inside ``sh -c`` scripts) -> host paths.

    Stands in for the container's mount namespace: ``cat /root/.inference/config/app.toml`` or
    ``ls /root/.cache/hub`` read the volumes. Paths outside every volume are left alone.
    """
    vols = sorted(volume_map(st), key=lambda v: -len(v[1]))
    out = []
    for a in args:
        for src, dst in vols:
            dst = os.path.normpath(dst)
            if dst == "/":
                continue
            host = str(map_container_path([[src, dst]], dst))
            a = re.sub(r"(?<![\w./-])" + re.escape(dst) + r"(?=/|$|[\s'\";:)|&>])",
                       lambda m, h=host: h.rstrip("/") if m.string[m.end():m.end() + 1] == "/" else h, a)
        out.append(a)
    return out


def published(st: dict) -> list[tuple[str, int]]:
    return [(ip, port) for ip, port, _c in st.get("listen", []) if not ip.startswith(simenv.net_prefix() + ".")]


def port_conflict(st: dict) -> str | None:
    """Docker's error when a published port is taken (by another container or any process)."""
    mine = published(st)
    for other in all_containers():
        if other["name"] == st["name"] or other["status"] != "running":
            continue
        for ip, port in published(other):
            for ip2, port2 in mine:
                if port == port2 and (ip == ip2 or "0.0.0.0" in (ip, ip2)):
                    return (f"driver failed programming external connectivity on endpoint {st['name']} "
                            f"({st['id']}): Bind for {ip2}:{port2} failed: port is already allocated")
    for ip, port in mine:
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            s.bind((ip, port))
            s.listen(1)
        except OSError:
            return (f"driver failed programming external connectivity on endpoint {st['name']} "
                    f"({st['id']}): Error starting userland proxy: listen tcp4 {ip}:{port}: bind: "
                    "address already in use")
        finally:
            s.close()
    return None


DAEMON_JSON = "/etc/docker/daemon.json"


def daemon_config() -> dict:
    """dockerd's configuration as it read it when it last started (`systemctl restart docker`
    re-reads it; before any restart, the file as it is). Knob ``no_nvidia_runtime`` hides nvidia."""
    conf = simenv.read_json(simenv.state_dir() / "dockerd.json")
    if conf is None:
        conf = simenv.read_json(simenv.host_path(DAEMON_JSON), {}) or {}
    if simenv.knob("no_nvidia_runtime"):
        conf = {**conf, "runtimes": {k: v for k, v in (conf.get("runtimes") or {}).items() if k != "nvidia"}}
    return conf if isinstance(conf, dict) else {}


def restart_daemon() -> None:
    """dockerd (re)started: it reads daemon.json now and programs its iptables chains again."""
    simenv.write_json(simenv.state_dir() / "dockerd.json",
                      simenv.read_json(simenv.host_path(DAEMON_JSON), {}) or {})
    program_firewall(firewall.dockerd_start)


def boot() -> None:
    """The host's boot order: empty kernel tables, netfilter-persistent (when installed), dockerd."""
    if firewall.boot_tables():
        firewall.dockerd_start(all_containers(), daemon_config())


def boot_main(argv: list[str] | None = None) -> int:
    try:
        boot()
    except (OSError, RuntimeError) as e:
        print(f"gonka-sim boot: firewall: {e}", file=sys.stderr)
        return 1
    return 0


def program_firewall(step=None) -> None:
    """Published ports into the host's nat table (firewall.py); a failure is reported, not fatal."""
    try:
        (step or firewall.sync)(all_containers(), daemon_config())
    except (OSError, RuntimeError, subprocess.SubprocessError) as e:
        print(f"gonka-sim: iptables: {e}", file=sys.stderr)


def start(st: dict, fresh_log: bool = False) -> str | None:
    """Start the container's process; returns docker's error text on failure (state saved)."""
    if st.get("gpu") and "nvidia" not in (daemon_config().get("runtimes") or {}):
        # what dockerd answers for a GPU device request when the NVIDIA container toolkit is missing
        save(st)
        return 'could not select device driver "nvidia" with capabilities: [[gpu]]'
    err = port_conflict(st)
    if err:
        save(st)
        return err
    prepare_volumes(st)
    for what in ("ready", "exit"):
        run_file(st["name"], what).unlink(missing_ok=True)
    simenv.logs_dir().mkdir(parents=True, exist_ok=True)
    simenv.run_dir().mkdir(parents=True, exist_ok=True)
    env = base_env(st)
    env.update(simenv.sim_env())
    env["GONKA_SIM_CONTAINER"] = st["name"]
    cwd = st.get("project_dir") if os.path.isdir(st.get("project_dir") or "") else "/"
    with open(log_path(st["name"]), "wb" if fresh_log else "ab") as log:
        proc = subprocess.Popen([PYTHON, str(simenv.LIB_DIR / "container-init"), st["name"]],
                                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, cwd=cwd,
                                env=env, start_new_session=True, close_fds=True)
    st.update(status="running", pid=proc.pid, pid_start=None, started_at=time.time(), finished_at=None,
              exit_code=0)
    for _ in range(100):  # the start time appears in /proc at once; loop guards against a slow fork
        st["pid_start"] = proc_start_time(proc.pid)
        if st["pid_start"] is not None:
            break
        time.sleep(0.01)
    save(st)
    simenv.bump_counter("container_starts")
    program_firewall()
    return None


def stop(st: dict, timeout: float = 10.0) -> dict:
    """SIGTERM the container's process group, SIGKILL after `timeout`, record the exit."""
    if st.get("status") == "running" and is_alive(st):
        pid = st["pid"]
        _signal_group(pid, signal.SIGTERM)
        deadline = time.time() + timeout
        while time.time() < deadline and is_alive(st):
            time.sleep(0.05)
        if is_alive(st):
            _signal_group(pid, signal.SIGKILL)
            for _ in range(100):
                if not is_alive(st):
                    break
                time.sleep(0.02)
    refresh(st)
    if st.get("status") == "running":  # never started properly; mark it anyway
        st.update(status="exited", pid=None, finished_at=time.time())
    save(st)
    program_firewall()
    return st


def _signal_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        pass
    except PermissionError:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)


def remove(st: dict) -> None:
    if st.get("status") == "running":
        stop(st)
    state_path(st["name"]).unlink(missing_ok=True)
    log_path(st["name"]).unlink(missing_ok=True)
    for what in ("ready", "exit"):
        run_file(st["name"], what).unlink(missing_ok=True)


def project_containers(project: str) -> list[dict]:
    return [c for c in all_containers() if c.get("project") == project]


def service_container(project: str, service: str) -> dict | None:
    for c in project_containers(project):
        if c["service"] == service:
            return c
    return None


def upstream(project: str, host: str, port: int) -> tuple[str, int] | None:
    """Address of `host:port` on the project network, or None if nothing runs there.

    `host` is a service or container name, as in nginx's upstream or a compose URL.
    """
    for c in project_containers(project):
        if host in (c["service"], c["name"], c.get("hostname")) and c["status"] == "running":
            for ip, p, cport in c.get("listen", []):
                if cport == port and ip == c.get("ip"):
                    return ip, p
            return c.get("ip"), port
    return None
