"""The test doubles of the deployer's tests: one fake remote and one run factory.

`LocalRemote` stands in for the SSH connection: the deployer's own command text runs in a real local
bash (stub tools on PATH where a test puts them), or is answered from a script of (substring ->
exit code, output) where the server's answer is what the test is about. It keeps every changing
command, and can refuse them. `make_run` builds a real `Run` (real config, log, steps) around it.
"""

from __future__ import annotations

import io
import os
import subprocess
from pathlib import Path

from gonka_tasks.config import load
from gonka_tasks.connectors.remote import Remote, RemoteCommandError, Result
from gonka_tasks.session.log import RunLog
from gonka_tasks.session.run import Run
from gonka_tasks.session.target import Target
from tests.helpers import conf_text, write_node


class LocalRemote:
    """The deployer's commands in a local bash (or answered from `answers`) instead of over SSH.

    `answers`: substring -> (exit code, output); a command matching none runs in bash, unless
    `only_answers`, where it is an error (the test says every command it expects). `changes=False`
    makes any changing command an error; `dry_changes=True` records them as succeeded without running
    them (a scripted server). `env` adds to the shell's environment (a PATH with stubs)."""

    write_file = Remote.write_file

    def __init__(self, answers: dict[str, tuple[int, str]] | None = None, *, only_answers: bool = False,
                 changes: bool = True, dry_changes: bool = False, env: dict[str, str] | None = None,
                 timeout: float = 60) -> None:
        self.answers = answers or {}
        self.only_answers = only_answers
        self.changes = changes
        self.dry_changes = dry_changes
        self.env = {**os.environ, **(env or {})}
        self.timeout = timeout
        self.step = ""
        self.use_sudo = False
        self.probed: list[str] = []
        self.changing: list[str] = []  # what each changing command was for
        self.commands: list[str] = []  # the text of each changing command

    @classmethod
    def scripted(cls, answers: dict[str, tuple[int, str]]) -> LocalRemote:
        """A server whose every answer the test gives; changing commands are recorded, not run."""
        return cls(answers, only_answers=True, dry_changes=True)

    def _answer(self, command: str) -> Result | None:
        for needle, (code, out) in self.answers.items():
            if needle in command:
                return Result(command, code, out, "", 0.0)
        if self.only_answers:
            raise AssertionError(f"unexpected command: {command[:300]}")
        return None

    def _bash(self, command: str, input: str | None) -> Result:
        r = subprocess.run(["bash", "-c", command], input=input, capture_output=True, text=True,
                           timeout=self.timeout, env=self.env)
        return Result(command, r.returncode, r.stdout, r.stderr, 0.0)

    def probe(self, command: str, *, input: str | None = None, **_) -> Result:
        self.probed.append(command)
        return self._answer(command) or self._bash(command, input)

    def probe_many(self, probes: dict[str, str], *, what: str = "") -> dict[str, Result]:
        """Each probe answered from the script where it matches; the rest batched into one real shell
        round trip, as the deployer's Remote batches them."""
        out, rest = {}, {}
        for name, command in probes.items():
            answer = self._answer(command)
            if answer is None:
                rest[name] = command
            else:
                out[name] = answer
        if rest:
            batch = _Batch(self)
            out.update(Remote.probe_many(batch, rest, what=what))
            self.probed.append(batch.command)
        return out

    def run(self, command: str, *, what: str, input: str | None = None, hint: str = "", **_) -> Result:
        if not self.changes:
            raise AssertionError(f"a changing command ran: {what}")
        self.changing.append(what)
        self.commands.append(command)
        if self.dry_changes:
            return Result(command, 0, "", "", 0.0)
        r = self._answer(command) or self._bash(command, input)
        if not r.ok:
            raise RemoteCommandError(what, command, r.exit_code, (r.stdout + r.stderr)[-2000:], hint)
        return r


class _Batch:
    """Remote.probe_many's batch, run straight in bash (no scripted answer matches a whole batch)."""

    def __init__(self, remote: LocalRemote) -> None:
        self.remote, self.command = remote, ""

    def probe(self, command: str, **_) -> Result:
        self.command = command
        return self.remote._bash(command, None)


def make_run(tmp_path: Path, remote: LocalRemote | None = None, *, plan: bool = False, opts: dict | None = None,
             console=None, **conf: str) -> Run:
    """A real Run on a valid node config (conf_text's, with `conf` over it), logging into a string (or
    `console`): `run.out` holds what the console showed, `run.remote` is the fake remote."""
    cfg = load(write_node(tmp_path, conf_text(**conf)), tmp_path)
    out = console if console is not None else io.StringIO()
    run = Run(cfg=cfg, log=RunLog(tmp_path / "run.log", secrets=cfg.secrets, console=out),
              target=Target("198.51.100.7", "root", 22), opts={"plan": plan, **(opts or {})})
    run._remote = remote if remote is not None else LocalRemote()
    run.out = out
    return run
