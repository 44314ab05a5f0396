"""The production store: SQLite or PostgreSQL through SQLAlchemy Core.

Every write is one transaction that first locks the process row (SELECT … FOR UPDATE on
PostgreSQL, BEGIN IMMEDIATE on SQLite), so concurrent writers queue: a stale version raises
VersionConflict and writes nothing, and appends never fork the hash chain.

Definitions are kept once per hash (schema step 3) and cached here by hash. The transition
path (get, list, commit) runs its few statements on the driver connection (driver.py): through
SQLAlchemy's execution machinery it cost several times the commit itself.
"""

from __future__ import annotations

import builtins
import itertools
import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from flows.storage import driver, sql_notify
from flows.storage.chain import (
    GENESIS,
    canonical_json,
    check_chain,
    definition_clash,
    seal,
    seal_all,
    to_document,
)
from flows.storage.db import WRITE, describe, guard, make_engine
from flows.storage.migrations import upgrade
from flows.storage.model import (
    AuditDraft,
    AuditEntry,
    StoredProcess,
    StoreError,
    UnknownProcess,
    VersionConflict,
    freeze,
)
from flows.storage.notify_model import OutboxDraft
from flows.storage.sql_notify import SqlNotifications
from flows.storage.tables import audit_log, definitions, processes

_P = processes.c
_A = audit_log.c
_D = definitions.c
_ENTRY_FIELDS = tuple(column.name for column in audit_log.c)

_BODIES = sa.select(_D.hash, _D.body).where(_D.hash.in_(sa.bindparam("hashes", expanding=True)))
_LOG = sa.insert(audit_log)


def _creates(dialect: str) -> tuple[sa.Executable, sa.Executable]:
    """INSERT … ON CONFLICT DO NOTHING for a definition and a process, in ``dialect``."""
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    definition = insert(definitions).on_conflict_do_nothing().returning(_D.hash)
    # RETURNING, not rowcount: psycopg's rowcount is not reliable for ON CONFLICT.
    process = insert(processes).on_conflict_do_nothing().returning(_P.process_id)
    return definition, process


