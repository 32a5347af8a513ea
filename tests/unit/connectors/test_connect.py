"""Connecting to remote ends: the SSH connection (host key pinning, bounded retries, auth failures)
and the HTTP retry budget towards the seed/RPC endpoints.

The SSH tests run `connect()` against a small in-process paramiko server on 127.0.0.1 (no root
needed); the HTTP tests against the simulated seed (its fault knobs) and a raw socket server for
answers broken at the protocol level.
"""

from __future__ import annotations

import base64
import contextlib
import io
import shutil
import socket
import subprocess
import threading
import time

import paramiko
import pytest

from gonka_tasks.connectors.httpclient import HttpError, request
from gonka_tasks.connectors.ssh import connect, fingerprint, host_key_name, known_keys, pin_host_key
from gonka_tasks.errors import DeployError
from gonka_tasks.session.log import RunLog


# ------------------------------------------------------------------ a tiny SSH server
class _Server(paramiko.ServerInterface):
    def __init__(self, allowed: paramiko.PKey):
        self.allowed = allowed

    def get_allowed_auths(self, username):
        return "publickey"

    def check_auth_publickey(self, username, key):
        ok = username == "root" and key.asbytes() == self.allowed.asbytes()
        return paramiko.AUTH_SUCCESSFUL if ok else paramiko.AUTH_FAILED


class SSHServer:
    """Accepts SSH connections on 127.0.0.1 with `host_key`, letting in only `client_key`."""

    def __init__(self, host_key: paramiko.PKey, client_key: paramiko.PKey, port: int = 0):
        self.host_key, self.client_key = host_key, client_key
        self.sock = socket.create_server(("127.0.0.1", port))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        self.auth_attempts = 0
        self._stop = threading.Event()
        self._transports: list[paramiko.Transport] = []
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                s, _ = self.sock.accept()
            except (TimeoutError, OSError):
                continue
            self.accepted += 1
            t = paramiko.Transport(s)
            t.add_server_key(self.host_key)
            self._transports.append(t)
            server = _Server(self.client_key)
            orig = server.check_auth_publickey

            def counted(username, key, orig=orig):
                self.auth_attempts += 1
                return orig(username, key)
            server.check_auth_publickey = counted
            with contextlib.suppress(Exception):
                t.start_server(server=server)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.sock.close()
        for t in self._transports:
            t.close()


@pytest.fixture
def keys(tmp_path):
    """Two host keys (the server's, and the one of an impostor/reinstall) and the client key file."""
    client = paramiko.ECDSAKey.generate()
    client_file = tmp_path / "id_ecdsa"
    client.write_private_key_file(str(client_file))
    return paramiko.ECDSAKey.generate(), paramiko.ECDSAKey.generate(), client, client_file


@pytest.fixture
def server_factory():
    made: list[SSHServer] = []

    def make(host_key, client_key) -> SSHServer:
        s = SSHServer(host_key, client_key)
        made.append(s)
        return s
    yield make
    for s in made:
        s.close()


@pytest.fixture
def home(tmp_path, monkeypatch):
    h = tmp_path / "home"
    (h / ".ssh").mkdir(parents=True)
    monkeypatch.setenv("HOME", str(h))
    return h


def log_to(buf: io.StringIO) -> RunLog:
    return RunLog(None, console=buf)


def ssh(port, known_hosts, key_file, buf=None, **kw):
    return connect("127.0.0.1", user="root", port=port, known_hosts=known_hosts, key_filename=str(key_file),
                   log=log_to(buf if buf is not None else io.StringIO()), **kw)


# ------------------------------------------------------------------ host key pinning
def test_fingerprint_is_what_ssh_keygen_prints(tmp_path):
    if not shutil.which("ssh-keygen"):
        pytest.skip("ssh-keygen not installed")
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "k")], check=True, timeout=30)
    line = (tmp_path / "k.pub").read_text()
    key = paramiko.Ed25519Key(data=base64.b64decode(line.split()[1]))
    shown = subprocess.run(["ssh-keygen", "-l", "-f", str(tmp_path / "k.pub")], capture_output=True, text=True,
                           check=True, timeout=30).stdout.split()[1]
    assert fingerprint(key) == shown


def test_known_hosts_name_off_port_22():
    assert host_key_name("198.51.100.7", 22) == "198.51.100.7"
    assert host_key_name("198.51.100.7", 2222) == "[198.51.100.7]:2222"


