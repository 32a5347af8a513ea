"""docs/fidelity.md against the code: the simulated gonka releases match the compose record it keeps
(service set, images, published and exposed ports, profiles, per release tag), and every command
family and endpoint the deployer uses has a row in its table of what the deployer relies on.

A new `docker compose <sub>`, `docker <sub>`, `inferenced <sub>`, or seed/admin/ML URL path in
gonka_tasks/ without a row in docs/fidelity.md fails `test_every_command_and_endpoint_has_a_row`.
"""

from __future__ import annotations

import ast
import re
import subprocess
from pathlib import Path

import pytest
import yaml

from gonka_sim.network import repos

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "fidelity.md"
RECORD_HEADING = re.compile(r"^### Compose record: `(?P<file>[^`]+)` at `(?P<tag>[^`]+)`\s*$")


# ------------------------------------------------------------------------- the compose record

def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def _codes(cell: str) -> list[str]:
    """The `code` spans of a table cell, in order (an empty cell: none)."""
    return re.findall(r"`([^`]*)`", cell)


def compose_record(text: str) -> dict[tuple[str, str], dict[str, dict]]:
    """{(file, tag): {service: {image, ports, expose, profiles}}} from the doc's record tables."""
    records: dict[tuple[str, str], dict[str, dict]] = {}
    current = None
    for line in text.splitlines():
        m = RECORD_HEADING.match(line)
        if m:
            current = records.setdefault((m.group("file"), m.group("tag")), {})
            continue
        if current is None:
            continue
        if line.startswith("#"):
            current = None
            continue
        if not line.startswith("|") or set(line) <= set("|-: "):
            continue
        cells = _cells(line)
        if cells[0] == "service":
            continue
        assert len(cells) == 5, f"compose record row needs 5 cells (service|image|ports|expose|profiles): {line}"
        name = _codes(cells[0])[0]
        current[name] = {"image": _codes(cells[1])[0], "ports": _codes(cells[2]), "expose": _codes(cells[3]),
                         "profiles": _codes(cells[4])}
    return records


def simulated(compose_text: str) -> dict[str, dict]:
    doc = yaml.safe_load(compose_text)
    out = {}
    for name, svc in (doc.get("services") or {}).items():
        out[name] = {"image": str(svc.get("image", "")), "ports": [str(p) for p in svc.get("ports") or []],
                     "expose": [str(p) for p in svc.get("expose") or []],
                     "profiles": [str(p) for p in svc.get("profiles") or []]}
    return out


@pytest.fixture(scope="module")
def gonka_repo(tmp_path_factory):
    return repos.build_repos(tmp_path_factory.mktemp("fidelity-repos"))["gonka"]


def test_the_record_covers_both_releases_and_every_compose_file():
    rec = compose_record(DOC.read_text())
    assert set(rec) >= {("deploy/join/docker-compose.yml", "v0.2.12"), ("deploy/join/docker-compose.yml", "v0.2.13"),
                        ("deploy/join/docker-compose.mlnode.yml", "v0.2.12"),
                        ("deploy/join/docker-compose.mlnode.yml", "v0.2.13")}, sorted(rec)
    assert all(rec.values()), "an empty compose record table"


def test_simulated_releases_match_the_compose_record(gonka_repo):
    rec = compose_record(DOC.read_text())
    for (path, tag), services in sorted(rec.items()):
        assert tag in gonka_repo["refs"], f"the record names {tag}, which the simulated gonka repo lacks"
        text = subprocess.run(["git", "--git-dir", str(gonka_repo["path"]), "show", f"{tag}:{path}"],
                              capture_output=True, text=True, check=True, timeout=30).stdout
        assert simulated(text) == services, f"{path} at {tag} differs from docs/fidelity.md's record"


def test_the_default_ref_is_a_recorded_release(gonka_repo):
    from gonka_tasks.config.confkeys import DEFAULTS  # noqa: PLC0415

    ref = DEFAULTS["GONKA_REF"]
    rec = compose_record(DOC.read_text())
    tags = {tag for _path, tag in rec}
    assert ref in tags or gonka_repo["refs"].get(ref) in {gonka_repo["refs"][t] for t in tags}


