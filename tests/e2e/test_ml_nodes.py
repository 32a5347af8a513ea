"""ML nodes on servers of their own (docs host/multiple-nodes): one network node and two ML-node
servers on one private network, deployed by one command; a third server on that network must not
reach the ML ports. Then the day-2 operations, in order on the same servers: an image roll that
fails on the second node, a model change inside PoC, and a decommission waiting for the epoch.

Checked as an operator would: the network node's admin API, connections from the other servers,
the containers and their images on each server, the deployer's own command log.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time

import pytest

from gonka_sim.hosts import host as sandbox
from gonka_sim.hosts.lab import Lab, fab_command, make_project
from gonka_sim.network import repos
from tests.plugins.hosts import HostFactory, require_sandbox
from tests.plugins.world import World

pytestmark = [pytest.mark.sandbox, pytest.mark.slow]

NEW_IMAGE = "ghcr.io/gonka-ai/mlnode:3.0.14"
OLD_IMAGE = "ghcr.io/gonka-ai/mlnode:3.0.13"


class Cluster:
    def __init__(self, lab: Lab, net, ml1, ml2, outsider, seed):
        self.lab, self.net, self.ml1, self.ml2, self.outsider, self.seed = lab, net, ml1, ml2, outsider, seed

    def fab(self, *args: str, ok: bool = True, timeout: float = 1200) -> str:
        r = self.lab.fab(*args, timeout=timeout)
        out = r.stdout + r.stderr
        assert (r.returncode == 0) == ok, out[-5000:]
        return out

    def write_ml(self, host, name: str, **extra: str):
        return self.lab.write_node(host, name, NODE_KIND="mlnode", NETWORK_NODE="net", PRIVATE_IP=host.private_ip,
                                   KEYRING_PASSWORD=None, ACCOUNT_PUBKEY=None, **extra)

    def admin_nodes(self) -> dict[str, dict]:
        out = self.net.run("curl -fsS -m 5 http://127.0.0.1:9200/admin/v1/nodes").stdout
        return {n["node"]["id"]: n for n in json.loads(out)}

    def wait_serving(self, names: tuple[str, ...], timeout: float = 90) -> dict[str, dict]:
        """The admin API's nodes once `names` all report INFERENCE (the broker starts a new node
        on its next reconcile); fails with the ML nodes' logs."""
        deadline = time.monotonic() + timeout
        while True:
            nodes = self.admin_nodes()
            if all(nodes.get(n, {}).get("state", {}).get("current_status") == "INFERENCE" for n in names):
                return nodes
            if time.monotonic() > deadline:
                logs = {n: h.run("docker logs $(docker ps -aq --filter name=mlnode) 2>&1 | tail -20", check=False).stdout
                        for n, h in (("ml1", self.ml1), ("ml2", self.ml2))}
                api = self.net.run("docker logs api 2>&1 | tail -30", check=False).stdout
                raise AssertionError(f"not serving: {json.dumps(nodes)[:3000]}\n{logs}\napi:\n{api}")
            time.sleep(1)

    def image_of(self, host) -> str:
        """The image of the running ML node container on `host` ("" when none runs)."""
        out = host.run("docker ps --format '{{.Image}} {{.Names}}'", check=False).stdout
        return next((ln.split()[0] for ln in out.splitlines() if "mlnode" in ln.split()[-1]), "")


def tail(out: str) -> str:
    """What an operator reads first: the warnings and errors, then the last lines."""
    flagged = [ln for ln in out.splitlines() if "[ERROR]" in ln or "[WARN]" in ln or "[FAIL" in ln]
    return "\n".join(flagged[-20:]) + "\n...\n" + out[-2500:]


def reaches(src, ip: str, port: int) -> bool:
    """A TCP connection from `src` (inside that server) to ip:port opens within 1.5 s."""
    code = f"import socket; socket.create_connection(({ip!r}, {port}), timeout=1.5).close()"
    return src.run(["python3", "-c", code], check=False, timeout=20).returncode == 0


