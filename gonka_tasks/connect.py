"""Opening the SSH connection to a node: pinned host key, bounded retries, clear errors.

The first connection records the server's host key in `nodes/<KEY_NAME>/known_hosts` (unless the
user's `~/.ssh/known_hosts` already knows the host, which is then used). Later connections refuse a
different key, naming both fingerprints and `--accept-new-host-key`. Transient failures (refused,
timeout, reset) are retried with jittered backoff; an authentication failure is not.
"""

from __future__ import annotations

import base64
import hashlib
import os
import socket
from pathlib import Path

import paramiko
from fabric import Config, Connection
from paramiko.ssh_exception import NoValidConnectionsError
from tenacity import retry, retry_if_exception, stop_after_attempt, wait_exponential_jitter

from .errors import DeployError
from .log import RunLog

CONNECT_TIMEOUT = 10
CONNECT_ATTEMPTS = 4


def fingerprint(key: paramiko.PKey) -> str:
    """OpenSSH-style SHA256 fingerprint of a host key."""
    return "SHA256:" + base64.b64encode(hashlib.sha256(key.asbytes()).digest()).decode().rstrip("=")


def host_key_name(host: str, port: int) -> str:
    """The name a host goes by in known_hosts: `host`, or `[host]:port` off port 22."""
    return host if port == 22 else f"[{host}]:{port}"


class PinOnFirstUse(paramiko.MissingHostKeyPolicy):
    """Accept an unknown host's key once and record it; a known host with another key fails in paramiko."""

    def __init__(self, path: Path, log: RunLog | None):
        self.path = path
        self.log = log

    def missing_host_key(self, client, hostname, key):
        self.path.parent.mkdir(parents=True, exist_ok=True)
        keys = paramiko.HostKeys(str(self.path)) if self.path.exists() else paramiko.HostKeys()
        keys.add(hostname, key.get_name(), key)
        tmp = self.path.with_suffix(".tmp")
        keys.save(str(tmp))
        os.chmod(tmp, 0o600)
        os.replace(tmp, self.path)
        if self.log:
            self.log.info(f"first connection to {hostname}: pinned host key {key.get_name()} {fingerprint(key)} "
                          f"in {self.path}")


def _transient(e: BaseException) -> bool:
    if isinstance(e, paramiko.AuthenticationException | paramiko.BadHostKeyException):
        return False
    return isinstance(e, NoValidConnectionsError | socket.timeout | TimeoutError | ConnectionError | EOFError) or (
        isinstance(e, paramiko.SSHException) and "banner" in str(e).lower())


def forget_host(path: Path, name: str) -> list[str]:
    """Remove a host's entries from a known_hosts file; returns the fingerprints removed."""
    if not path.exists():
        return []
    keys = paramiko.HostKeys(str(path))
    old = keys.lookup(name) or {}
    removed = [fingerprint(k) for k in old.values()]
    if name in keys:
        del keys[name]
        keys.save(str(path))
    return removed


def connect(host: str, *, user: str, port: int, known_hosts: Path, key_filename: str = "",
            log: RunLog | None = None, accept_new_host_key: bool = False,
            attempts: int = CONNECT_ATTEMPTS, use_user_known_hosts: bool = True) -> Connection:
    """Open a Fabric Connection with the host key pinned; raise DeployError with the fix on failure."""
    name = host_key_name(host, port)
    connect_kwargs: dict = {"banner_timeout": 15, "auth_timeout": 20}
    if key_filename:
        connect_kwargs.update(key_filename=str(Path(key_filename).expanduser()), look_for_keys=False,
                              allow_agent=False)
    conn = Connection(host, user=user, port=port, connect_timeout=CONNECT_TIMEOUT,
                      connect_kwargs=connect_kwargs, config=Config(overrides={"run": {"in_stream": False}}))
    client = conn.client
    if accept_new_host_key:
        for fp in forget_host(known_hosts, name):
            if log:
                log.warn(f"--accept-new-host-key: forgetting the pinned host key {fp} of {name}")
    user_file = Path("~/.ssh/known_hosts").expanduser()
    if use_user_known_hosts and not accept_new_host_key and user_file.is_file():
        try:
            entries = paramiko.HostKeys(str(user_file)).lookup(name) or {}
        except (OSError, paramiko.SSHException, ValueError):
            entries = {}
        for ktype, key in entries.items():
            client.get_host_keys().add(name, ktype, key)
    if known_hosts.exists():
        client.get_host_keys().load(str(known_hosts))
    client.set_missing_host_key_policy(PinOnFirstUse(known_hosts, log))

    @retry(retry=retry_if_exception(_transient), stop=stop_after_attempt(max(1, attempts)),
           wait=wait_exponential_jitter(initial=0.5, max=5), reraise=True)
    def _open() -> None:
        if log:
            log.check(f"SSH connection to {user}@{host}:{port}")
        conn.open()

    try:
        _open()
    except paramiko.BadHostKeyException as e:
        conn.close()
        raise DeployError(
            f"host key of {name} changed: expected {fingerprint(e.expected_key)}, got {fingerprint(e.key)}; "
            "refusing to connect (this can be a man-in-the-middle, or a reinstalled server)",
            "if you reinstalled the server, rerun with --accept-new-host-key to pin the new key",
        ) from None
    except paramiko.AuthenticationException:
        conn.close()
        tried = key_filename or "the default keys and the SSH agent"
        raise DeployError(
            f"SSH authentication failed for {user}@{host}:{port} with {tried}",
            "check SSH_USER and SSH_KEY in the node config, and that the key's public half is in the "
            "server's authorized_keys",
        ) from None
    except Exception as e:
        conn.close()
        if _transient(e) or isinstance(e, OSError | paramiko.SSHException):
            raise DeployError(
                f"cannot connect to {user}@{host}:{port} after {attempts} attempt(s): {e or type(e).__name__}",
                "check SERVER_IP and SSH_PORT, that the server is up and sshd runs, and firewalls",
            ) from None
        raise
    if log:
        log.ok(f"connected to {user}@{host}:{port}")
    return conn
