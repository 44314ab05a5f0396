"""No module in flows/ shadows a stdlib or installed module: Prefect puts the flow file's
folder on sys.path, so flows/email.py would replace the real `email` (STYLE.md)."""

from __future__ import annotations

import sys
from importlib.metadata import packages_distributions
from pathlib import Path

FLOWS = Path(__file__).resolve().parents[2] / "flows"


def test_flow_modules_have_names_of_their_own() -> None:
    """Every flows/*.py and flows/* package name is free of stdlib and third-party names."""
    taken = set(sys.stdlib_module_names) | set(packages_distributions())
    ours = {p.stem for p in FLOWS.glob("*.py")} | {p.name for p in FLOWS.iterdir()
                                                   if (p / "__init__.py").is_file()}
    assert ours, "no modules found"
    clashes = sorted((ours - {"__init__"}) & taken)
    assert clashes == [], f"rename these modules: {clashes}"
