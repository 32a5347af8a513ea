"""A check's verdict, as the preflight and `verify` report it: PASS, WARN or FAIL, a one-line detail,
and for the preflight the fix. Pure data and the two views every report needs (the log level of a
verdict, the counts)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

RESULTS = ("PASS", "WARN", "FAIL")
# the run log's level for each verdict
LOG_LEVEL = {"PASS": "OK", "WARN": "WARN", "FAIL": "ERROR"}


@dataclass(frozen=True)
class Check:
    name: str
    result: str  # PASS | WARN | FAIL
    detail: str
    fix: str = ""


def counts(checks: Iterable[Check]) -> dict[str, int]:
    """{PASS: n, WARN: n, FAIL: n}."""
    checks = list(checks)
    return {k: sum(1 for c in checks if c.result == k) for k in RESULTS}