class SqlStore(SqlNotifications):
    """Processes and their hash-chained audit log in a SQL database, plus the experts register
    and the outbox (sql_notify.py)."""

    def __init__(self, url: str, *, schema_version: int | None = None) -> None:
        """Open ``url`` and bring its schema up to date.

        ``schema_version`` stops the upgrade there, to build old databases in upgrade tests;
        the store itself reads and writes only the latest schema.
        """
        self.url = describe(url)
        self._engine = make_engine(url)
        try:
            with guard(self.url):
                upgrade(self._engine, schema_version)
        except BaseException:
            self._engine.dispose()
            raise
        self._writer = self._engine.execution_options(**{WRITE: True})
        self._insert_definition, self._insert_process = _creates(self._engine.dialect.name)
        self._driver = driver.Driver.for_engine(self._engine)
        # Definition bodies by hash, as canonical JSON and as handed out (read-only, shared by
        # every process made from it): a body never changes under its hash.
        self._bodies: dict[str, str] = {}
        self._frozen: dict[str, dict[str, Any]] = {}

    def create(
        self,
        process_id: str,
        definition: Mapping[str, Any],
        definition_hash: str,
        state: Mapping[str, Any],
        entry: AuditDraft,
    ) -> bool:
        """Store a new process with ``entry`` as audit #1; False if it already existed."""
        first = seal(process_id, 1, GENESIS, entry)
        body = to_document(definition, f"definition of {process_id}")
        now = datetime.now(UTC)
        row = {
            "process_id": process_id,
            "definition_hash": definition_hash,
            "state": to_document(state, f"state of {process_id}"),
            "version": 1,
            "audit_seq": 1,
            "head_hash": first.hash,
            "created_at": now,
            "updated_at": now,
        }
        with guard(self.url), self._writer.connect() as conn, conn.begin() as transaction:
            if self._bodies.get(definition_hash) != canonical_json(body):
                added = conn.execute(
                    self._insert_definition, {"hash": definition_hash, "body": body}
                ).first()
                if added is None:
                    self._same_body(conn, process_id, definition_hash, body)
            if conn.execute(self._insert_process, row).first() is None:
                transaction.rollback()  # leave no definition behind that nothing uses
                return False
            conn.execute(_LOG, [_entry_row(first)])
        self._bodies[definition_hash] = canonical_json(body)
        return True

    def get(self, process_id: str) -> StoredProcess:
        """The stored process, or UnknownProcess."""
        d = self._driver
        with guard(self.url), d.cursor() as cursor:
            row = cursor.execute(d.sql(driver.GET), (process_id,)).fetchone()
            if row is None:
                raise UnknownProcess(process_id, _known(d, cursor))
        return self._process(row)

    def list(self) -> builtins.list[StoredProcess]:
        """All processes ordered by id, in one query (a tick reads thousands)."""
        d = self._driver
        with guard(self.url), d.cursor() as cursor:
            rows = cursor.execute(d.sql(driver.LIST)).fetchall()
        return [self._process(row) for row in rows]

    def commit(
        self,
        process_id: str,
        expected_version: int,
        state: Mapping[str, Any] | None,
        entries: Sequence[AuditDraft],
        outbox: Sequence[OutboxDraft] = (),
    ) -> StoredProcess:
        """Replace the state (if given, version-checked) and append entries, all or nothing.

        ``outbox`` messages are written in the same transaction (the transition and its mail
        stand or fall together); a key already in the outbox is skipped, never an error.
        """
        state_doc = None if state is None else to_document(state, f"state of {process_id}")
        d = self._driver
        messages = sql_notify.outbox_params(d, outbox)
        if state_doc is None and not entries and not messages:
            return self.get(process_id)
        # Three statements under the write lock: read the head, move it, append the entries
        # (and a fourth for the outbox). The result is built from what was written rather
        # than read back.
        with guard(self.url), d.cursor(write=True) as cursor:
            head_sql = driver.HEAD if state_doc is not None else driver.HEAD_AND_STATE
            head = cursor.execute(d.sql(head_sql + d.lock), (process_id,)).fetchone()
            if head is None:
                raise UnknownProcess(process_id, _known(d, cursor))
            version, audit_seq, head_hash, definition_hash, created_at = head[:5]
            if state_doc is not None and version != expected_version:
                raise VersionConflict(process_id, expected_version, version)
            sealed = seal_all(process_id, audit_seq, head_hash, entries)
            updated_at = datetime.now(UTC)
            new_seq, new_hash = audit_seq + len(sealed), sealed[-1].hash if sealed else head_hash
            if state_doc is not None:
                new_state, new_version = state_doc, version + 1
                cursor.execute(
                    d.sql(driver.ADVANCE),
                    (
                        d.json_in(state_doc),
                        new_version,
                        new_seq,
                        new_hash,
                        d.time_in(updated_at),
                        process_id,
                        audit_seq,
                        version,
                    ),
                )
            else:
                new_state, new_version = d.json_out(head[5]), version
                cursor.execute(
                    d.sql(driver.APPEND_ONLY),
                    (new_seq, new_hash, d.time_in(updated_at), process_id, audit_seq),
                )
            if cursor.rowcount != 1:
                raise StoreError(
                    f"Process {process_id!r} in {self.url} changed while this change was being "
                    "written, although it was locked. Nothing was written; try again."
                )
            if sealed:
                log = d.sql(driver.LOG)
                cursor.executemany(log, [sql_notify.log_row(d, e) for e in sealed])
            sql_notify.insert_outbox(d, cursor, messages)
        return StoredProcess(
            process_id=process_id,
            definition=self._definition(definition_hash),
            definition_hash=definition_hash,
            state=new_state,
            version=new_version,
            audit_seq=new_seq,
            created_at=d.time_out(created_at),
            updated_at=updated_at,
        )

    def _process(self, row: Sequence[Any]) -> StoredProcess:
        """A process from a driver row (driver.PROCESS_COLUMNS)."""
        process_id, definition_hash, state, version, audit_seq, created_at, updated_at = row
        d = self._driver
        return StoredProcess(
            process_id=process_id,
            definition=self._definition(definition_hash),
            definition_hash=definition_hash,
            state=d.json_out(state),
            version=version,
            audit_seq=audit_seq,
            created_at=d.time_out(created_at),
            updated_at=d.time_out(updated_at),
        )

    def _definition(self, definition_hash: str) -> dict[str, Any]:
        """The read-only definition body stored under ``definition_hash`` (cached)."""
        body = self._frozen.get(definition_hash)
        if body is None:
            text = self._bodies.get(definition_hash)
            if text is None:
                with guard(self.url), self._engine.connect() as conn:
                    text = self._load_bodies(conn, [definition_hash])[definition_hash]
            body = self._frozen[definition_hash] = freeze(json.loads(text))
        return body

    def _load_bodies(self, conn: sa.Connection, hashes: Iterable[str]) -> dict[str, str]:
        """The cache of definition bodies, holding every one of ``hashes``."""
        missing = [h for h in hashes if h not in self._bodies]
        if missing:
            for hash_, body in conn.execute(_BODIES, {"hashes": missing}):
                self._bodies[hash_] = canonical_json(body)
        return self._bodies

    def _same_body(
        self, conn: sa.Connection, process_id: str, definition_hash: str, body: dict[str, Any]
    ) -> None:
        """Refuse a definition whose hash already names a different stored body."""
        stored = self._load_bodies(conn, [definition_hash])[definition_hash]
        if stored != canonical_json(body):
            raise definition_clash(process_id, definition_hash)

    def audit(self, process_id: str | None = None) -> builtins.list[AuditEntry]:
        """Audit entries ordered by process id, then seq."""
        query = sa.select(audit_log).order_by(_A.process_id, _A.seq)
        with guard(self.url), self._engine.connect() as conn:
            if process_id is not None:
                _require(conn, process_id)
                query = query.where(_A.process_id == process_id)
            return [_entry(row) for row in conn.execute(query)]

    def verify(self, process_id: str | None = None) -> builtins.list[str]:
        """Readable problems with the audit chains; [] when intact."""
        heads = sa.select(_P.process_id, _P.audit_seq, _P.head_hash).order_by(_P.process_id)
        log = sa.select(audit_log).order_by(_A.process_id, _A.seq)
        if process_id is not None:
            heads = heads.where(_P.process_id == process_id)
            log = log.where(_A.process_id == process_id)
        problems: dict[str, builtins.list[str]] = {}
        with guard(self.url), self._engine.connect() as conn:
            if process_id is not None:
                _require(conn, process_id)
            head = {row.process_id: row for row in conn.execute(heads)}
            for pid, rows in itertools.groupby(conn.execute(log), key=lambda r: r.process_id):
                if pid not in head:
                    problems[pid] = [f"{pid}: audit entries exist for a process that is not stored"]
                    continue
                h = head.pop(pid)
                problems[pid] = check_chain(pid, map(_entry, rows), h.audit_seq, h.head_hash)
            for pid, h in head.items():  # processes whose whole log is gone
                problems[pid] = check_chain(pid, [], h.audit_seq, h.head_hash)
        return [p for pid in sorted(problems) for p in problems[pid]]

    def close(self) -> None:
        """Close every pooled connection."""
        self._engine.dispose()

    def __enter__(self) -> SqlStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"SqlStore({self.url!r})"


def _known(d: driver.Driver, cursor: Any) -> builtins.list[str]:
    return [pid for (pid,) in cursor.execute(d.sql(driver.KNOWN))]


def _known_sa(conn: sa.Connection) -> builtins.list[str]:
    return list(conn.execute(sa.select(_P.process_id).order_by(_P.process_id)).scalars())


def _require(conn: sa.Connection, process_id: str) -> None:
    """UnknownProcess unless ``process_id`` is stored."""
    found = conn.execute(sa.select(_P.process_id).where(_P.process_id == process_id)).first()
    if found is None:
        raise UnknownProcess(process_id, _known_sa(conn))


def _entry(row: sa.Row[Any]) -> AuditEntry:
    return AuditEntry(**{name: getattr(row, name) for name in _ENTRY_FIELDS})


def _entry_row(entry: AuditEntry) -> dict[str, Any]:
    return {name: getattr(entry, name) for name in _ENTRY_FIELDS}
