"""Issue 10, "Load and faults": a worker killed mid-run. A real `prepflow advance` process over
30 processes is killed with SIGKILL after some committed; a fresh run does the rest, and
every transition and message is there exactly once. (The delivery run killed mid-send is
tests/flows/test_delivery_crash.py.)"""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest

from flows.storage import SqlStore
from tests.flows.cli_run import Run
from tests.flows.faults import (
    CLOSE,
    CLOSED,
    MOVED,
    ROOT,
    advance_command,
    assert_each_once,
    command_env,
    scalar,
    seed,
    sql,
    wait_for,
    wide_run,
)

pytestmark = pytest.mark.slow

PROCESSES = 30
#: Each state write sleeps in the database, so the kill lands inside a process's transaction.
SLOW = {
    "postgresql": [
        "CREATE FUNCTION slow() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
        "PERFORM pg_sleep(0.1); RETURN NEW; END $$",
        "CREATE TRIGGER slow BEFORE UPDATE ON processes FOR EACH ROW EXECUTE FUNCTION slow()"],
    # SQLite has no sleep: the worker below gives its connections one (pf_sleep).
    "sqlite": ["CREATE TRIGGER slow BEFORE UPDATE ON processes BEGIN SELECT pf_sleep(0.1); END"],
}
#: `prepflow advance` as a command of its own, its SQLite connections given pf_sleep (the
#: trigger's); nothing else of prepflow is touched.
SQLITE_WORKER = """
import sqlite3, sys, time
from sqlalchemy import event
from sqlalchemy.engine import Engine

@event.listens_for(Engine, "connect")
def _sleep(dbapi_connection, _record):
    if isinstance(dbapi_connection, sqlite3.Connection):
        dbapi_connection.create_function("pf_sleep", 1, time.sleep)

from flows.cli import app
app.main(sys.argv[1:])
"""


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh store: a SQLite file, or a database of the test's own on the shared server."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'prepflow.db'}"
    return str(request.getfixturevalue("postgres_url"))


def in_transaction(url: str) -> bool:
    """Whether a session of this database (not ours) sleeps in the slow trigger now; on
    SQLite, which cannot be asked, taken as so (the sleep is most of each transaction)."""
    if url.startswith("sqlite"):
        return True
    return scalar(url, "SELECT count(*) FROM pg_stat_activity WHERE wait_event = 'PgSleep' "
                  "AND datname = current_database()") > 0


def no_other_session(url: str) -> bool:
    """Whether the killed worker's server session has ended (SQLite has none)."""
    if url.startswith("sqlite"):
        return True
    return scalar(url, "SELECT count(*) FROM pg_stat_activity WHERE datname = "
                  "current_database() AND pid <> pg_backend_pid()") == 0


def test_advance_worker_killed_mid_tick_then_a_fresh_run_does_the_rest_once(
        url: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """`prepflow advance` over 30 processes killed with SIGKILL inside a transaction after at
    least eight committed (no cleanup at all): what it committed stays whole, the one it was
    writing is rolled back, and a fresh run advances exactly the others; every close and
    message is there once."""
    run: Run = wide_run(capsys, monkeypatch)
    ids = [f"wtpf-26-{n:02d}" for n in range(PROCESSES)]
    seed(url, ids)
    backend = "sqlite" if url.startswith("sqlite") else "postgresql"
    sql(url, *SLOW[backend])
    command = advance_command(url)
    if backend == "sqlite":
        command = [sys.executable, "-c", SQLITE_WORKER, *command[3:]]
    count = f"SELECT count(*) FROM audit_log WHERE trigger = '{CLOSE}'"
    worker = subprocess.Popen(command, cwd=ROOT, env=command_env(),
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: worker.poll() is not None or (
            scalar(url, count) >= 8 and in_transaction(url)), 90,
            "eight processes committed and the worker inside the next one's transaction")
        worker.send_signal(signal.SIGKILL)  # no cleanup at all: the crash case
        _, err = worker.communicate(timeout=30)
    finally:
        worker.kill()
        worker.wait()
    assert worker.returncode == -signal.SIGKILL, err  # killed, not finished
    wait_for(lambda: no_other_session(url), 30, "the killed worker's session ended")
    sql(url, "DROP TRIGGER slow" + (" ON processes" if backend == "postgresql" else ""))
    done = scalar(url, count)
    assert 8 <= done < PROCESSES
    with SqlStore(url) as store:
        moved = [pid for pid in ids
                 if store.get(pid).state["regions"]["main"] == "draft1.comments_closed"]
        assert len(moved) == done  # committed whole or not at all
        assert store.verify() == []

    fresh = run("advance", "--now", CLOSED.isoformat(), "--database", url)
    assert fresh.code == 0, fresh.err
    assert sorted(line.split(":")[0] for line in fresh.out.splitlines() if MOVED in line) == [
        pid for pid in ids if pid not in moved]
    assert_each_once(url, ids)
