"""Private LAN between sandbox hosts and the firewall a test probes from another host
(gonka_sim.hosts.lan, gonka_sim.server.firewall): DOCKER-USER filters traffic to published ports
as on a real Docker host, survives a dockerd restart, and netfilter-persistent restores it at boot."""

from __future__ import annotations

import shutil

import pytest

from gonka_sim.hosts import lan as lan_mod

pytest_plugins = ["tests.plugins.hosts"]
pytestmark = pytest.mark.skipif(shutil.which("iptables") is None, reason="iptables not installed (scripts/setup)")

# the ML node server's compose file as upstream ships it, minus the GPU (a bare sim ML node on 8080)
COMPOSE = """services:
  mlnode-308:
    image: ghcr.io/gonka-ai/mlnode:3.0.13
    hostname: mlnode-308
    command: uvicorn api.app:app --host=0.0.0.0 --port=8080
    ports:
      - "8080:8080"
"""

PROBE = ("python3 -c 'import socket,sys\n"
         "try:\n socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=1.5).close(); print(\"open\")\n"
         "except OSError as e: print(\"closed\", e)' {ip} {port}")


def probe(host, ip: str, port: int) -> str:
    return host.run(PROBE.format(ip=ip, port=port)).stdout.split()[0]


@pytest.fixture
def trio(sandbox_host_factory):
    """Three hosts on one private LAN: a (network node), b (ML node server), c (outsider)."""
    lan = sandbox_host_factory.reserve_index()  # a number of this worker's own block
    hosts = sandbox_host_factory(3, lan=lan)
    yield hosts
    sandbox_host_factory.close()
    assert lan_mod.ports(lan) == []  # the LAN's namespace went with its last host


def start_mlnode(b) -> None:
    b.write_file("/srv/ml/docker-compose.yml", COMPOSE)
    b.run("cd /srv/ml && docker compose up -d", timeout=60)
    b.run("for i in $(seq 100); do curl -fsS localhost:8080/health >/dev/null && exit 0; sleep 0.1; done; exit 1")


@pytest.mark.sandbox
def test_lan_hosts_reach_each_other_and_docker_user_filters_published_ports(trio):
    a, b, c = trio
    assert a.private_ip == f"10.201.{a.lan}.{a.idx}" and b.lan == a.lan == c.lan
    assert b.run("ip -4 -o addr show eth1").stdout.split()[3] == f"{b.private_ip}/24"
    start_mlnode(b)
    assert probe(a, b.private_ip, 8080) == "open" and probe(c, b.private_ip, 8080) == "open"
    # dockerd made DOCKER-USER; the deployer's rules: only a's private address reaches 8080
    b.run(f"iptables -I DOCKER-USER -p tcp -m conntrack --ctorigdstport 8080 ! -s {a.private_ip} -j DROP")
    assert probe(a, b.private_ip, 8080) == "open"
    assert probe(c, b.private_ip, 8080) == "closed"
    # an INPUT drop (what UFW would add) does not see published ports: Docker bypasses it
    b.run("iptables -A INPUT ! -i lo -p tcp --dport 8080 -j DROP")
    assert probe(a, b.private_ip, 8080) == "open"
    # a dockerd restart keeps DOCKER-USER's rules (and re-creates its own)
    b.run("systemctl restart docker")
    assert "--ctorigdstport 8080" in b.run("iptables -S DOCKER-USER").stdout
    assert probe(a, b.private_ip, 8080) == "open" and probe(c, b.private_ip, 8080) == "closed"
    # inside DOCKER-USER --dport is the container port (8080:8080 here: same number)
    assert "DNAT" in b.run("iptables -t nat -S DOCKER").stdout
    # the host itself reaches its published port (the userland proxy path)
    assert probe(b, "127.0.0.1", 8080) == "open"


@pytest.mark.sandbox
def test_netfilter_persistent_saves_and_the_boot_restores(trio):
    a, b, c = trio
    b.run("apt-get install -y iptables-persistent", timeout=60)
    assert b.run("test -x /usr/sbin/netfilter-persistent && test -s /etc/iptables/rules.v4").returncode == 0
    b.run(f"iptables -A DOCKER-USER -p tcp --dport 8080 ! -s {a.private_ip} -j DROP && netfilter-persistent save")
    assert f"! -s {a.private_ip}/32" in b.read_text("/etc/iptables/rules.v4")
    # power cycle of the kernel's tables, then the host's boot units (hostinit runs them at boot)
    b.run("iptables -F DOCKER-USER && /usr/local/lib/gonka-sim/boot")
    assert f"! -s {a.private_ip}/32" in b.run("iptables -S DOCKER-USER").stdout
    start_mlnode(b)
    assert probe(a, b.private_ip, 8080) == "open" and probe(c, b.private_ip, 8080) == "closed"


@pytest.mark.sandbox
def test_reset_empties_the_hosts_tables(sandbox_host_factory):
    (h,) = sandbox_host_factory(1)
    h.run("iptables -A DOCKER-USER -j DROP")
    h.reset()
    assert h.run("iptables -S DOCKER-USER").stdout.strip() == "-N DOCKER-USER"
