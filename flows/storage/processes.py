"""Processes and their hash-chained audit log in SQL: the ProcessStore.

Every write is one transaction that first locks the process row (SELECT … FOR UPDATE on
PostgreSQL, BEGIN IMMEDIATE on SQLite), so concurrent writers queue: a stale version raises
VersionConflict and writes nothing, and appends never fork the hash chain.

A transition is one connection and one transaction (``transaction``): read the process, read
the register if its mail needs it, write state, entries and outbox rows. Definitions are kept
once per hash (revision 0003) and cached here by hash: a body never changes under its hash.
"""

from __future__ import annotations

import builtins
import itertools
import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from flows.storage import hot
from flows.storage.chain import (
    GENESIS,
    canonical_json,
    check_chain,
    definition_clash,
    seal,
    to_document,
)
from flows.storage.model import AuditDraft, AuditEntry, StoredProcess, freeze
from flows.storage.notify_model import OutboxDraft
from flows.storage.sql_base import Database, require, write_log
from flows.storage.tables import audit_log, definitions, processes
from flows.storage.transaction import LIST, SqlTransaction, stored_process

_P = processes.c
_A = audit_log.c
_D = definitions.c
BODIES = sa.select(_D.hash, _D.body).where(_D.hash.in_(sa.bindparam("hashes", expanding=True)))
# RETURNING, not rowcount: psycopg's rowcount is not reliable for ON CONFLICT.
CREATE_DEFINITION = {
    name: dialect.insert(definitions).on_conflict_do_nothing().returning(_D.hash)
    for name, dialect in (("sqlite", sqlite), ("postgresql", postgresql))
}
CREATE_PROCESS = {
    name: dialect.insert(processes).on_conflict_do_nothing().returning(_P.process_id)
    for name, dialect in (("sqlite", sqlite), ("postgresql", postgresql))
}
AUDIT = sa.select(audit_log).order_by(_A.process_id, _A.seq)
AUDIT_OF = sa.select(audit_log).where(_A.process_id == sa.bindparam("pid")).order_by(_A.seq)
HEADS = sa.select(_P.process_id, _P.audit_seq, _P.head_hash).order_by(_P.process_id)
HEAD_OF = HEADS.where(_P.process_id == sa.bindparam("pid"))


def entry(row: sa.Row[tuple[object, ...]]) -> AuditEntry:
    """An AuditEntry from a row of the audit log (its columns are the entry's fields)."""
    return AuditEntry(**row._mapping)  # the columns are named as the fields (tests check both)


