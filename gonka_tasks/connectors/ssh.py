"""Opening the SSH connection to a node: pinned host key, bounded retries, clear errors.

Host key trust, in order: the user's `~/.ssh/known_hosts` entry for the server when there is one,
else the key pinned in `nodes/<KEY_NAME>/known_hosts`, else (first connection) the key the server
shows, which is then pinned there. A different key is refused, naming both fingerprints, the file
that holds the expected one and `--accept-new-host-key`; that flag pins the key shown now (the
user's own file is never edited: the error says how to clean it). Transient failures (refused,
timeout, reset, no banner) are retried with jittered backoff; an authentication failure is not.
"""

from __future__ import annotations

import base64
import hashlib
import random
import socket
from pathlib import Path
from typing import TYPE_CHECKING

import paramiko
from fabric import Config, Connection
from paramiko.ssh_exception import NoValidConnectionsError
from tenacity import retry, retry_if_exception, stop_after_attempt

from gonka_tasks.connectors.artefacts import write_atomic
from gonka_tasks.errors import DeployError

if TYPE_CHECKING:  # the run log is handed in; connectors never import the session
    from gonka_tasks.session.log import RunLog

CONNECT_TIMEOUT = 10
CONNECT_ATTEMPTS = 4
USER_KNOWN_HOSTS = "~/.ssh/known_hosts"


def fingerprint(key: paramiko.PKey) -> str:
    """OpenSSH-style SHA256 fingerprint of a host key (as `ssh-keygen -l` prints it)."""
    return "SHA256:" + base64.b64encode(hashlib.sha256(key.asbytes()).digest()).decode().rstrip("=")


def host_key_name(host: str, port: int) -> str:
    """The name a host goes by in known_hosts: `host`, or `[host]:port` off port 22."""
    return host if port == 22 else f"[{host}]:{port}"


def known_keys(path: Path, name: str) -> dict[str, paramiko.PKey]:
    """{key type: key} of `name` in a known_hosts file (hashed names included); {} if none or unreadable."""
    if not path.is_file():
        return {}
    try:
        found = paramiko.HostKeys(str(path)).lookup(name)
    except (OSError, UnicodeDecodeError, ValueError, paramiko.SSHException):
        return {}
    return dict(found.items()) if found else {}


def pin_host_key(path: Path, name: str, key: paramiko.PKey) -> list[str]:
    """Make `key` the only pinned key of `name` in `path` (atomic, 0600); returns the fingerprints replaced."""
    keys = paramiko.HostKeys()
    if path.is_file():
        keys.load(str(path))
    old = [fingerprint(k) for k in (keys.lookup(name) or {}).values() if k != key]
    while name in keys:  # one entry per key type
        del keys[name]
    keys.add(name, key.get_name(), key)
    lines = [f"{host} {ktype} {k.get_base64()}\n" for host in keys for ktype, k in keys[host].items()]
    write_atomic(path, "".join(lines), 0o600)
    return old


class PinPresentedKey(paramiko.MissingHostKeyPolicy):
    """Accept the key the server shows and pin it: on first use, or once when the operator asked to re-pin.

    The key accepted becomes the client's expected key too: Fabric reopens a dropped connection by
    itself, and that reconnect must meet the same key, not pin whatever it is shown.
    """

    def __init__(self, path: Path, log: RunLog | None, *, repin: bool):
        self.path = path
        self.log = log
        self.repin = repin

    def missing_host_key(self, client, hostname, key):
        if not self.repin:
            # pinned meanwhile (another run of this node): that pin decides, not this policy
            pinned = known_keys(self.path, hostname)
            if pinned and pinned.get(key.get_name()) != key:
                raise paramiko.BadHostKeyException(hostname, key, pinned.get(key.get_name()) or
                                                   next(iter(pinned.values())))
        replaced = pin_host_key(self.path, hostname, key)
        client.get_host_keys().add(hostname, key.get_name(), key)
        repin, self.repin = self.repin, False
        if not self.log:
            return
        shown = f"{key.get_name()} {fingerprint(key)}"
        if replaced:
            self.log.warn(f"--accept-new-host-key: host key of {hostname} {', '.join(replaced)} replaced by {shown} "
                          f"in {self.path}")
        elif repin:
            self.log.info(f"--accept-new-host-key: pinned host key {shown} of {hostname} in {self.path}")
        else:
            self.log.info(f"first connection to {hostname}: pinned host key {shown} in {self.path}")


