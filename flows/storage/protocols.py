"""The store's seams, one protocol per aggregate (STYLE 14): a caller names the narrowest one.

``ProcessStore`` is the processes and their audit chain, ``RegisterStore`` the experts
register, ``OutboxStore`` the messages to send. ``Store`` is all three, as SqlStore offers
them; the next aggregates (contributions, opinions) add a protocol of their own here.
"""

from __future__ import annotations

import builtins
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Protocol

from flows.storage.model import AuditDraft, AuditEntry, StoredProcess
from flows.storage.notify_model import (
    DeliveryRun,
    Expert,
    ExpertDraft,
    OutboxDraft,
    OutboxItem,
    Recovered,
)
from states.contribution_types import Contribution


class ProcessTransaction(Protocol):
    """One process in one write transaction: read it, decide, write once (or not at all).

    The database commits when the ``with`` block ends without an exception and rolls back
    otherwise, so a transition's read, its outbox plan's register read and its write are one
    connection and one transaction.
    """

    def get(self) -> StoredProcess:
        """The process, locked until the block ends; UnknownProcess if it is not stored."""
        ...

    def claim(self, listed: StoredProcess, *, wait: bool = True) -> StoredProcess | None:
        """Lock the process a tick read as ``listed``: ``listed`` if it has not moved since,
        else the process as it stands; without ``wait``, None when another transaction holds
        it (the tick passes it over and comes back to it)."""
        ...

    def experts(self, status: str | None = None) -> builtins.list[Expert]:
        """The process's register in nomination order, read in this transaction."""
        ...

    def contributions(self, cycles: Sequence[str]) -> builtins.list[Contribution]:
        """The contributions register of these cycles, read in this transaction."""
        ...

    def add_contributions(self, items: Sequence[Contribution]) -> builtins.list[Contribution]:
        """Write contributions in this transaction (before ``commit``, which writes their
        audit entries); the stored ones, with their ids."""
        ...

    def commit(
        self,
        state: Mapping[str, object] | None,
        entries: Sequence[AuditDraft],
        outbox: Sequence[OutboxDraft] = (),
        *,
        expected_version: int | None = None,
        definition: tuple[Mapping[str, object], str] | None = None,
    ) -> StoredProcess:
        """Write the state (if given) and the entries and messages; once per transaction.

        ``expected_version`` (default: the version ``get`` read) is checked against the row:
        VersionConflict, nothing written, when someone else moved it meanwhile.
        ``definition`` (body, hash), with a state: the process runs on this definition from
        now on (a revision); the body is kept once per hash, shared like any other.
        """
        ...


class ProcessStore(Protocol):
    """Processes as opaque JSON documents with a tamper-evident audit log."""

    def create(
        self,
        process_id: str,
        definition: Mapping[str, object],
        definition_hash: str,
        state: Mapping[str, object],
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

    def transaction(self, process_id: str) -> AbstractContextManager[ProcessTransaction]:
        """A write transaction on one process (see ProcessTransaction)."""
        ...

    def commit(
        self,
        process_id: str,
        expected_version: int,
        state: Mapping[str, object] | None,
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


class RegisterStore(Protocol):
    """The experts register (issue 4).

    A secretariat's change and its audit entries are one transaction (``audit=``): written
    apart, a crash between the two would leave a change nobody can account for. The entries
    are written whenever the call succeeds, also when it changes nothing, and not at all when
    it raises.
    """

    def add_experts(
        self,
        process_id: str,
        drafts: Sequence[ExpertDraft],
        outbox: Sequence[OutboxDraft] = (),
        *,
        audit: Sequence[AuditDraft] = (),
    ) -> builtins.list[Expert]:
        """Register nominations, their outbox rows and the ``audit`` entries in one
        transaction, all or nothing; DuplicateExpert (nothing written) if an address
        repeats, ignoring case."""
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


class OutboxStore(Protocol):
    """The outbox of messages to send, drained by the deliverer (issue 4)."""

    def enqueue(self, outbox: Sequence[OutboxDraft]) -> int:
        """Write messages, skipping keys already written; the number of new rows."""
        ...

    def claim(self, now: datetime, limit: int, *,
              run: str | None = None) -> builtins.list[OutboxItem]:
        """Atomically take up to ``limit`` due pending messages, oldest first, for sending
        (held by delivery run ``run``)."""
        ...

    def record_and_claim(self, sent: Sequence[tuple[int, str]], at: datetime, now: datetime,
                         limit: int, *, run: str | None = None) -> builtins.list[OutboxItem]:
        """Mark ``sent`` (id, reply) rows sent and claim up to ``limit`` more (0: none) for
        ``run``, in one transaction."""
        ...

    def mark_sent(self, item_id: int, at: datetime, reply: str) -> None:
        """The server accepted the message."""
        ...

    def mark_sent_many(self, ids: Sequence[int], at: datetime, replies: Sequence[str]) -> int:
        """mark_sent for a batch in one transaction; the number of rows marked."""
        ...

    def mark_retry(self, item_id: int, error: str, next_attempt_at: datetime, *,
                   maybe_sent: bool = False) -> bool:
        """A temporary failure: pending again from ``next_attempt_at``, attempts + 1 (and
        sends + 1 if ``maybe_sent``: the server may have kept it)."""
        ...

    def mark_held(self, item_id: int, error: str) -> bool:
        """The server may have kept it and it is not to be resent: 'uncertain', sends + 1."""
        ...

    def mark_failed(self, item_id: int, error: str, at: datetime) -> bool:
        """A permanent failure: failed, not retried automatically, attempts + 1."""
        ...

    def start_run(self, run: DeliveryRun) -> None:
        """Record a delivery run and its lease, before it claims anything."""
        ...

    def renew_run(self, run_id: str, lease_until: datetime) -> bool:
        """Extend a run's lease; False if its row is gone (found dead by another run)."""
        ...

    def delivery_runs(self) -> builtins.list[DeliveryRun]:
        """The runs that have a lease row."""
        ...

    def recover(self, now: datetime, dead: Sequence[str], *, resend: bool) -> Recovered:
        """Rows 'sending' for a dead run (or a run without a lease row) back to pending
        (``resend``) or to uncertain, sends + 1; the dead runs forgotten."""
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


class ContributionStore(Protocol):
    """The contributions register (issue 8): what was received on each draft, on time or late.

    An addition and its audit entries are one transaction (``audit=``), all or nothing.
    """

    def add_contributions(
        self, process_id: str, items: Sequence[Contribution], *,
        audit: Sequence[AuditDraft] = (),
    ) -> builtins.list[Contribution]:
        """Add contributions (decided on by states.contributions.receive) and append the
        ``audit`` entries in one transaction; the stored ones, with their ids."""
        ...

    def contributions(self, process_id: str,
                      cycle: str | None = None) -> builtins.list[Contribution]:
        """The register of ``process_id`` in the order recorded, optionally of one cycle."""
        ...


class Store(ProcessStore, RegisterStore, OutboxStore, ContributionStore, Protocol):
    """Every aggregate at once, as one database offers them (SqlStore)."""

    def close(self) -> None:
        """Release connections."""
        ...


__all__ = [
    "ContributionStore",
    "OutboxStore",
    "ProcessStore",
    "ProcessTransaction",
    "RegisterStore",
    "Store",
]