def test_record_parser_reads_a_table():
    text = ("### Compose record: `a.yml` at `v1`\n\n| service | image | ports | expose | profiles |\n|---|---|---|---|---|\n"
            "| `x` | `img:1` | `1:2`, `127.0.0.1:3:3` | | `ssl` |\n\n## next\n| `y` | `no` | | | |\n")
    assert compose_record(text) == {("a.yml", "v1"): {"x": {"image": "img:1", "ports": ["1:2", "127.0.0.1:3:3"],
                                                           "expose": [], "profiles": ["ssl"]}}}


# ------------------------------------------------------------- commands and endpoints of the deployer

COMPOSE_CALLS = {"compose"}


def _strings(tree: ast.AST) -> list[str]:
    """Every string literal of a module (f-strings with `{}` for their fields), docstrings left out."""
    docstrings = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str):
                docstrings.add(id(first.value))
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.JoinedStr):
            out.append("".join(v.value if isinstance(v, ast.Constant) else "{}" for v in node.values))
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
            out.append(node.value)
    return out


def deployer_uses() -> dict[str, set[str]]:
    """Command families and endpoint paths in gonka_tasks' string literals -> the files using them."""
    uses: dict[str, set[str]] = {}

    def add(token: str, rel: str) -> None:
        uses.setdefault(token, set()).add(rel)

    for f in sorted((ROOT / "gonka_tasks").rglob("*.py")):
        rel = f.relative_to(ROOT).as_posix()
        tree = ast.parse(f.read_text())
        for node in ast.walk(tree):  # compose(run, "<sub> ...") builds `docker compose -f ... <sub>`
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) in COMPOSE_CALLS and len(node.args) > 1:
                arg = node.args[1]
                first = arg.values[0] if isinstance(arg, ast.JoinedStr) and arg.values else arg
                if isinstance(first, ast.Constant) and isinstance(first.value, str) and first.value.split():
                    add(f"docker compose {first.value.split()[0]}", rel)
        for s in _strings(tree):
            for m in re.finditer(r"\bdocker compose (?!-f\b)([a-z][a-z-]*)", s):
                add(f"docker compose {m.group(1)}", rel)
            for m in re.finditer(r"\bdocker (exec|inspect|ps|info|version|manifest|image|run|pull)\b", s):
                add(f"docker {m.group(1)}", rel)
            for m in re.finditer(r"\binferenced ((?:tx|query) [a-z]+ [a-z-]+|keys [a-z]+|[a-z][a-z-]+)", s):
                add(f"inferenced {m.group(1)}", rel)
            for m in re.finditer(r"(/(?:v1|v2|admin/v1|api/v1|chain-rpc|chain-api)/[A-Za-z0-9_\-./]*)", s):
                add(m.group(1).rstrip("/.") or m.group(1), rel)
            for m in re.finditer(r"(?<![\w/])(/health|/healthz|/readyz|/status)\b", s):
                add(m.group(1), rel)
    return uses


def table_whats(text: str) -> set[str]:
    """The `code` spans of the first column of every table of the doc."""
    whats = set()
    for line in text.splitlines():
        if line.startswith("|") and not set(line) <= set("|-: "):
            whats.update(_codes(_cells(line)[0]))
    return whats


def test_every_command_and_endpoint_has_a_row():
    whats = table_whats(DOC.read_text())
    missing = {t: sorted(files) for t, files in deployer_uses().items()
               if not any(t == w or w.startswith(t + " ") or w.startswith(t + "/") for w in whats)}
    assert not missing, ("commands/endpoints used by gonka_tasks without a row in docs/fidelity.md "
                         f"(add one: what | upstream source | the deployer's use | simulation): {missing}")


def test_the_scan_finds_what_the_deployer_is_known_to_use():
    uses = deployer_uses()
    for token in ("docker compose up", "docker compose run", "docker compose ps", "docker compose exec",
                  "inferenced keys show", "inferenced keys add", "inferenced register-new-participant",
                  "/v1/governance/models", "/admin/v1/nodes", "/chain-rpc/status"):
        assert token in uses, (token, sorted(uses))
