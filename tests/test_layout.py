"""The house's shape (STYLE layout): wings by role, no import cycles, modules readable in one
sitting. A refactor that breaks one of these fails here, not in a reviewer's head."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("states", "flows")
#: A module longer than this is split by role (STYLE: "small enough to read in one sitting").
MAX_LINES = 400
#: The wings of flows/ (issue 7): each a role, none named after a library.
WINGS = {"cli", "mail", "orchestration", "rehearsal", "storage"}


def modules() -> Iterator[tuple[str, Path]]:
    """(dotted name, path) of every module in states/ and flows/."""
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            yield ".".join(parts), path


def imports_of(name: str, path: Path, known: set[str]) -> set[str]:
    """The project modules ``name`` imports, anywhere in it (TYPE_CHECKING blocks included: a
    circle that only the type checker walks is still a circle for the reader)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            targets = [base] + [f"{base}.{alias.name}" for alias in node.names]
        for target in targets:
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


def reachable(graph: dict[str, set[str]], start: str) -> set[str]:
    """Every module ``start`` reaches through one or more imports."""
    seen: set[str] = set()
    todo = list(graph.get(start, ()))
    while todo:
        node = todo.pop()
        if node not in seen:
            seen.add(node)
            todo.extend(graph.get(node, ()))
    return seen


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Groups of two or more modules that reach each other, sorted for a stable message."""
    reach = {node: reachable(graph, node) for node in graph}
    groups = {tuple(sorted({node} | {o for o in reach[node] if node in reach.get(o, ())}))
              for node in graph if node in reach[node]}
    return sorted(list(group) for group in groups if len(group) > 1)


def package_edges_removed(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    """The graph without edges into a package's own ``__init__`` from inside it: importing
    ``flows.cli.common`` runs ``flows/cli/__init__`` first, which is no dependency of ours."""
    return {name: {t for t in targets if not name.startswith(t + ".")}
            for name, targets in graph.items()}


def project_graph() -> dict[str, set[str]]:
    """Module → project modules it imports."""
    found = dict(modules())
    known = set(found)
    return package_edges_removed({name: imports_of(name, path, known)
                                  for name, path in found.items()})


def test_no_import_cycles() -> None:
    """No module of states/ or flows/ reaches itself through its imports."""
    assert cycles(project_graph()) == []


def test_cycle_finder_finds_a_cycle() -> None:
    """The checker itself sees a three-module circle and ignores a chain."""
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(graph) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": {"c"}}) == []


def test_core_never_imports_the_edge() -> None:
    """states/ imports nothing from flows/ (the edge depends on the core, never the reverse)."""
    graph = project_graph()
    offenders = {name: sorted(t for t in targets if t.startswith("flows"))
                 for name, targets in graph.items() if name.startswith("states")}
    assert {name: found for name, found in offenders.items() if found} == {}


@pytest.mark.parametrize(("name", "path"), list(modules()), ids=[n for n, _ in modules()])
def test_module_is_readable_in_one_sitting(name: str, path: Path) -> None:
    """No module in states/ or flows/ is longer than MAX_LINES lines."""
    lines = len(path.read_text(encoding="utf-8").splitlines())
    assert lines <= MAX_LINES, f"{name} has {lines} lines; split it by role"


def test_flows_is_in_wings() -> None:
    """flows/ is grouped into role-named sub-packages, with only a small shell at its root."""
    packages = {p.parent.name for p in (ROOT / "flows").glob("*/__init__.py")}
    assert packages >= WINGS
    loose = sorted(p.name for p in (ROOT / "flows").glob("*.py") if p.name != "__init__.py")
    # 9: the shell is two modules, shell.py and ticking.py (a tick over many processes, issue 10)
    assert len(loose) <= 9, f"flows/ root holds {len(loose)} modules: {loose}; put them in wings"
