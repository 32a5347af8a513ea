"""A full deploy onto a sandbox host, exactly as a user runs it, and a rerun that changes nothing."""

from __future__ import annotations

import difflib
import json

import pytest

from gonka_tasks.config.address import cold_address
from gonka_tasks.facts import parse_compose_ps, parse_mnemonic

pytestmark = pytest.mark.sandbox

JOIN = "/mnt/ssd/gonka/deploy/join"
COMPOSE_ALL = "-f docker-compose.yml -f docker-compose.mlnode.yml"


def last_run(lab, key: str) -> dict:
    return json.loads((lab.nodes / key / "last_run.json").read_text())


def counters(host) -> dict:
    return json.loads(host.read_text("/var/lib/gonka-sim/counters.json") or "{}")


def changed_lines(a: str, b: str) -> list[str]:
    return [ln for ln in difflib.unified_diff(a.splitlines(), b.splitlines(), lineterm="", n=0)
            if ln.startswith(("+", "-")) and not ln.startswith(("+++", "---"))]


def services_running(host) -> dict[str, str]:
    out = host.run(f"cd {JOIN} && docker compose {COMPOSE_ALL} ps -a --format json").stdout
    return {c.service: c.state for c in parse_compose_ps(out)}


def test_full_deploy_then_noop_rerun(lab, sandbox_host, world):
    host = sandbox_host
    node = lab.write_node(host, "sbx-a")
    values = lab.values("sbx-a")
    # the node creates its TOML files on first start: keep pristine copies to diff against
    r = lab.fab("deploy", "--node", str(node), "--yes")
    assert r.returncode == 0, r.stdout[-4000:]
    art = lab.nodes / "sbx-a"

    # every service of both compose files runs
    states = services_running(host)
    for svc in ("tmkms", "node", "api", "proxy", "mlnode-308", "inference"):
        assert states.get(svc) == "running", states

    # a warm key on the server whose address equals warm_address.txt; the mnemonic saved 0600
    address = (art / "warm_address.txt").read_text().strip()
    shown = host.run(f"cd {JOIN} && . ./config.env && docker compose run --rm --no-deps -T api sh -c "
                     "'printf \"%s\\n\" \"$KEYRING_PASSWORD\" | inferenced keys show \"$KEY_NAME\" -a "
                     "--keyring-backend file'").stdout.strip()
    assert shown == address
    assert (art / "warm_key.txt").stat().st_mode & 0o777 == 0o600
    assert parse_mnemonic((art / "warm_key.txt").read_text())
    assert counters(host).get("keys_add") == 1

    # exactly one registration at the seed, under the cold address
    world.seed.wait_idle()
    cold = cold_address(values["ACCOUNT_PUBKEY"])
    assert [p.get("address", cold) for p in world.seed.posts] == [cold]
    assert world.seed.is_visible(cold)

    # peers and pruning set, comments intact: the diff against the originals shows only those keys
    cfg_dir = f"{JOIN}/.inference/config"
    for name, expected in (
        ("config.toml", [f'+persistent_peers = "{values["PERSISTENT_PEERS"]}"']),
        ("app.toml", ['+pruning = "custom"', '+pruning-keep-recent = "20000"', '+pruning-interval = "512"']),
    ):
        orig = host.read_text(f"{cfg_dir}/{name}.gonka-deploy.orig")
        now = host.read_text(f"{cfg_dir}/{name}")
        diff = changed_lines(orig, now)
        assert sorted(d for d in diff if d.startswith("+")) == sorted(expected), diff
        assert len([d for d in diff if d.startswith("-")]) == len(expected)
        assert now.count("#") == orig.count("#")

    # the second deploy changes nothing
    docker_before = len(host.docker_calls())
    toml_before = {n: host.read_text(f"{cfg_dir}/{n}") for n in ("config.toml", "app.toml")}
    posts_before = len(world.seed.posts)
    r2 = lab.fab("deploy", "--node", str(node), "--yes")
    assert r2.returncode == 0, r2.stdout[-4000:]
    run = last_run(lab, "sbx-a")
    assert {s["result"] for s in run["steps"]} == {"skip"}, [s for s in run["steps"] if s["result"] != "skip"]
    assert [c for c in run["commands"] if c["kind"] == "run"] == []
    new_calls = [c["argv"] for c in host.docker_calls()[docker_before:]]
    mutating = {"up", "down", "restart", "stop", "start", "kill", "rm", "pull", "create"}
    assert not [c for c in new_calls if mutating & set(c)], new_calls
    assert not [c for c in new_calls if "keys add" in " ".join(c)]
    world.seed.wait_idle()
    assert len(world.seed.posts) == posts_before
    assert counters(host).get("keys_add") == 1
    assert {n: host.read_text(f"{cfg_dir}/{n}") for n in ("config.toml", "app.toml")} == toml_before
    assert "[SKIP]" in r2.stdout and "[EXEC]" not in r2.stdout


def test_noop_rerun_is_cheap(lab, sandbox_host):
    """Rerun on a deployed host: every step SKIP, at most 20 remote commands before verify."""
    node = lab.write_node(sandbox_host, "sbx-b")
    assert lab.fab("deploy", "--node", str(node), "--yes").returncode == 0
    r = lab.fab("deploy", "--node", str(node), "--yes")
    assert r.returncode == 0, r.stdout[-3000:]
    run = last_run(lab, "sbx-b")
    assert {s["result"] for s in run["steps"]} == {"skip"}
    deploy_cmds = [c for c in run["commands"] if c["step"] != "verify"]
    assert len(deploy_cmds) <= 20, [c["what"] for c in deploy_cmds]
    assert all(c["kind"] == "probe" for c in run["commands"])

    # two keys of the config changed: `configure --plan` names both, and changes nothing
    before = sandbox_host.read_text(f"{JOIN}/config.env")
    values = lab.values("sbx-b")
    node = lab.write_node(sandbox_host, "sbx-b", RPC_SERVER_URL_2=values["RPC_SERVER_URL_2"] + "x/",
                          KEYRING_PASSWORD=values["KEYRING_PASSWORD"] + "-new", ACCOUNT_PUBKEY=values["ACCOUNT_PUBKEY"])
    plan = lab.fab("configure", "--node", str(node), "--plan")
    assert plan.returncode == 0, plan.stdout[-3000:]
    line = next(ln for ln in plan.stdout.splitlines() if "PLAN would run: config.env on the server" in ln)
    assert "differs in: KEYRING_PASSWORD, RPC_SERVER_URL_2" in line, line
    assert values["KEYRING_PASSWORD"] not in plan.stdout
    assert sandbox_host.read_text(f"{JOIN}/config.env") == before
    assert [c for c in last_run(lab, "sbx-b")["commands"] if c["kind"] == "run"] == []


def test_failed_download_stops_the_deploy_before_launch(lab, sandbox_host, world):
    """The download runs alongside phases 3-5; when it fails, launch never starts, and the reason is shown."""
    world.hub.configure(fail_next_n=1000, fail_status=404, fail_match="/resolve/")
    node = lab.write_node(sandbox_host, "dl-fail")
    r = lab.fab("deploy", "--node", str(node), "--yes")
    assert r.returncode == 1
    assert "model download failed" in r.stdout
    assert "FAILED: phase 6 (launch)" in r.stdout  # phases 3-5 ran meanwhile, launch refused
    run = last_run(lab, "dl-fail")
    assert {s["phase"] for s in run["steps"] if s["result"] == "done"} >= {"configure", "start-base"}
    assert not [c for c in sandbox_host.docker_calls() if "docker-compose.mlnode.yml" in c["argv"] and "up" in c["argv"]]
