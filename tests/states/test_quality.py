"""STYLE habit 9: mypy --strict on the core and the edge, and ruff on the repository, pass."""

from __future__ import annotations

import subprocess
import sys

from tests.states.helpers import ROOT


def run(*args: str) -> subprocess.CompletedProcess[str]:
    """Run a tool from this interpreter's environment at the repository root."""
    return subprocess.run([sys.executable, "-m", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=300, check=False)


def test_mypy_strict_passes_on_states_and_flows() -> None:
    """mypy, strict per pyproject [tool.mypy], finds no issue in states/ or flows/."""
    result = run("mypy", "--config-file", "pyproject.toml", "-p", "states", "-p", "flows")
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff_passes_on_the_repository() -> None:
    """ruff check . (rules and reasons in pyproject [tool.ruff]) reports nothing."""
    result = run("ruff", "check", ".")
    assert result.returncode == 0, result.stdout + result.stderr
