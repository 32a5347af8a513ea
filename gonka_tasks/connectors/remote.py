"""Remote: one wrapper over a Fabric Connection, used by every phase.

- `probe()` runs a read-only command (logged CHECK), `run()` a changing one (logged EXEC); plan
  mode refuses `run()` so a plan can never change the server.
- Secrets travel only over stdin (`input=`), never in a command line or `env=`.
- Files are written atomically (temp file + fsync + rename) with the mode asked for.
- Every command goes to `commands`, the deployer's own command log (counted by the benchmark).
- A dropped connection becomes `ConnectionLost`, a failed command `RemoteCommandError`.
"""

from __future__ import annotations

import base64
import io
import shlex
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from invoke.exceptions import CommandTimedOut, UnexpectedExit

from gonka_tasks.errors import ConnectionLost, DeployError, RemoteCommandError

if TYPE_CHECKING:  # the run log is handed in; connectors never import the session
    from gonka_tasks.session.log import RunLog

DEFAULT_TIMEOUT = 120
TAIL_LINES = 20


class _ChunkedInput(io.StringIO):
    """Invoke reads non-terminal stdin one byte per 10 ms; hand it large chunks instead."""

    def read(self, size: int | None = -1) -> str:  # noqa: ARG002 - size is invoke's guess, ignored on purpose
        return super().read(65536)


@dataclass
class Result:
    """What a remote command gave back."""

    command: str
    exit_code: int
    stdout: str
    stderr: str
    seconds: float

    @property
    def ok(self) -> bool:
        return self.exit_code == 0

    @property
    def out(self) -> str:
        return self.stdout.strip()


@dataclass
class CommandRecord:
    kind: str  # "probe" or "run"
    what: str
    command: str
    exit_code: int | None
    seconds: float
    step: str = ""  # the step (or phase) it served


