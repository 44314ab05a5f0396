"""The `prepflow` command run in-process, for the CLI tests: one way to call it and read what
it printed, on a fresh SQLite store set up the way a user's environment would be."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from flows.cli import app as cli


@dataclass(frozen=True)
class Result:
    """One CLI run: exit status and what it printed."""

    code: int
    out: str
    err: str


Run = Callable[..., Result]


def fresh_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, width: int = 200,
                name: str = "prepflow.db") -> str:
    """A fresh SQLite store in ``tmp_path`` as PREPFLOW_DATABASE_URL, and consoles wide enough
    that tables do not wrap mid-value (they are made at import time, so they are widened)."""
    url = f"sqlite:///{tmp_path / name}"
    monkeypatch.setenv("PREPFLOW_DATABASE_URL", url)
    monkeypatch.setenv("COLUMNS", str(width))
    monkeypatch.setattr(cli.out, "width", width)
    monkeypatch.setattr(cli.err, "width", width)
    return url


def in_process(capsys: pytest.CaptureFixture[str]) -> Run:
    """``prepflow ARGS...`` called in-process, returning its exit status and output.

    ``main`` is the console script's entry point itself (pyproject's [project.scripts]); it
    turns every exception into a paragraph and a SystemExit, so catching SystemExit here sees
    exactly the status the script's process exits with (tests/flows/test_cli_fuzz.py checks
    a few against ``python -m flows.cli``)."""

    def call(*args: str) -> Result:
        capsys.readouterr()
        try:
            cli.main(list(args))
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        else:  # main always exits; returning would itself be a bug
            pytest.fail("flows.cli.main returned instead of exiting")
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return call
