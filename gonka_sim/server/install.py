"""What a sandbox host gets of the simulated server software, as a tree to copy over its root.

`tree()` builds it once per interpreter and content (cached under the sandbox base directory):

    /usr/local/bin/{docker,nvidia-smi,systemctl,udevadm,apt-get}   the host's own programs
    /usr/local/lib/gonka-sim/gonkasim/                      this package's modules
    /usr/local/lib/gonka-sim/container-init                 the process standing for a container
    /usr/local/lib/gonka-sim/bin-chain/inferenced           on PATH inside node/api containers
    /usr/local/lib/gonka-sim/bin-gpu/nvidia-smi             inside GPU containers
    /usr/local/lib/gonka-sim/bin-common/{wget,curl}         inside every container
    /usr/local/lib/gonka-sim/pystub/torch/                  torch's CUDA check, inside GPU containers
    /usr/local/lib/gonka-sim/fault-hook.sh                  the chaos run's one-time command failure
    /etc/hosts.sandbox                                      compose service names on loopback

The programs run on the host's own /usr/bin/python3 (a sandbox host has a fresh /root and /tmp,
which hide an interpreter or a virtual environment there) and borrow the libraries of the
project's environment: `site.path` names its site-packages, which the host's init binds read-only
at /usr/local/lib/gonka-sim/site (on the runner, the launchers use the path itself). So the
simulation uses the same well-kept libraries as the rest of the project. Both must be the same
Python minor version; `build` says so when they are not.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

HERE = Path(__file__).resolve().parent
LIB = "usr/local/lib/gonka-sim"
HOST_PYTHON = "/usr/bin/python3"

# path in the host -> (module, function, what it is)
PROGRAMS = {
    "usr/local/bin/docker": ("dockercli", "main", "docker CLI + Compose v2 plugin over simulated containers"),
    "usr/local/bin/nvidia-smi": ("tools", "nvidia_smi_main", "nvidia-smi of the host (knob no_gpu makes it fail)"),
    "usr/local/bin/systemctl": ("tools", "systemctl_main", "systemctl without systemd: docker units answer"),
    "usr/local/bin/udevadm": ("tools", "udevadm_main", "udevadm without udev: settle and trigger succeed"),
    "usr/local/bin/apt-get": ("aptsim", "main", "apt-get over a local package pool, with apt's own locks"),
    "usr/local/bin/nvidia-ctk": ("tools", "nvidia_ctk_main", "nvidia-ctk runtime configure (NVIDIA container toolkit)"),
    "usr/libexec/docker/cli-plugins/docker-compose": ("dockercli", "compose_plugin_main",
                                                       "the Compose v2 plugin (docker compose ...)"),
    f"{LIB}/container-init": ("runtime", "main", "main process of a simulated container"),
    f"{LIB}/boot": ("engine", "boot_main", "boot order of the host's firewall: netfilter-persistent, dockerd"),
    f"{LIB}/bin-chain/inferenced": ("inferenced", "main", "the Gonka chain CLI, inside node/api containers"),
    f"{LIB}/bin-gpu/nvidia-smi": ("tools", "nvidia_smi_main", "nvidia-smi inside a GPU container"),
    f"{LIB}/bin-common/wget": ("tools", "http_client_main", "wget inside a container (localhost = itself)"),
    f"{LIB}/bin-common/curl": ("tools", "http_client_main", "curl inside a container (localhost = itself)"),
}

# "<package>/<path in the host>" -> launcher, for programs of packages not installed at first
POOL_PROGRAMS = {
    "netfilter-persistent/usr/sbin/netfilter-persistent": (
        "firewall", "netfilter_persistent_main", "netfilter-persistent save/start of Debian's package"),
}
POOL_FILES = {
    "iptables-persistent/usr/share/netfilter-persistent/plugins.d/15-ip4tables":
        "#!/bin/sh\n# gonka-sim: iptables-persistent's IPv4 plugin (netfilter-persistent runs it)\nexit 0\n",
}


def interpreter() -> tuple[str, list[str]]:
    """(the python the host's programs run on, the site-packages they borrow libraries from)."""
    paths = sysconfig.get_paths()
    site = list(dict.fromkeys([paths["purelib"], paths["platlib"]]))
    if not os.access(HOST_PYTHON, os.X_OK):
        return sys.executable, site
    ver = subprocess.run([HOST_PYTHON, "-c", "import sys; print(*sys.version_info[:2])"], capture_output=True,
                         text=True, timeout=30).stdout.split()
    if ver != [str(x) for x in sys.version_info[:2]]:
        raise RuntimeError(f"the sandbox's server software runs on {HOST_PYTHON} {'.'.join(ver)} with this "
                           f"environment's libraries (Python {sys.version_info[0]}.{sys.version_info[1]}): "
                           "make the virtual environment with that Python")
    return HOST_PYTHON, site


def launcher(path: str, module: str, func: str, what: str, python: str, site: list[str]) -> str:
    """A program of the host: imports gonkasim from <LIB> (found relative to itself) and runs `func`."""
    up = len(Path(path).parent.relative_to(LIB).parts) if path.startswith(LIB) else None
    lib = ("Path(__file__).resolve().parent" + ".parent" * up) if up is not None else \
        f'Path(__file__).resolve().parents[{len(Path(path).parts) - 1}] / {LIB!r}'
    return (f"#!{python}\n\"\"\"gonka-sim: {what}.\"\"\"\nimport os\nimport sys\nfrom pathlib import Path\n\n"
            f"LIB = {lib}\n"
            "# the project's libraries: bound into the host at LIB/site, else (on the runner) where they are\n"
            f"sys.path[1:1] = [p for p in [str(LIB / 'site'), *{site!r}] if os.path.isdir(p)][:1]\n"
            "sys.path.insert(0, str(LIB))\n"
            f"from gonkasim.{module} import {func} as main  # noqa: E402\n\nsys.exit(main())\n")


def hosts_sandbox() -> str:
    from .simenv import DEFAULT_NET, SERVICE_IPS  # noqa: PLC0415

    lines = [f"{DEFAULT_NET}.{last}\t{name}" for name, last in SERVICE_IPS.items()]
    return ("# gonka-sim: compose service names on the sandbox host's loopback (one address per service,\n"
            "# like a container network; unpublished container ports listen there)\n" + "\n".join(lines) + "\n")


def _sources() -> list[Path]:
    return sorted(p for p in HERE.rglob("*") if p.is_file() and "__pycache__" not in p.parts)


def build(dest: Path) -> Path:
    """Write the tree into `dest` (which must not exist yet)."""
    python, site = interpreter()
    dest.mkdir(parents=True)
    pkg = dest / LIB / "gonkasim"
    for src in _sources():
        rel = src.relative_to(HERE)
        if rel.parts[0] == "torch_stub":
            target = dest / LIB / "pystub" / "torch" / Path(*rel.parts[1:])
        elif rel.name == "fault-hook.sh":
            target = dest / LIB / rel.name
        else:
            target = pkg / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, target)
    for path, (module, func, what) in PROGRAMS.items():
        p = dest / path
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(launcher(path, module, func, what, python, site))
        p.chmod(0o755)
    # packages apt-get installs from its pool (aptsim): their programs wait there until installed
    for path, (module, func, what) in POOL_PROGRAMS.items():
        package, _, final = path.partition("/")
        p = dest / "var/lib/gonka-sim/apt-pool" / package / final
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(launcher(final, module, func, what, python, site))
        p.chmod(0o755)
    for path, text in POOL_FILES.items():
        package, _, final = path.partition("/")
        p = dest / "var/lib/gonka-sim/apt-pool" / package / final
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
        p.chmod(0o755)
    (dest / LIB / "site.path").write_text(site[0] + "\n")
    (dest / "etc").mkdir(exist_ok=True)
    (dest / "etc" / "hosts.sandbox").write_text(hosts_sandbox())
    # a server with the NVIDIA container toolkit configured, as `nvidia-ctk runtime configure` leaves it
    (dest / "etc" / "docker").mkdir(exist_ok=True)
    (dest / "etc" / "docker" / "daemon.json").write_text(
        '{\n    "runtimes": {\n        "nvidia": {\n            "args": [],\n            "path": "nvidia-container-runtime"\n'
        '        }\n    }\n}\n')
    return dest


def tree(cache: Path) -> Path:
    """The built tree for this environment and these sources, built once (rebuilt when they change)."""
    h = hashlib.sha256(sys.prefix.encode())
    for src in _sources():
        h.update(str(src.relative_to(HERE)).encode() + b"\0" + src.read_bytes())
    dest = cache / f"server-{h.hexdigest()[:16]}"
    if not dest.is_dir():
        tmp = cache / f".server-{os.getpid()}-{h.hexdigest()[:8]}"
        shutil.rmtree(tmp, ignore_errors=True)
        build(tmp)
        try:
            tmp.rename(dest)
        except OSError:  # another process built it first
            shutil.rmtree(tmp, ignore_errors=True)
    return dest
