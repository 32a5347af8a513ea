"""Issue 13, items 5 and 6, on a sandbox host:

- a P2P_PORT other than 5000 is published by the node (`<P2P_PORT>:26656` in docker-compose.yml,
  also after the operator's own `docker compose up`), and announced in P2P_EXTERNAL_ADDRESS;
- `--update-repo` from one gonka release to the next, whose docker-compose.yml changed, succeeds
  over the deployer's own edits of tracked files, keeps the internal ports on INTERNAL_BIND_ADDRESS
  in the new files and in the running containers, and refuses (naming the file) over an edit that
  is not the deployer's.
"""

from __future__ import annotations

import time

import pytest

from tests.e2e.test_security import assert_clean_failure, is_loopback, listeners, output

pytestmark = pytest.mark.sandbox

GONKA = "/mnt/ssd/gonka"
JOIN = f"{GONKA}/deploy/join"
OPERATOR_UP = (f"cd {JOIN} && . ./config.env && "
               "docker compose -f docker-compose.yml -f docker-compose.mlnode.yml up -d")
INTERNAL = (5050, 8080, 9100, 9200)


def read(host, path: str) -> str:
    return host.read_file(path).decode()


def published(host) -> dict[str, str]:
    """{container: its published ports as `docker ps` shows them}."""
    out = host.run("docker ps --format '{{.Names}}\t{{.Ports}}'", timeout=60).stdout
    return dict(ln.split("\t", 1) for ln in out.splitlines() if "\t" in ln)


def assert_internal_on_loopback(host) -> None:
    ports = listeners(host)
    for p in INTERNAL:
        assert ports.get(p) and all(is_loopback(a) for a in ports[p]), (p, ports.get(p))


@pytest.mark.slow
def test_p2p_port_other_than_5000_is_published_and_announced(lab, sandbox_host, world):
    host = sandbox_host
    node = lab.write_node(host, "p2p-a", P2P_PORT="5001")
    r = lab.fab("deploy", "--node", str(node), "--yes")
    assert r.returncode == 0, output(r)[-4000:]
    compose = read(host, f"{JOIN}/docker-compose.yml")
    assert '"5001:26656"' in compose and '"5000:26656"' not in compose
    assert "5001->26656" in published(host)["node"], published(host)
    assert f"tcp://{host.ip}:5001" in read(host, f"{JOIN}/config.env")
    assert f'external_address = "tcp://{host.ip}:5001"' in read(host, f"{JOIN}/.inference/config/config.toml")
    ports = listeners(host)  # (5000 also listens on container addresses: the ML node's own port)
    public = {p for p, addrs in ports.items() if addrs & {"0.0.0.0", "*", "::"}}
    assert 5001 in public and 5000 not in public, sorted(public)

    # the operator's own restart publishes the same port (it lives in the compose file)
    host.run(OPERATOR_UP, timeout=300)
    time.sleep(1)
    assert "5001->26656" in published(host)["node"], published(host)


@pytest.mark.slow
def test_update_repo_moves_to_the_next_release_and_keeps_the_bindings(lab, sandbox_host, world):
    host = sandbox_host
    node = lab.write_node(host, "upg-a", GONKA_REF="v0.2.12")
    r = lab.fab("deploy", "--node", str(node), "--yes")
    assert r.returncode == 0, output(r)[-4000:]
    assert host.run(f"git -C {GONKA} describe --tags", timeout=30).stdout.strip() == "v0.2.12"
    assert "api:0.2.12" in read(host, f"{JOIN}/docker-compose.yml")
    assert host.run(f"git -C {GONKA} diff --name-only", timeout=30).stdout.split(), "the deployer edits tracked files"

    values = lab.values("upg-a")
    node = lab.write_node(host, "upg-a", KEYRING_PASSWORD=values["KEYRING_PASSWORD"],
                          ACCOUNT_PUBKEY=values["ACCOUNT_PUBKEY"], GONKA_REF="v0.2.13")
    r = lab.fab("deploy", "--node", str(node), "--yes", "--update-repo")
    assert r.returncode == 0, output(r)[-4000:]
    assert host.run(f"git -C {GONKA} describe --tags", timeout=30).stdout.strip() == "v0.2.13"
    compose = read(host, f"{JOIN}/docker-compose.yml")
    assert "api:0.2.13" in compose and "QUERY_GAS_LIMIT" in compose  # the new release's file...
    assert '"127.0.0.1:9100:9100"' in compose and '"127.0.0.1:9200:9200"' in compose  # ...bound
    mlnode = read(host, f"{JOIN}/docker-compose.mlnode.yml")
    assert '"127.0.0.1:${PORT:-8080}:8080"' in mlnode and '"127.0.0.1:${INFERENCE_PORT:-5050}:5000"' in mlnode
    time.sleep(1)
    assert_internal_on_loopback(host)
    running = host.run("docker inspect --format '{{.Name}} {{.Config.Image}}' api node", timeout=60).stdout
    assert "api:0.2.13" in running and "inferenced:0.2.13" in running, running
    assert "127.0.0.1:9100->9100" in published(host)["api"], published(host)

    # an edit that is not the deployer's stops the next move, named, and nothing is checked out
    host.run(f"echo '# operator note' >> {JOIN}/nginx.conf", timeout=30)
    node = lab.write_node(host, "upg-a", KEYRING_PASSWORD=values["KEYRING_PASSWORD"],
                          ACCOUNT_PUBKEY=values["ACCOUNT_PUBKEY"], GONKA_REF="v0.2.12")
    r = lab.fab("download-model", "--node", str(node), "--yes", "--update-repo", "--no-wait")
    assert_clean_failure(r, "deploy/join/nginx.conf", "git -C")
    assert host.run(f"git -C {GONKA} describe --tags", timeout=30).stdout.strip() == "v0.2.13"
    assert "# operator note" in read(host, f"{JOIN}/nginx.conf")
    assert '"127.0.0.1:9100:9100"' in read(host, f"{JOIN}/docker-compose.yml")
