"""The production store: SQLite or PostgreSQL through SQLAlchemy Core.

Every write is one transaction that first locks the process row (SELECT … FOR UPDATE on
PostgreSQL, BEGIN IMMEDIATE on SQLite), so concurrent writers queue: a stale version raises
VersionConflict and writes nothing, and appends never fork the hash chain.
"""

from __future__ import annotations

import builtins
import itertools
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from flows.storage.chain import GENESIS, check_chain, seal, seal_all, to_document
from flows.storage.db import WRITE, describe, guard, make_engine
from flows.storage.migrations import upgrade
from flows.storage.model import (
    AuditDraft,
    AuditEntry,
    StoredProcess,
    StoreError,
    UnknownProcess,
    VersionConflict,
)
from flows.storage.tables import audit_log, processes

_P = processes.c
_A = audit_log.c
_ENTRY_FIELDS = tuple(column.name for column in audit_log.c)


class SqlStore:
    """Processes and their hash-chained audit log in a SQL database."""

    def __init__(self, url: str, *, schema_version: int | None = None) -> None:
        """Open ``url`` and bring its schema up to date (``schema_version``: tests of upgrades)."""
        self.url = describe(url)
        self._engine = make_engine(url)
        try:
            with guard(self.url):
                upgrade(self._engine, schema_version)
        except BaseException:
            self._engine.dispose()
            raise
        self._writer = self._engine.execution_options(**{WRITE: True})

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
        now = datetime.now(UTC)
        row = {
            "process_id": process_id,
            "definition": to_document(definition, f"definition of {process_id}"),
            "definition_hash": definition_hash,
            "state": to_document(state, f"state of {process_id}"),
            "version": 1,
            "audit_seq": 1,
            "head_hash": first.hash,
            "created_at": now,
            "updated_at": now,
        }
        dialect_insert = (
            postgresql.insert if self._engine.dialect.name == "postgresql" else sqlite.insert
        )
        with guard(self.url), self._writer.begin() as conn:
            stmt = dialect_insert(processes).values(row).on_conflict_do_nothing()
            # RETURNING, not rowcount: psycopg's rowcount is not reliable for ON CONFLICT.
            if conn.execute(stmt.returning(_P.process_id)).first() is None:
                return False
            conn.execute(sa.insert(audit_log), [_entry_row(first)])
            return True

    def get(self, process_id: str) -> StoredProcess:
        """The stored process, or UnknownProcess."""
        with guard(self.url), self._engine.connect() as conn:
            row = conn.execute(sa.select(processes).where(_P.process_id == process_id)).first()
            if row is None:
                raise UnknownProcess(process_id, _known(conn))
            return _process(row)

    def list(self) -> builtins.list[StoredProcess]:
        """All processes ordered by id, in one query (a tick reads thousands)."""
        with guard(self.url), self._engine.connect() as conn:
            rows = conn.execute(sa.select(processes).order_by(_P.process_id))
            return [_process(row) for row in rows]

    def commit(
        self,
        process_id: str,
        expected_version: int,
        state: Mapping[str, Any] | None,
        entries: Sequence[AuditDraft],
    ) -> StoredProcess:
        """Replace the state (if given, version-checked) and append entries, all or nothing."""
        state_doc = None if state is None else to_document(state, f"state of {process_id}")
        if state_doc is None and not entries:
            return self.get(process_id)
        with guard(self.url), self._writer.begin() as conn:
            head = conn.execute(
                sa.select(_P.version, _P.audit_seq, _P.head_hash)
                .where(_P.process_id == process_id)
                .with_for_update()
            ).first()
            if head is None:
                raise UnknownProcess(process_id, _known(conn))
            if state_doc is not None and head.version != expected_version:
                raise VersionConflict(process_id, expected_version, head.version)
            sealed = seal_all(process_id, head.audit_seq, head.head_hash, entries)
            values: dict[str, Any] = {
                "audit_seq": head.audit_seq + len(sealed),
                "updated_at": datetime.now(UTC),
            }
            if sealed:
                values["head_hash"] = sealed[-1].hash
            # The WHERE repeats what the row lock already guarantees: belt and braces.
            stmt = sa.update(processes).where(
                _P.process_id == process_id, _P.audit_seq == head.audit_seq
            )
            if state_doc is not None:
                stmt = stmt.where(_P.version == expected_version)
                values.update(state=state_doc, version=_P.version + 1)
            updated = conn.execute(stmt.values(values).returning(*processes.c)).first()
            if updated is None:
                raise StoreError(
                    f"Process {process_id!r} in {self.url} changed while this change was being "
                    "written, although it was locked. Nothing was written; try again."
                )
            if sealed:
                conn.execute(sa.insert(audit_log), [_entry_row(e) for e in sealed])
            return _process(updated)

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


def _known(conn: sa.Connection) -> builtins.list[str]:
    return list(conn.execute(sa.select(_P.process_id).order_by(_P.process_id)).scalars())


def _require(conn: sa.Connection, process_id: str) -> None:
    """UnknownProcess unless ``process_id`` is stored."""
    found = conn.execute(sa.select(_P.process_id).where(_P.process_id == process_id)).first()
    if found is None:
        raise UnknownProcess(process_id, _known(conn))


def _process(row: sa.Row[Any]) -> StoredProcess:
    return StoredProcess(
        process_id=row.process_id,
        definition=row.definition,
        definition_hash=row.definition_hash,
        state=row.state,
        version=row.version,
        audit_seq=row.audit_seq,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _entry(row: sa.Row[Any]) -> AuditEntry:
    return AuditEntry(**{name: getattr(row, name) for name in _ENTRY_FIELDS})


def _entry_row(entry: AuditEntry) -> dict[str, Any]:
    return {name: getattr(entry, name) for name in _ENTRY_FIELDS}