@pytest.fixture
def cluster(seed_server, hub_server, pypi_index, sandbox_provision, tmp_path_factory, request):
    require_sandbox()
    tmp = tmp_path_factory.mktemp("ml-nodes")
    factory = HostFactory(sandbox.base_dir(), sandbox_provision)
    with pytest.MonkeyPatch.context() as mp:
        (tmp / "home").mkdir()
        mp.setenv("HOME", str(tmp / "home"))  # the runner's ~/.ssh plays no part
        seed_server.reset()
        hub_server.wait_idle()
        hub_server.reset()
        World(seed=seed_server, hub=hub_server, request=request).align_models()
        try:
            lan = factory.reserve_index()
            net, ml1, ml2, outsider = factory(4, lan=lan)
            lab = Lab(workdir=tmp / "work", seed=seed_server, hub=hub_server, pypi=pypi_index,
                      prometheus_repo=repos.UPSTREAMS["prometheus"])
            c = Cluster(lab, net, ml1, ml2, outsider, seed_server)
            lab.write_node(net, "net", PRIVATE_IP=net.private_ip)
            c.write_ml(ml1, "ml1")
            c.write_ml(ml2, "ml2")
            yield c
        finally:
            factory.close()


def one_command_deploys_a_network_node_and_two_ml_servers_fenced_and_registered(c: Cluster) -> None:
    c.fab("deploy", "--nodes", str(c.lab.nodes / "*.conf"), "--yes")

    nodes = c.admin_nodes()
    assert {"ml1", "ml2"} <= set(nodes), nodes
    nodes = c.wait_serving(("ml1", "ml2"))
    for name, host in (("ml1", c.ml1), ("ml2", c.ml2)):
        assert nodes[name]["node"]["host"] == host.private_ip
        for port in (8080, 5050):
            assert reaches(c.net, host.private_ip, port), f"{name}:{port} from the network node"
            assert not reaches(c.outsider, host.private_ip, port), f"{name}:{port} from a third server"
        assert c.image_of(host) == OLD_IMAGE
        # only the ML node's compose file runs there: no chain, no api
        names = host.run("docker ps --format '{{.Names}}'").stdout.split()
        assert not {"node", "api", "tmkms"} & set(names), names
    # the PoC callback is the network node's private address, and 9100 answers there
    env = c.net.run("docker inspect api --format '{{json .Config.Env}}'").stdout
    assert f"DAPI_API__POC_CALLBACK_URL=http://{c.net.private_ip}:9100" in env
    assert reaches(c.ml1, c.net.private_ip, 9100)
    assert not reaches(c.outsider, c.net.private_ip, 9200)  # the admin API is never exposed

    # a rerun changes nothing on any of the three servers
    out = c.fab("deploy", "--nodes", str(c.lab.nodes / "*.conf"), "--yes")
    changing = re.findall(r"(\d+) remote command\(s\), (\d+) changing", out)
    assert changing and all(n == "0" for _, n in changing), changing
    assert "[EXEC]" not in out, [ln for ln in out.splitlines() if "[EXEC]" in ln]

    listing = c.fab("ml-nodes", "--node", "net")
    assert re.search(r"ml1\b.*INFERENCE", listing) and re.search(r"ml2\b.*INFERENCE", listing), listing


def image_roll_stops_at_the_failing_second_node_first_updated_second_unchanged(c: Cluster) -> None:
    c.write_ml(c.ml1, "ml1", MLNODE_IMAGE=NEW_IMAGE)
    c.write_ml(c.ml2, "ml2", MLNODE_IMAGE=NEW_IMAGE)
    c.ml2.write_file("/etc/gonka-sim/knobs.json", json.dumps({"mlnode_broken_images": {NEW_IMAGE: "unhealthy"}}))

    out = c.fab("roll-ml-nodes", "--node", "net", "--yes", ok=False)
    assert "ml2" in out and NEW_IMAGE in out, tail(out)

    assert c.image_of(c.ml1) == NEW_IMAGE
    assert c.image_of(c.ml2) == OLD_IMAGE  # back on the old image, running
    nodes = c.wait_serving(("ml1", "ml2"))
    for name in ("ml1", "ml2"):
        assert nodes[name]["state"]["admin_state"]["enabled"], nodes[name]
    assert reaches(c.net, c.ml2.private_ip, 8080)
    c.write_ml(c.ml2, "ml2")  # the operator takes the broken image out of its config again


