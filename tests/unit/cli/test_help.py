"""The `fab` surface, checked like code: every task's options as `fab --help <task>` shows them.

- Options that destroy data or trust a key (--wipe-disk, --accept-lost-mnemonic,
  --accept-new-host-key) have long names only: no mistyped one-letter flag can set them.
- No option is listed as `--,` (Invoke's short flag made from an underscore).
- Every option has help, and shows the value it takes: `--x=STRING`/`--x=INT`, a boolean switch, or
  for a repeatable option (which Invoke lists bare) a help text that starts with its VALUE.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from invoke.parser import ParserContext

from gonka_tasks.cli import build_namespace
from gonka_tasks.cli.options import DANGEROUS

ROOT = Path(__file__).resolve().parents[3]
NS = build_namespace()


def help_rows(task_name: str) -> list[tuple[str, str, type]]:
    """(flag spec, help, kind) of each option, as `fab --help` prints them."""
    arguments = NS[task_name].get_arguments()
    args = {n.replace("-", "_"): a for a in arguments for n in a.names}
    ctx = ParserContext(name=task_name, args=arguments)
    rows = []
    for spec, text in ctx.help_tuples():
        long = next(n for n in re.split(r",\s*", spec) if n.startswith("--") and len(n) > 2)
        name = long[2:].split("=")[0].removeprefix("[no-]").replace("-", "_")
        rows.append((spec, text or "", args[name].kind))
    return rows


@pytest.mark.parametrize("task_name", sorted(NS.task_names))
def test_every_option_names_its_value_and_no_dangerous_one_has_a_short_form(task_name):
    for spec, text, kind in help_rows(task_name):
        names = re.split(r",\s*", spec)
        assert "--" not in names, f"{task_name}: {spec!r} lists a bare --"
        assert text.strip(), f"{task_name}: {spec} has no help"
        long = names[-1].split("=")[0].removeprefix("--").replace("-", "_")
        if long in DANGEROUS:
            assert len(names) == 1 and names[0].startswith("--"), f"{task_name}: {spec} has a short form"
        if kind in (str, int):
            assert "=" in spec, f"{task_name}: {spec} shows no value"
        elif kind is list:
            assert re.match(r"[A-Z]+: ", text), f"{task_name}: repeatable {spec}: help must start with its VALUE"


@pytest.mark.parametrize("task_name", sorted(set(NS.task_names) - {"demo"}))
def test_node_tasks_have_no_one_letter_flags_at_all(task_name):
    """A short flag would be made from a first letter and move when an option is added."""
    shorts = [spec for spec, _, _ in help_rows(task_name) if re.match(r"-\w\b", spec)]
    assert shorts == [], f"{task_name}: {shorts}"


def test_fab_help_deploy_as_printed():
    r = subprocess.run([str(Path(sys.executable).parent / "fab"), "-r", str(ROOT), "--help", "deploy"],
                       capture_output=True, text=True, timeout=60, env={"COLUMNS": "200", "PATH": "/usr/bin:/bin"})
    assert r.returncode == 0, r.stderr
    options = r.stdout.split("Options:", 1)[1]
    for flag in ("--wipe-disk", "--accept-lost-mnemonic", "--accept-new-host-key", "--install-prereqs"):
        line = next(ln for ln in options.splitlines() if flag in ln)
        assert line.split()[0] == flag, line
    assert "--," not in options and not re.search(r"^\s+-\w[ ,]", options, re.M), options
    assert "--node " in options and "PATH:" in options
