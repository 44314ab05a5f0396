"""The outbox in SQL (issue 4): messages written with their transition, drained by a deliverer.

The deliverer's loop (mark what was sent, claim the next rows) is a hot path: a 5,000-message
run makes thousands of these calls, so ``record_and_claim`` does both in one transaction (one
fsync on SQLite for the 250s that arrived meanwhile and the rows their connections send next).

Every claimed row names the delivery run that holds it (``claimed_by``); the runs and their
leases are in outbox_runs.py, and ``recover`` takes back what a stopped run held (issue 9).

Claiming is where two deliverers could collide. On PostgreSQL the inner select takes its rows
FOR UPDATE SKIP LOCKED, so a second deliverer passes over rows the first is claiming; on SQLite
the write transaction starts with BEGIN IMMEDIATE, so claims run one after the other. Either
way the UPDATE re-checks status = 'pending', so a row is never handed out twice.
"""

from __future__ import annotations

import builtins
from collections.abc import Sequence
from datetime import datetime

import sqlalchemy as sa

from flows.storage import hot, outbox_runs
from flows.storage.chain import to_utc
from flows.storage.enqueue import insert_outbox, outbox_rows
from flows.storage.errors import UnknownOutboxItem
from flows.storage.model import AuditDraft
from flows.storage.notify_model import (
    OUTBOX_STATUSES,
    DeliveryRun,
    OutboxDraft,
    OutboxItem,
    Recovered,
    check_choice,
    not_requeueable,
)
from flows.storage.sql_base import Database, append_audit, lock_chain
from flows.storage.tables import outbox

_O = outbox.c
_ID = _O.id == sa.bindparam("item_id")
# The rows are chosen in a materialised CTE, evaluated once: as "id IN (SELECT … LIMIT n FOR
# UPDATE SKIP LOCKED)" PostgreSQL may re-run the subquery while updating and hand out more than
# n rows. The UPDATE re-checks the status (belt and braces). SQLite renders no FOR UPDATE.
_DUE = (
    sa.select(_O.id)
    .where(_O.status == "pending", _O.next_attempt_at <= sa.bindparam("now"))
    .order_by(_O.next_attempt_at, _O.id)
    .limit(sa.bindparam("limit", type_=sa.Integer))
    .with_for_update(skip_locked=True)
    .cte("due")
    .prefix_with("MATERIALIZED")
)
CLAIM = (
    sa.update(outbox)
    .where(_O.id == _DUE.c.id, _O.status == "pending")
    .values(status="sending", claimed_at=sa.bindparam("claimed"), claimed_by=sa.bindparam("run"))
    .returning(*_O)
)
# Sent is the truth whatever the row says meanwhile (a slow deliverer after recover(), say):
# marking it stops any re-send. Only a row already sent is left alone.
MARK_SENT = (
    sa.update(outbox)
    .where(_ID, _O.status != "sent")
    .values(
        status="sent",
        sent_at=sa.bindparam("at"),
        reply=sa.bindparam("new_reply"),
        attempts=_O.attempts + 1,
        sends=_O.sends + 1,
    )
)
# A retry or failure is only recorded for a row that is out for sending (or was, and was
# then found stale): it must not undo a 'sent'. ``maybe`` (0 or 1) counts a send whose fate is
# unknown: the connection dropped after the message's final "." (RFC 1047).
_OUT = _O.status.in_(["sending", "uncertain"])
MARK_RETRY = (
    sa.update(outbox)
    .where(_ID, _OUT)
    .values(
        status="pending",
        last_error=sa.bindparam("error"),
        next_attempt_at=sa.bindparam("at"),
        attempts=_O.attempts + 1,
        sends=_O.sends + sa.bindparam("maybe", type_=sa.Integer),
    )
)
MARK_HELD = (
    sa.update(outbox)
    .where(_ID, _OUT)
    .values(status="uncertain", last_error=sa.bindparam("error"), attempts=_O.attempts + 1,
            sends=_O.sends + 1)
)
MARK_FAILED = (
    sa.update(outbox)
    .where(_ID, _OUT)
    .values(
        status="failed",
        last_error=sa.bindparam("error"),
        failed_at=sa.bindparam("at"),
        attempts=_O.attempts + 1,
    )
)
FOUND = sa.select(_O.id).where(_ID)
ITEM = sa.select(outbox).where(_ID).with_for_update()
ITEM_PROCESS = sa.select(_O.process_id).where(_ID)
REQUEUE = (
    sa.update(outbox)
    .where(_ID)
    .values(status="pending", next_attempt_at=sa.bindparam("at"), failed_at=None)
    .returning(*_O)
)
_BY_PROCESS = _O.process_id == sa.bindparam("pid")
_BY_STATUS = _O.status == sa.bindparam("wanted")
LIST = {
    (False, False): sa.select(outbox).order_by(_O.id),
    (True, False): sa.select(outbox).where(_BY_PROCESS).order_by(_O.id),
    (False, True): sa.select(outbox).where(_BY_STATUS).order_by(_O.id),
    (True, True): sa.select(outbox).where(_BY_PROCESS, _BY_STATUS).order_by(_O.id),
}


