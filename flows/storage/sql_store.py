"""The production store: one SQL database (SQLite or PostgreSQL) offering every aggregate.

SqlStore composes one class per aggregate (processes.py, register.py, outbox.py) over one
Database (sql_base.py) and forwards to them, so that it satisfies each narrow protocol and
``Store``; callers type-hint the narrowest protocol they use.
"""

from __future__ import annotations

import builtins
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from datetime import datetime

from flows.storage.contributions import SqlContributions
from flows.storage.model import AuditDraft, AuditEntry, StoredProcess
from flows.storage.notify_model import (
    DeliveryRun,
    Expert,
    ExpertDraft,
    OutboxDraft,
    OutboxItem,
    Recovered,
)
from flows.storage.outbox import SqlOutbox
from flows.storage.processes import SqlProcesses
from flows.storage.register import SqlRegister
from flows.storage.sql_base import Database
from flows.storage.tokens import SqlTokens
from flows.storage.transaction import SqlTransaction
from states.contribution_types import Contribution


class SqlStore:
    """Processes and their audit log, the experts register and the outbox in one database."""

    def __init__(self, url: str, *, revision: str | None = None,
                 key: bytes | None = None) -> None:
        """Open ``url`` and bring its schema up to date (``revision``, ``key``: see Database)."""
        self.db = Database(url, revision=revision, key=key)
        self.url = self.db.url
        self.processes = SqlProcesses(self.db)
        self.register = SqlRegister(self.db)
        self.messages = SqlOutbox(self.db)
        self.contribution_register = SqlContributions(self.db)
        self.tokens = SqlTokens(self.db)  # members' tokens (issue 10)

    # --- ProcessStore (processes.py) ---

    def create(
        self,
        process_id: str,
        definition: Mapping[str, object],
        definition_hash: str,
        state: Mapping[str, object],
        entry: AuditDraft,
    ) -> bool:
        """See ProcessStore.create."""
        return self.processes.create(process_id, definition, definition_hash, state, entry)

    def get(self, process_id: str) -> StoredProcess:
        """See ProcessStore.get."""
        return self.processes.get(process_id)

    def list(self) -> builtins.list[StoredProcess]:
        """See ProcessStore.list."""
        return self.processes.list()

    def transaction(self, process_id: str) -> AbstractContextManager[SqlTransaction]:
        """See ProcessStore.transaction."""
        return self.processes.transaction(process_id)

    def commit(
        self,
        process_id: str,
        expected_version: int,
        state: Mapping[str, object] | None,
        entries: Sequence[AuditDraft],
        outbox: Sequence[OutboxDraft] = (),
    ) -> StoredProcess:
        """See ProcessStore.commit."""
        return self.processes.commit(process_id, expected_version, state, entries, outbox)

    def audit(self, process_id: str | None = None) -> builtins.list[AuditEntry]:
        """See ProcessStore.audit."""
        return self.processes.audit(process_id)

    def verify(self, process_id: str | None = None) -> builtins.list[str]:
        """See ProcessStore.verify."""
        return self.processes.verify(process_id)

    # --- RegisterStore (register.py) ---

    def add_experts(
        self,
        process_id: str,
        drafts: Sequence[ExpertDraft],
        outbox: Sequence[OutboxDraft] = (),
        *,
        audit: Sequence[AuditDraft] = (),
    ) -> builtins.list[Expert]:
        """See RegisterStore.add_experts."""
        return self.register.add_experts(process_id, drafts, outbox, audit=audit)

    def experts(self, process_id: str, status: str | None = None) -> builtins.list[Expert]:
        """See RegisterStore.experts."""
        return self.register.experts(process_id, status)

    def set_expert_status(
        self, process_id: str, email: str, status: str, *, audit: Sequence[AuditDraft] = ()
    ) -> Expert:
        """See RegisterStore.set_expert_status."""
        return self.register.set_expert_status(process_id, email, status, audit=audit)

    def erase_expert(
        self, process_id: str, email: str, *, audit: Sequence[AuditDraft] = ()
    ) -> int:
        """See RegisterStore.erase_expert."""
        return self.register.erase_expert(process_id, email, audit=audit)

    # --- OutboxStore (outbox.py) ---

    def enqueue(self, outbox: Sequence[OutboxDraft]) -> int:
        """See OutboxStore.enqueue."""
        return self.messages.enqueue(outbox)

    def claim(self, now: datetime, limit: int, *,
              run: str | None = None) -> builtins.list[OutboxItem]:
        """See OutboxStore.claim."""
        return self.messages.claim(now, limit, run=run)

    def record_and_claim(self, sent: Sequence[tuple[int, str]], at: datetime, now: datetime,
                         limit: int, *, run: str | None = None) -> builtins.list[OutboxItem]:
        """See OutboxStore.record_and_claim."""
        return self.messages.record_and_claim(sent, at, now, limit, run=run)

    def mark_sent(self, item_id: int, at: datetime, reply: str) -> None:
        """See OutboxStore.mark_sent."""
        self.messages.mark_sent(item_id, at, reply)

    def mark_sent_many(self, ids: Sequence[int], at: datetime, replies: Sequence[str]) -> int:
        """See OutboxStore.mark_sent_many."""
        return self.messages.mark_sent_many(ids, at, replies)

    def mark_retry(self, item_id: int, error: str, next_attempt_at: datetime, *,
                   maybe_sent: bool = False) -> bool:
        """See OutboxStore.mark_retry."""
        return self.messages.mark_retry(item_id, error, next_attempt_at, maybe_sent=maybe_sent)

    def mark_held(self, item_id: int, error: str) -> bool:
        """See OutboxStore.mark_held."""
        return self.messages.mark_held(item_id, error)

    def mark_failed(self, item_id: int, error: str, at: datetime) -> bool:
        """See OutboxStore.mark_failed."""
        return self.messages.mark_failed(item_id, error, at)

    def start_run(self, run: DeliveryRun) -> None:
        """See OutboxStore.start_run."""
        self.messages.start_run(run)

    def renew_run(self, run_id: str, lease_until: datetime) -> bool:
        """See OutboxStore.renew_run."""
        return self.messages.renew_run(run_id, lease_until)

    def delivery_runs(self) -> builtins.list[DeliveryRun]:
        """See OutboxStore.delivery_runs."""
        return self.messages.delivery_runs()

    def recover(self, now: datetime, dead: Sequence[str], *, resend: bool) -> Recovered:
        """See OutboxStore.recover."""
        return self.messages.recover(now, dead, resend=resend)

    def outbox(
        self, process_id: str | None = None, status: str | None = None
    ) -> builtins.list[OutboxItem]:
        """See OutboxStore.outbox."""
        return self.messages.outbox(process_id, status)

    def requeue(
        self, item_id: int, now: datetime, *, audit: Sequence[AuditDraft] = ()
    ) -> OutboxItem:
        """See OutboxStore.requeue."""
        return self.messages.requeue(item_id, now, audit=audit)

    # --- ContributionStore (contributions.py) ---

    def add_contributions(
        self, process_id: str, items: Sequence[Contribution], *,
        audit: Sequence[AuditDraft] = (),
    ) -> builtins.list[Contribution]:
        """See ContributionStore.add_contributions."""
        return self.contribution_register.add_contributions(process_id, items, audit=audit)

    def contributions(self, process_id: str,
                      cycle: str | None = None) -> builtins.list[Contribution]:
        """See ContributionStore.contributions."""
        return self.contribution_register.contributions(process_id, cycle)

    # --- the connection pool ---

    def close(self) -> None:
        """Close every pooled connection."""
        self.db.close()

    def __enter__(self) -> SqlStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"SqlStore({self.url!r})"