def test_first_connection_pins_then_a_changed_key_is_refused(keys, server_factory, tmp_path, home):
    host_a, host_b, client, client_file = keys
    pin = tmp_path / "nodes" / "n1" / "known_hosts"
    srv = server_factory(host_a, client)
    buf = io.StringIO()
    ssh(srv.port, pin, client_file, buf).close()
    assert pin.stat().st_mode & 0o777 == 0o600
    assert known_keys(pin, f"[127.0.0.1]:{srv.port}") == {host_a.get_name(): host_a}
    assert f"pinned host key {host_a.get_name()} {fingerprint(host_a)}" in buf.getvalue()
    assert not list(pin.parent.glob("*.tmp")) and not list(pin.parent.glob(".*.tmp"))

    ssh(srv.port, pin, client_file).close()  # same key: fine, nothing rewritten
    srv.close()

    # the "server" comes back on the same address with another key
    srv2 = SSHServer(host_b, client)
    try:
        moved = pin.read_text().replace(f"]:{srv.port} ", f"]:{srv2.port} ")
        pin.write_text(moved)
        before = pin.read_text()
        with pytest.raises(DeployError) as e:
            ssh(srv2.port, pin, client_file)
        text = str(e.value)
        assert fingerprint(host_a) in text and fingerprint(host_b) in text
        assert "--accept-new-host-key" in text and str(pin) in text
        assert pin.read_text() == before, "a refused key must not touch the pin"
        assert srv2.auth_attempts == 0, "no authentication towards a server whose key is refused"
        assert srv2.accepted == 1, "a changed host key is not retried"

        # the operator re-pins on purpose
        buf = io.StringIO()
        ssh(srv2.port, pin, client_file, buf, accept_new_host_key=True).close()
        assert known_keys(pin, f"[127.0.0.1]:{srv2.port}") == {host_b.get_name(): host_b}
        assert fingerprint(host_a) in buf.getvalue() and fingerprint(host_b) in buf.getvalue()
        ssh(srv2.port, pin, client_file).close()  # and later runs use the new pin
    finally:
        srv2.close()


@pytest.mark.parametrize("repin", [False, True])
def test_a_reconnect_in_the_same_run_checks_the_key_just_pinned(keys, tmp_path, home, repin):
    """Fabric reopens a dropped connection by itself: that must not accept another key."""
    host_a, host_b, client, client_file = keys
    pin = tmp_path / "known_hosts"
    srv = SSHServer(host_a, client)
    port = srv.port
    try:
        conn = ssh(port, pin, client_file, accept_new_host_key=repin)
        conn.close()
    finally:
        srv.close()
    srv2 = SSHServer(host_b, client, port=port)  # another key on the same address
    try:
        with pytest.raises(paramiko.BadHostKeyException):
            conn.open()
        assert srv2.auth_attempts == 0
        assert known_keys(pin, f"[127.0.0.1]:{port}") == {host_a.get_name(): host_a}
    finally:
        conn.close()
        srv2.close()


def test_accept_new_host_key_keeps_the_old_pin_when_the_server_is_unreachable(keys, tmp_path, home):
    host_a, _, _, client_file = keys
    port = _free_port()
    pin = tmp_path / "known_hosts"
    pin_host_key(pin, f"[127.0.0.1]:{port}", host_a)
    before = pin.read_text()
    with pytest.raises(DeployError):
        ssh(port, pin, client_file, accept_new_host_key=True, attempts=1)
    assert pin.read_text() == before, "a failed re-pin must not leave the host unpinned"


def test_user_known_hosts_entry_is_used_and_a_mismatch_refused(keys, server_factory, tmp_path, home):
    host_a, host_b, client, client_file = keys
    srv = server_factory(host_a, client)
    name = f"[127.0.0.1]:{srv.port}"
    user_file = home / ".ssh" / "known_hosts"
    user_file.write_text(f"{name} {host_a.get_name()} {host_a.get_base64()}\n")
    pin = tmp_path / "nodes" / "n1" / "known_hosts"
    ssh(srv.port, pin, client_file).close()
    assert not pin.exists(), "the user's own entry is trusted; nothing to pin"

    # hashed entries (HashKnownHosts yes) count the same
    hashed = paramiko.HostKeys.hash_host(name)
    user_file.write_text(f"{hashed} {host_b.get_name()} {host_b.get_base64()}\n")
    with pytest.raises(DeployError) as e:
        ssh(srv.port, pin, client_file)
    text = str(e.value)
    assert fingerprint(host_a) in text and fingerprint(host_b) in text
    assert str(user_file) in text and "ssh-keygen -R" in text and "--accept-new-host-key" in text
    assert not pin.exists()


