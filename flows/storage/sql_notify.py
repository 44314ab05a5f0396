"""SqlStore's experts register and outbox (issue 4), on the driver connection like commit().

The deliverer's loop (claim a batch, send, mark it sent) is a hot path: a 5,000-message run
makes thousands of these calls, so they are single statements on the driver (driver.py), and
``mark_sent_many`` records a whole batch in one transaction (one fsync on SQLite instead of one
per message).

Claiming is where two deliverers could collide. On PostgreSQL the inner select takes its rows
FOR UPDATE SKIP LOCKED, so a second deliverer passes over rows the first is claiming; on SQLite
the write transaction starts with BEGIN IMMEDIATE, so claims run one after the other. Either
way the UPDATE re-checks status = 'pending', so a row is never handed out twice.

A secretariat's change to the register or the outbox takes its audit entries (``audit=``) into
the same transaction. Such a change locks the process row first, as commit() does, and only
then the register or outbox rows: one lock order for every writer, so none deadlocks another.
"""

from __future__ import annotations

import builtins
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from flows.storage import driver
from flows.storage.chain import seal_all, to_document, to_utc
from flows.storage.db import guard
from flows.storage.model import AuditDraft, AuditEntry, StoreError, UnknownProcess
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

_EXPERT_FIELDS = (
    "email, first_name, last_name, entity, nominated_by, country, region, stakeholder_type, "
    "gender, language, timezone, status, nominated_at, late"
)
EXPERT_COLUMNS = f"id, process_id, {_EXPERT_FIELDS}, erased"
ADD_EXPERT = (
    f"INSERT INTO experts (process_id, {_EXPERT_FIELDS}, erased) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id"
)
LOCK_PROCESS = "SELECT process_id FROM processes WHERE process_id = ?"
CHAIN_HEAD = "SELECT audit_seq, head_hash FROM processes WHERE process_id = ?"
STORED_EMAILS = "SELECT email FROM experts WHERE process_id = ?"
EXPERTS = f"SELECT {EXPERT_COLUMNS} FROM experts WHERE process_id = ?"
SET_STATUS = (
    "UPDATE experts SET status = ? WHERE process_id = ? AND email = ? AND erased = ? "
    f"RETURNING {EXPERT_COLUMNS}"
)
FIND_EXPERT = "SELECT id FROM experts WHERE process_id = ? AND email = ?"
ERASE_EXPERT = (
    "UPDATE experts SET email = ?, "
    + ", ".join(f"{name} = ?" for name in ERASED_TEXT_FIELDS)
    + ", gender = NULL, timezone = NULL, erased = ? WHERE id = ?"
)

