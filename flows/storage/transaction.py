"""One process in one write transaction: the transition path, read and written on one connection.

Before, a transition took three pooled connections (read the process, read the register for
its mail, write). Now the read takes the row lock (FOR UPDATE on PostgreSQL; SQLite's BEGIN
IMMEDIATE holds the database already), so nobody can move the row between our read and our
write, and the result is built from what was written rather than read back.
"""

from __future__ import annotations

import builtins
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import sqlalchemy as sa

from flows.storage import hot
from flows.storage.chain import (
    canonical_json,
    definition_clash,
    document_and_text,
    seal_all,
    sealing_key,
)
from flows.storage.contributions import insert_contributions, read_contributions
from flows.storage.enqueue import insert_outbox_hot, outbox_rows
from flows.storage.errors import StoreError, UnknownProcess, VersionConflict
from flows.storage.model import AuditDraft, StoredProcess, freeze
from flows.storage.notify_model import Expert, OutboxDraft
from flows.storage.register import EXPERTS, read_experts
from flows.storage.sql_base import APPEND_ONLY, HEAD, UNMOVED, chain_key, known, write_log
from flows.storage.tables import definitions, processes
from states.contribution_types import Contribution

_P = processes.c
_PID = _P.process_id == sa.bindparam("pid")
GET = sa.select(
    _P.process_id,
    _P.definition_hash,
    _P.state,
    _P.version,
    _P.audit_seq,
    _P.created_at,
    _P.updated_at,
    _P.head_hash,
).where(_PID)
# The row without its state: what locking and the version check need. A tick's transition was
# read by the tick's list() already; decoding its state again cost ~10 µs a process.
ROW_HEAD = sa.select(
    _P.version, _P.audit_seq, _P.head_hash, _P.definition_hash, _P.created_at
).where(_PID).with_for_update()
# The transition's statements run on the driver cursor (hot.py says why, with figures).
HEAD_LOCKED = hot.Statement(ROW_HEAD)
# A tick's claim: a row another transaction holds is passed over, not waited for (PostgreSQL;
# SQLite renders no FOR UPDATE: its write transaction holds the whole database already).
HEAD_CLAIMED = hot.Statement(ROW_HEAD.with_for_update(skip_locked=True))
GET_ONE = hot.Statement(GET)
GET_LOCKED = hot.Statement(GET.with_for_update())
LIST = hot.Statement(sa.select(*GET.selected_columns).order_by(_P.process_id))
ADVANCE = hot.Statement(
    sa.update(processes)
    .where(*UNMOVED, _P.version == sa.bindparam("old_version"))
    .values(state=sa.bindparam("new_state"), version=sa.bindparam("new_version"), **HEAD)
)
# A revision: the process runs on another definition (kept once per hash, revision 0003).
_D = definitions.c
DEFINITION_BODY = sa.select(_D.body).where(_D.hash == sa.bindparam("hash"))
NEW_DEFINITION = sa.insert(definitions)
REDEFINE = sa.update(processes).where(_PID).values(definition_hash=sa.bindparam("hash"))
# The register read a transition's outbox plan makes (most transitions mail the experts).
EXPERTS_OF = hot.Statement(EXPERTS)
_EXPERT_FIELDS = tuple(EXPERTS.selected_columns.keys())

#: Gives the read-only definition body stored under a hash (SqlProcesses.definition).
Definitions = Callable[[str], dict[str, object]]


def stored_process(row: Sequence[object], definition: Definitions) -> StoredProcess:
    """A process from a driver row of GET's columns."""
    process_id, definition_hash, state, version, audit_seq, created_at, updated_at = row[:7]
    return StoredProcess(
        process_id=str(process_id),
        definition=definition(str(definition_hash)),
        definition_hash=str(definition_hash),
        state=hot.json_out(state),
        version=int(version),  # type: ignore[call-overload]
        audit_seq=int(audit_seq),  # type: ignore[call-overload]
        created_at=hot.time_out(created_at),
        updated_at=hot.time_out(updated_at),
    )


def _expert(row: Sequence[object]) -> Expert:
    """An Expert from a driver row of the experts table, as its column types read it."""
    fields = dict(zip(_EXPERT_FIELDS, row, strict=True))
    fields["nominated_at"] = hot.time_out(fields["nominated_at"])
    fields["late"], fields["erased"] = bool(fields["late"]), bool(fields["erased"])
    return Expert(**fields)  # type: ignore[arg-type]  # the columns are named as the fields


@dataclass(frozen=True)
class _Head:
    """The locked row's bookkeeping: what a commit checks and moves."""

    version: int
    audit_seq: int
    hash: str
    definition_hash: str
    created_at: datetime


