"""MemoryStore's experts register and outbox: SqlStore's behaviour (sql_notify.py), in dicts.

Every rule here mirrors a SQL statement there; tests run the same cases against both.
A change's ``audit`` entries are appended (MemoryStore._append_audit, all or nothing) after
every check that can refuse the change and before the change itself, so a refused change
leaves no entry and an entry that cannot be sealed leaves no change.
"""

from __future__ import annotations

import builtins
import dataclasses
import threading
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from flows.storage.chain import to_document, to_utc
from flows.storage.model import AuditDraft, UnknownProcess
from flows.storage.notify_model import (
    ERASED,
    ERASED_PENDING_ERROR,
    ERASED_TEXT_FIELDS,
    EXPERT_STATUSES,
    OUTBOX_STATUSES,
    Expert,
    ExpertDraft,
    OutboxDraft,
    OutboxItem,
    UnknownExpert,
    UnknownOutboxItem,
    addressed_to,
    check_choice,
    erased_email,
    normalise_email,
    not_requeueable,
    refuse_duplicates,
)


def prepare_outbox(drafts: Iterable[OutboxDraft]) -> builtins.list[OutboxDraft]:
    """Drafts as stored: JSON-copied context and UTC time (checked before any change)."""
    return [
        dataclasses.replace(
            o,
            context=to_document(o.context, f"context of outbox message {o.key!r}"),
            created_at=to_utc(o.created_at),
        )
        for o in drafts
    ]


