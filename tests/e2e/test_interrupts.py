"""Interrupted deploys (issue 5): at every phase boundary and inside phases 4 and 5; the next
`fab deploy --yes` must leave exactly the state of an uninterrupted deploy: `keys add` ran
once, one registration, the mnemonic saved. Also: a registration the seed never lists is an
error after REGISTRATION_TIMEOUT, not a success.

At a phase boundary the deployer process is killed (SIGKILL when the console shows
"=== phase N"): an SSH session killed between two commands is not an interruption, since
Fabric opens a new connection for the next command. Inside phases the SSH session is killed
(its sshd processes in the host, by PID) while a command runs on the server, held open for a
few seconds by a wrapper around the simulated program (or the seed's delay), so the kill lands
inside it; what the session started on the server keeps running, as after a real drop.
"""

from __future__ import annotations

import json
import shlex
import time

import pytest

from bench import chaos
from gonka_tasks.config.address import cold_address
from gonka_tasks.phases.deploy import PHASES

pytestmark = pytest.mark.sandbox

INFERENCED = "/usr/local/lib/gonka-sim/bin-chain/inferenced"  # on PATH in the api/node containers
DOCKER = "/usr/local/bin/docker"
HOLD_S = 3  # how long a held command stays open after doing its work
PENDING = f"{chaos.PENDING_DIR}/intr-m.keys-add"
RESTART_MARKER = f"{chaos.STATE_DIR}/node-restart-pending"


@pytest.fixture(autouse=True)
def _no_stray_fab():
    """A test that fails half-way leaves no `fab` of its own running."""
    yield
    chaos.kill_started()


def deploy(lab, node) -> chaos.FabProcess:
    return chaos.FabProcess(lab, *chaos.deploy_args(node))


def last_run(lab, key: str) -> dict:
    return json.loads((lab.nodes / key / "last_run.json").read_text())


def lost_command(lab, key: str) -> str:
    """What the killed run was doing on the server when the connection dropped (exit code None)."""
    lost = [c["what"] for c in last_run(lab, key)["commands"] if c["exit_code"] is None]
    return lost[-1] if lost else ""


def hold_after(host, program: str, needle: str, seconds: float = HOLD_S) -> None:
    """Wrap a simulated program of the host: calls whose arguments contain `needle` do their work,
    then stay open `seconds` longer (the window in which the connection is cut)."""
    host.run(["cp", "-p", program, program + ".real"])
    host.write_file(program, "#!/bin/sh\n# test hook: hold some calls open after they did their work\n"
                    f'{shlex.quote(program + ".real")} "$@"\nrc=$?\n'
                    f'case " $* " in *{shlex.quote(" " + needle + " ")}*) sleep {seconds} ;; esac\nexit $rc\n',
                    mode=0o755)


def set_knobs(host, **knobs) -> None:
    host.write_file("/etc/gonka-sim/knobs.json", json.dumps(knobs))


def drop_ssh_inside(fab: chaos.FabProcess, host, pattern: str, *, after_s: float) -> int | None:
    """Once the console shows `pattern`, wait `after_s` (the command is running), kill the host's
    SSH sessions; the run's exit code."""
    assert fab.wait_for(pattern), f"never reached {pattern!r}:\n{fab.output[-3000:]}"
    time.sleep(after_s)
    assert chaos.kill_ssh_sessions(host), "no SSH session to kill"
    return fab.wait(chaos.EXIT_AFTER_KILL)


def assert_lost_connection(fab: chaos.FabProcess, rc: int | None) -> None:
    """The operator sees one clear error, no traceback, and is told to rerun."""
    out = fab.output
    assert rc == 1, f"exit code {rc}:\n{out[-3000:]}"
    errors = [ln for ln in out.splitlines() if "[ERROR]" in ln]
    assert errors and "connection lost during" in errors[0] and "rerun to continue" in errors[0], out[-3000:]
    assert "Traceback" not in out


def finish_and_check(lab, host, seed, name: str, node) -> None:
    r = lab.fab(*chaos.deploy_args(node))
    assert r.returncode == 0, r.stdout[-4000:]
    problems = chaos.state_problems(host, lab, seed, name)
    assert problems == [], "\n".join(problems)


@pytest.mark.slow  # seven deploys, each killed: in CI and with RUN_SLOW=1
def test_interrupt_at_every_phase_boundary(lab, sandbox_host, world):
    """Run k is killed as phase k starts; run k+1 checks phases 1..k (all SKIP) and goes on."""
    host = sandbox_host
    chaos.instrument(host)
    node = lab.write_node(host, "intr-b")
    for phase in PHASES:
        fab = deploy(lab, node)
        assert fab.wait_for(rf"=== phase {phase.number}: "), fab.output[-3000:]
        fab.kill()
        assert fab.wait(30) == -9
        # the run reached phase k: everything before it was done or checked, nothing redone twice
        assert chaos.mkfs_calls(host) == 1 or (phase.number == 1 and chaos.mkfs_calls(host) == 0)
    finish_and_check(lab, host, world.seed, "intr-b", node)


