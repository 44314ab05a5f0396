"""Benchmark one ``advance`` over 1, 10, 100 and 1,000 processes on PostgreSQL, printing a table.

Each size gets a database of its own (dropped at the end): that many WTPF-26 processes, each
with three confirmed experts and its First Draft posted, the week's reminder already out. The
measured tick runs just after the comment deadline, when every process has its window to
close: the close, its comment summary (a register read), a mail to every expert (a register
read, outbox rows) and the audit entries, in one transaction per process. Before it, an idle
tick warms the worker (pool, definition cache), as a served worker is warm between runs.

Measured per process, for the one tick:

- time (target: within 1.3x from 10 to 1,000 processes);
- statements: SQLAlchemy's ``before_cursor_execute`` events, plus the statements the hot
  path runs on the driver cursor (flows/storage/hot.py), which bypass those events;
- round trips on the wire (target: constant): what libpq sends that waits for an answer (a
  simple Query, e.g. BEGIN or COMMIT, or an extended query's Sync), counted from libpq's
  protocol trace. Tracing slows the client, so the round trips are counted on a copy of the
  database (CREATE DATABASE … TEMPLATE) ticked separately, not on the timed ones.

Every tick runs on a fresh copy of the size's set-up database: below 1,000 processes the
median of ``--rounds`` ticks counts (the machine may be shared; a tick of 10 is a few hundred
milliseconds), at 1,000 one tick, itself long enough to average the noise.

Usage: python bench/scale.py [--sizes 1,10,100,1000] [--admin-url URL]
(default admin URL: $PREPFLOW_TEST_POSTGRES_URL, else postgresql+psycopg://root@127.0.0.1:5432/test)
"""

from __future__ import annotations

import argparse
import itertools
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

import psycopg
import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.pool import NullPool, Pool

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from flows.clock import FixedClock
from flows.definition_file import load_definition
from flows.shell import Service
from flows.storage import SqlStore, hot
from flows.storage.notify_model import ExpertDraft

DEFINITION = Path(__file__).resolve().parents[1] / "config" / "wtpf26.yaml"
ADMIN_URL = os.environ.get("PREPFLOW_TEST_POSTGRES_URL",
                           "postgresql+psycopg://root@127.0.0.1:5432/test")
CREATED = datetime(2024, 7, 10, 8, 0, tzinfo=UTC)
POSTED = datetime(2024, 8, 5, 8, 0, tzinfo=UTC)
REMINDED = datetime(2024, 8, 23, 8, 0, tzinfo=UTC)  # the week-before reminder goes out
IDLE = datetime(2024, 8, 26, 21, 0, tzinfo=UTC)  # an hour before the deadline: nothing due
CLOSED = datetime(2024, 8, 26, 22, 0, tzinfo=UTC)  # the deadline passed: every window closes
ACTOR = "wtpf-secretariat"
EXPERTS = 3


@dataclass(frozen=True)
class Row:
    """One size's measurements, per process."""

    size: int
    seconds: float
    statements: float
    round_trips: float


@contextmanager
def database(admin: sa.Engine, template: str | None = None) -> Iterator[str]:
    """A database of the bench's own (a copy of ``template`` if given), dropped afterwards."""
    name = f"prepflow_bench_{uuid.uuid4().hex[:12]}"
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"'
                             + (f' TEMPLATE "{template}"' if template else ""))
    try:
        yield name
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def url_of(name: str) -> str:
    """The store URL of a database on the admin URL's server."""
    return sa.make_url(ADMIN_URL).set(database=name).render_as_string(hide_password=False)


def experts() -> list[ExpertDraft]:
    """Three confirmed experts: each message the tick decides goes to each of them."""
    return [ExpertDraft(email=f"expert{n}@example.org", first_name="Expert", last_name=str(n),
                        entity="Ministry", nominated_by="Chile", country="Chile", region="AMS",
                        stakeholder_type="government", nominated_at=CREATED, status="confirmed")
            for n in range(EXPERTS)]


