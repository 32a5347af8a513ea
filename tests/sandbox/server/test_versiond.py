"""The simulated versiond (upstream `versioned/`): /healthz on :8080, the oracle at api:9100/versions,
one devshardd child per approved version; the child, not versiond, opens the keyring with
KEYRING_PASSWORD, and a password that does not open it shows as a log line and a stopped child."""

from __future__ import annotations

from tests.sandbox.server import support
from tests.sandbox.server.support import wait_for

pytestmark = support.needs_sim_python
sim = support.sim  # fixtures
join = support.join

KEYS_ADD = support.KEYS_ADD
APPROVED = [{"name": "v2", "binary": "https://example.invalid/devshardd-v2.tar.gz", "sha256": "ab" * 32}]


def up(sim, join):
    # the api first: versiond asks its oracle (api:9100/versions) at start, then every 30 s only
    r = sim.sourced('"$DOCKER" compose up -d --no-deps api', join)
    assert r.returncode == 0, r.stderr
    sim.wait_ready("api")
    r = sim.sourced('"$DOCKER" compose up -d --no-deps versiond', join)
    assert r.returncode == 0, r.stderr
    sim.wait_ready("versiond")
    return f"http://{sim.ip('versiond')}:8080"


def test_no_approved_version_no_child_and_the_keyring_untouched(sim, join):
    url = up(sim, join)
    assert sim.get_json(f"{url}/healthz") == []
    assert sim.get(f"{url}/")[0] == 400  # "version prefix required"
    assert sim.get(f"{url}/v2/health")[0] == 404
    log = sim.docker("logs", "versiond", cwd=join).stdout
    assert "starting proxy server addr=:8080" in log and "api account" not in log


def test_an_approved_version_runs_when_the_password_opens_the_keyring(sim, join):
    assert sim.sourced(KEYS_ADD, join).returncode == 0
    sim.knobs(devshard_versions=APPROVED)
    url = up(sim, join)
    wait_for(lambda: sim.get_json(f"{url}/healthz") == [{"name": "v2", "port": 5000, "status": "running"}],
             what="devshardd v2 running", timeout=30)
    assert sim.get(f"{url}/v2/health")[0] == 200


def test_a_wrong_password_stops_the_child_visibly(sim, join):
    assert sim.sourced(KEYS_ADD, join).returncode == 0
    support.write_config_env(join, sim, KEYRING_PASSWORD="not-the-keyring-password")
    sim.knobs(devshard_versions=APPROVED)
    url = up(sim, join)
    wait_for(lambda: "child exited" in sim.docker("logs", "versiond", cwd=join).stdout, what="child exited",
             timeout=30)  # three bcrypt checks of the passphrase on a loaded machine
    log = sim.docker("logs", "versiond", cwd=join).stdout
    assert "api account: too many failed passphrase attempts" in log
    assert "not-the-keyring-password" not in log
    assert sim.get_json(f"{url}/healthz") == [{"name": "v2", "port": 5000, "status": "stopped"}]
    assert sim.state("versiond") and sim.get(f"{url}/v2/health")[0] == 404  # versiond itself keeps running