@dataclass
class Remote:
    """Run commands on one server through a Fabric Connection, logged and redacted."""

    conn: object
    log: RunLog
    plan: bool = False
    timeout: int = DEFAULT_TIMEOUT
    use_sudo: bool = False
    commands: list[CommandRecord] = field(default_factory=list)
    step: str = "connect"  # the step in progress, named when the connection drops
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    # ------------------------------------------------------------------ commands
    def probe(self, command: str, *, what: str = "", input: str | None = None,
              timeout: int | None = None, quiet: bool = True, log_output: bool = True) -> Result:
        """Run a read-only command; its exit code is data, not failure.

        `log_output=False` keeps output that may hold an unregistered secret (a new mnemonic) out of
        the log; the caller registers the secret, then logs it.
        """
        if what:
            self.log.check(what)
        return self._exec("probe", command, what or command, input, timeout, show_output=not quiet,
                          log_output=log_output)

    def run(self, command: str, *, what: str, input: str | None = None, timeout: int | None = None,
            ok_codes: tuple[int, ...] = (0,), hint: str | None = None, show_output: bool = True) -> Result:
        """Run a command that changes the server; raise RemoteCommandError unless its code is in ok_codes."""
        if self.plan:
            raise DeployError(f"plan mode: refused to run a changing command ({what})")
        self.log.exec(what)
        res = self._exec("run", command, what, input, timeout, show_output=show_output)
        if res.exit_code not in ok_codes:
            tail = "\n".join((res.stdout + res.stderr).strip().splitlines()[-TAIL_LINES:])
            raise RemoteCommandError(what, self.log.redact(command), res.exit_code, self.log.redact(tail), hint)
        return res

    def _exec(self, kind: str, command: str, what: str, input: str | None, timeout: int | None,
              show_output: bool, log_output: bool = True) -> Result:
        full = f"sudo -n bash -c {shlex.quote(command)}" if self.use_sudo else command
        if self.commands and not self.is_connected():
            # Fabric would silently reconnect: a drop between two commands must not pass unnoticed
            raise ConnectionLost(self.step, "the SSH connection dropped")
        self.log.event("OUTPUT", f"$ {command}", console=False)
        t0 = time.monotonic()
        try:
            r = self.conn.run(
                full, hide=True, warn=True, timeout=timeout or self.timeout, pty=False,
                in_stream=_ChunkedInput(input) if input is not None else False,
            )
            code, out, err = r.exited, r.stdout, r.stderr
        except CommandTimedOut as e:
            self._record(kind, what, command, None, t0)
            raise RemoteCommandError(what, self.log.redact(command), None,
                                     self.log.redact((e.result.stdout or "")[-2000:]),
                                     "the server is slow or the command hangs; rerun to continue") from None
        except UnexpectedExit as e:  # only with warn=False; kept for safety
            code, out, err = e.result.exited, e.result.stdout, e.result.stderr
        except (TimeoutError, OSError, EOFError) as e:
            self._record(kind, what, command, None, t0)
            raise ConnectionLost(self.step, type(e).__name__) from None
        except Exception as e:  # paramiko.SSHException and friends: the transport is gone
            if type(e).__module__.startswith("paramiko"):
                self._record(kind, what, command, None, t0)
                raise ConnectionLost(self.step, str(e) or type(e).__name__) from None
            raise
        if code == -1 and not self.is_connected():
            self._record(kind, what, command, None, t0)
            raise ConnectionLost(self.step, "the session ended without an exit status")
        self._record(kind, what, command, code, t0)
        text = (out + (err if err.strip() else "")).rstrip()
        if text and log_output:
            self.log.output(text, console=show_output and kind == "run")
        return Result(command, code, out, err, time.monotonic() - t0)

    def _record(self, kind: str, what: str, command: str, code: int | None, t0: float) -> None:
        with self._lock:
            self.commands.append(CommandRecord(kind, what, self.log.redact(command), code, time.monotonic() - t0,
                                               self.step))

    def is_connected(self) -> bool:
        transport = getattr(getattr(self.conn, "client", None), "get_transport", lambda: None)()
        return bool(transport and transport.is_active())

    # --------------------------------------------------------------------- files
    def write_file(self, path: str, content: str | bytes, *, mode: int = 0o644, what: str) -> Result:
        """Write a file atomically over stdin (never a command line): temp, fsync, chmod, rename."""
        data = content.encode() if isinstance(content, str) else content
        q = shlex.quote(path)
        # the size check catches an input cut short by a dropped connection (base64 -d may accept it)
        script = (
            "set -e; umask 077; "
            f"d=$(dirname {q}); mkdir -p \"$d\"; "
            f"tmp=$(mktemp \"$d/.$(basename {q}).XXXXXX.tmp\"); "
            "trap 'rm -f \"$tmp\"' EXIT; "
            "base64 -d > \"$tmp\"; "
            f"[ \"$(stat -c %s \"$tmp\")\" = {len(data)} ] || {{ echo 'upload cut short' >&2; exit 65; }}; "
            "sync \"$tmp\" 2>/dev/null || sync; "
            f"chmod {mode:o} \"$tmp\"; mv -f \"$tmp\" {q}; trap - EXIT"
        )
        return self.run(script, what=what, input=base64.b64encode(data).decode() + "\n", show_output=False)

    # ------------------------------------------------------------------- batching
    def probe_many(self, probes: dict[str, str], *, what: str = "") -> dict[str, Result]:
        """Run several read-only probes in ONE round trip; each gets its own exit code and stdout.

        stderr is dropped so that a missing file reads as empty output; a probe that wants its
        errors says `2>&1` itself.
        """
        marker = f"__GD_{int(time.time() * 1000)}__"
        parts = []
        for name, cmd in probes.items():
            parts.append(
                f"printf '%s\\n' {shlex.quote(marker + ' BEGIN ' + name)}; "
                f"( {cmd} ) 2>/dev/null; "
                f"printf '\\n%s %s\\n' {shlex.quote(marker + ' END ' + name)} \"$?\""
            )
        r = self.probe("\n".join(parts), what=what)
        return split_batched(r.stdout, marker, probes, r.seconds)


def split_batched(text: str, marker: str, probes: dict[str, str], seconds: float = 0.0) -> dict[str, Result]:
    """Split the output of `probe_many` back into one Result per probe (missing = exit 255)."""
    results: dict[str, Result] = {}
    current: str | None = None
    buf: list[str] = []
    for line in text.splitlines():
        if line.startswith(marker + " BEGIN "):
            current, buf = line[len(marker) + 7:], []
        elif line.startswith(marker + " END ") and current is not None:
            rest = line[len(marker) + 5:]
            name, _, code = rest.rpartition(" ")
            body = "\n".join(buf)
            if body.endswith("\n"):
                body = body[:-1]
            results[name] = Result(probes.get(name, ""), int(code) if code.isdigit() else 255, body, "", seconds)
            current = None
        elif current is not None:
            buf.append(line)
    for name, cmd in probes.items():
        results.setdefault(name, Result(cmd, 255, "", "", seconds))
    return results