def test_user_file_is_trusted_before_the_local_pin(keys, server_factory, tmp_path, home):
    host_a, host_b, client, client_file = keys
    srv = server_factory(host_a, client)
    name = f"[127.0.0.1]:{srv.port}"
    pin = tmp_path / "known_hosts"
    pin_host_key(pin, name, host_a)
    (home / ".ssh" / "known_hosts").write_text(f"{name} {host_b.get_name()} {host_b.get_base64()}\n")
    with pytest.raises(DeployError, match="ssh-keygen -R"):
        ssh(srv.port, pin, client_file)
    # re-pinning works for this run and says the user's file still disagrees
    buf = io.StringIO()
    ssh(srv.port, pin, client_file, buf, accept_new_host_key=True).close()
    assert "ssh-keygen -R" in buf.getvalue()


def test_pin_replaces_every_entry_of_the_host_and_keeps_others(tmp_path):
    a, b, c = (paramiko.ECDSAKey.generate() for _ in range(3))
    path = tmp_path / "known_hosts"
    pin_host_key(path, "other.example", c)
    pin_host_key(path, "h.example", a)
    assert pin_host_key(path, "h.example", b) == [fingerprint(a)]
    assert known_keys(path, "h.example") == {b.get_name(): b}
    assert known_keys(path, "other.example") == {c.get_name(): c}


# ------------------------------------------------------------------ retries and failures
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_closed_port_is_retried_a_bounded_number_of_times(keys, tmp_path, home):
    *_, client_file = keys
    port = _free_port()
    buf = io.StringIO()
    t0 = time.monotonic()
    with pytest.raises(DeployError) as e:
        ssh(port, tmp_path / "kh", client_file, buf, attempts=3, wait_initial=0.05, wait_max=0.2)
    took = time.monotonic() - t0
    text = str(e.value)
    assert f"127.0.0.1:{port}" in text and "3 attempt" in text and "refused" in text
    assert "SSH_PORT" in e.value.hint
    assert buf.getvalue().count("[CHECK] SSH connection") == 3
    assert buf.getvalue().count("retrying in") == 2
    assert took < 5
    assert not (tmp_path / "kh").exists()


def test_a_server_that_drops_before_the_banner_is_retried(keys, tmp_path, home):
    *_, client_file = keys
    lsock = socket.create_server(("127.0.0.1", 0))
    lsock.settimeout(0.2)
    accepted = []
    stop = threading.Event()

    def serve():
        while not stop.is_set():
            try:
                s, _ = lsock.accept()
            except OSError:
                continue
            accepted.append(time.monotonic())
            s.close()  # like sshd dying or refusing over MaxStartups
    th = threading.Thread(target=serve, daemon=True)
    th.start()
    try:
        with pytest.raises(DeployError, match="cannot connect") as e:
            ssh(lsock.getsockname()[1], tmp_path / "kh", client_file, attempts=3, wait_initial=0.05, wait_max=0.2)
        assert "Traceback" not in str(e.value)
        assert len(accepted) == 3
    finally:
        stop.set()
        th.join(5)
        lsock.close()


def test_authentication_failure_is_not_retried_and_names_the_key(keys, server_factory, tmp_path, home):
    host_a, _, client, _ = keys
    srv = server_factory(host_a, client)
    wrong = tmp_path / "wrong_key"
    paramiko.ECDSAKey.generate().write_private_key_file(str(wrong))
    with pytest.raises(DeployError) as e:
        ssh(srv.port, tmp_path / "kh", wrong)
    assert str(wrong) in str(e.value) and "authentication failed" in str(e.value)
    assert "SSH_KEY" in e.value.hint
    assert srv.accepted == 1


def test_missing_key_file_is_named_without_connecting(tmp_path, home):
    with pytest.raises(DeployError, match="not found") as e:
        ssh(_free_port(), tmp_path / "kh", tmp_path / "nope")
    assert str(tmp_path / "nope") in str(e.value)


# ------------------------------------------------------------------ HTTP failure budget
def test_429_retry_after_is_honoured(seed):
    seed.configure(rate_limit_next_n=1, retry_after_s=1)
    t0 = time.monotonic()
    r = request(seed.url + "/v1/governance/models", attempts=3, base_wait=0.01)
    assert r.status == 200 and time.monotonic() - t0 >= 0.95
    seed.wait_idle()
    assert seed.count("/v1/governance/models") == 2