def _transient(e: BaseException) -> bool:
    """Worth another attempt: the network or sshd was not ready, not a refusal of who we are."""
    if isinstance(e, paramiko.AuthenticationException | paramiko.BadHostKeyException):
        return False
    if isinstance(e, NoValidConnectionsError | socket.timeout | TimeoutError | ConnectionError | EOFError):
        return True
    # sshd busy (MaxStartups) or killed during the handshake
    text = str(e).lower()
    return isinstance(e, paramiko.SSHException) and any(
        s in text for s in ("banner", "connection reset", "closed by remote", "eof during negotiation"))


def _reason(e: BaseException) -> str:
    if isinstance(e, NoValidConnectionsError):  # one OSError per address tried: refused, unreachable...
        first = next(iter(e.errors.values()), None)
        return (getattr(first, "strerror", None) or str(first or "connection refused")).lower()
    if isinstance(e, socket.timeout | TimeoutError):
        return "timed out"
    return str(e) or type(e).__name__


def _fabric_config(config) -> Config:
    """The task's Fabric config (fabric.yaml, FABRIC_* env, -i, -S, --prompt-for-passphrase), or
    Fabric's defaults; commands never read our stdin (a prompt must not steal the terminal)."""
    cfg = config.clone(into=Config) if config is not None else Config()
    cfg.run.in_stream = False
    return cfg


def hops(conn: Connection) -> list[Connection]:
    """The ProxyJump gateways of a connection, the one nearest to us first."""
    out = []
    gw = conn.gateway
    while isinstance(gw, Connection):
        out.insert(0, gw)
        gw = gw.gateway
    return out


def _trust(conn: Connection, known_hosts: Path, log: RunLog | None, accept_new: bool,
           use_user_known_hosts: bool) -> tuple[str, Path, dict]:
    """Install the expected host keys of one hop (target or gateway) and the pinning policy."""
    name = host_key_name(conn.host, conn.port)
    user_file = Path(USER_KNOWN_HOSTS).expanduser()
    user_keys = known_keys(user_file, name) if use_user_known_hosts else {}
    pinned = known_keys(known_hosts, name)
    # The expected keys and where they come from; none (first use, or re-pin) = pin what is shown.
    source, expected = (user_file, user_keys) if user_keys else (known_hosts, pinned)
    if accept_new:
        source, expected = known_hosts, {}
    for ktype, key in expected.items():
        conn.client.get_host_keys().add(name, ktype, key)
    conn.client.set_missing_host_key_policy(PinPresentedKey(known_hosts, log, repin=accept_new))
    return name, source, user_keys