class SqlTransaction:
    """The ProcessTransaction of a SQL database (see protocols.ProcessTransaction)."""

    def __init__(self, conn: sa.Connection, process_id: str, definition: Definitions) -> None:
        self._conn = conn
        self._pid = process_id
        self._definition = definition
        self._read: StoredProcess | None = None
        self._head: _Head | None = None
        self._written = False

    def get(self, *, lock: bool = True) -> StoredProcess:
        """The process, locked until the transaction ends; UnknownProcess if not stored."""
        row = hot.run(self._conn, GET_LOCKED if lock else GET_ONE, {"pid": self._pid}).fetchone()
        if row is None:
            raise UnknownProcess(self._pid, known(self._conn))
        self._read = stored = stored_process(row, self._definition)
        self._head = _Head(stored.version, stored.audit_seq, str(row[7]),
                           stored.definition_hash, stored.created_at)
        return stored

    def _lock(self) -> _Head:
        """Lock the row and read its head (not its state), once per transaction."""
        if self._head is None:
            head = self._head_of(HEAD_LOCKED)
            if head is None:
                raise UnknownProcess(self._pid, known(self._conn))
            self._head = head
        return self._head

    def _head_of(self, statement: hot.Statement) -> _Head | None:
        row = hot.run(self._conn, statement, {"pid": self._pid}).fetchone()
        if row is None:
            return None
        version, audit_seq, head_hash, definition_hash, created_at = row
        return _Head(int(version), int(audit_seq),  # type: ignore[call-overload]
                     str(head_hash), str(definition_hash), hot.time_out(created_at))

    def claim(self, listed: StoredProcess, *, wait: bool = True) -> StoredProcess | None:
        """Lock the row for a tick that read it as ``listed`` (unlocked): ``listed`` if it has
        not moved since, else the row as it stands now. Without ``wait``, None when another
        transaction holds the row (SKIP LOCKED: a second worker moves on to other processes
        instead of queueing behind the first)."""
        head = self._head_of(HEAD_LOCKED if wait else HEAD_CLAIMED)
        if head is None:
            if wait:
                raise UnknownProcess(self._pid, known(self._conn))
            return None
        self._head = head
        if head.version == listed.version and head.definition_hash == listed.definition_hash:
            self._read = listed
            return listed
        return self.get()  # moved since the tick read it: the row as it stands (locked)

    def experts(self, status: str | None = None) -> builtins.list[Expert]:
        """The process's register in nomination order, read in this transaction."""
        self._lock()  # the process row first (sql_base's lock order); commit() reuses it
        if status is not None:
            return read_experts(self._conn, self._pid, status, known_process=True)
        rows = hot.run(self._conn, EXPERTS_OF, {"pid": self._pid}).fetchall()
        return [_expert(row) for row in rows]

    def contributions(self, cycles: Sequence[str]) -> builtins.list[Contribution]:
        """The register of these cycles, read in this transaction (a window's summary)."""
        self._lock()
        return read_contributions(self._conn, self._pid, cycles)

    def add_contributions(self, items: Sequence[Contribution]) -> builtins.list[Contribution]:
        """Write contributions in this transaction, before ``commit`` writes their audit
        entries: both land together or not at all."""
        if self._written:
            raise RuntimeError("add contributions before the transaction's commit")
        self._lock()
        return insert_contributions(self._conn, self._pid, items)

    def commit(
        self,
        state: Mapping[str, object] | None,
        entries: Sequence[AuditDraft],
        outbox: Sequence[OutboxDraft] = (),
        *,
        expected_version: int | None = None,
        definition: tuple[Mapping[str, object], str] | None = None,
    ) -> StoredProcess:
        """Write the state (if given, version-checked) and the entries and messages, once;
        with ``definition`` (body, hash) the process runs on that definition from now on."""
        if definition is not None and state is None:
            raise ValueError("a new definition comes with the state decided on it")
        if self._written:
            raise RuntimeError("a process transaction writes once; open another for more")
        self._written = True
        state_doc, state_text = (
            (None, "") if state is None else document_and_text(state, f"state of {self._pid}")
        )
        messages = outbox_rows(outbox)
        head = self._lock()
        expected = head.version if expected_version is None else expected_version
        if state_doc is not None and head.version != expected:
            raise VersionConflict(self._pid, expected, head.version)
        updated_at = datetime.now(UTC)
        key = sealing_key(self._pid, head.hash, chain_key(self._conn)) if entries else None
        sealed = seal_all(self._pid, head.audit_seq, head.hash, entries, stamp=updated_at,
                          key=key)
        new_seq = head.audit_seq + len(sealed)
        dialect = self._conn.dialect
        params: dict[str, object] = {
            "pid": self._pid,
            "old_seq": head.audit_seq,
            "new_seq": new_seq,
            "new_hash": sealed[-1].hash if sealed else head.hash,
            "at": hot.time_in(dialect, updated_at),
        }
        new_version = head.version
        if state_doc is not None:
            new_state, new_version = state_doc, head.version + 1
            params.update(new_state=state_text, new_version=new_version,
                          old_version=expected)
        else:  # entries only (a refusal): the state as it stands
            new_state = (self._read or self.get()).state
        done = hot.run(self._conn, ADVANCE if state_doc is not None else APPEND_ONLY, params)
        if done.rowcount != 1:
            raise StoreError(
                f"Process {self._pid!r} changed while this change was being written, although "
                "it was locked. Nothing was written; try again."
            )
        write_log(self._conn, sealed)
        insert_outbox_hot(self._conn, messages)
        body, definition_hash = self._redefine(definition, head.definition_hash)
        return StoredProcess(
            process_id=self._pid,
            definition=body,
            definition_hash=definition_hash,
            state=new_state,
            version=new_version,
            audit_seq=new_seq,
            created_at=head.created_at,
            updated_at=updated_at,
        )

    def _redefine(self, definition: tuple[Mapping[str, object], str] | None,
                  current: str) -> tuple[dict[str, object], str]:
        """Point the locked row at ``definition`` (kept once per hash); the body in force."""
        if definition is None:
            return self._definition(current), current
        body, definition_hash = definition
        doc, text = document_and_text(body, f"definition of {self._pid}")
        stored = self._conn.execute(DEFINITION_BODY, {"hash": definition_hash}).scalar()
        if stored is None:
            self._conn.execute(NEW_DEFINITION, {"hash": definition_hash, "body": doc})
        elif canonical_json(stored) != text:
            raise definition_clash(self._pid, definition_hash)
        self._conn.execute(REDEFINE, {"pid": self._pid, "hash": definition_hash})
        return freeze(doc), definition_hash
