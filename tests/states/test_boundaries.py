"""The core stays pure (STYLE layout): only an allow-list of imports, and no wall clock.

An allow-list, not a deny-list: a new dependency of the core (a network client, a database
driver, ``time``) is refused until someone decides here that the core may use it.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.states.helpers import ROOT

STATES = ROOT / "states"
#: What the core may import: pure stdlib modules, pydantic (definitions, typed contracts),
#: transitions (the machine), and itself. No I/O, no clock, no edge library.
ALLOWED_MODULES = {
    "__future__", "abc", "bisect", "calendar", "collections", "copy", "dataclasses", "datetime",
    "decimal", "enum", "functools", "hashlib", "itertools", "json", "math", "operator", "re",
    "string", "textwrap", "types", "typing", "zoneinfo",
    "pydantic", "pydantic_core", "transitions",
    "states",
}
CLOCK_CALLS = {"now", "utcnow", "today"}  # datetime.now(), datetime.utcnow(), date.today() …


def violations(source: str, name: str = "<source>") -> list[str]:
    """What in this module's source breaks the core's boundary, one line per finding."""
    found: list[str] = []
    for node in ast.walk(ast.parse(source, name)):
        modules: list[str] = []
        if isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            modules = [node.module]
        found += [f"{name}:{node.lineno} imports {m}" for m in modules
                  if m.split(".")[0] not in ALLOWED_MODULES]
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            attr, owner = node.func.attr, node.func.value
            if attr in CLOCK_CALLS or (
                attr in {"time", "monotonic", "perf_counter"}
                and isinstance(owner, ast.Name) and owner.id == "time"
            ):
                found.append(f"{name}:{node.lineno} reads the clock (.{attr}())")
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                and node.func.id == "__import__"):
            found.append(f"{name}:{node.lineno} imports dynamically")
    return found


MODULES = sorted(STATES.rglob("*.py"))


def test_states_package_has_the_expected_modules() -> None:
    """The scan covers the whole core (a renamed folder must not make the test vacuous)."""
    names = {p.stem for p in MODULES}
    assert {"dates", "definition", "plan", "rules", "machine", "guards", "instance", "engine",
            "status"} <= names


@pytest.mark.parametrize("path", MODULES, ids=[p.name for p in MODULES])
def test_core_module_stays_pure(path: Path) -> None:
    """Only allow-listed imports (stdlib without I/O, pydantic, transitions), no clock reads."""
    assert violations(path.read_text(encoding="utf-8"), path.name) == []


@pytest.mark.parametrize(
    "source",
    [
        "import prefect",
        "from flows.cli.app import main",
        "import sqlalchemy.orm as orm",
        "from yaml import safe_load",
        "import time",
        "from datetime import datetime\nx = datetime.now()",
        "import datetime\nx = datetime.datetime.utcnow()",
        "from datetime import date\nx = date.today()",
        "from datetime import datetime as dt\nx = dt.now(tz=None)",
        "x = __import__('httpx')",
        "import os",
        "import socket",
        "from pathlib import Path",
        "import subprocess",
        "import random",
        "import jinja2",
    ],
)
def test_boundary_check_catches_violations(source: str) -> None:
    """The checker itself finds each forbidden import and clock read."""
    assert violations(source) != []


def test_boundary_check_allows_what_the_core_uses() -> None:
    """datetime.time, value.time() and relative imports are fine."""
    allowed = ("from datetime import time\nfrom . import dates\n"
               "from states.dates import PlanDate\nx = value.time()\n")
    assert violations(allowed) == []
