"""The store's public vocabulary: what callers hand in, what comes back, what can go wrong.

The store is deliberately ignorant of the core's types (``states/``): it persists opaque JSON
documents, so the core can change its snapshot format without a schema migration here.
"""

from __future__ import annotations

import builtins
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, NoReturn, Protocol

if TYPE_CHECKING:  # notify_model imports StoreError from here
    from flows.storage.notify_model import Expert, ExpertDraft, OutboxDraft, OutboxItem

#: How many known process ids an UnknownProcess message lists before it says "and N more".
_KNOWN_SHOWN = 20


@dataclass(frozen=True)
class AuditDraft:
    """One audit entry as a caller describes it; the store gives it a place in the chain."""

    at: datetime
    actor: str
    kind: str
    trigger: str | None = None
    from_state: str | None = None
    to_state: str | None = None
    reason: str | None = None
    inputs: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # A naive time is ambiguous across the delegations' time zones: refuse it at the door.
        if self.at.tzinfo is None or self.at.utcoffset() is None:
            raise ValueError(
                f"audit time {self.at.isoformat()} has no time zone; "
                "give an aware datetime such as datetime(..., tzinfo=UTC)"
            )


@dataclass(frozen=True)
class AuditEntry:
    """An audit entry as written: the draft's fields, its place in the chain, and its hashes."""

    process_id: str
    seq: int
    at: datetime
    actor: str
    kind: str
    trigger: str | None
    from_state: str | None
    to_state: str | None
    reason: str | None
    inputs: Mapping[str, Any]
    prev_hash: str
    hash: str


def _read_only(*_args: object, **_kwargs: object) -> NoReturn:
    raise TypeError(
        "a stored definition is shared by every process made from it and cannot be changed "
        "in place; change a copy (copy.deepcopy(process.definition) gives plain dicts and lists)"
    )


class FrozenDict(dict[str, Any]):
    """A JSON object that refuses changes; copies of it (copy, deepcopy, pickle) are plain."""

    __setitem__ = __delitem__ = __ior__ = _read_only
    clear = pop = popitem = setdefault = update = _read_only

    def __reduce__(self) -> tuple[Any, ...]:
        return (dict, (dict(self),))

    def __deepcopy__(self, memo: dict[int, Any]) -> dict[str, Any]:
        thawed: dict[str, Any] = thaw(self)
        return thawed


class FrozenList(list[Any]):
    """A JSON array that refuses changes; copies of it (copy, deepcopy, pickle) are plain."""

    __setitem__ = __delitem__ = __iadd__ = __imul__ = _read_only
    append = extend = insert = pop = remove = reverse = sort = clear = _read_only

    def __reduce__(self) -> tuple[Any, ...]:
        return (list, (list(self),))

    def __deepcopy__(self, memo: dict[int, Any]) -> list[Any]:
        thawed: list[Any] = thaw(self)
        return thawed


def freeze(document: Any) -> Any:
    """A read-only copy of a JSON document: FrozenDict and FrozenList all the way down."""
    if isinstance(document, dict):
        return FrozenDict((key, freeze(value)) for key, value in document.items())
    if isinstance(document, list):
        return FrozenList(freeze(value) for value in document)
    return document


def thaw(document: Any) -> Any:
    """A plain, changeable copy of a JSON document (frozen or not)."""
    if isinstance(document, dict):
        return {key: thaw(value) for key, value in document.items()}
    if isinstance(document, list):
        return [thaw(value) for value in document]
    return document


@dataclass(frozen=True)
class StoredProcess:
    """A process as stored: its definition, the core's snapshot, and bookkeeping for the log.

    ``definition`` is read-only (FrozenDict): one body is shared by every process made from
    it, so that reading ten thousand processes does not parse and hold ten thousand copies.
    ``state`` is the caller's own copy.
    """

    process_id: str
    definition: dict[str, Any]
    definition_hash: str
    state: dict[str, Any]
    version: int
    audit_seq: int
    created_at: datetime
    updated_at: datetime


class StoreError(Exception):
    """Something is wrong with the database itself; the message tells a secretariat what to do."""


class UnknownProcess(StoreError):
    """The process id names no stored process."""

    def __init__(self, process_id: str, known: Sequence[str]) -> None:
        self.process_id = process_id
        self.known = list(known)
        if not known:
            listing = "There are no processes stored yet."
        else:
            shown = ", ".join(known[:_KNOWN_SHOWN])
            more = len(known) - _KNOWN_SHOWN
            tail = f" and {more} more" if more > 0 else ""
            listing = f"Known processes: {shown}{tail}."
        super().__init__(f"There is no process called {process_id!r}. {listing}")