class SqlProcesses:
    """The ProcessStore of a SQL database."""

    def __init__(self, db: Database) -> None:
        self._db = db
        # Definition bodies by hash, as canonical JSON and as handed out (read-only, shared by
        # every process made from it): a body never changes under its hash.
        self._bodies: dict[str, str] = {}
        self._frozen: dict[str, dict[str, object]] = {}

    def create(
        self,
        process_id: str,
        definition: Mapping[str, object],
        definition_hash: str,
        state: Mapping[str, object],
        entry: AuditDraft,
    ) -> bool:
        """Store a new process with ``entry`` as audit #1; False if it already existed."""
        now = datetime.now(UTC)
        first = seal(process_id, 1, GENESIS, entry, stamp=now, key=self._db.key)
        body = to_document(definition, f"definition of {process_id}")
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
        with self._db.write() as conn:
            dialect = conn.dialect.name
            if self._bodies.get(definition_hash) != canonical_json(body):
                new = {"hash": definition_hash, "body": body}
                if conn.execute(CREATE_DEFINITION[dialect], new).first() is None:
                    self._same_body(conn, process_id, definition_hash, body)
            if conn.execute(CREATE_PROCESS[dialect], row).first() is None:
                conn.rollback()  # leave no definition behind that nothing uses
                return False
            write_log(conn, [first])
        self._bodies[definition_hash] = canonical_json(body)
        return True

    def get(self, process_id: str) -> StoredProcess:
        """The stored process, or UnknownProcess."""
        with self._db.read() as conn:
            return SqlTransaction(conn, process_id, self.definition).get(lock=False)

    def list(self) -> builtins.list[StoredProcess]:
        """All processes ordered by id, in one query (a tick reads thousands)."""
        with self._db.read() as conn:
            rows = hot.run(conn, LIST, {}).fetchall()
        return [stored_process(row, self.definition) for row in rows]

    @contextmanager
    def transaction(self, process_id: str) -> Iterator[SqlTransaction]:
        """One write transaction on ``process_id``: committed when the block ends."""
        with self._db.write() as conn:
            yield SqlTransaction(conn, process_id, self.definition)

    def commit(
        self,
        process_id: str,
        expected_version: int,
        state: Mapping[str, object] | None,
        entries: Sequence[AuditDraft],
        outbox: Sequence[OutboxDraft] = (),
    ) -> StoredProcess:
        """Replace the state (if given, version-checked) and append entries, all or nothing.

        ``outbox`` messages are written in the same transaction (the transition and its mail
        stand or fall together); a key already in the outbox is skipped, never an error.
        """
        if state is None and not entries and not outbox:
            return self.get(process_id)
        with self.transaction(process_id) as tx:
            return tx.commit(state, entries, outbox, expected_version=expected_version)

    def definition(self, definition_hash: str) -> dict[str, object]:
        """The read-only definition body stored under ``definition_hash`` (cached)."""
        body = self._frozen.get(definition_hash)
        if body is None:
            text = self._bodies.get(definition_hash)
            if text is None:
                with self._db.read() as conn:
                    text = self._load_bodies(conn, [definition_hash])[definition_hash]
            body = self._frozen[definition_hash] = freeze(json.loads(text))
        return body

    def _load_bodies(self, conn: sa.Connection, hashes: Iterable[str]) -> dict[str, str]:
        """The cache of definition bodies, holding every one of ``hashes``."""
        missing = [h for h in hashes if h not in self._bodies]
        if missing:
            for hash_, body in conn.execute(BODIES, {"hashes": missing}):
                self._bodies[hash_] = canonical_json(body)
        return self._bodies

    def _same_body(
        self, conn: sa.Connection, process_id: str, definition_hash: str, body: object
    ) -> None:
        """Refuse a definition whose hash already names a different stored body."""
        stored = self._load_bodies(conn, [definition_hash])[definition_hash]
        if stored != canonical_json(body):
            raise definition_clash(process_id, definition_hash)

    def audit(self, process_id: str | None = None) -> builtins.list[AuditEntry]:
        """Audit entries ordered by process id, then seq."""
        with self._db.read() as conn:
            if process_id is None:
                return [entry(row) for row in conn.execute(AUDIT)]
            require(conn, process_id)
            return [entry(row) for row in conn.execute(AUDIT_OF, {"pid": process_id})]

    def verify(self, process_id: str | None = None) -> builtins.list[str]:
        """Readable problems with the audit chains; [] when intact."""
        problems: dict[str, builtins.list[str]] = {}
        params = {"pid": process_id}
        with self._db.read() as conn:
            if process_id is not None:
                require(conn, process_id)
            heads = conn.execute(HEADS if process_id is None else HEAD_OF, params)
            head = {row.process_id: row for row in heads}
            log = conn.execute(AUDIT if process_id is None else AUDIT_OF, params)
            for pid, rows in itertools.groupby(log, key=lambda r: str(r.process_id)):
                if pid not in head:
                    problems[pid] = [f"{pid}: audit entries exist for a process that is not stored"]
                    continue
                h = head.pop(pid)
                problems[pid] = check_chain(pid, map(entry, rows), h.audit_seq, h.head_hash,
                                            self._db.key)
            for pid, h in head.items():  # processes whose whole log is gone
                problems[pid] = check_chain(pid, [], h.audit_seq, h.head_hash, self._db.key)
        return [p for pid in sorted(problems) for p in problems[pid]]
