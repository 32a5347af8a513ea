"""The tree's rule, read from the imports: read (facts) -> decide (core) -> act (phases, operations,
through connectors), driven by the CLI through a session, on top of the config.

- Each folder of the deployer has a floor; a module imports only from its own floor or below.
- The pure folders (config, facts, core) import nothing that reaches a server or a terminal.
- The simulated world never imports the deployer; the server scripts import nothing of it either.
- No import cycle among modules, call-time imports included, in either package.
Imports under `if TYPE_CHECKING:` are type hints only and do not count.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DEPLOYER, WORLD = "gonka_tasks", "gonka_sim"

# the deployer's folders, bottom up (the package's own errors.py and __init__ at the floor)
FLOORS = ["errors", "config", "facts", "core", "connectors", "session", "phases", "operations", "cli", "tasks"]
PURE = ("config", "facts", "core")
IMPURE = ("gonka_tasks.session", "gonka_tasks.connectors", "fabric", "invoke", "paramiko", "subprocess")


def sources(package: str) -> dict[str, str]:
    """module name -> source text of every module of a package."""
    out = {}
    for path in sorted((ROOT / package).rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path.read_text()
    return out


def _type_checking_only(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or \
        (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def imports_of(module: str, source: str, known: set[str], is_package: bool = False) -> set[str]:
    """Every module `module` imports (absolute names), at the top or inside functions."""
    tree = ast.parse(source)
    skip = {id(n) for top in ast.walk(tree) if isinstance(top, ast.If) and _type_checking_only(top)
            for n in ast.walk(top)}
    package = module if is_package else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            named = {f"{target}.{alias.name}" for alias in node.names}
            submodules = named & known  # `from pkg import module` names a module
            found |= submodules
            if submodules != named:  # some names are the package's own
                found.add(target)
    return found


def graph(modules: dict[str, str]) -> dict[str, set[str]]:
    known = set(modules)
    packages = {m for m in known if any(k.startswith(m + ".") for k in known)}
    return {m: imports_of(m, src, known, m in packages) for m, src in modules.items()}


def floor(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] != DEPLOYER:
        return None
    if len(parts) == 1:
        return "errors"  # the package init
    return parts[1]


def violations(modules: dict[str, str]) -> list[str]:
    """Every import that breaks the rule, as `importer -> imported: why`."""
    out = []
    for module, imported in graph(modules).items():
        here = floor(module)
        for target in sorted(imported):
            if module.startswith(WORLD) and target.split(".")[0] == DEPLOYER:
                out.append(f"{module} -> {target}: the simulated world never imports the deployer")
                continue
            if here is None:
                continue
            if here == "server_scripts":
                if target.split(".")[0] == DEPLOYER:
                    out.append(f"{module} -> {target}: server scripts run on the server, alone")
                continue
            if here in PURE and any(target == b or target.startswith(b + ".") for b in IMPURE):
                out.append(f"{module} -> {target}: {here}/ is pure")
            there = floor(target)
            if there in FLOORS and here in FLOORS and FLOORS.index(there) > FLOORS.index(here):
                out.append(f"{module} -> {target}: {here}/ imports upward ({there}/ is above it)")
    return out


def cycles(modules: dict[str, str]) -> list[list[str]]:
    """Import cycles among the given modules (Tarjan's strongly connected components, size > 1)."""
    edges = {m: {t for t in deps if t in modules and t != m} for m, deps in graph(modules).items()}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def test_the_deployer_keeps_its_floors():
    assert violations(sources(DEPLOYER)) == []


def test_the_simulated_world_never_imports_the_deployer():
    assert violations(sources(WORLD)) == []


@pytest.mark.parametrize("package", [DEPLOYER, WORLD])
def test_no_import_cycle(package):
    assert cycles(sources(package)) == []


def test_the_top_folder_holds_only_the_init_errors_and_the_tasks_shim():
    top = sorted(p.name for p in (ROOT / DEPLOYER).glob("*.py"))
    assert top == ["__init__.py", "errors.py", "tasks.py"]
    folders = sorted(p.name for p in (ROOT / DEPLOYER).iterdir() if p.is_dir() and p.name != "__pycache__")
    assert set(folders) == set(FLOORS[1:-1]) | {"server_scripts"}, folders
    for folder in (ROOT / DEPLOYER).iterdir():
        if folder.is_dir():
            assert len(list(folder.glob("*.py"))) <= 16, folder.name


# ----------------------------------------------------------------------- the rule's own negative cases
def test_a_pure_module_that_imports_the_session_is_caught():
    modules = sources(DEPLOYER)
    modules["gonka_tasks.core.render"] += "\nfrom gonka_tasks.session.log import RunLog\n"
    found = violations(modules)
    assert "gonka_tasks.core.render -> gonka_tasks.session.log: core/ is pure" in found
    assert "gonka_tasks.core.render -> gonka_tasks.session.log: core/ imports upward (session/ is above it)" in found


def test_a_call_time_import_upward_and_a_cycle_are_caught():
    modules = sources(DEPLOYER)
    modules["gonka_tasks.phases.common"] += "\ndef f():\n    from gonka_tasks.cli import runner\n"
    modules["gonka_tasks.facts.base"] += "\nfrom gonka_tasks.facts import keys\n"
    assert "gonka_tasks.phases.common -> gonka_tasks.cli.runner: phases/ imports upward (cli/ is above it)" \
        in violations(modules)
    assert ["gonka_tasks.facts.base", "gonka_tasks.facts.keys"] in cycles(modules)


def test_type_hints_under_type_checking_do_not_count_and_the_world_is_watched():
    modules = {"gonka_tasks.connectors.remote": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
                                                "    from gonka_tasks.session.log import RunLog\n",
               "gonka_sim.server.x": "from gonka_tasks import facts\n"}
    assert violations(modules) == ["gonka_sim.server.x -> gonka_tasks: the simulated world never imports the deployer"]