def connect(host: str, *, user: str, port: int, known_hosts: Path, key_filename: str = "",
            log: RunLog | None = None, accept_new_host_key: bool = False,
            attempts: int = CONNECT_ATTEMPTS, use_user_known_hosts: bool = True,
            wait_initial: float = 0.5, wait_max: float = 5, config=None) -> Connection:
    """Open a Fabric Connection with the host key pinned; raise DeployError with the fix on failure.

    `host` may be a ~/.ssh/config alias: its HostName, ProxyJump and IdentityFile apply (Fabric
    reads them), and every jump host's key is pinned like the server's own.
    """
    key_path = str(Path(key_filename).expanduser()) if key_filename else ""
    if key_path and not Path(key_path).is_file():
        raise DeployError(f"SSH key {key_path} not found", "set SSH_KEY in the node config to your private key file")
    fab_config = _fabric_config(config)
    # Fabric takes the constructor's connect_kwargs instead of the config's: merge them (-i keys,
    # --prompt-for-passphrase's passphrase), then ours
    connect_kwargs: dict = {**fab_config.connect_kwargs, "banner_timeout": 15, "auth_timeout": 20}
    if key_path:
        connect_kwargs.update(key_filename=key_path, look_for_keys=False, allow_agent=False)
    conn = Connection(host, user=user, port=port, connect_timeout=CONNECT_TIMEOUT,
                      connect_kwargs=connect_kwargs, config=fab_config)
    client = conn.client
    user_file = Path(USER_KNOWN_HOSTS).expanduser()
    sources = {}
    for hop in [*hops(conn), conn]:
        if key_path and hop is not conn:  # SSH_KEY may open the jump hosts too, besides their own keys
            keys = hop.connect_kwargs.get("key_filename") or []
            hop.connect_kwargs["key_filename"] = [*([keys] if isinstance(keys, str) else keys), key_path]
        hop_name, hop_source, hop_user_keys = _trust(hop, known_hosts, log, accept_new_host_key, use_user_known_hosts)
        sources[hop_name] = hop_source
    name = host_key_name(conn.host, conn.port)
    user_keys = hop_user_keys
    host, port = conn.host, conn.port
    jump = " via " + ", ".join(f"{g.user}@{g.host}:{g.port}" for g in hops(conn)) if hops(conn) else ""

    def before_sleep(state) -> None:
        if log:
            e = state.outcome.exception()
            log.warn(f"SSH connection to {host}:{port} failed ({_reason(e)}); attempt {state.attempt_number} of "
                     f"{attempts}, retrying in {state.next_action.sleep:.1f} s")

    def backoff(state) -> float:
        """Exponential, jittered: uniform in [b/2, b], b = wait_initial * 2^(n-1), capped at wait_max."""
        b = min(wait_max, wait_initial * 2 ** (state.attempt_number - 1))
        return random.uniform(b / 2, b)

    tries = 0

    @retry(retry=retry_if_exception(_transient), stop=stop_after_attempt(max(1, attempts)), wait=backoff,
           before_sleep=before_sleep, reraise=True)
    def _open() -> None:
        nonlocal tries
        tries += 1
        if log:
            log.check(f"SSH connection to {user}@{host}:{port}{jump}")
        try:
            conn.open()
        except paramiko.SSHException as e:
            transport = client.get_transport()
            in_auth = bool(transport and transport.is_active() and not transport.is_authenticated())
            conn.close()  # a fresh transport for the next attempt
            if in_auth and not isinstance(e, paramiko.BadHostKeyException | paramiko.AuthenticationException):
                # paramiko re-raises its last key-file parse error rather than the refusal (RSA/ECDSA keys)
                raise paramiko.AuthenticationException(str(e)) from e
            raise
        except BaseException:
            conn.close()
            raise

    try:
        _open()
    except paramiko.BadHostKeyException as e:
        # the server's key, or a jump host's (the exception names the host it was checking)
        bad = e.hostname if e.hostname in sources else name
        raise _changed_key(bad, e, sources[bad], user_file) from None
    except paramiko.AuthenticationException as e:
        tried = key_path or "the SSH agent and the default keys in ~/.ssh"
        why = " (the key is encrypted: load it into ssh-agent and leave SSH_KEY empty)" if isinstance(
            e, paramiko.PasswordRequiredException) else ""
        raise DeployError(
            f"SSH authentication failed for {user}@{host}:{port} with {tried}{why}; not retried",
            "check SSH_USER and SSH_KEY in the node config, and that the key's public half is in the "
            f"server's ~{user}/.ssh/authorized_keys",
        ) from None
    except Exception as e:
        if _transient(e) or isinstance(e, OSError | paramiko.SSHException):
            raise DeployError(
                f"cannot connect to {host}:{port} as {user} after {tries} attempt(s): {_reason(e)}",
                "check SERVER_IP and SSH_PORT in the node config, that the server is up and sshd listens on "
                "that port, and that no firewall blocks it",
            ) from None
        raise
    if accept_new_host_key and user_keys:
        shown = client.get_transport().get_remote_server_key()
        if user_keys.get(shown.get_name()) != shown and log:
            log.warn(f"{user_file} still holds another host key for {name}; it is trusted first, so the next run "
                     f"will refuse the server: remove it with `ssh-keygen -R '{name}'`")
    if log:
        log.ok(f"connected to {user}@{host}:{port}{jump}")
    return conn


def _changed_key(name: str, e: paramiko.BadHostKeyException, source: Path, user_file: Path) -> DeployError:
    """The refusal of a changed host key: both fingerprints, where the expected one is from, how to re-pin."""
    message = (f"host key of {name} changed: expected {e.expected_key.get_name()} {fingerprint(e.expected_key)} "
               f"(from {source}), the server shows {e.key.get_name()} {fingerprint(e.key)}; refusing to connect "
               "(this can be a man-in-the-middle attack, or a reinstalled server)")
    hint = "if you reinstalled the server, rerun with --accept-new-host-key to pin the key it shows now"
    if source == user_file:
        hint = (f"if you reinstalled the server, remove the old key from {user_file} with `ssh-keygen -R '{name}'`, "
                "then rerun with --accept-new-host-key to pin the key it shows now")
    return DeployError(message, hint)
