"""What every SQL aggregate shares: the engine, its transactions, and the process chain's lock.

One lock order for every writer, so none deadlocks another: a change that touches a process's
audit chain locks the process row first (SELECT … FOR UPDATE on PostgreSQL; on SQLite the
write transaction's BEGIN IMMEDIATE holds the whole database already), and only then the
register or outbox rows.

Statements are built once, at import, as SQLAlchemy Core: SQLAlchemy caches each one's
compiled form, so a call pays for execution only.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from flows.storage import hot
from flows.storage.chain import seal_all, sealing_key
from flows.storage.db import describe, guard, make_engine
from flows.storage.errors import StoreError, UnknownProcess
from flows.storage.model import AuditDraft, AuditEntry
from flows.storage.schema import upgrade
from flows.storage.tables import audit_log, processes

_P = processes.c
KNOWN = sa.select(_P.process_id).order_by(_P.process_id)
EXISTS = sa.select(_P.process_id).where(_P.process_id == sa.bindparam("pid"))
CHAIN_HEAD = (
    sa.select(_P.audit_seq, _P.head_hash)
    .where(_P.process_id == sa.bindparam("pid"))
    .with_for_update()
)
# The WHERE repeats what the lock already guarantees (belt and braces): a row that moved
# anyway updates nothing, and the writer refuses. Every writer of the chain (a transition, a
# register or outbox change, a new process) appends with these two statements on the driver
# cursor (hot.py says why), so the chain is written one way only.
_PID = _P.process_id == sa.bindparam("pid")
UNMOVED = (_PID, _P.audit_seq == sa.bindparam("old_seq"))
HEAD: dict[str, sa.BindParameter[object]] = {
    "audit_seq": sa.bindparam("new_seq"),
    "head_hash": sa.bindparam("new_hash"),
    "updated_at": sa.bindparam("at"),
}
APPEND_ONLY = hot.Statement(sa.update(processes).where(*UNMOVED).values(**HEAD))
LOG = hot.Statement(sa.insert(audit_log), [c.name for c in audit_log.c])


def log_rows(dialect: sa.Dialect, entries: Sequence[AuditEntry]) -> list[dict[str, object]]:
    """LOG parameters for sealed entries, as the audit log's column types bind them."""
    return [
        {
            **{"process_id": e.process_id, "seq": e.seq, "at": hot.time_in(dialect, e.at)},
            **{"actor": e.actor, "kind": e.kind, "trigger": e.trigger, "reason": e.reason},
            **{"from_state": e.from_state, "to_state": e.to_state, "prev_hash": e.prev_hash},
            **{"inputs": hot.json_in(e.inputs), "hash": e.hash},
            "recorded_at": None if e.recorded_at is None else hot.time_in(dialect, e.recorded_at),
        }
        for e in entries
    ]


def write_log(conn: sa.Connection, entries: Sequence[AuditEntry]) -> None:
    """Insert sealed entries in ``conn``'s transaction."""
    if entries:
        rows = log_rows(conn.dialect, entries)
        hot.run(conn, LOG, rows[0] if len(rows) == 1 else rows)


#: Where a write connection carries the store's audit key (``chain_key``): every writer of the
#: chain (processes, register, outbox, contributions) reaches it without another parameter.
_KEY = "prepflow_audit_key"


def chain_key(conn: sa.Connection) -> bytes | None:
    """The audit key of the store whose write transaction ``conn`` is (None: unkeyed)."""
    key = conn.info.get(_KEY)
    return key if isinstance(key, bytes) else None


class Database:
    """An open database: its engine, a writer engine, and its URL as we may show it."""

    def __init__(self, url: str, *, revision: str | None = None,
                 key: bytes | None = None) -> None:
        """Open ``url`` and bring its schema up to ``revision`` (default: the newest).

        ``revision`` builds old databases in upgrade tests; the store itself reads and writes
        only the newest schema. ``key``: the audit key (flows.storage.chain), never shown.
        """
        self.key = key
        self.url = describe(url)
        self.engine: Engine = make_engine(url)
        # A writer's transaction starts with BEGIN IMMEDIATE on SQLite (db.py): the write
        # lock is taken before the first read, so a second writer waits instead of failing.
        # PostgreSQL locks rows instead, so its readers and writers share one pool.
        sqlite = self.engine.dialect.name == "sqlite"
        self.writer: Engine = make_engine(url, write=True) if sqlite else self.engine
        try:
            with guard(self.url):
                upgrade(self.writer, revision)
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        """Close every pooled connection."""
        self.engine.dispose()
        self.writer.dispose()

    @contextmanager
    def read(self) -> Iterator[sa.Connection]:
        """A pooled connection for reading; each statement sees one consistent snapshot."""
        with guard(self.url), self.engine.connect() as conn:
            yield conn

    @contextmanager
    def write(self) -> Iterator[sa.Connection]:
        """One write transaction: committed when the block ends, rolled back if it raises."""
        with guard(self.url), self.writer.begin() as conn:
            conn.info[_KEY] = self.key  # read by chain_key; set on every write: pools are shared
            yield conn


def known(conn: sa.Connection) -> list[str]:
    """Every stored process id, for UnknownProcess's message."""
    return list(conn.execute(KNOWN).scalars())


def require(conn: sa.Connection, process_id: str) -> None:
    """UnknownProcess unless ``process_id`` is stored."""
    if conn.execute(EXISTS, {"pid": process_id}).first() is None:
        raise UnknownProcess(process_id, known(conn))


def lock_chain(conn: sa.Connection, process_id: str) -> tuple[int, str]:
    """Lock the process row in the connection's transaction; its (audit_seq, head_hash)."""
    head = conn.execute(CHAIN_HEAD, {"pid": process_id}).first()
    if head is None:
        raise UnknownProcess(process_id, known(conn))
    return int(head[0]), str(head[1])


def append_audit(
    conn: sa.Connection, process_id: str, head: tuple[int, str], drafts: Sequence[AuditDraft]
) -> None:
    """Chain ``drafts`` after ``head`` (from lock_chain, same transaction), as a commit with
    no state does: the entries, then the process row's count and last hash."""
    audit_seq, head_hash = head
    now = datetime.now(UTC)
    key = sealing_key(process_id, head_hash, chain_key(conn)) if drafts else None
    sealed = seal_all(process_id, audit_seq, head_hash, drafts, stamp=now, key=key)
    if not sealed:
        return
    params = {
        "pid": process_id,
        "old_seq": audit_seq,
        "new_seq": audit_seq + len(sealed),
        "new_hash": sealed[-1].hash,
        "at": hot.time_in(conn.dialect, now),
    }
    if hot.run(conn, APPEND_ONLY, params).rowcount != 1:  # belt and braces: the row is locked
        raise StoreError(
            f"Process {process_id!r} changed while its audit entries were being written, "
            "although it was locked. Nothing was written; try again."
        )
    write_log(conn, sealed)
