"""`prepflow db upgrade|current|history` speak plain words and refuse what is not ours."""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path

import pytest

from flows.storage.schema import head, revisions
from tests.flows.test_schema import cli_run


def test_db_commands_in_plain_words(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """db history lists the revisions; db upgrade and current say what they did."""
    url = f"sqlite:///{tmp_path / 'new.db'}"
    code, out, _ = cli_run(capsys, "db", "history")
    assert code == 0
    lines = out.splitlines()
    assert [line.split()[0] for line in lines] == list(revisions())
    assert "(newest)" in lines[-1]
    assert "experts register and the outbox" in lines[3]
    assert "contributions register" in lines[4]
    code, out, err = cli_run(capsys, "db", "current", "--database", url)
    assert code == 2
    assert "There is no database file at" in err
    assert "'prepflow db upgrade' creates it" in err
    assert "Traceback" not in err
    assert not (tmp_path / "new.db").exists()  # `current` changes nothing, creates nothing
    sqlite3.connect(tmp_path / "empty.db").close()
    code, out, err = cli_run(capsys, "db", "current", "--database",
                             f"sqlite:///{tmp_path / 'empty.db'}")
    assert code == 2
    assert "has no prepflow schema yet; 'prepflow db upgrade' creates it" in err
    code, out, _ = cli_run(capsys, "db", "upgrade", "--database", url)
    assert code == 0
    assert f"from an empty database to revision {head()}" in out


def test_db_current_refuses_a_foreign_database(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """db current on another application's file: exit 2, one paragraph, file untouched."""
    path = tmp_path / "their.db"
    with contextlib.closing(sqlite3.connect(path)) as theirs, theirs:
        theirs.execute("CREATE TABLE t (x INTEGER)")
    before = path.read_bytes()
    code, _, err = cli_run(capsys, "db", "current", "--database", f"sqlite:///{path}")
    assert code == 2
    assert "tables of another application (t)" in err
    assert "Traceback" not in err
    code, _, err = cli_run(capsys, "db", "upgrade", "--database", f"sqlite:///{path}")
    assert code == 2
    assert path.read_bytes() == before