def populate(url: str, count: int) -> None:
    """``count`` processes through the service, as users make them: set-up, not timed."""
    definition = load_definition(DEFINITION)
    ids = [f"bench-{number:05d}" for number in range(count)]
    with SqlStore(url) as store:
        service = Service(store, FixedClock(CREATED))
        for process_id in ids:
            service.init(definition, CREATED, process_id)
            store.add_experts(process_id, experts())
        service.advance(CREATED)  # a live process's first tick decides its one-off messages
        for process_id in ids:
            service.transition(process_id, "post_draft1", ACTOR, "WTPF-26/1", now=POSTED)
        service.advance(REMINDED)
        service.advance(IDLE)  # whatever else is due before the deadline, out of the way


class Statements:
    """Statements run while counting: SQLAlchemy's events and the hot path's driver calls."""

    def __init__(self, engine: sa.Engine) -> None:
        self.count = 0
        self.on = False
        event.listen(engine, "before_cursor_execute", self._seen)
        self._run = hot.run
        hot.run = self._hot  # the modules look hot.run up at call time

    def _seen(self, *_args: object) -> None:
        if self.on:
            self.count += 1

    def _hot(self, conn: sa.Connection, statement: hot.Statement,
             params: Mapping[str, object] | Sequence[Mapping[str, object]]) -> hot.Cursor:
        self._seen()
        return self._run(conn, statement, params)

    def close(self) -> None:
        """Put the hot path back."""
        hot.run = self._run


class Trace:
    """libpq's protocol trace of every connection opened meanwhile, one file each."""

    def __init__(self, folder: Path) -> None:
        self._folder = folder
        self._connections: list[tuple[psycopg.Connection[Any], TextIO]] = []
        self._files: list[Path] = []
        self.on = False
        event.listen(Pool, "connect", self._connect)

    def _connect(self, dbapi_connection: psycopg.Connection[Any], _record: object) -> None:
        if not self.on:
            return
        path = self._folder / f"trace-{len(self._files)}.txt"
        handle = path.open("w")
        self._files.append(path)
        dbapi_connection.pgconn.trace(handle.fileno())
        dbapi_connection.pgconn.set_trace_flags(
            psycopg.pq.Trace.SUPPRESS_TIMESTAMPS | psycopg.pq.Trace.REGRESS_MODE)
        self._connections.append((dbapi_connection, handle))

    def round_trips(self) -> int:
        """Messages sent that wait for the server: simple Query and extended-query Sync."""
        for connection, handle in self._connections:
            if not connection.closed:
                connection.pgconn.untrace()  # flushes libpq's buffer
            handle.close()
        self._connections.clear()
        count = 0
        for path in self._files:
            for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
                parts = line.split("\t")
                if len(parts) >= 3 and parts[0] == "F" and parts[2].strip() in ("Query", "Sync"):
                    count += 1
        self._files.clear()
        return count

    def close(self) -> None:
        """Stop tracing new connections."""
        event.remove(Pool, "connect", self._connect)


def tick(url: str, count: int, trace: Trace | None) -> tuple[float, int, int]:
    """One warm worker's tick at CLOSED: seconds, statements, round trips (if traced)."""
    with SqlStore(url) as store:
        service = Service(store, FixedClock(CLOSED))
        statements = Statements(store.db.engine)
        try:
            assert service.tick(IDLE).outcomes == []  # warm: pool, definition cache
            store.db.engine.dispose()  # the timed tick's connections are new: traced from birth
            assert service.tick(IDLE).outcomes == []
            if trace is not None:
                trace.round_trips()  # forget the warm-up's
                trace.on = True
                store.db.engine.dispose()
            statements.on = True
            started = time.perf_counter()
            result = service.tick(CLOSED)
            seconds = time.perf_counter() - started
            statements.on = False
            trips = trace.round_trips() if trace is not None else 0
            if trace is not None:
                trace.on = False
        finally:
            statements.close()
    closed = [o for o in result.outcomes if o.decision.transitions]
    assert not result.failed, result.failed[:3]
    assert len(closed) == count, (len(closed), count)
    return seconds, statements.count, trips