class MemoryNotifications:
    """The experts register and the outbox in dicts; mixed into MemoryStore (its lock)."""

    _lock: threading.Lock
    _rows: dict[str, Any]

    def _init_notifications(self) -> None:
        self._experts: dict[int, Expert] = {}
        self._outbox: dict[int, OutboxItem] = {}
        self._keys: set[str] = set()
        self._next_expert = self._next_item = 1

    # --- experts -------------------------------------------------------------------------

    def add_experts(
        self,
        process_id: str,
        drafts: Sequence[ExpertDraft],
        outbox: Sequence[OutboxDraft] = (),
        *,
        audit: Sequence[AuditDraft] = (),
    ) -> builtins.list[Expert]:
        """Register nominations (with their outbox rows and ``audit`` entries) all or nothing;
        DuplicateExpert if an address repeats, in the batch or against the register."""
        emails = [normalise_email(x.email) for x in drafts]
        messages = prepare_outbox(outbox)
        with self._lock:
            self._require(process_id)
            stored = {e.email for e in self._experts.values() if e.process_id == process_id}
            refuse_duplicates(process_id, emails, stored)
            self._append_audit(process_id, audit)
            added = []
            for email, x in zip(emails, drafts, strict=True):
                fields = {f.name: getattr(x, f.name) for f in dataclasses.fields(ExpertDraft)}
                fields.update(email=email, nominated_at=to_utc(x.nominated_at))
                expert = Expert(**fields, id=self._next_expert, process_id=process_id, erased=False)
                self._experts[expert.id] = expert
                self._next_expert += 1
                added.append(expert)
            self._insert_outbox(messages)
            return added

    def experts(self, process_id: str, status: str | None = None) -> builtins.list[Expert]:
        """The register of ``process_id`` in the order of nomination, optionally by status."""
        if status is not None:
            check_choice(status, EXPERT_STATUSES, "expert status")
        with self._lock:
            self._require(process_id)
            return [
                e
                for _, e in sorted(self._experts.items())
                if e.process_id == process_id and status in (None, e.status)
            ]

    def set_expert_status(
        self, process_id: str, email: str, status: str, *, audit: Sequence[AuditDraft] = ()
    ) -> Expert:
        """Change one expert's status (nominated, confirmed, withdrawn), with the ``audit``
        entries."""
        check_choice(status, EXPERT_STATUSES, "expert status")
        with self._lock:
            expert = self._find_expert(process_id, normalise_email(email))
            if expert is None or expert.erased:
                self._require(process_id)
                raise UnknownExpert(process_id, email)
            self._append_audit(process_id, audit)
            changed = self._experts[expert.id] = dataclasses.replace(expert, status=status)
            return changed

    def erase_expert(
        self, process_id: str, email: str, *, audit: Sequence[AuditDraft] = ()
    ) -> int:
        """Scrub an expert's personal data and that of the messages to them, with the ``audit``
        entries; rows touched."""
        norm = normalise_email(email)
        now = datetime.now(UTC)
        with self._lock:
            if audit:
                self._append_audit(process_id, audit)  # UnknownProcess, as SqlStore's lock
            expert = self._find_expert(process_id, norm)
            expert_id = None if expert is None else expert.id
            touched = 0
            if expert is not None:
                scrubbed: dict[str, Any] = dict.fromkeys(ERASED_TEXT_FIELDS, ERASED)
                self._experts[expert.id] = dataclasses.replace(
                    expert,
                    email=erased_email(expert.id),
                    gender=None,
                    timezone=None,
                    erased=True,
                    **scrubbed,
                )
                touched += 1
            to = erased_email(expert_id)
            for item_id, item in sorted(self._outbox.items()):
                if item.process_id != process_id or not addressed_to(
                    item.email, item.recipient, norm, expert_id
                ):
                    continue
                # The reply and last error go too: servers repeat the address in them.
                changes: dict[str, Any] = {"email": to, "name": ERASED, "context": {"erased": True},
                                           "last_error": None, "reply": None}
                if item.status == "pending":
                    changes.update(status="failed", last_error=ERASED_PENDING_ERROR, failed_at=now)
                self._outbox[item_id] = dataclasses.replace(item, **changes)
                touched += 1
            return touched

    # --- outbox --------------------------------------------------------------------------

    def enqueue(self, outbox: Sequence[OutboxDraft]) -> int:
        """Write messages to send, skipping keys already there; the number of new rows."""
        messages = prepare_outbox(outbox)
        with self._lock:
            return self._insert_outbox(messages)

    def claim(self, now: datetime, limit: int) -> builtins.list[OutboxItem]:
        """Take up to ``limit`` pending messages due at ``now``, oldest first, for sending."""
        if limit < 1:
            raise ValueError(f"claim limit must be at least 1, not {limit}")
        at = to_utc(now)
        with self._lock:
            due = sorted(
                (
                    i
                    for i in self._outbox.values()
                    if i.status == "pending" and i.next_attempt_at <= at
                ),
                key=lambda i: (i.next_attempt_at, i.id),
            )[:limit]
            claimed = []
            for item in due:
                taken = dataclasses.replace(item, status="sending", claimed_at=at)
                self._outbox[item.id] = taken
                claimed.append(_copy(taken))
            return claimed

    def mark_sent(self, item_id: int, at: datetime, reply: str) -> None:
        """Record that the server accepted the message (its reply kept for the record)."""
        sent = to_utc(at)
        with self._lock:
            self._mark(
                item_id,
                ("pending", "sending", "failed", "uncertain"),
                "sent",
                sent_at=sent,
                reply=reply,
            )

    def mark_sent_many(self, ids: Sequence[int], at: datetime, replies: Sequence[str]) -> int:
        """mark_sent for a whole batch at once; the number of rows marked (unknown ids and
        rows already sent are passed over)."""
        if len(ids) != len(replies):
            raise ValueError(f"{len(ids)} ids but {len(replies)} replies; give one reply per id")
        sent = to_utc(at)
        marked = 0
        with self._lock:
            for item_id, reply in zip(ids, replies, strict=True):
                item = self._outbox.get(item_id)
                if item is not None and item.status != "sent":
                    self._outbox[item_id] = dataclasses.replace(
                        item, status="sent", sent_at=sent, reply=reply, attempts=item.attempts + 1
                    )
                    marked += 1
        return marked

    def mark_retry(self, item_id: int, error: str, next_attempt_at: datetime) -> bool:
        """A temporary failure: back to pending, due again at ``next_attempt_at``."""
        due = to_utc(next_attempt_at)
        with self._lock:
            return self._mark(
                item_id, ("sending", "uncertain"), "pending", last_error=error, next_attempt_at=due
            )

    def mark_failed(self, item_id: int, error: str, at: datetime) -> bool:
        """A permanent failure: never retried automatically (requeue() can, on request)."""
        failed = to_utc(at)
        with self._lock:
            return self._mark(
                item_id, ("sending", "uncertain"), "failed", last_error=error, failed_at=failed
            )

    def recover(self, now: datetime, stale_after: timedelta) -> builtins.list[OutboxItem]:
        """Messages out for sending longer than ``stale_after`` become 'uncertain'."""
        cutoff = to_utc(now) - stale_after
        with self._lock:
            stale = [
                i
                for _, i in sorted(self._outbox.items())
                if i.status == "sending" and i.claimed_at is not None and i.claimed_at < cutoff
            ]
            for item in stale:
                self._outbox[item.id] = dataclasses.replace(item, status="uncertain")
            return [_copy(self._outbox[i.id]) for i in stale]

    def outbox(
        self, process_id: str | None = None, status: str | None = None
    ) -> builtins.list[OutboxItem]:
        """Messages by id, optionally of one process and/or in one status."""
        if status is not None:
            check_choice(status, OUTBOX_STATUSES, "outbox status")
        with self._lock:
            return [
                _copy(i)
                for _, i in sorted(self._outbox.items())
                if process_id in (None, i.process_id) and status in (None, i.status)
            ]

    def requeue(
        self, item_id: int, now: datetime, *, audit: Sequence[AuditDraft] = ()
    ) -> OutboxItem:
        """Put a failed or uncertain message back in line, due at ``now`` (attempts kept);
        the ``audit`` entries go to the message's process."""
        at = to_utc(now)
        with self._lock:
            item = self._outbox.get(item_id)
            if item is None:
                raise UnknownOutboxItem(item_id)
            if item.status not in ("pending", "failed", "uncertain"):
                raise not_requeueable(item)
            self._append_audit(item.process_id, audit)
            if item.status == "pending":
                return _copy(item)
            back = dataclasses.replace(item, status="pending", next_attempt_at=at, failed_at=None)
            self._outbox[item_id] = back
            return _copy(back)

    # --- under the lock ------------------------------------------------------------------

    def _append_audit(self, process_id: str, drafts: Sequence[AuditDraft]) -> None:
        """Chain ``drafts`` onto ``process_id``'s log, all or nothing (MemoryStore's chain)."""
        raise NotImplementedError("MemoryStore keeps the audit chain")

    def _require(self, process_id: str) -> None:
        if process_id not in self._rows:
            raise UnknownProcess(process_id, sorted(self._rows))

    def _find_expert(self, process_id: str, email: str) -> Expert | None:
        for expert in self._experts.values():
            if expert.process_id == process_id and expert.email == email:
                return expert
        return None

    def _insert_outbox(self, messages: Iterable[OutboxDraft]) -> int:
        """Add prepared drafts whose keys are new; the number added."""
        added = 0
        for o in messages:
            if o.key in self._keys:
                continue
            fields = {f.name: getattr(o, f.name) for f in dataclasses.fields(OutboxDraft)}
            self._outbox[self._next_item] = OutboxItem(
                **fields,
                id=self._next_item,
                status="pending",
                attempts=0,
                next_attempt_at=o.created_at,
                last_error=None,
                claimed_at=None,
                sent_at=None,
                reply=None,
            )
            self._keys.add(o.key)
            self._next_item += 1
            added += 1
        return added

    def _mark(self, item_id: int, allowed: Sequence[str], status: str, **changes: Any) -> bool:
        """Move one item to ``status`` if it is in an ``allowed`` one; attempts + 1."""
        item = self._outbox.get(item_id)
        if item is None:
            raise UnknownOutboxItem(item_id)
        if item.status not in allowed:
            return False
        self._outbox[item_id] = dataclasses.replace(
            item, status=status, attempts=item.attempts + 1, **changes
        )
        return True


def _copy(item: OutboxItem) -> OutboxItem:
    """A copy whose context the caller may change without changing the store."""
    return dataclasses.replace(item, context=to_document(item.context, "outbox context"))
