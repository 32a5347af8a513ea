"""Error types of the deployer.

Every failure the operator can act on is a `DeployError`: the task wrapper logs it as one ERROR
line (plus its hint) and exits 1 without a traceback. Anything else is a bug in the deployer.
"""

from __future__ import annotations


class DeployError(Exception):
    """An expected failure: stops the run with exit 1 and a message that says what to do."""

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message}\n  fix: {self.hint}"


class MissingPrerequisite(DeployError):
    """A phase needs what an earlier phase makes (a mounted disk, config.env). In plan mode this is
    where the plan ends; every other DeployError is a refusal the real run would meet too."""


class ConfigError(DeployError):
    """The node config is invalid; `problems` holds one line per problem, all reported at once."""

    def __init__(self, problems: list[str], source: str = "node config"):
        self.problems = list(problems)
        self.source = source
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"{source}: {len(self.problems)} problem(s):\n{lines}")

    def __str__(self) -> str:
        return self.message


class RemoteCommandError(DeployError):
    """A remote command failed: names the step, the command, its exit code and its output tail."""

    def __init__(self, what: str, command: str, exit_code: int | None, tail: str, hint: str | None = None):
        self.what = what
        self.command = command
        self.exit_code = exit_code
        self.tail = tail
        rc = "timed out" if exit_code is None else f"exit code {exit_code}"
        msg = f"{what} failed ({rc})\n  command: {command}"
        if tail.strip():
            msg += "\n  output:\n" + "\n".join(f"    {line}" for line in tail.rstrip().splitlines())
        super().__init__(msg, hint)


class ConnectionLost(DeployError):
    """The SSH connection dropped in the middle of a step; a rerun continues where it stopped."""

    def __init__(self, step: str, reason: str = ""):
        detail = f" ({reason})" if reason else ""
        super().__init__(f"connection lost during {step}{detail}; rerun to continue")
        self.step = step
