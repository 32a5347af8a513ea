"""The warm key under faults (issue 11, items 1 and 2): a key probe that fails in any way never
leads to a second `keys add`, and the mnemonic reaches this machine even when the data disk fills
while the key is made. A key whose mnemonic was never saved here is an error on every run.
"""

from __future__ import annotations

import json
import shlex

import pytest

from bench import chaos

pytestmark = pytest.mark.sandbox

INFERENCED = "/usr/local/lib/gonka-sim/bin-chain/inferenced"  # on PATH in the api/node containers
FILLER = f"{chaos.MOUNT}/.gonka-sim-filler"


def set_knobs(host, **knobs) -> None:
    host.write_file("/etc/gonka-sim/knobs.json", json.dumps(knobs))


def errors(out: str) -> list[str]:
    return [ln for ln in out.splitlines() if "[ERROR]" in ln]


def fail_keys_show_once(host, message: str, rc: int) -> None:
    """Wrap the simulated `inferenced`: the next `keys show` answers `message` and exits `rc`."""
    marker = "/var/lib/gonka-sim/keys-show-failed"
    host.run(["cp", "-p", INFERENCED, INFERENCED + ".real"])
    host.write_file(INFERENCED, "#!/bin/sh\n# test hook: one failing `keys show`\n"
                    f'if [ "$1 $2" = "keys show" ] && [ ! -e {marker} ]; then touch {marker}; '
                    f"cat >/dev/null; echo {shlex.quote(message)} >&2; exit {rc}; fi\n"
                    f'exec {shlex.quote(INFERENCED + ".real")} "$@"\n', mode=0o755)


def deployed(lab, host, name: str, **overrides):
    chaos.instrument(host)
    node = lab.write_node(host, name, **overrides)
    r = lab.fab(*chaos.deploy_args(node))
    assert r.returncode == 0, r.stdout[-4000:]
    return node


@pytest.mark.slow
def test_a_failing_key_probe_never_creates_a_second_key(lab, sandbox_host, world):
    """A password starting with `y` would answer yes to `keys add`'s overwrite question: each way the
    probe can fail (the docker daemon, the CLI's own error, output that is not an address) stops the
    run with "rerun to continue"; the key and its address stay; the next run skips the step."""
    host = sandbox_host
    node = deployed(lab, host, "ks-probe", KEYRING_PASSWORD="yes-this-is-the-keyring-password")
    address = chaos.server_key_address(host)
    assert address and chaos.sim_counters(host).get("keys_add") == 1

    faults = [
        lambda: set_knobs(host, docker_fail={"pattern": "run api", "times": 1, "rc": 1,
                                             "message": "Error response from daemon: i/o timeout"}),
        lambda: fail_keys_show_once(host, "rpc error: code = Unavailable desc = keyring busy", 1),
        lambda: fail_keys_show_once(host, "panic: runtime error: invalid memory address", 2),
    ]
    for i, inject in enumerate(faults):
        host.run("rm -f /var/lib/gonka-sim/keys-show-failed /var/lib/gonka-sim/counters.json.lock; "
                 f"test -e {INFERENCED}.real && mv -f {INFERENCED}.real {INFERENCED}; true")
        set_knobs(host)
        inject()
        r = lab.fab("start-base", "--node", str(node), "--yes")
        assert r.returncode == 1, f"fault {i}: {r.stdout[-3000:]}"
        errs = errors(r.stdout)
        assert errs and "could not tell whether the warm key ks-probe exists" in errs[0], r.stdout[-3000:]
        assert "rerun to continue" in errs[0]
        assert "Traceback" not in r.stdout
        assert chaos.sim_counters(host).get("keys_add") == 1, f"fault {i}: keys add ran again"
        assert chaos.server_key_address(host) == address

    host.run(f"test -e {INFERENCED}.real && mv -f {INFERENCED}.real {INFERENCED}; true")
    set_knobs(host)
    r = lab.fab("start-base", "--node", str(node), "--yes")
    assert r.returncode == 0, r.stdout[-3000:]
    assert "[SKIP] warm key ks-probe" in r.stdout
    assert chaos.sim_counters(host).get("keys_add") == 1


@pytest.mark.slow
def test_mnemonic_is_saved_when_the_data_disk_fills_during_keys_add(lab, sandbox_host, world):
    """The data disk fills right after `keys add` wrote the keyring: the mnemonic still reaches
    warm_key.txt in that same run (its output waits on the system disk); the deploy then stops on
    the full disk, and once space is freed a rerun finishes with one key."""
    host = sandbox_host
    chaos.instrument(host)
    set_knobs(host, fill_disk_after_keys_add=True)
    node = lab.write_node(host, "ks-full")
    art = lab.nodes / "ks-full"
    r = lab.fab(*chaos.deploy_args(node))
    assert "Traceback" not in r.stdout
    assert chaos.sim_counters(host).get("keys_add") == 1, r.stdout[-3000:]
    assert host.run(["test", "-e", FILLER], check=False).returncode == 0, "the disk never filled"
    # the mnemonic is here, and it is the server key's
    assert (art / "warm_key.txt").stat().st_mode & 0o777 == 0o600
    mnemonic = [ln for ln in (art / "warm_key.txt").read_text().splitlines() if ln and not ln.startswith(("#", "address"))]
    assert len(mnemonic) == 1 and len(mnemonic[0].split()) == 24
    assert chaos.mnemonic_address(mnemonic[0]) == chaos.server_key_address(host)
    # the operator frees space; the rerun converges with the same key
    set_knobs(host)
    host.run(["rm", "-f", FILLER])
    r = lab.fab(*chaos.deploy_args(node))
    assert r.returncode == 0, r.stdout[-4000:]
    assert chaos.sim_counters(host).get("keys_add") == 1
    assert chaos.state_problems(host, lab, world.seed, "ks-full") == []


@pytest.mark.slow
def test_a_key_whose_mnemonic_was_not_saved_is_an_error_on_every_run(lab, sandbox_host, world):
    """warm_key.txt gone: every later run ends in an ERROR with the recovery steps (never exit 0),
    until the operator accepts it explicitly, which first backs the keyring up."""
    host = sandbox_host
    node = deployed(lab, host, "ks-lost")
    art = lab.nodes / "ks-lost"
    (art / "warm_key.txt").unlink()
    for _ in range(2):
        r = lab.fab(*chaos.deploy_args(node))
        assert r.returncode == 1, r.stdout[-3000:]
        errs = errors(r.stdout)
        assert errs and "was never saved on this machine" in errs[0], r.stdout[-3000:]
        assert "fab backup-keys" in r.stdout and "--accept-lost-mnemonic" in r.stdout
    r = lab.fab(*chaos.deploy_args(node), "--accept-lost-mnemonic")
    assert r.returncode == 0, r.stdout[-3000:]
    lost = (art / "warm_key.lost").read_text()
    assert chaos.server_key_address(host) in lost
    assert list((art / "backup").glob("*/.inference/keyring-file/ks-lost.info"))
    r = lab.fab(*chaos.deploy_args(node))
    assert r.returncode == 0 and "mnemonic of" in r.stdout and "[WARN]" in r.stdout
    assert chaos.sim_counters(host).get("keys_add") == 1