class VersionConflict(StoreError):
    """Someone else changed the process between our read and our write (optimistic locking)."""

    def __init__(self, process_id: str, expected: int, actual: int) -> None:
        self.process_id = process_id
        self.expected = expected
        self.actual = actual
        super().__init__(
            f"Process {process_id!r} was changed by someone else meanwhile (it is now at "
            f"version {actual}, this change was based on version {expected}). Nothing was "
            "written; reload the process and try again."
        )


class Store(Protocol):
    """The durable store seam: SqlStore in production, MemoryStore in tests."""

    def create(
        self,
        process_id: str,
        definition: Mapping[str, Any],
        definition_hash: str,
        state: Mapping[str, Any],
        entry: AuditDraft,
    ) -> bool:
        """Store a new process with ``entry`` as audit #1; False if it already existed."""
        ...

    def get(self, process_id: str) -> StoredProcess:
        """The stored process, or UnknownProcess."""
        ...

    def list(self) -> builtins.list[StoredProcess]:
        """All processes ordered by id, in one query."""
        ...

    def commit(
        self,
        process_id: str,
        expected_version: int,
        state: Mapping[str, Any] | None,
        entries: Sequence[AuditDraft],
        outbox: Sequence[OutboxDraft] = (),
    ) -> StoredProcess:
        """Atomically replace the state (if given, version-checked) and append the entries;
        ``outbox`` messages go in the same transaction, keys already written skipped."""
        ...

    def audit(self, process_id: str | None = None) -> builtins.list[AuditEntry]:
        """Audit entries ordered by process id, then seq."""
        ...

    def verify(self, process_id: str | None = None) -> builtins.list[str]:
        """Readable problems with the audit chain; [] when intact."""
        ...

    # --- the experts register (issue 4) ---
    #
    # A secretariat's change and its audit entries are one transaction (``audit=``): written
    # apart, a crash between the two would leave a change nobody can account for. The entries
    # are written whenever the call succeeds, also when it changes nothing (a pending message
    # re-queued), and not at all when it raises.

    def add_experts(
        self,
        process_id: str,
        drafts: Sequence[ExpertDraft],
        outbox: Sequence[OutboxDraft] = (),
        *,
        audit: Sequence[AuditDraft] = (),
    ) -> builtins.list[Expert]:
        """Register nominations, their outbox rows and the ``audit`` entries (appended to the
        process's chain) in one transaction, all or nothing; DuplicateExpert (nothing written)
        if an address repeats, ignoring case."""
        ...

    def experts(self, process_id: str, status: str | None = None) -> builtins.list[Expert]:
        """The register of ``process_id`` in nomination order, optionally of one status."""
        ...

    def set_expert_status(
        self, process_id: str, email: str, status: str, *, audit: Sequence[AuditDraft] = ()
    ) -> Expert:
        """Change one expert's status, with the ``audit`` entries in the same transaction;
        UnknownExpert (nothing written) if the address is not registered."""
        ...

    def erase_expert(
        self, process_id: str, email: str, *, audit: Sequence[AuditDraft] = ()
    ) -> int:
        """Scrub the expert's personal data and that of messages to them, with the ``audit``
        entries in the same transaction; rows touched."""
        ...

    # --- the outbox (issue 4) ---

    def enqueue(self, outbox: Sequence[OutboxDraft]) -> int:
        """Write messages, skipping keys already written; the number of new rows."""
        ...

    def claim(self, now: datetime, limit: int) -> builtins.list[OutboxItem]:
        """Atomically take up to ``limit`` due pending messages, oldest first, for sending."""
        ...

    def mark_sent(self, item_id: int, at: datetime, reply: str) -> None:
        """The server accepted the message."""
        ...

    def mark_sent_many(self, ids: Sequence[int], at: datetime, replies: Sequence[str]) -> int:
        """mark_sent for a batch in one transaction; the number of rows marked."""
        ...

    def mark_retry(self, item_id: int, error: str, next_attempt_at: datetime) -> bool:
        """A temporary failure: pending again from ``next_attempt_at``, attempts + 1."""
        ...

    def mark_failed(self, item_id: int, error: str, at: datetime) -> bool:
        """A permanent failure: failed, not retried automatically, attempts + 1."""
        ...

    def recover(self, now: datetime, stale_after: timedelta) -> builtins.list[OutboxItem]:
        """Messages 'sending' for longer than ``stale_after`` become 'uncertain' (not resent)."""
        ...

    def outbox(
        self, process_id: str | None = None, status: str | None = None
    ) -> builtins.list[OutboxItem]:
        """Messages by id, optionally of one process and/or status."""
        ...

    def requeue(
        self, item_id: int, now: datetime, *, audit: Sequence[AuditDraft] = ()
    ) -> OutboxItem:
        """A failed or uncertain message back to pending, due at ``now`` (attempts kept); the
        ``audit`` entries go to the message's process in the same transaction."""
        ...

    def close(self) -> None:
        """Release connections."""
        ...