def test_5xx_is_retried_with_jittered_backoff_within_its_bound(seed):
    base, runs, retries = 0.08, 3, 4
    ratios = []
    for _ in range(runs):
        seed.wait_idle()
        seed.reset()
        seed.configure(fail_next_n=retries, fail_status=502)
        assert request(seed.url + "/v1/governance/models", attempts=retries + 1, base_wait=base).status == 200
        seed.wait_idle()
        times = [rec.t for rec in seed.log]
        assert len(times) == retries + 1
        for n, gap in enumerate(b - a for a, b in zip(times, times[1:], strict=False)):
            bound = base * 2 ** n
            assert bound / 2 - 0.02 <= gap <= bound + 0.25, (n, gap)
            ratios.append(gap / bound)
    assert min(ratios) < 0.9, "waits never jittered below the nominal backoff"


def test_dropped_connections_are_retried(seed):
    seed.configure(drop_connection_next_n=2)
    assert request(seed.url + "/v1/governance/models", attempts=3, base_wait=0.01).status == 200
    seed.wait_idle()
    assert [rec.status for rec in seed.log] == [None, None, 200]


def test_budget_exhausted_names_endpoint_last_status_and_what_to_try(seed):
    seed.configure(fail_next_n=100, fail_status=503)
    url = seed.url + "/v1/participants/gonka1xyz"
    t0 = time.monotonic()
    with pytest.raises(HttpError) as e:
        request(url, attempts=3, base_wait=0.05, max_wait=0.1, what="participant lookup")
    assert time.monotonic() - t0 < 3
    assert url in str(e.value) and "HTTP 503" in str(e.value) and "3 attempts" in str(e.value)
    assert "try again later" in e.value.hint

    seed.reset()
    seed.configure(rate_limit_next_n=100, retry_after_s=0)
    with pytest.raises(HttpError) as e:
        request(url, attempts=2, base_wait=0.01)
    assert "429" in str(e.value) and "rate-limiting" in e.value.hint


class RawServer:
    """Answers each connection with the next scripted raw bytes (None: read the request, say nothing)."""

    def __init__(self, script: list[bytes | None], hold_s: float = 0.0):
        self.script = list(script)
        self.hold_s = hold_s
        self.hits: list[float] = []
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.hits.append(time.monotonic())
            with conn:
                conn.settimeout(2)
                with contextlib.suppress(OSError):
                    conn.recv(65536)
                    answer = self.script.pop(0) if self.script else _ok()
                    if answer is None:
                        self._stop.wait(self.hold_s)
                    else:
                        conn.sendall(answer)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.sock.close()


def _ok(body: bytes = b'{"ok": true}') -> bytes:
    return b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(body), body)


@pytest.fixture
def raw():
    made: list[RawServer] = []

    def make(script, **kw) -> RawServer:
        s = RawServer(script, **kw)
        made.append(s)
        return s
    yield make
    for s in made:
        s.close()


def test_truncated_answer_and_garbage_are_retried_not_a_crash(raw):
    truncated = b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\nConnection: close\r\n\r\n{\"ok\""
    srv = raw([truncated, b"this is not http\r\n\r\n"])
    r = request(srv.url + "/x", attempts=3, base_wait=0.01)
    assert r.status == 200 and r.json() == {"ok": True} and len(srv.hits) == 3


def test_retry_after_as_http_date(raw):
    from email.utils import formatdate  # noqa: PLC0415

    when = formatdate(time.time() + 2, usegmt=True)
    srv = raw([f"HTTP/1.1 429 Too Many Requests\r\nRetry-After: {when}\r\nContent-Length: 0\r\n"
               "Connection: close\r\n\r\n".encode()])
    assert request(srv.url + "/x", attempts=2, base_wait=0.01).status == 200
    assert srv.hits[1] - srv.hits[0] >= 0.9


def test_a_silent_server_times_out_within_the_budget(raw):
    srv = raw([None, None], hold_s=3)
    t0 = time.monotonic()
    with pytest.raises(HttpError) as e:
        request(srv.url + "/v1/status", attempts=2, timeout=0.3, base_wait=0.01, what="seed chain status")
    assert time.monotonic() - t0 < 2.5
    assert "seed chain status" in str(e.value) and srv.url + "/v1/status" in str(e.value)
    assert "timed out" in str(e.value).lower() and "reachable" in e.value.hint


def test_unreachable_endpoint_fails_fast_with_advice():
    port = _free_port()
    with pytest.raises(HttpError) as e:
        request(f"http://127.0.0.1:{port}/v1/governance/models", attempts=2, base_wait=0.01)
    assert f"127.0.0.1:{port}" in str(e.value) and "refused" in str(e.value).lower()
    assert "reachable" in e.value.hint


def test_client_errors_are_answers_not_retried(raw):
    srv = raw([b"HTTP/1.1 404 Not Found\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}"])
    assert request(srv.url + "/v1/participants/x", attempts=4).status == 404
    assert len(srv.hits) == 1
