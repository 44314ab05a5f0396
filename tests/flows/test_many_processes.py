"""Several processes of different definitions in one store, one tick: each stands alone, and two
workers ticking at once (two real OS processes on PostgreSQL) write every step and message once.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.pool import NullPool

from flows.clock import FixedClock
from flows.definition_file import load_definition
from flows.shell import DamagedState, Service
from flows.storage import SqlStore, StoreError
from flows.storage.notify_model import ExpertDraft
from flows.ticking import Status, Tick
from tests.flows.cli_run import Run, fresh_store, in_process

ROOT = Path(__file__).resolve().parents[2]
WTPF = load_definition(ROOT / "config" / "wtpf26.yaml")
RPD = load_definition(ROOT / "tests" / "definitions" / "other_forum.yaml")
SDR = load_definition(ROOT / "tests" / "definitions" / "windowless.yaml")
#: A copy of WTPF-26 under a name of its own: a definition (hash) no other process shares.
BROKEN = WTPF.model_copy(update={"id": "broken-26", "name": "WTPF-26, stored body broken"})
START = datetime(2024, 7, 10, 8, tzinfo=UTC)
#: Past WTPF-26's first comment deadline and RPD-27's Zero Draft comment deadline.
TICK = datetime(2026, 3, 14, 0, tzinfo=UTC)
#: What the stuck process's row refuses, from inside the database.
STUCK_SQL = {
    "sqlite": ["CREATE TRIGGER stuck BEFORE UPDATE ON processes WHEN OLD.process_id = "
               "'stuck-26' BEGIN SELECT RAISE(ABORT, 'the disk under this row is failing'); END"],
    "postgresql": [
        "CREATE FUNCTION stuck() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
        "RAISE EXCEPTION 'the disk under this row is failing'; END $$",
        "CREATE TRIGGER stuck BEFORE UPDATE ON processes FOR EACH ROW "
        "WHEN (OLD.process_id = 'stuck-26') EXECUTE FUNCTION stuck()"],
}


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh store: a SQLite file, or a PostgreSQL database of the test's own."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'prepflow.db'}"
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture
def store(url: str) -> Iterator[SqlStore]:
    """The test's store, closed afterwards."""
    with SqlStore(url) as opened:
        yield opened


def sql(url: str, *statements: str, **params: object) -> None:
    """Run statements on the database behind the store's back (tampering, faults)."""
    engine = sa.create_engine(url, poolclass=NullPool)
    try:
        with engine.begin() as conn:
            for statement in statements:
                conn.execute(sa.text(statement), params)
    finally:
        engine.dispose()


def break_definition(url: str, store: SqlStore, process_id: str) -> None:
    """Replace the stored definition body of ``process_id`` with one that no longer validates."""
    body = json.dumps({"id": process_id, "cycles": "not a list"})
    sql(url, "UPDATE definitions SET body = :body WHERE hash = :hash",
        body=body, hash=store.get(process_id).definition_hash)


def four_processes(store: SqlStore) -> None:
    """WTPF-26, RPD-27 and stuck-26 with their first drafts posted, a broken one and SDR-28."""
    svc = Service(store, FixedClock(START))
    for definition, process_id in ((WTPF, "wtpf-26"), (RPD, "rpd-27"), (WTPF, "stuck-26"),
                                   (BROKEN, "broken-26"), (SDR, "sdr-28")):
        svc.init(definition, START, process_id)
    svc.transition("wtpf-26", "post_draft1", "wtpf-secretariat", "WTPF-26/1",
                   now=datetime(2024, 8, 5, 8, tzinfo=UTC))
    svc.transition("stuck-26", "post_draft1", "wtpf-secretariat", "WTPF-26/1",
                   now=datetime(2024, 8, 5, 8, tzinfo=UTC))
    svc.transition("rpd-27", "post_zero-draft", "ana", "RPD-27/0",
                   now=datetime(2026, 1, 12, 15, tzinfo=UTC))