def measure(admin: sa.Engine, count: int, rounds: int, folder: Path) -> Row:
    """Set up ``count`` processes once; tick copies of that database: ``rounds`` timed (the
    median counts), one traced."""
    started = time.perf_counter()
    with database(admin) as made:
        populate(url_of(made), count)
        setup = time.perf_counter() - started
        timings: list[float] = []
        for _ in range(rounds):
            with database(admin, template=made) as timed:
                seconds, statements, _ = tick(url_of(timed), count, None)
                timings.append(seconds)
        with database(admin, template=made) as traced:
            trace = Trace(folder)
            try:
                _, traced_statements, trips = tick(url_of(traced), count, trace)
            finally:
                trace.close()
    assert traced_statements == statements, (traced_statements, statements)
    seconds = statistics.median(timings)
    print(f"  {count:>5} processes: set up in {setup:.1f} s, ticks "
          f"{', '.join(f'{t:.3f}' for t in timings)} s", file=sys.stderr, flush=True)
    return Row(count, seconds / count, statements / count, trips / count)


def main() -> None:
    """Measure every size, print the table and the two targets."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1,10,100,1000")
    parser.add_argument("--rounds", type=int, default=5,
                        help="timed ticks per size below 1,000 (the median counts; the "
                             "machine may be shared); 1,000 and up: one, itself ~20 s long")
    args = parser.parse_args()
    sizes = [int(size) for size in args.sizes.split(",")]
    admin = sa.create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    try:
        with tempfile.TemporaryDirectory() as folder:
            rows = [measure(admin, size, args.rounds if size < 1000 else 1, Path(folder))
                    for size in sizes]
    finally:
        admin.dispose()
    print("one advance on PostgreSQL, a comment window to close in every process:")
    print(f"  {'processes':>9}  {'tick':>8}  {'per process':>11}  {'statements':>10}  "
          f"{'round trips':>11}")
    for row in rows:
        print(f"  {row.size:>9,}  {row.seconds * row.size:>6.2f} s  {row.seconds * 1e3:>8.2f} ms"
              f"  {row.statements:>10.2f}  {row.round_trips:>11.2f}")
    by_size = {row.size: row for row in rows}
    if 10 in by_size and 1000 in by_size:
        ratio = by_size[1000].seconds / by_size[10].seconds
        verdict = "ok" if ratio <= 1.3 else "MISSED"
        print(f"time per process, 1,000 vs 10: {ratio:.2f}x (target <= 1.3x) {verdict}")
    # A tick's own few round trips (the one list of every process, the definitions, a
    # connection) are shared by its processes, so the per-process figures fall towards what
    # each further process adds; that is what must stay constant.
    steps = list(itertools.pairwise(rows))
    for a, b in steps:
        added = b.size - a.size
        print(f"each process added from {a.size:,} to {b.size:,}: "
              f"{(b.seconds * b.size - a.seconds * a.size) / added * 1e3:.2f} ms, "
              f"{(b.statements * b.size - a.statements * a.size) / added:.2f} statements, "
              f"{(b.round_trips * b.size - a.round_trips * a.size) / added:.2f} round trips")
    # From 10 up: below that, the first uses of a connection still prepare statements.
    trips = [(b.round_trips * b.size - a.round_trips * a.size) / (b.size - a.size)
             for a, b in steps if a.size >= 10]
    if trips:
        constant = max(trips) - min(trips) < 0.05
        print(f"round trips per added process: {'constant' if constant else 'NOT constant'} "
              "(target: constant)")

if __name__ == "__main__":
    main()