_DRAFT_FIELDS = (
    '"key", process_id, event, recipient, email, name, language, timezone, context, created_at'
)
OUTBOX_COLUMNS = (
    f"id, {_DRAFT_FIELDS}, status, attempts, next_attempt_at, last_error, claimed_at, "
    "sent_at, reply, failed_at"
)
# ON CONFLICT DO NOTHING: a key already written (a retried transition, a resumed run) is
# skipped, never an error and never a second message.
ENQUEUE = (
    f"INSERT INTO outbox ({_DRAFT_FIELDS}, status, attempts, next_attempt_at) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'pending', 0, ?) "
    'ON CONFLICT ("key") DO NOTHING'
)
# The rows are chosen in a materialised CTE, evaluated once: as "id IN (SELECT … LIMIT n FOR
# UPDATE SKIP LOCKED)" PostgreSQL may re-run the subquery while updating and hand out more than
# n rows. The UPDATE re-checks the status (belt and braces).
CLAIM = (
    "WITH due AS MATERIALIZED (SELECT id FROM outbox "
    "WHERE status = 'pending' AND next_attempt_at <= ? "
    "ORDER BY next_attempt_at, id LIMIT ?{skip_locked}) "
    "UPDATE outbox SET status = 'sending', claimed_at = ? FROM due "
    "WHERE outbox.id = due.id AND outbox.status = 'pending' "
    "RETURNING " + ", ".join(f"outbox.{c.strip()}" for c in OUTBOX_COLUMNS.split(","))
)
# Sent is the truth whatever the row says meanwhile (a slow deliverer after recover(), say):
# marking it stops any re-send. Only a row already sent is left alone.
MARK_SENT = (
    "UPDATE outbox SET status = 'sent', sent_at = ?, reply = ?, attempts = attempts + 1 "
    "WHERE id = ? AND status <> 'sent'"
)
# A retry or failure is only recorded for a row that is out for sending (or was, and was
# then found stale): it must not undo a 'sent'.
MARK_RETRY = (
    "UPDATE outbox SET status = 'pending', last_error = ?, next_attempt_at = ?, "
    "attempts = attempts + 1 WHERE id = ? AND status IN ('sending', 'uncertain')"
)
MARK_FAILED = (
    "UPDATE outbox SET status = 'failed', last_error = ?, failed_at = ?, "
    "attempts = attempts + 1 WHERE id = ? AND status IN ('sending', 'uncertain')"
)
RECOVER = (
    "UPDATE outbox SET status = 'uncertain' WHERE status = 'sending' AND claimed_at < ? "
    f"RETURNING {OUTBOX_COLUMNS}"
)
ITEM = f"SELECT {OUTBOX_COLUMNS} FROM outbox WHERE id = ?"
ITEM_PROCESS = "SELECT process_id FROM outbox WHERE id = ?"
REQUEUE = (
    "UPDATE outbox SET status = 'pending', next_attempt_at = ?, failed_at = NULL "
    f"WHERE id = ? RETURNING {OUTBOX_COLUMNS}"
)
LIST_OUTBOX = f"SELECT {OUTBOX_COLUMNS} FROM outbox"
TO_ERASE = "SELECT id, email, recipient, status FROM outbox WHERE process_id = ?"
# Erasure clears the server's reply and the last error too: servers repeat the recipient's
# address in them ('550 5.1.1 <ana.silva@example.br>: Recipient address rejected').
SCRUB = (
    "UPDATE outbox SET email = ?, name = ?, context = ?, status = ?, last_error = ?, "
    "failed_at = ?, reply = NULL WHERE id = ?"
)
SCRUB_KEEP_STATUS = (
    "UPDATE outbox SET email = ?, name = ?, context = ?, last_error = NULL, reply = NULL "
    "WHERE id = ?"
)


def outbox_params(d: driver.Driver, drafts: Iterable[OutboxDraft]) -> list[tuple[Any, ...]]:
    """ENQUEUE parameters; contexts are checked as JSON before any transaction opens."""
    rows = []
    for o in drafts:
        context = to_document(o.context, f"context of outbox message {o.key!r}")
        at = d.time_in(to_utc(o.created_at))
        rows.append(
            (
                *(o.key, o.process_id, o.event, o.recipient, o.email, o.name, o.language),
                *(o.timezone, d.json_in(context), at, at),
            )
        )
    return rows


def insert_outbox(d: driver.Driver, cursor: Any, params: Sequence[tuple[Any, ...]]) -> int:
    """Insert prepared outbox rows in the cursor's transaction; the number actually new."""
    if not params:
        return 0
    cursor.executemany(d.sql(ENQUEUE), params)
    return int(cursor.rowcount)


def log_row(d: driver.Driver, entry: AuditEntry) -> tuple[Any, ...]:
    """driver.LOG parameters for one sealed audit entry."""
    return (
        *(entry.process_id, entry.seq, d.time_in(entry.at), entry.actor, entry.kind),
        *(entry.trigger, entry.from_state, entry.to_state, entry.reason),
        *(d.json_in(entry.inputs), entry.prev_hash, entry.hash),
    )


def lock_chain(d: driver.Driver, cursor: Any, process_id: str) -> tuple[int, str]:
    """Lock the process row in the cursor's transaction; its (audit_seq, head_hash)."""
    head = cursor.execute(d.sql(CHAIN_HEAD + d.lock), (process_id,)).fetchone()
    if head is None:
        raise UnknownProcess(process_id, _known(d, cursor))
    return int(head[0]), str(head[1])


def append_audit(
    d: driver.Driver,
    cursor: Any,
    process_id: str,
    head: tuple[int, str],
    drafts: Sequence[AuditDraft],
) -> None:
    """Chain ``drafts`` after ``head`` (from lock_chain, same transaction), as commit() with
    no state does: the entries, then the process row's count and last hash."""
    audit_seq, head_hash = head
    sealed = seal_all(process_id, audit_seq, head_hash, drafts)
    if not sealed:
        return
    now = d.time_in(datetime.now(UTC))
    params = (audit_seq + len(sealed), sealed[-1].hash, now, process_id, audit_seq)
    cursor.execute(d.sql(driver.APPEND_ONLY), params)
    if cursor.rowcount != 1:  # belt and braces: the row is locked
        raise StoreError(
            f"Process {process_id!r} changed while its audit entries were being written, "
            "although it was locked. Nothing was written; try again."
        )
    cursor.executemany(d.sql(driver.LOG), [log_row(d, e) for e in sealed])