def test_one_tick_advances_every_process_but_the_failing_ones_and_says_why(
        url: str, store: SqlStore) -> None:
    """A broken definition and a row the database refuses fail alone; the others advance."""
    four_processes(store)
    break_definition(url, store, "broken-26")
    sql(url, *STUCK_SQL[store.db.engine.dialect.name])
    stuck_log = store.audit("stuck-26")

    with SqlStore(url) as fresh:  # a worker that has not cached the definitions
        tick = Service(fresh, FixedClock(TICK)).tick(TICK)

    status = {r.process_id: r.status for r in tick.results}
    assert status.pop("sdr-28") in (Status.ADVANCED, Status.IDLE)  # its one-off messages
    assert status == {"broken-26": Status.FAILED, "rpd-27": Status.ADVANCED,
                      "stuck-26": Status.FAILED, "wtpf-26": Status.ADVANCED}
    reasons = {r.process_id: r for r in tick.failed}
    assert isinstance(reasons["broken-26"].error, DamagedState)
    assert "'broken-26' is damaged" in reasons["broken-26"].reason
    assert isinstance(reasons["stuck-26"].error, StoreError)
    assert "the disk under this row is failing" in reasons["stuck-26"].reason
    assert store.audit("stuck-26") == stuck_log  # its transaction rolled back whole
    assert store.get("rpd-27").state["regions"]["main"] == "zero-draft.comments_closed"
    assert store.get("wtpf-26").state["regions"]["main"] != "draft1.comment_window"

    sql(url, "DROP TRIGGER stuck" + (" ON processes" if "postgresql" in url else ""))
    with SqlStore(url) as fresh:
        again = Service(fresh, FixedClock(TICK)).tick(TICK)
    assert {r.process_id: r.status for r in again.results if r.status is not Status.IDLE} == {
        "broken-26": Status.FAILED, "stuck-26": Status.ADVANCED}
    assert store.get("stuck-26").state["regions"] == store.get("wtpf-26").state["regions"]
    assert store.verify() == []


def test_cli_advance_prints_each_process_and_exits_1_when_one_failed(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """`prepflow advance` shows the others' steps, names the damaged process, exits 1."""
    url = fresh_store(tmp_path, monkeypatch)
    run: Run = in_process(capsys)
    for path in ("config/wtpf26.yaml", "tests/definitions/other_forum.yaml"):
        assert run("init", str(ROOT / path), "--now", "2024-07-10T08:00Z").code == 0
    assert run("transition", "wtpf-26", "post_draft1", "--by", "wtpf-secretariat",
               "--document", "WTPF-26/1", "--now", "2024-08-05T08:00Z").code == 0
    with SqlStore(url) as store:
        break_definition(url, store, "rpd-27")

    result = run("advance", "--now", "2024-08-26T22:00Z")

    assert result.code == 1
    assert "wtpf-26:" in result.out
    assert "(draft1.comment_window → draft1.comments_closed)" in result.out
    assert "rpd-27: not advanced:" in result.err
    assert "'rpd-27' is damaged" in result.err
    assert "1 of 2 processes not advanced" in result.err
    assert "Traceback" not in result.err
    with SqlStore(url) as store:
        assert store.get("wtpf-26").state["regions"]["main"] == "draft1.comments_closed"


# --- two workers at once ------------------------------------------------------------------

#: A worker: imports everything, says it is ready, waits for the word, then runs
#: `prepflow advance` in-process (so both start within a millisecond of each other).
WORKER = """
import sys
from flows.cli import app

print("ready", flush=True)
sys.stdin.readline()
app.main(["advance", "--now", sys.argv[1], "--database", sys.argv[2]])
"""
RACED = 24
EXPERTS = 3
CLOSED = datetime(2024, 8, 26, 22, tzinfo=UTC)


def experts_for(count: int) -> list[ExpertDraft]:
    """Confirmed experts: each message the tick decides goes to every one of them."""
    return [ExpertDraft(email=f"expert{n}@example.org", first_name="Expert", last_name=str(n),
                        entity="Ministry", nominated_by="Chile", country="Chile", region="AMS",
                        stakeholder_type="government", nominated_at=START, status="confirmed")
            for n in range(count)]


@pytest.mark.postgres
def test_two_workers_ticking_at_once_write_each_step_and_message_once(
        postgres_url: str) -> None:
    """Two `prepflow advance` processes over 24 processes: every close and mail exactly once."""
    ids = [f"wtpf-26-{n:02d}" for n in range(RACED - 4)] + [f"rpd-27-{n}" for n in range(4)]
    with SqlStore(postgres_url) as store:
        svc = Service(store, FixedClock(START))
        for pid in ids:
            svc.init(RPD if pid.startswith("rpd") else WTPF, START, pid)
            store.add_experts(pid, experts_for(EXPERTS))
            if pid.startswith("wtpf"):
                svc.transition(pid, "post_draft1", "wtpf-secretariat", "WTPF-26/1",
                               now=datetime(2024, 8, 5, 8, tzinfo=UTC))
        before = len(store.outbox())
    # Each state write sleeps in the database, holding the row: the workers overlap for sure.
    sql(postgres_url,
        "CREATE FUNCTION slow() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
        "PERFORM pg_sleep(0.08); RETURN NEW; END $$",
        "CREATE TRIGGER slow BEFORE UPDATE ON processes FOR EACH ROW EXECUTE FUNCTION slow()")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get(
        "PYTHONPATH", "")]), "COLUMNS": "200"}
    workers = [subprocess.Popen([sys.executable, "-c", WORKER, CLOSED.isoformat(), postgres_url],
                                cwd=ROOT, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True) for _ in range(2)]
    for worker in workers:
        assert worker.stdout is not None
        assert worker.stdout.readline().strip() == "ready"
    for worker in workers:
        assert worker.stdin is not None
        worker.stdin.write("go\n")
        worker.stdin.flush()
    done = [worker.communicate(timeout=120) for worker in workers]

    assert [w.returncode for w in workers] == [0, 0], done
    lines = [[line for line in out.splitlines() if "→" in line] for out, _ in done]
    assert all(lines), f"one worker did all the work, no overlap was tested: {done}"
    closes = sorted(line.split(":")[0] for out in lines for line in out
                    if "comments_closed" in line)
    assert closes == sorted(p for p in ids if p.startswith("wtpf"))  # once each, between both
    with SqlStore(postgres_url) as store:
        log = store.audit()
        assert store.verify() == []
        outbox = store.outbox()
    steps = [(e.process_id, e.trigger) for e in log if e.kind == "transition"]
    assert len(steps) == len(set(steps)), "a transition was applied twice"
    assert steps.count(("wtpf-26-00", "close_comments_draft1")) == 1
    notices = [(e.process_id, json.dumps(e.inputs, sort_keys=True)) for e in log
               if e.kind == "notice"]
    assert len(notices) == len(set(notices)), "a message was decided twice"
    keys = [item.key for item in outbox]
    assert len(keys) == len(set(keys))
    sent = [(item.process_id, item.event, item.recipient) for item in outbox]
    assert len(sent) > before
    assert len(sent) == len(set(sent)), "a message was queued twice"
    closed_mail = [s for s in sent if s[1] == "comments_closed"]
    assert len(closed_mail) == (RACED - 4) * EXPERTS