def model_change_inside_poc_is_refused(c: Cluster) -> None:
    c.seed.set_phase("poc")
    try:
        before = c.admin_nodes()["ml1"]["node"]["models"]
        c.write_ml(c.ml1, "ml1", MLNODE_IMAGE=NEW_IMAGE, MODEL_ARGS="--max-model-len 4096")
        out = c.fab("ml-node-model", "--node", "ml1", "--yes", ok=False)
        assert "PoC" in out, tail(out)
        assert c.admin_nodes()["ml1"]["node"]["models"] == before
    finally:
        c.seed.set_phase("inference")
        c.write_ml(c.ml1, "ml1", MLNODE_IMAGE=NEW_IMAGE)


def remove_waits_for_the_epoch_then_the_node_is_gone(c: Cluster) -> None:
    proc = subprocess.Popen([*fab_command(make_project(c.lab.workdir)), "remove-ml-node", "--node", "ml2", "--yes"],
                            cwd=c.lab.workdir, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            stdin=subprocess.DEVNULL, env={**os.environ, "NO_COLOR": "1"})
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            st = c.admin_nodes().get("ml2", {}).get("state", {})
            if st.get("admin_state", {}).get("enabled") is False:
                break
            time.sleep(0.5)
        else:
            raise AssertionError("ml2 was never disabled")
        time.sleep(4)
        assert proc.poll() is None, "remove-ml-node did not wait for the epoch:\n" + tail(proc.communicate()[0])
        assert "ml2" in c.admin_nodes()  # still registered while the epoch runs
        c.seed.advance_epoch()
        out, _ = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, out[-4000:]
    # the documented sequence, each step checked before it acts (CHECK), in this order
    steps = [ln for ln in out.splitlines() if "[CHECK]" in ln]
    order = ["ml2 disabled", "an epoch passed", "left the current epoch's participants", "removed from",
             "containers stopped"]
    positions = [next((i for i, ln in enumerate(steps) if w in ln), -1) for w in order]
    assert -1 not in positions and positions == sorted(positions), steps
    waited = next(ln for ln in out.splitlines() if "an epoch passed" in ln and ("[EXEC]" in ln or "[OK]" in ln))
    assert waited, "the epoch wait was skipped"
    assert "ml2" not in c.admin_nodes()
    assert c.image_of(c.ml2) == ""
    assert "ml1" in c.admin_nodes() and c.image_of(c.ml1) == NEW_IMAGE


def a_gone_servers_registration_is_removed_through_the_network_node(c: Cluster) -> None:
    """The ML server died: the network node's config and --ml-node take its registration out by the same
    sequence (disable, next epoch, out of the participants, DELETE), with a warning that its containers
    were not stopped."""
    c.ml1.down()  # the server is gone: no SSH, no ML node
    proc = subprocess.Popen([*fab_command(make_project(c.lab.workdir)), "remove-ml-node", "--node", "net",
                             "--ml-node", "ml1", "--yes"],
                            cwd=c.lab.workdir, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            stdin=subprocess.DEVNULL, env={**os.environ, "NO_COLOR": "1"})
    try:
        deadline = time.monotonic() + 120
        while c.admin_nodes().get("ml1", {}).get("state", {}).get("admin_state", {}).get("enabled") is not False:
            assert time.monotonic() < deadline and proc.poll() is None, "ml1 was never disabled:\n" + (
                tail(proc.communicate()[0]) if proc.poll() is not None else "")
            time.sleep(0.5)
        time.sleep(2)
        c.seed.advance_epoch()
        out, _ = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, tail(out)
    assert "ml1" not in c.admin_nodes()
    assert re.search(r"\[WARN\].*containers of ML node ml1 were not stopped", out), tail(out)


def test_ml_node_servers_from_deploy_to_decommission(cluster):
    """One deploy of three servers, then the day-2 operations on them, in this order (each step
    builds on the state the one before left: one test, so that no other test's hosts come between)."""
    one_command_deploys_a_network_node_and_two_ml_servers_fenced_and_registered(cluster)
    image_roll_stops_at_the_failing_second_node_first_updated_second_unchanged(cluster)
    model_change_inside_poc_is_refused(cluster)
    remove_waits_for_the_epoch_then_the_node_is_gone(cluster)
    a_gone_servers_registration_is_removed_through_the_network_node(cluster)
