"""Small host tools of a sandbox host: nvidia-smi, systemctl, udevadm, and the wget/curl shims
that containers get (they rewrite ``localhost`` to the container's own address, then run the
real program)."""

from __future__ import annotations

import os
import shutil
import sys

from . import gpu, simenv

NO_SYSTEMD = ("System has not been booted with systemd as init system (PID 1). Can't operate.\n"
              "Failed to connect to bus: Host is down")
DOCKER_UNITS = {"docker", "docker.service", "docker.socket", "containerd", "containerd.service",
                "nvidia-persistenced", "nvidia-persistenced.service"}


def nvidia_smi_main(argv: list[str] | None = None) -> int:
    return gpu.nvidia_smi(list(sys.argv[1:] if argv is None else argv))


def systemctl_main(argv: list[str] | None = None) -> int:
    """Docker's units answer like a healthy systemd would; anything else fails like on a host
    without systemd (which is what a sandbox host really is)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    simenv.log_call("systemctl", argv)
    quiet = any(a in ("-q", "--quiet") for a in argv)
    words = [a for a in argv if not a.startswith("-")]
    verb, units = (words[0], words[1:]) if words else ("list-units", [])
    if verb in ("start", "restart", "reload-or-restart", "try-restart") and any(
            u.split(".")[0] == "docker" for u in units) or ("--now" in argv and "docker" in units):
        from . import engine  # noqa: PLC0415

        engine.restart_daemon()
    if units and all(u.split(".")[0] == "netfilter-persistent" for u in units):
        from . import firewall  # noqa: PLC0415

        if firewall.persistent_installed():  # its unit answers like systemd would (firewall.py)
            if verb in ("start", "restart", "reload", "force-reload"):
                return firewall.netfilter_persistent_main([verb])
            if verb in ("is-active", "is-enabled") and not quiet:
                print("active" if verb == "is-active" else "enabled")
            return 0
    if verb == "daemon-reload" or (units and all(u in DOCKER_UNITS for u in units)):
        if verb == "is-active":
            if not quiet:
                print("\n".join("active" for _ in units))
        elif verb == "is-enabled":
            if not quiet:
                print("\n".join("enabled" for _ in units))
        elif verb == "status":
            for u in units:
                name = u if "." in u else u + ".service"
                print(f"● {name} - {u.split('.')[0]} service\n     Loaded: loaded (/lib/systemd/system/{name}; enabled; "
                      "preset: enabled)\n     Active: active (running)")
        return 0
    print(NO_SYSTEMD, file=sys.stderr)
    return 1


def nvidia_ctk_main(argv: list[str] | None = None) -> int:
    """`nvidia-ctk runtime configure --runtime=docker [--config=FILE]`: registers the nvidia runtime
    in daemon.json (kept otherwise as it was); dockerd reads it at its next start."""
    import json  # noqa: PLC0415

    argv = list(sys.argv[1:] if argv is None else argv)
    simenv.log_call("nvidia-ctk", argv)
    words = [a for a in argv if not a.startswith("-")]
    opts = dict(a[2:].split("=", 1) for a in argv if a.startswith("--") and "=" in a)
    if words[:2] != ["runtime", "configure"] or opts.get("runtime", "docker") != "docker":
        print("NVIDIA Container Toolkit CLI (simulated): only `runtime configure --runtime=docker`", file=sys.stderr)
        return 1
    path = simenv.host_path(opts.get("config", "/etc/docker/daemon.json"))
    conf = simenv.read_json(path, {}) or {}
    conf.setdefault("runtimes", {})["nvidia"] = {"args": [], "path": "nvidia-container-runtime"}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(conf, indent=4) + "\n")
    print(f'INFO[0000] Wrote updated config to {opts.get("config", "/etc/docker/daemon.json")}')
    print("INFO[0000] It is recommended that docker daemon be restarted.")
    return 0


def udevadm_main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    simenv.log_call("udevadm", argv)
    if argv and argv[0] in ("settle", "trigger", "control"):
        return 0
    print("Failed to send request: no udev in this environment", file=sys.stderr)
    return 1


def http_client_main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv if argv is None else argv)
    prog = os.path.basename(argv[0])
    self_ip = os.environ.get("GONKA_SIM_SELF_IP")
    args = [simenv.sim_url(a, self_ip) if a.startswith(("http://", "https://")) else a for a in argv[1:]]
    here = os.path.dirname(os.path.abspath(argv[0]))
    path = os.pathsep.join(d for d in os.environ.get("PATH", "").split(os.pathsep)
                           if d and os.path.abspath(d) != here)
    real = shutil.which(prog, path=path)
    if real is None:
        print(f"sh: {prog}: not found", file=sys.stderr)
        return 127
    os.execv(real, [prog, *args])
    return 0  # not reached