@pytest.mark.postgres
def test_a_tick_moves_past_a_process_someone_holds_and_comes_back_to_it(
        postgres_url: str) -> None:
    """A row locked by another transaction: the tick advances the rest first, then waits."""
    ids = ["wtpf-26-a", "wtpf-26-b", "wtpf-26-c"]
    with SqlStore(postgres_url) as store:
        svc = Service(store, FixedClock(START))
        for pid in ids:
            svc.init(WTPF, START, pid)
            svc.transition(pid, "post_draft1", "wtpf-secretariat", "WTPF-26/1",
                           now=datetime(2024, 8, 5, 8, tzinfo=UTC))
    holder = sa.create_engine(postgres_url, poolclass=NullPool)
    ticker = SqlStore(postgres_url)
    results: list[object] = []
    thread = threading.Thread(target=lambda: results.append(
        Service(ticker, FixedClock(CLOSED)).tick(CLOSED)))
    try:
        with holder.connect() as conn:
            conn.execute(sa.text("SELECT 1 FROM processes WHERE process_id = 'wtpf-26-a' "
                                 "FOR UPDATE"))
            thread.start()
            deadline = time.monotonic() + 30
            with SqlStore(postgres_url) as watcher:
                while moved(watcher, ids) != ["wtpf-26-b", "wtpf-26-c"]:
                    assert time.monotonic() < deadline, (
                        f"the tick queued behind the held row: {moved(watcher, ids)}")
                    time.sleep(0.02)
            assert thread.is_alive()  # waiting for the held row now, at the end of the tick
            conn.rollback()
        thread.join(30)
    finally:
        holder.dispose()
        ticker.close()
    tick = results[0]
    assert isinstance(tick, Tick)
    assert [r.status for r in tick.results] == [Status.ADVANCED] * 3
    with SqlStore(postgres_url) as store:
        assert moved(store, ids) == ids
        assert store.verify() == []


def moved(store: SqlStore, ids: list[str]) -> list[str]:
    """The processes whose First Draft comment window is closed."""
    return [pid for pid in ids
            if store.get(pid).state["regions"]["main"] == "draft1.comments_closed"]


def test_advance_raises_a_store_error_once_the_other_processes_advanced(
        url: str, store: SqlStore) -> None:
    """Service.advance (programs, not the tick's report) raises the failure after the rest."""
    four_processes(store)
    sql(url, *STUCK_SQL[store.db.engine.dialect.name])
    with SqlStore(url) as fresh, pytest.raises(StoreError, match="disk under this row"):
        Service(fresh, FixedClock(TICK)).advance(TICK)
    assert store.get("rpd-27").state["regions"]["main"] == "zero-draft.comments_closed"
    assert store.get("wtpf-26").state["regions"]["main"] != "draft1.comment_window"
