"""The CHECK -> SKIP | EXEC -> OK primitive every phase is made of.

A step asks the server first (`check`); when the answer is "done" it logs SKIP and the action
never runs. Otherwise it runs the action, re-checks where it can, and logs OK. In plan mode the
check runs for real and the step only says what it would do.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from gonka_tasks.errors import DeployError
from gonka_tasks.session.log import RunLog

CheckResult = bool | tuple[bool, str]


@dataclass
class StepOutcome:
    name: str
    result: str  # "skip" | "done" | "planned"
    detail: str = ""
    phase: str = ""


@dataclass
class Steps:
    """Runs steps against one log, remembering what each did (for summaries and tests)."""

    log: RunLog
    plan: bool = False
    outcomes: list[StepOutcome] = field(default_factory=list)
    on_step: Callable[[str], None] | None = None  # told the name of the step starting (for ConnectionLost)
    phase: str = ""  # the phase the next steps belong to (set by deploy)

    @property
    def changed(self) -> list[str]:
        return [o.name for o in self.outcomes if o.result == "done"]

    @property
    def changed_phases(self) -> list[str]:
        """Phases in which at least one step changed something, in order."""
        return list(dict.fromkeys(o.phase for o in self.outcomes if o.result == "done" and o.phase))

    def run(self, name: str, check: Callable[[], CheckResult], action: Callable[[], object],
            *, recheck: bool = True, refresh: Callable[[], object] | None = None) -> str:
        """CHECK `name`; SKIP when done, else EXEC the action (never in plan mode) and re-check.

        `refresh` is called after the action and before the re-check: it drops facts gathered before
        the action (a phase's batched probe) so the re-check asks the server again.
        """
        if self.on_step:
            self.on_step(name)
        self.log.check(name)
        done, detail = _as_pair(check())
        if done:
            self.log.skip(f"{name}{': ' + detail if detail else ''}")
            self.outcomes.append(StepOutcome(name, "skip", detail, self.phase))
            return "skip"
        if self.plan:
            self.log.info(f"PLAN would run: {name}{' (' + detail + ')' if detail else ''}")
            self.outcomes.append(StepOutcome(name, "planned", detail, self.phase))
            return "planned"
        self.log.exec(name)
        action()
        if refresh:
            refresh()
        if recheck:
            done, detail = _as_pair(check())
            if not done:
                raise DeployError(f"{name}: still not done after running it{': ' + detail if detail else ''}",
                                  "see the log above for the command output")
        self.log.ok(name)
        self.outcomes.append(StepOutcome(name, "done", detail, self.phase))
        return "done"


def _as_pair(value: CheckResult) -> tuple[bool, str]:
    if isinstance(value, tuple):
        return bool(value[0]), str(value[1])
    return bool(value), ""