@pytest.mark.slow
def test_interrupt_inside_phases_4_and_5(lab, sandbox_host, world):
    """The SSH session dies while `keys add` runs, during the registration, and during the node restart."""
    host, seed = sandbox_host, world.seed
    chaos.instrument(host)
    hold_after(host, INFERENCED, "keys add")
    hold_after(host, DOCKER, "restart node")
    node = lab.write_node(host, "intr-m")
    art = lab.nodes / "intr-m"

    # 1. keys add has created the key on the server; its output is not saved locally yet
    fab = deploy(lab, node)
    rc = drop_ssh_inside(fab, host, r"\[EXEC\] create the warm key", after_s=1.0)
    assert_lost_connection(fab, rc)
    assert "create the warm key" in lost_command(lab, "intr-m")
    assert not (art / "warm_key.txt").exists()
    assert host.run(["test", "-f", PENDING], check=False).returncode == 0, "the kill missed keys add"

    # 2. register-new-participant is on its way to the (slow) seed; the rerun recovers the key first
    seed.configure(delay_s=HOLD_S)
    fab = deploy(lab, node)
    rc = drop_ssh_inside(fab, host, r"\[EXEC\] register-new-participant", after_s=1.0)
    assert_lost_connection(fab, rc)
    assert lost_command(lab, "intr-m") == "register-new-participant"
    assert (art / "warm_key.txt").exists(), "the rerun did not recover the key created by the killed run"
    seed.wait_idle(HOLD_S + 5)
    seed.configure(delay_s=0.0)

    # 3. the node restarts with the new chain settings: TOML files written, restart owed
    fab = deploy(lab, node)
    rc = drop_ssh_inside(fab, host, r"\[EXEC\] restart node", after_s=1.0)
    assert_lost_connection(fab, rc)
    assert "restart node" in lost_command(lab, "intr-m")
    assert host.run(["test", "-f", RESTART_MARKER], check=False).returncode == 0

    finish_and_check(lab, host, seed, "intr-m", node)
    run = last_run(lab, "intr-m")
    assert [s["result"] for s in run["steps"] if s["name"] == "node runs with the new chain settings"] == ["done"]
    assert chaos.sim_counters(host).get("keys_add") == 1


@pytest.mark.slow
def test_rerun_right_after_a_kill_during_pipx_install(lab, sandbox_host, world):
    """Killed while `pipx install` runs on the server, the very next run must still succeed."""
    host = sandbox_host
    node = lab.write_node(host, "intr-p")
    fab = deploy(lab, node)
    assert fab.wait_for(r"\[EXEC\] install pipx"), fab.output[-3000:]
    time.sleep(1.0)
    fab.kill()
    assert fab.wait(30) == -9
    r = lab.fab("deploy", "--node", str(node), "--yes", "--only", "download-model")
    assert r.returncode == 0, r.stdout[-3000:]


@pytest.mark.slow
def test_registration_never_listed_is_an_error(lab, sandbox_host, world):
    """register-new-participant exits 0 but the seed never lists the participant: exit 1 after the deadline."""
    host, seed = sandbox_host, world.seed
    seed.configure(hide_registrations=True)
    set_knobs(host, register_poll_s=1)  # the command's own wait for the participant
    node = lab.write_node(host, "intr-h", REGISTRATION_TIMEOUT="6")
    t0 = time.monotonic()
    r = lab.fab(*chaos.deploy_args(node))
    assert r.returncode == 1, r.stdout[-4000:]
    errors = [ln for ln in r.stdout.splitlines() if "[ERROR]" in ln]
    assert errors and "not ready after 6 s" in errors[0], errors or r.stdout[-3000:]
    assert "does not list the participant" in r.stdout
    assert "=== phase 5" not in r.stdout
    assert "Traceback" not in r.stdout
    run = last_run(lab, "intr-h")
    assert run["ok"] is False
    # the command itself reported success, and it was sent once
    assert "exit code 0" in (lab.nodes / "intr-h" / "registration.txt").read_text()
    seed.wait_idle()
    cold = cold_address(lab.values("intr-h")["ACCOUNT_PUBKEY"])
    assert [p.get("address") for p in seed.posts] == [cold]
    assert not seed.is_visible(cold)
    assert time.monotonic() - t0 < 120
