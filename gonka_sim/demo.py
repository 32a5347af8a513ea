"""`fab demo`: a deploy onto a local sandbox host, for a machine with no real server (needs root).

It starts the simulated Gonka world (seed API, model hub, package index) in a helper process,
brings up one sandbox host, writes `nodes/demo.conf` for it, runs `fab deploy --node
nodes/demo.conf --yes` as a user would (a real subprocess, output shown as it comes), and tears
everything down. `--keep` leaves host and world running and says how to reach them (for
`fab verify --node demo`, `fab status --node demo`, ssh); `fab demo --down` removes a kept demo.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from invoke import task
from invoke.exceptions import Exit

from .hosts import host as sandbox

DEMO_NAME = "demo"
DEMO_IDX = 42
STATE = ".sandbox-demo"  # in the project dir, git-ignored
LAB_MARK = "# sandbox node written by gonka-deploy's lab"


def _say(msg: str) -> None:
    print(f"[demo] {msg}", flush=True)


def _base() -> Path:
    return Path(os.environ.get("GONKA_DEMO_BASE", "/tmp/gonka-sandbox-demo"))


# ------------------------------------------------------------------------ world process
def serve(state_file: Path) -> None:
    """Run seed + hub + package index until SIGTERM; their ports go to `state_file` (JSON)."""
    from .hosts.lab import SANDBOX_MODEL  # noqa: PLC0415
    from .network import repos  # noqa: PLC0415
    from .network.hub import HubServer, make_model_repo  # noqa: PLC0415
    from .network.pypi import PackageIndex, build_wheelhouse  # noqa: PLC0415
    from .network.seed import SeedServer  # noqa: PLC0415

    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    provision = repos.provision_dir(state_file.parent / "repos")
    with SeedServer() as seed, HubServer(repos=[make_model_repo(SANDBOX_MODEL)]) as hub, \
            PackageIndex(build_wheelhouse()) as pypi:
        tmp = state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps({"seed_port": seed.port, "hub_port": hub.port, "pypi_port": pypi.port,
                                   "provision": str(provision), "pid": os.getpid()}))
        os.replace(tmp, state_file)
        while not stop:
            time.sleep(0.2)


class _Remote:
    """The world servers as the Lab sees them: only their URLs, served by the world process."""

    def __init__(self, port: int, path: str = ""):
        self.port, self.path = port, path

    def url_for(self, ip: str) -> str:
        return f"http://{ip}:{self.port}"

    def index_url_for(self, ip: str) -> str:
        return f"http://{ip}:{self.port}/simple/"


def _start_world(state_dir: Path) -> dict:
    state_dir = state_dir.resolve()
    state_dir.mkdir(parents=True, exist_ok=True)
    ports = state_dir / "world.json"
    ports.unlink(missing_ok=True)
    log = open(state_dir / "world.log", "ab")  # noqa: SIM115 - handed to the child process
    proc = subprocess.Popen([sys.executable, "-m", "gonka_sim.demo", "serve", str(ports)],
                            stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True)
    deadline = time.monotonic() + 300  # the first run builds the wheelhouse for the package index
    while not ports.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise Exit(f"[demo] the simulated world did not start; see {state_dir / 'world.log'}", code=1)
        time.sleep(0.2)
    return json.loads(ports.read_text())


def _stop_world(info: dict) -> None:
    pid = info.get("pid")
    if not pid:
        return
    try:
        # only our own process: the recorded pid must still run our world server
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
    except OSError:
        return
    if b"gonka_sim.demo" in cmdline:
        os.kill(pid, signal.SIGTERM)
        for _ in range(50):
            if not Path(f"/proc/{pid}").exists():
                break
            time.sleep(0.1)


def _clean_previous_demo(nodes: Path) -> None:
    conf = nodes / f"{DEMO_NAME}.conf"
    if conf.exists() and not conf.read_text().startswith(LAB_MARK):
        raise Exit(f"[demo] {conf} exists and is not a demo config; move it away first", code=1)
    conf.unlink(missing_ok=True)
    shutil.rmtree(nodes / DEMO_NAME, ignore_errors=True)


def project_dir(c) -> Path:
    """The project `fab demo` runs from (where fab found its tasks): nodes/, logs/ and the demo state."""
    prefix = getattr(c.config, "_project_prefix", None)
    return Path(prefix) if prefix else Path.cwd()


def down(state_dir: Path = Path(STATE)) -> None:
    """Remove a kept demo: host, world process, state."""
    state_file = state_dir / "demo.json"
    info = json.loads(state_file.read_text()) if state_file.exists() else {}
    _stop_world(info.get("world", {}))
    try:
        sandbox.down(DEMO_NAME, base=_base())
    except Exception as e:  # noqa: BLE001 - report and go on removing the rest
        _say(f"host teardown: {e}")
    shutil.rmtree(state_dir, ignore_errors=True)
    _say("demo removed (host, simulated network, state)")


@task(help={"keep": "leave the sandbox host and simulated network running (see how to reach them)",
            "down_": "remove a demo left running with --keep"})
def demo(c, keep=False, down_=False):
    """Deploy onto a local sandbox host (needs root): the main job on a machine with no real server."""
    project = project_dir(c)
    state = project / STATE
    if down_:
        down(state)
        return
    missing = sandbox.missing_prerequisites()
    if missing:
        raise Exit("[demo] cannot start a sandbox host here: " + "; ".join(missing), code=1)
    if (state / "demo.json").exists():
        raise Exit("[demo] a demo is still up (fab demo --keep earlier): run `fab demo --down` first", code=1)
    from .hosts.lab import Lab  # noqa: PLC0415

    nodes = project / "nodes"
    _clean_previous_demo(nodes)
    _say("starting the simulated Gonka network (seed API, model hub, package index)")
    world = _start_world(state)
    host = None
    code = 1
    try:
        _say("bringing up a sandbox server (network namespace, sshd, /dev/vdc)")
        sandbox.sweep(_base())
        host = sandbox.SandboxHost.up(DEMO_NAME, DEMO_IDX, base=_base(), provision=[world["provision"]])
        from .network import repos  # noqa: PLC0415

        lab = Lab(project, seed=_Remote(world["seed_port"]), hub=_Remote(world["hub_port"]),
                  pypi=_Remote(world["pypi_port"]), prometheus_repo=repos.UPSTREAMS["prometheus"])
        conf = lab.write_node(host, DEMO_NAME)
        _say(f"wrote {conf} for root@{host.ip}; running: fab deploy --node {conf} --yes")
        from .hosts.lab import fab_command  # noqa: PLC0415

        code = subprocess.run([*fab_command(project), "deploy", "--node", str(conf), "--yes"],
                              env={**os.environ}, check=False).returncode
        _say(f"deploy finished with exit code {code}; files in nodes/{DEMO_NAME}/, logs in logs/")
        if keep:
            state.mkdir(exist_ok=True)
            (state / "demo.json").write_text(json.dumps({"world": world, "host": host.name}))
            _say("kept running. Try:")
            _say(f"  fab verify --node {DEMO_NAME}     fab status --node {DEMO_NAME}")
            _say(f"  {' '.join(host.ssh_command())}")
            _say("  fab demo --down                   (removes it)")
    finally:
        if not keep:
            if host is not None:
                host.down()
            _stop_world(world)
            shutil.rmtree(state, ignore_errors=True)
            _say("sandbox host and simulated network removed")
    if code:
        raise Exit(code=code)


def main(argv: list[str]) -> int:
    if len(argv) == 2 and argv[0] == "serve":
        serve(Path(argv[1]).resolve())
        return 0
    print("usage: python -m gonka_sim.demo serve STATE_FILE", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