class SqlNotifications:
    """The experts register and the outbox; mixed into SqlStore, which provides the driver."""

    url: str
    _driver: driver.Driver

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
        d = self._driver
        emails = [normalise_email(x.email) for x in drafts]
        messages = outbox_params(d, outbox)
        with guard(self.url), d.cursor(write=True) as cursor:
            head = lock_chain(d, cursor, process_id)
            stored = {e for (e,) in cursor.execute(d.sql(STORED_EMAILS), (process_id,))}
            refuse_duplicates(process_id, emails, stored)
            added = []
            for email, x in zip(emails, drafts, strict=True):
                row = (
                    *(process_id, email, x.first_name, x.last_name, x.entity, x.nominated_by),
                    *(x.country, x.region, x.stakeholder_type, x.gender, x.language),
                    *(x.timezone, x.status, d.time_in(to_utc(x.nominated_at)), x.late, False),
                )
                (expert_id,) = cursor.execute(d.sql(ADD_EXPERT), row).fetchone()
                added.append(_expert(d, (expert_id, *row)))
            insert_outbox(d, cursor, messages)
            append_audit(d, cursor, process_id, head, audit)
        return added

    def experts(self, process_id: str, status: str | None = None) -> builtins.list[Expert]:
        """The register of ``process_id`` in the order of nomination, optionally by status."""
        d = self._driver
        query, params = EXPERTS, [process_id]
        if status is not None:
            check_choice(status, EXPERT_STATUSES, "expert status")
            query, params = query + " AND status = ?", [process_id, status]
        with guard(self.url), d.cursor() as cursor:
            rows = cursor.execute(d.sql(query + " ORDER BY id"), params).fetchall()
            if not rows:
                _require(d, cursor, process_id)
        return [_expert(d, row) for row in rows]

    def set_expert_status(
        self, process_id: str, email: str, status: str, *, audit: Sequence[AuditDraft] = ()
    ) -> Expert:
        """Change one expert's status (nominated, confirmed, withdrawn), with the ``audit``
        entries in the same transaction."""
        check_choice(status, EXPERT_STATUSES, "expert status")
        d = self._driver
        with guard(self.url), d.cursor(write=True) as cursor:
            head = lock_chain(d, cursor, process_id) if audit else None
            params = (status, process_id, normalise_email(email), False)
            row = cursor.execute(d.sql(SET_STATUS), params).fetchone()
            if row is None:
                _require(d, cursor, process_id)
                raise UnknownExpert(process_id, email)
            if head is not None:
                append_audit(d, cursor, process_id, head, audit)
        return _expert(d, row)

    def erase_expert(
        self, process_id: str, email: str, *, audit: Sequence[AuditDraft] = ()
    ) -> int:
        """Scrub an expert's personal data and that of the messages to them, with the ``audit``
        entries in the same transaction; rows touched.

        The audit log holds no personal data and is left alone, so its chain stays valid.
        Messages not yet sent are cancelled (failed, with ERASED_PENDING_ERROR): they could
        only go to the erased address now.
        """
        d = self._driver
        norm = normalise_email(email)
        now = d.time_in(datetime.now(UTC))
        with guard(self.url), d.cursor(write=True) as cursor:
            head = lock_chain(d, cursor, process_id) if audit else None
            found = cursor.execute(d.sql(FIND_EXPERT), (process_id, norm)).fetchone()
            expert_id = None if found is None else int(found[0])
            touched = 0
            if expert_id is not None:
                params = (erased_email(expert_id), *(ERASED for _ in ERASED_TEXT_FIELDS), True)
                cursor.execute(d.sql(ERASE_EXPERT), (*params, expert_id))
                touched += 1
            to = erased_email(expert_id)
            context = d.json_in({"erased": True})
            scrub, keep = [], []
            for item_id, address, recipient, status in cursor.execute(
                d.sql(TO_ERASE + d.lock), (process_id,)
            ).fetchall():
                if not addressed_to(address, recipient, norm, expert_id):
                    continue
                if status == "pending":
                    scrub.append(
                        (to, ERASED, context, "failed", ERASED_PENDING_ERROR, now, item_id)
                    )
                else:
                    keep.append((to, ERASED, context, item_id))
            if scrub:
                cursor.executemany(d.sql(SCRUB), scrub)
            if keep:
                cursor.executemany(d.sql(SCRUB_KEEP_STATUS), keep)
            touched += len(scrub) + len(keep)
            if head is not None:
                append_audit(d, cursor, process_id, head, audit)
        return touched

    # --- outbox --------------------------------------------------------------------------

    def enqueue(self, outbox: Sequence[OutboxDraft]) -> int:
        """Write messages to send, skipping keys already there; the number of new rows."""
        d = self._driver
        messages = outbox_params(d, outbox)
        if not messages:
            return 0
        with guard(self.url), d.cursor(write=True) as cursor:
            return insert_outbox(d, cursor, messages)

    def claim(self, now: datetime, limit: int) -> builtins.list[OutboxItem]:
        """Take up to ``limit`` pending messages due at ``now``, oldest first, for sending."""
        if limit < 1:
            raise ValueError(f"claim limit must be at least 1, not {limit}")
        d = self._driver
        at = d.time_in(to_utc(now))
        query = d.sql(CLAIM.format(skip_locked=d.skip_locked))
        with guard(self.url), d.cursor(write=True) as cursor:
            rows = cursor.execute(query, (at, limit, at)).fetchall()
        items = [_item(d, row) for row in rows]
        # RETURNING promises no order.
        return sorted(items, key=lambda i: (i.next_attempt_at, i.id))

    def mark_sent(self, item_id: int, at: datetime, reply: str) -> None:
        """Record that the server accepted the message (its reply kept for the record)."""
        self._mark(MARK_SENT, (to_utc(at), reply, item_id))

    def mark_sent_many(self, ids: Sequence[int], at: datetime, replies: Sequence[str]) -> int:
        """mark_sent for a whole batch in one transaction; the number of rows marked.

        Unknown ids and rows already sent are passed over (counted out), not an error.
        """
        if len(ids) != len(replies):
            raise ValueError(f"{len(ids)} ids but {len(replies)} replies; give one reply per id")
        if not ids:
            return 0
        d = self._driver
        sent = d.time_in(to_utc(at))
        params = [(sent, reply, item_id) for item_id, reply in zip(ids, replies, strict=True)]
        with guard(self.url), d.cursor(write=True) as cursor:
            cursor.executemany(d.sql(MARK_SENT), params)
            return int(cursor.rowcount)

    def mark_retry(self, item_id: int, error: str, next_attempt_at: datetime) -> bool:
        """A temporary failure: back to pending, due again at ``next_attempt_at``.

        False (and nothing changed) if the row is no longer out for sending (sent meanwhile).
        """
        return self._mark(MARK_RETRY, (error, to_utc(next_attempt_at), item_id))

    def mark_failed(self, item_id: int, error: str, at: datetime) -> bool:
        """A permanent failure: never retried automatically (requeue() can, on request).

        False (and nothing changed) if the row is no longer out for sending (sent meanwhile).
        """
        return self._mark(MARK_FAILED, (error, to_utc(at), item_id))

    def recover(self, now: datetime, stale_after: timedelta) -> builtins.list[OutboxItem]:
        """Messages out for sending longer than ``stale_after`` become 'uncertain'.

        A deliverer that crashed may have had them accepted by the server before it could
        record it: they are never resent automatically (a person re-queues them).
        """
        d = self._driver
        cutoff = d.time_in(to_utc(now) - stale_after)
        with guard(self.url), d.cursor(write=True) as cursor:
            rows = cursor.execute(d.sql(RECOVER), (cutoff,)).fetchall()
        return sorted((_item(d, row) for row in rows), key=lambda i: i.id)

    def outbox(
        self, process_id: str | None = None, status: str | None = None
    ) -> builtins.list[OutboxItem]:
        """Messages by id, optionally of one process and/or in one status."""
        where, params = [], []
        if process_id is not None:
            where.append("process_id = ?")
            params.append(process_id)
        if status is not None:
            check_choice(status, OUTBOX_STATUSES, "outbox status")
            where.append("status = ?")
            params.append(status)
        query = LIST_OUTBOX + (" WHERE " + " AND ".join(where) if where else "") + " ORDER BY id"
        d = self._driver
        with guard(self.url), d.cursor() as cursor:
            rows = cursor.execute(d.sql(query), params).fetchall()
        return [_item(d, row) for row in rows]

    def requeue(
        self, item_id: int, now: datetime, *, audit: Sequence[AuditDraft] = ()
    ) -> OutboxItem:
        """Put a failed or uncertain message back in line, due at ``now`` (attempts kept);
        the ``audit`` entries go to the message's process in the same transaction.

        A pending one is returned as it is; a sent one, or one out for sending, is refused.
        """
        d = self._driver
        at = d.time_in(to_utc(now))
        with guard(self.url), d.cursor(write=True) as cursor:
            head = None
            if audit:
                # The process row is locked before the message's (the module's lock order);
                # a message never moves to another process, so its id can be read unlocked.
                owner = cursor.execute(d.sql(ITEM_PROCESS), (item_id,)).fetchone()
                if owner is None:
                    raise UnknownOutboxItem(item_id)
                head = lock_chain(d, cursor, owner[0])
            row = cursor.execute(d.sql(ITEM + d.lock), (item_id,)).fetchone()
            if row is None:
                raise UnknownOutboxItem(item_id)
            item = _item(d, row)
            if item.status not in ("pending", "failed", "uncertain"):
                raise not_requeueable(item)
            if item.status != "pending":
                item = _item(d, cursor.execute(d.sql(REQUEUE), (at, item_id)).fetchone())
            if head is not None:
                append_audit(d, cursor, item.process_id, head, audit)
        return item

    def _mark(self, statement: str, params: tuple[Any, ...]) -> bool:
        """Run one mark_* update; UnknownOutboxItem if the id names no row."""
        d = self._driver
        *values, item_id = params
        values = [d.time_in(v) if isinstance(v, datetime) else v for v in values]
        with guard(self.url), d.cursor(write=True) as cursor:
            cursor.execute(d.sql(statement), (*values, item_id))
            if cursor.rowcount == 1:
                return True
            if cursor.execute(d.sql("SELECT id FROM outbox WHERE id = ?"), (item_id,)).fetchone():
                return False
        raise UnknownOutboxItem(item_id)