# The deliverer's loop on the driver cursor too (hot.py): bench/notify.py (1,500 messages,
# runs alternated with the previous driver path, 790-837 msg/s) drained 735 msg/s with claim
# and mark_sent_many on Core, 816 msg/s with them here.
CLAIM_HOT = hot.Statement(CLAIM)
MARK_SENT_HOT = hot.Statement(MARK_SENT)
_ITEM_FIELDS = tuple(c.name for c in outbox.c)
_TIMES = ("created_at", "next_attempt_at", "claimed_at", "sent_at", "failed_at")


def hot_item(row: Sequence[object]) -> OutboxItem:
    """An OutboxItem from a driver row of the outbox table, as its column types read it."""
    fields = dict(zip(_ITEM_FIELDS, row, strict=True))
    for name in _TIMES:
        if fields[name] is not None:
            fields[name] = hot.time_out(fields[name])
    fields["context"] = hot.json_out(fields["context"])
    return OutboxItem(**fields)  # type: ignore[arg-type]  # the columns are named as the fields


def item(row: sa.Row[tuple[object, ...]]) -> OutboxItem:
    """An OutboxItem from a row of the outbox table (its columns are the item's fields)."""
    return OutboxItem(**row._mapping)  # the columns are named as the fields (tests check both)


class SqlOutbox:
    """The OutboxStore of a SQL database."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def enqueue(self, outbox: Sequence[OutboxDraft]) -> int:
        """Write messages to send, skipping keys already there; the number of new rows."""
        rows = outbox_rows(outbox)
        if not rows:
            return 0
        with self._db.write() as conn:
            return insert_outbox(conn, rows)

    def claim(self, now: datetime, limit: int, *,
              run: str | None = None) -> builtins.list[OutboxItem]:
        """Take up to ``limit`` pending messages due at ``now``, oldest first, for sending
        (held by delivery run ``run``)."""
        if limit < 1:
            raise ValueError(f"claim limit must be at least 1, not {limit}")
        return self.record_and_claim((), now, now, limit, run=run)

    def record_and_claim(self, sent: Sequence[tuple[int, str]], at: datetime, now: datetime,
                         limit: int, *, run: str | None = None) -> builtins.list[OutboxItem]:
        """Mark ``sent`` (id, reply) rows sent at ``at`` and claim up to ``limit`` more due at
        ``now`` for ``run``, in one transaction: each 250 is durable before the connection
        that received it sends again. ``limit`` 0 only marks."""
        if limit < 0:
            raise ValueError(f"claim limit must be at least 0, not {limit}")
        if not sent and not limit:
            return []
        with self._db.write() as conn:
            if sent:
                when = hot.time_in(conn.dialect, to_utc(at))
                hot.run(conn, MARK_SENT_HOT, [{"item_id": i, "at": when, "new_reply": r}
                                              for i, r in sent])
            if not limit:
                return []
            due = hot.time_in(conn.dialect, to_utc(now))
            params = {"now": due, "limit": limit, "claimed": due, "run": run}
            rows = hot.run(conn, CLAIM_HOT, params).fetchall()
        # RETURNING promises no order.
        return sorted(map(hot_item, rows), key=lambda i: (i.next_attempt_at, i.id))

    def mark_sent(self, item_id: int, at: datetime, reply: str) -> None:
        """Record that the server accepted the message (its reply kept for the record)."""
        self._mark(MARK_SENT, item_id, at=to_utc(at), new_reply=reply)

    def mark_sent_many(self, ids: Sequence[int], at: datetime, replies: Sequence[str]) -> int:
        """mark_sent for a whole batch in one transaction; the number of rows marked.

        Unknown ids and rows already sent are passed over (counted out), not an error.
        """
        if len(ids) != len(replies):
            raise ValueError(f"{len(ids)} ids but {len(replies)} replies; give one reply per id")
        if not ids:
            return 0
        with self._db.write() as conn:
            sent = hot.time_in(conn.dialect, to_utc(at))
            params = [
                {"item_id": i, "at": sent, "new_reply": r}
                for i, r in zip(ids, replies, strict=True)
            ]
            return int(hot.run(conn, MARK_SENT_HOT, params).rowcount)

    def mark_retry(self, item_id: int, error: str, next_attempt_at: datetime, *,
                   maybe_sent: bool = False) -> bool:
        """A temporary failure: back to pending, due again at ``next_attempt_at``;
        ``maybe_sent``: the server may have kept it (one more possible send counted).

        False (and nothing changed) if the row is no longer out for sending (sent meanwhile).
        """
        return self._mark(MARK_RETRY, item_id, error=error, at=to_utc(next_attempt_at),
                          maybe=int(maybe_sent))

    def mark_held(self, item_id: int, error: str) -> bool:
        """The server may have kept it and the policy is not to resend: 'uncertain', for a
        person (one more possible send counted). False if no longer out for sending."""
        return self._mark(MARK_HELD, item_id, error=error)

    def mark_failed(self, item_id: int, error: str, at: datetime) -> bool:
        """A permanent failure: never retried automatically (requeue() can, on request).

        False (and nothing changed) if the row is no longer out for sending (sent meanwhile).
        """
        return self._mark(MARK_FAILED, item_id, error=error, at=to_utc(at))

    def start_run(self, run: DeliveryRun) -> None:
        """Record a delivery run and its lease, before it claims anything."""
        with self._db.write() as conn:
            outbox_runs.start(conn, run)

    def renew_run(self, run_id: str, lease_until: datetime) -> bool:
        """Extend a run's lease; False if another run found it dead and took its rows."""
        with self._db.write() as conn:
            return outbox_runs.renew(conn, run_id, lease_until)

    def delivery_runs(self) -> builtins.list[DeliveryRun]:
        """The runs that have a lease row (alive, or dead and not yet recovered)."""
        with self._db.read() as conn:
            return outbox_runs.runs(conn)

    def recover(self, now: datetime, dead: Sequence[str], *, resend: bool) -> Recovered:
        """Take back the rows 'sending' for a run in ``dead`` (or for no run with a lease
        row), and forget those runs, in one transaction.

        A stopped run may have had such a row accepted before it could record it: with
        ``resend`` it is pending again at ``now`` (same key, so the same Message-ID), else
        'uncertain' for a person; either way one more possible send is counted.
        """
        with self._db.write() as conn:
            rows = outbox_runs.take_back(conn, dead, to_utc(now), resend)
        items = outbox_runs.as_items(rows)
        return Recovered(items, []) if resend else Recovered([], items)

    def outbox(
        self, process_id: str | None = None, status: str | None = None
    ) -> builtins.list[OutboxItem]:
        """Messages by id, optionally of one process and/or in one status."""
        if status is not None:
            check_choice(status, OUTBOX_STATUSES, "outbox status")
        query = LIST[(process_id is not None, status is not None)]
        with self._db.read() as conn:
            rows = conn.execute(query, {"pid": process_id, "wanted": status}).all()
        return [item(row) for row in rows]

    def requeue(
        self, item_id: int, now: datetime, *, audit: Sequence[AuditDraft] = ()
    ) -> OutboxItem:
        """Put a failed or uncertain message back in line, due at ``now`` (attempts kept);
        the ``audit`` entries go to the message's process in the same transaction.

        A pending one is returned as it is; a sent one, or one out for sending, is refused.
        """
        with self._db.write() as conn:
            head = None
            if audit:
                # The process row is locked before the message's (sql_base's lock order);
                # a message never moves to another process, so its id can be read unlocked.
                owner = conn.execute(ITEM_PROCESS, {"item_id": item_id}).first()
                if owner is None:
                    raise UnknownOutboxItem(item_id)
                head = lock_chain(conn, owner[0])
            row = conn.execute(ITEM, {"item_id": item_id}).first()
            if row is None:
                raise UnknownOutboxItem(item_id)
            found = item(row)
            if found.status not in ("pending", "failed", "uncertain"):
                raise not_requeueable(found)
            if found.status != "pending":
                found = item(conn.execute(REQUEUE, {"item_id": item_id, "at": to_utc(now)}).one())
            if head is not None:
                append_audit(conn, found.process_id, head, audit)
        return found

    def _mark(self, statement: sa.Update, item_id: int, **values: object) -> bool:
        """Run one mark_* update; UnknownOutboxItem if the id names no row."""
        with self._db.write() as conn:
            if conn.execute(statement, {"item_id": item_id, **values}).rowcount == 1:
                return True
            if conn.execute(FOUND, {"item_id": item_id}).first() is not None:
                return False
        raise UnknownOutboxItem(item_id)
