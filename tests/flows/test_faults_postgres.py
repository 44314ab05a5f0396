"""Issue 10, "Load and faults": PostgreSQL restarted during a tick, and the store opened while
PostgreSQL is down. After recovery every transition and message is there exactly once.

The restarts happen on a private cluster (tests/flows/private_postgres.py), never on the
machine's shared server, which the other tests and helpers use meanwhile.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

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
from tests.flows.private_postgres import BIN_VARIABLE, PrivateCluster, server_bin

pytestmark = [pytest.mark.postgres, pytest.mark.slow]


@pytest.fixture(scope="session")
def cluster() -> Iterator[PrivateCluster]:
    """The session's private PostgreSQL cluster, running (removed at the end)."""
    folder = server_bin()
    if folder is None:
        pytest.fail(f"the restart tests need PostgreSQL's initdb and pg_ctl (set {BIN_VARIABLE} "
                    "to their folder)", pytrace=False)
    made = PrivateCluster(folder)
    try:
        made.init().start()
        yield made
    finally:
        made.remove()


@pytest.fixture
def private_url(cluster: PrivateCluster) -> str:
    """A fresh database on the private cluster (started again if a test left it stopped)."""
    try:
        return cluster.database()
    except sa.exc.OperationalError:
        cluster.start()
        return cluster.database()


@pytest.fixture
def run(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Run:
    """`prepflow` in-process, with consoles wide enough that no line wraps."""
    return wide_run(capsys, monkeypatch)


@pytest.mark.parametrize("mode", ["fast", "immediate"])
def test_postgres_restarted_mid_tick_then_each_step_and_message_once(
        cluster: PrivateCluster, private_url: str, run: Run, mode: str) -> None:
    """PostgreSQL restarted (fast: sessions ended; immediate: a crash) while `prepflow
    advance` is inside the fourth process's transaction, after the first three committed:
    the tick names each process it could not advance in one line, no traceback, exit 1; the
    next advance does the rest, and every close and message is there exactly once."""
    ids = [f"wtpf-26-{n}" for n in range(6)]
    seed(private_url, ids)
    # The fourth process's first message sleeps in the database: its state and audit entries
    # are written, uncommitted, when the server goes down under it.
    sql(private_url,
        "CREATE FUNCTION hold() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
        "PERFORM pg_sleep(120); RETURN NEW; END $$",
        "CREATE TRIGGER hold AFTER INSERT ON outbox FOR EACH ROW "
        "WHEN (NEW.process_id = 'wtpf-26-3') EXECUTE FUNCTION hold()")
    worker = subprocess.Popen(advance_command(private_url), cwd=ROOT, env=command_env(),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: worker.poll() is not None or scalar(
            private_url, "SELECT count(*) FROM pg_stat_activity WHERE wait_event = 'PgSleep'"),
            90, "the tick in the fourth process's transaction")
        closed_before = scalar(private_url, "SELECT count(*) FROM audit_log WHERE trigger = "
                               f"'{CLOSE}'")
        cluster.restart(mode)
        out, err = worker.communicate(timeout=90)
    finally:
        worker.kill()
        worker.wait()
    assert closed_before == 3  # the first three committed, the fourth not yet

    assert worker.returncode == 1, err
    assert [line.split(":")[0] for line in out.splitlines() if MOVED in line] == ids[:3]
    assert "Traceback" not in err, err
    failed = [line for line in err.splitlines() if ": not advanced:" in line]
    assert failed[0].startswith("wtpf-26-3: not advanced: prepflow cannot reach the database "
                                "server at postgresql+psycopg://postgres@127.0.0.1:")
    assert all("Check that the server is running" in line for line in failed)
    # After the fourth, the server was still down (failed) or back already (advanced).
    named = [line.split(":")[0] for line in failed]
    assert named[0] == "wtpf-26-3"
    assert set(named) <= set(ids[3:])
    assert f"{len(named)} of 6 processes not advanced (the next advance tries them again)" in err
    with SqlStore(private_url) as store:  # the restart rolled the fourth's transaction back
        assert store.get("wtpf-26-3").state["regions"]["main"] == "draft1.comment_window"
        assert not [i for i in store.outbox() if i.process_id == "wtpf-26-3"
                    and i.event == "comments_closed"]

    sql(private_url, "DROP TRIGGER hold ON outbox")
    again = run("advance", "--now", CLOSED.isoformat(), "--database", private_url)
    assert again.code == 0, again.err
    assert sorted(line.split(":")[0] for line in again.out.splitlines()
                  if MOVED in line) == sorted(named)
    assert run("advance", "--now", CLOSED.isoformat(), "--database",
               private_url).out.strip() == "nothing due."
    assert_each_once(private_url, ids)


def test_store_opened_while_postgres_is_down_is_one_paragraph_exit_2(
        cluster: PrivateCluster, private_url: str, run: Run) -> None:
    """With the server stopped, `prepflow status` and `prepflow advance` say in one paragraph
    which server they cannot reach and what to check, no traceback, exit 2 (like every store
    error: nothing was changed); started again, the same commands work."""
    seed(private_url, ["wtpf-26"])
    cluster.stop()
    try:
        results = [run("status", "--database", private_url),
                   run("advance", "--now", CLOSED.isoformat(), "--database", private_url)]
    finally:
        cluster.start()
    for result in results:
        assert result.code == 2
        assert result.out == ""
        assert "Traceback" not in result.err
        assert result.err.count("\n") == 1, result.err  # one paragraph, on one line
        assert result.err.startswith("Store error: prepflow cannot reach the database server "
                                     f"at {private_url} (")
        assert result.err.rstrip().endswith("Check that the server is running and accepts "
                                            "connections, and that PREPFLOW_DATABASE_URL is "
                                            "right.")
    assert run("advance", "--now", CLOSED.isoformat(), "--database", private_url).code == 0
    assert_each_once(private_url, ["wtpf-26"])