def _known(d: driver.Driver, cursor: Any) -> builtins.list[str]:
    return [pid for (pid,) in cursor.execute(d.sql(driver.KNOWN))]


def _require(d: driver.Driver, cursor: Any, process_id: str) -> None:
    if cursor.execute(d.sql(LOCK_PROCESS), (process_id,)).fetchone() is None:
        raise UnknownProcess(process_id, _known(d, cursor))


def _time(d: driver.Driver, value: Any) -> datetime | None:
    return None if value is None else d.time_out(value)


def _expert(d: driver.Driver, row: Sequence[Any]) -> Expert:
    """An Expert from a row in EXPERT_COLUMNS order."""
    (expert_id, process_id, email, first, last, entity, by, country, region, kind) = row[:10]
    gender, language, timezone, status, nominated_at, late, erased = row[10:]
    return Expert(
        id=expert_id,
        process_id=process_id,
        email=email,
        first_name=first,
        last_name=last,
        entity=entity,
        nominated_by=by,
        country=country,
        region=region,
        stakeholder_type=kind,
        gender=gender,
        language=language,
        timezone=timezone,
        status=status,
        nominated_at=d.time_out(nominated_at),
        late=bool(late),
        erased=bool(erased),
    )


def _item(d: driver.Driver, row: Sequence[Any]) -> OutboxItem:
    """An OutboxItem from a row in OUTBOX_COLUMNS order."""
    (item_id, key, process_id, event, recipient, email, name, language, timezone) = row[:9]
    context, created_at, status, attempts, next_attempt_at, last_error = row[9:15]
    claimed_at, sent_at, reply, failed_at = row[15:]
    return OutboxItem(
        id=item_id,
        key=key,
        process_id=process_id,
        event=event,
        recipient=recipient,
        email=email,
        name=name,
        language=language,
        timezone=timezone,
        context=d.json_out(context),
        created_at=d.time_out(created_at),
        status=status,
        attempts=attempts,
        next_attempt_at=d.time_out(next_attempt_at),
        last_error=last_error,
        claimed_at=_time(d, claimed_at),
        sent_at=_time(d, sent_at),
        reply=reply,
        failed_at=_time(d, failed_at),
    )
