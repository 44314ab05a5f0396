"""A test double for the store that behaves like SqlStore, hash chain and conflicts included.

The experts register and the outbox are in memory_notify.py.
"""

from __future__ import annotations

import builtins
import dataclasses
import threading
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from flows.storage.chain import (
    GENESIS,
    check_chain,
    definition_clash,
    seal,
    seal_all,
    to_document,
)
from flows.storage.memory_notify import MemoryNotifications, prepare_outbox
from flows.storage.model import (
    AuditDraft,
    AuditEntry,
    StoredProcess,
    UnknownProcess,
    VersionConflict,
    freeze,
)
from flows.storage.notify_model import OutboxDraft


@dataclasses.dataclass
class _Row:
    """One process as kept in memory, with the chain bookkeeping the SQL row also has."""

    process: StoredProcess
    head_hash: str


class MemoryStore(MemoryNotifications):
    """Keeps everything in dicts; documents are copied through JSON, as a database would."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rows: dict[str, _Row] = {}
        self._init_notifications()
        # One read-only body per definition hash, shared as SqlStore shares it.
        self._bodies: dict[str, dict[str, Any]] = {}
        # Tests tamper with this list to check that verify() notices.
        self.log: dict[str, builtins.list[AuditEntry]] = {}

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
        definition_doc = to_document(definition, f"definition of {process_id}")
        state_doc = to_document(state, f"state of {process_id}")
        with self._lock:
            known = self._bodies.get(definition_hash)
            if known is not None and known != definition_doc:
                raise definition_clash(process_id, definition_hash)
            if process_id in self._rows:
                return False
            body = self._bodies.setdefault(definition_hash, freeze(definition_doc))
            now = datetime.now(UTC)
            process = StoredProcess(
                process_id=process_id,
                definition=body,
                definition_hash=definition_hash,
                state=state_doc,
                version=1,
                audit_seq=1,
                created_at=now,
                updated_at=now,
            )
            self._rows[process_id] = _Row(process, first.hash)
            self.log[process_id] = [first]
            return True

    def get(self, process_id: str) -> StoredProcess:
        """The stored process (a copy), or UnknownProcess."""
        with self._lock:
            return _copy(self._row(process_id).process)

    def list(self) -> builtins.list[StoredProcess]:
        """All processes ordered by id."""
        with self._lock:
            return [_copy(self._rows[pid].process) for pid in sorted(self._rows)]

    def commit(
        self,
        process_id: str,
        expected_version: int,
        state: Mapping[str, Any] | None,
        entries: Sequence[AuditDraft],
        outbox: Sequence[OutboxDraft] = (),
    ) -> StoredProcess:
        """Replace the state (version-checked) and append entries, all or nothing; write
        ``outbox`` messages with them (keys already written are skipped)."""
        state_doc = None if state is None else to_document(state, f"state of {process_id}")
        messages = prepare_outbox(outbox)
        with self._lock:
            row = self._row(process_id)
            current = row.process
            if state_doc is not None and current.version != expected_version:
                raise VersionConflict(process_id, expected_version, current.version)
            if state_doc is None and not entries and not messages:
                return _copy(current)
            sealed = seal_all(process_id, current.audit_seq, row.head_hash, entries)
            updated = dataclasses.replace(
                current,
                state=current.state if state_doc is None else state_doc,
                version=current.version + (state_doc is not None),
                audit_seq=current.audit_seq + len(sealed),
                updated_at=datetime.now(UTC),
            )
            self.log[process_id].extend(sealed)
            self._insert_outbox(messages)
            row.process = updated
            if sealed:
                row.head_hash = sealed[-1].hash
            return _copy(updated)

    def _append_audit(self, process_id: str, drafts: Sequence[AuditDraft]) -> None:
        """Under the lock: chain ``drafts`` onto the log as commit() with no state does; every
        entry is sealed before any is written, so a bad one writes none."""
        row = self._row(process_id)
        current = row.process
        sealed = seal_all(process_id, current.audit_seq, row.head_hash, drafts)
        if not sealed:
            return
        self.log[process_id].extend(sealed)
        row.process = dataclasses.replace(
            current, audit_seq=current.audit_seq + len(sealed), updated_at=datetime.now(UTC)
        )
        row.head_hash = sealed[-1].hash

    def audit(self, process_id: str | None = None) -> builtins.list[AuditEntry]:
        """Audit entries ordered by process id, then seq."""
        with self._lock:
            ids = self._ids(process_id)
            return [e for pid in ids for e in sorted(self.log[pid], key=lambda e: e.seq)]

    def verify(self, process_id: str | None = None) -> builtins.list[str]:
        """Readable problems with the audit chains; [] when intact."""
        with self._lock:
            ids = self._ids(process_id)
            problems: builtins.list[str] = []
            for pid in ids:
                row = self._rows[pid]
                entries = sorted(self.log[pid], key=lambda e: e.seq)
                problems += check_chain(pid, entries, row.process.audit_seq, row.head_hash)
            return problems

    def close(self) -> None:
        """Nothing to release."""

    def __enter__(self) -> MemoryStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _ids(self, process_id: str | None) -> builtins.list[str]:
        """All ids in order, or just ``process_id`` once it is known to exist."""
        if process_id is None:
            return sorted(self._rows)
        self._row(process_id)
        return [process_id]

    def _row(self, process_id: str) -> _Row:
        try:
            return self._rows[process_id]
        except KeyError:
            raise UnknownProcess(process_id, sorted(self._rows)) from None


def _copy(process: StoredProcess) -> StoredProcess:
    """A copy whose state the caller may mutate without changing the store (the definition
    is read-only, as SqlStore gives it)."""
    return dataclasses.replace(process, state=to_document(process.state, "state"))
