"""Issue 10, "Load and faults": PostgreSQL restarted during a tick, the store opened while
PostgreSQL is down, and a `prepflow advance` worker killed with SIGKILL mid-tick. After
recovery every transition and message is there exactly once.

The restarts happen on a private cluster (tests/flows/private_postgres.py), never on the
machine's shared server; the killed worker runs on the shared server, in a database of its own.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.pool import NullPool

from flows.cli import app as cli
from flows.clock import FixedClock
from flows.definition_file import load_definition
from flows.shell import Service
from flows.storage import SqlStore
from flows.storage.notify_model import ExpertDraft
from tests.flows.cli_run import Run, in_process
from tests.flows.private_postgres import BIN_VARIABLE, PrivateCluster, server_bin

pytestmark = pytest.mark.postgres

ROOT = Path(__file__).resolve().parents[2]
WTPF = load_definition(ROOT / "config" / "wtpf26.yaml")
START = datetime(2024, 7, 10, 8, tzinfo=UTC)
POSTED = datetime(2024, 8, 5, 8, tzinfo=UTC)
#: Past the First Draft's comment deadline: each process's window closes, its experts are told.
CLOSED = datetime(2024, 8, 26, 22, tzinfo=UTC)
CLOSE = "close_comments_draft1"
MOVED = "(draft1.comment_window → draft1.comments_closed)"
EXPERTS = 3


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
    monkeypatch.setattr(cli.out, "width", 200)
    monkeypatch.setattr(cli.err, "width", 200)
    return in_process(capsys)


def experts() -> list[ExpertDraft]:
    """Confirmed experts: the window's close mails each of them."""
    return [ExpertDraft(email=f"expert{n}@example.org", first_name="Expert", last_name=str(n),
                        entity="Ministry", nominated_by="Chile", country="Chile", region="AMS",
                        stakeholder_type="government", nominated_at=START, status="confirmed")
            for n in range(EXPERTS)]


def seed(url: str, ids: list[str]) -> None:
    """WTPF-26 processes with experts and their First Draft posted: each has a close due."""
    with SqlStore(url) as store:
        svc = Service(store, FixedClock(START))
        for pid in ids:
            svc.init(WTPF, START, pid)
            store.add_experts(pid, experts())
            svc.transition(pid, "post_draft1", "wtpf-secretariat", "WTPF-26/1", now=POSTED)


def sql(url: str, *statements: str) -> None:
    """Statements behind the store's back (the fault's hooks)."""
    engine = sa.create_engine(url, poolclass=NullPool)
    try:
        with engine.begin() as conn:
            for statement in statements:
                conn.execute(sa.text(statement))
    finally:
        engine.dispose()


def scalar(url: str, query: str) -> int:
    """One number read behind the store's back."""
    engine = sa.create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            return int(conn.execute(sa.text(query)).scalar_one())
    finally:
        engine.dispose()


def advance_command(url: str) -> list[str]:
    """`prepflow advance` at CLOSED on ``url``, as a command of its own."""
    return [sys.executable, "-m", "flows.cli", "advance", "--now", CLOSED.isoformat(),
            "--database", url]


def command_env() -> dict[str, str]:
    """The environment of a worker started from the checkout."""
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get(
        "PYTHONPATH", "")]), "COLUMNS": "200"}


def wait_for(ready: Callable[[], bool], seconds: float, what: str) -> None:
    """Poll until ``ready`` (a condition on another process), failing after ``seconds``."""
    deadline = time.monotonic() + seconds
    while not ready():
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not so after {seconds} s")
        time.sleep(0.02)


def assert_each_once(url: str, ids: list[str]) -> None:
    """Every process closed its window exactly once, wrote the same trail and queued the same
    messages as every other, each message once; the chains verify."""
    with SqlStore(url) as store:
        assert store.verify() == []
        log = store.audit()
        outbox = store.outbox()
        regions = {pid: store.get(pid).state["regions"]["main"] for pid in ids}
    assert set(regions.values()) == {"draft1.comments_closed"}
    steps = Counter((e.process_id, e.trigger) for e in log if e.kind == "transition")
    assert {pid: steps[(pid, CLOSE)] for pid in ids} == dict.fromkeys(ids, 1)
    assert max(steps.values()) == 1, "a transition was applied twice"
    trails = {pid: [(e.kind, e.trigger, e.from_state, e.to_state,
                     json.dumps(e.inputs, sort_keys=True).replace(pid, "<pid>"))
                    for e in log if e.process_id == pid] for pid in ids}
    assert all(trail == trails[ids[0]] for trail in trails.values()), \
        "a process's trail differs from the others'"
    assert Counter(i.key for i in outbox).most_common(1)[0][1] == 1
    sent = Counter((i.process_id, i.event, i.recipient) for i in outbox)
    assert max(sent.values()) == 1, "a message was queued twice"
    closed = Counter(i.process_id for i in outbox if i.event == "comments_closed")
    assert closed == dict.fromkeys(ids, EXPERTS)


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
        assert "Is the server running" in result.err or "refused" in result.err
        assert result.err.rstrip().endswith("Check that the server is running and accepts "
                                            "connections, and that PREPFLOW_DATABASE_URL is "
                                            "right.")
    assert run("advance", "--now", CLOSED.isoformat(), "--database", private_url).code == 0
    assert_each_once(private_url, ["wtpf-26"])


KILLED = 30


def test_advance_worker_killed_mid_tick_then_a_fresh_run_does_the_rest_once(
        postgres_url: str, run: Run) -> None:
    """`prepflow advance` over 30 processes killed with SIGKILL after some committed (no
    cleanup at all): what it committed stays, the one it was writing is rolled back, and a
    fresh run advances exactly the others; every close and message is there once."""
    ids = [f"wtpf-26-{n:02d}" for n in range(KILLED)]
    seed(postgres_url, ids)
    # Each state write sleeps a little in the database, so the kill lands mid-tick.
    sql(postgres_url,
        "CREATE FUNCTION slow() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
        "PERFORM pg_sleep(0.1); RETURN NEW; END $$",
        "CREATE TRIGGER slow BEFORE UPDATE ON processes FOR EACH ROW EXECUTE FUNCTION slow()")
    count = f"SELECT count(*) FROM audit_log WHERE trigger = '{CLOSE}'"
    worker = subprocess.Popen(advance_command(postgres_url), cwd=ROOT, env=command_env(),
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: worker.poll() is not None or scalar(postgres_url, count) >= 8, 90,
                 "eight processes committed")
        worker.send_signal(signal.SIGKILL)
        worker.wait(30)
    finally:
        worker.kill()
        worker.wait()
    assert worker.returncode == -signal.SIGKILL  # killed, not finished
    # The killed worker's server session ends when it notices the client is gone.
    wait_for(lambda: scalar(postgres_url, "SELECT count(*) FROM pg_stat_activity WHERE "
                            "datname = current_database() AND pid <> pg_backend_pid()") == 0,
             30, "the killed worker's session ended")
    done = scalar(postgres_url, count)
    assert 8 <= done < KILLED
    with SqlStore(postgres_url) as store:
        moved = [pid for pid in ids
                 if store.get(pid).state["regions"]["main"] == "draft1.comments_closed"]
        assert len(moved) == done  # committed whole or not at all
        assert store.verify() == []

    fresh = run("advance", "--now", CLOSED.isoformat(), "--database", postgres_url)
    assert fresh.code == 0, fresh.err
    assert sorted(line.split(":")[0] for line in fresh.out.splitlines() if MOVED in line) == [
        pid for pid in ids if pid not in moved]
    assert_each_once(postgres_url, ids)
