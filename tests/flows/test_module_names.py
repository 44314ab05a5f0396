"""No module in flows/ shadows a stdlib or installed module: Prefect puts the flow file's
folder on sys.path, so flows/email.py would replace the real `email` (STYLE.md)."""

from __future__ import annotations

import sys
from importlib.metadata import packages_distributions
from pathlib import Path

FLOWS = Path(__file__).resolve().parents[2] / "flows"


def test_flow_modules_have_names_of_their_own() -> None:
    """Every module and package name anywhere in flows/ is free of stdlib and third-party
    names (any wing may hold a flow entry point, whose folder Prefect puts on sys.path)."""
    taken = set(sys.stdlib_module_names) | set(packages_distributions())
    ours = {p.stem for p in FLOWS.rglob("*.py")} | {p.parent.name
                                                   for p in FLOWS.rglob("*/__init__.py")}
    assert ours, "no modules found"
    clashes = sorted((ours - {"__init__"}) & taken)
    assert clashes == [], f"rename these modules: {clashes}"
