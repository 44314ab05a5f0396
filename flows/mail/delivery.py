"""Draining the outbox over SMTP: at most once through the engine's own path.

The sequence for each row, and why it cannot send a row twice by itself:

1. ``store.recover(now, stale_after)``: rows left 'sending' by a deliverer that died become
   'uncertain'. The server may have accepted them, so they are *not* resent; a person looks
   and re-queues (``prepflow outbox retry ID``).
2. ``store.claim(now, n)`` marks a few rows 'sending' (atomically: two deliverers never take
   the same row) *before* any SMTP command for them.
3. Render and send. On the server's 250 the row is marked 'sent' at once (group commit: the
   250s that arrive while one 'sent' transaction is being written go into the next one, in a
   thread, so an fsync never stalls the other connections); a 4xx, a refused or
   dropped connection or a timeout puts it back to 'pending' with exponential backoff (failed
   after ``max_attempts``); a 5xx marks it 'failed' with the server's reply. A row whose
   message cannot be built (an old row with a name import now refuses, a builder's bug) is
   marked 'failed' alone, with the masked reason; the run goes on with the others.

Residual window, stated honestly: if the process dies after the server's 250 and before the
'sent' update commits, the row is left 'sending' and becomes 'uncertain' — it is never resent
automatically, but a person who re-queues it may send it twice. Likewise, when a connection
drops after the final "." but before the 250 is read (RFC 1047), the server may have kept the
message while the row is retried. The Message-ID is derived from the idempotency key, so
receivers (and people) can recognise such a duplicate.

Rows claimed but not yet handed to SMTP when a run is cancelled are released back to
'pending' (one attempt counted); after a hard kill they too become 'uncertain'. Claims are
small (2 × concurrency) so that window stays small.

Privacy: nothing here logs an address or a name unmasked (``mask_email('jane@itu.int')`` is
'j***@itu.int'), nor the password: the log's MaskingFilter (flows/addresses.py) masks every
record. Servers repeat the recipient in their replies ('550 5.1.1 <ana.silva@example.br>:
Recipient address rejected'), so every reply and error text goes through ``mask_addresses``
before it is stored or reported (issue 4: "counts and masked addresses only" in Prefect logs
and artifacts).

The SMTP side is flows/mail/mail_transport.py; rendering is flows/mail/render.py.
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.message import EmailMessage
from typing import Protocol

from flows.addresses import get_logger, mask_addresses, mask_email
from flows.mail.mail_transport import Mailer, RecordingMailer, SendResult
from flows.mail.render import Renderable, Renderer, RenderError
from flows.storage import OutboxItem, OutboxStore, StoredProcess, UnknownProcess
from states.dates import require_aware

log = get_logger("prepflow.mail")

DEFAULT_ZONE = "Europe/Zurich"
MAX_BACKOFF = timedelta(days=1)


class DeliveryStore(OutboxStore, Protocol):
    """What delivery needs of a store: the outbox (its own aggregate), and a process's
    definition for its time zone."""

    def get(self, process_id: str) -> StoredProcess: ...


@dataclass(frozen=True)
class DeliveryProblem:
    """A row the secretariat must look at: failed for good, or perhaps never sent
    (``uncertain``); the address already masked."""

    id: int
    event: str
    process: str
    recipient: str
    error: str
    uncertain: bool = False


@dataclass
class DeliveryReport:
    """Counts for one run, and the rows a secretariat must look at (addresses masked)."""

    sent: int = 0
    retried: int = 0
    failed: int = 0
    uncertain: int = 0
    released: int = 0
    problems: list[DeliveryProblem] = field(default_factory=list)

    def __str__(self) -> str:
        return (f"{self.sent} sent, {self.retried} to retry, {self.failed} failed, "
                f"{self.uncertain} uncertain")


def backoff_delay(base: timedelta, attempts: int) -> timedelta:
    """base, 2·base, 4·base … after the 1st, 2nd, 3rd failure; at most a day."""
    delay: timedelta = min(base * (2 ** max(attempts - 1, 0)), MAX_BACKOFF)
    return delay


@dataclass(frozen=True)
class Pacing:
    """How a run paces itself: rows per run, connections, tries, and retry delays."""

    limit: int = 1000
    concurrency: int = 8
    max_attempts: int = 5
    backoff: timedelta = timedelta(seconds=60)
    stale_after: timedelta = timedelta(minutes=15)


class _Run:
    """One delivery run: claims rows in small chunks and hands them to ``concurrency`` workers."""

    def __init__(self, store: DeliveryStore, mailer: Mailer, now: datetime,
                 renderer: Renderer, pacing: Pacing) -> None:
        self.store, self.mailer, self.now, self.renderer = store, mailer, now, renderer
        self.pacing = pacing
        self.chunk = max(2 * pacing.concurrency, 1)
        self.claimed = 0
        self.queue: deque[OutboxItem] = deque()
        self.report = DeliveryReport()
        self.zones: dict[str, str] = {}
        self.exhausted = False
        self.accepted: list[tuple[int, str]] = []
        self.recording = asyncio.Lock()

    def zone(self, item: Renderable) -> str:
        """The process's time zone: from the row's context, else the stored definition."""
        stated = item.context.get("timezone")
        if stated:
            return str(stated)
        if item.process_id not in self.zones:
            try:
                definition = self.store.get(item.process_id).definition
                self.zones[item.process_id] = str(definition.get("timezone") or DEFAULT_ZONE)
            except UnknownProcess:  # a row whose process is gone (or a test store): ITU's zone
                self.zones[item.process_id] = DEFAULT_ZONE
        return self.zones[item.process_id]

    def next_item(self) -> OutboxItem | None:
        """The next row to send; runs without an await between the check and the claim, so
        workers never race."""
        limit = self.pacing.limit
        if not self.queue and not self.exhausted and self.claimed < limit:
            batch = self.store.claim(self.now, min(self.chunk, limit - self.claimed))
            self.claimed += len(batch)
            self.queue.extend(batch)
            self.exhausted = not batch
        return self.queue.popleft() if self.queue else None

    def problem(self, item: OutboxItem, error: str, *, uncertain: bool = False) -> None:
        """A row the secretariat must look at (address masked)."""
        self.report.problems.append(DeliveryProblem(
            item.id, item.event, item.process_id, mask_email(item.email), error, uncertain))

    async def worker(self) -> None:
        """Send rows until none is left."""
        while (item := self.next_item()) is not None:
            await self.one(item)

    def failed(self, item: OutboxItem, error: str) -> None:
        """Record a permanent failure."""
        self.store.mark_failed(item.id, error, self.now)
        self.report.failed += 1
        self.problem(item, error)
        log.warning("outbox #%s (%s) to %s failed: %s", item.id, item.event, item.email, error)

    async def one(self, item: OutboxItem) -> None:
        """Render and send one row, and record what happened."""
        try:
            message = self.renderer.render(item, self.zone(item), self.now)
        except RenderError as exc:
            self.failed(item, mask_addresses(f"not rendered: {exc}"))
            return
        except Exception as exc:  # noqa: BLE001 - one message that cannot be built fails alone
            self.failed(item, mask_addresses(f"not built: {type(exc).__name__}: {exc}"))
            return
        try:
            result = await self.mailer.send(message)
        except Exception as exc:  # noqa: BLE001 - the mailer's own bug: this row, not the run
            result = SendResult(False, False, f"not sent: {type(exc).__name__}: {exc}")
        reply = mask_addresses(result.reply)  # before it is stored or reported
        if result.accepted:
            self.accepted.append((item.id, reply))
            self.report.sent += 1
            await self.flush_sent()
            return
        attempts = item.attempts + 1
        if result.permanent or attempts >= self.pacing.max_attempts:
            self.failed(item, reply if result.permanent
                        else f"gave up after {attempts} attempts: {reply}")
            return
        self.store.mark_retry(item.id, reply,
                              self.now + backoff_delay(self.pacing.backoff, attempts))
        self.report.retried += 1
        log.info("outbox #%s to %s: retry %d (%s)", item.id, item.email, attempts, reply)

    async def flush_sent(self) -> None:
        """Group commit, right after the 250: one transaction at a time, in a thread (so the
        fsync does not stall the other connections); the 250s that arrive meanwhile are all
        recorded by the next one."""
        async with self.recording:
            if self.accepted:
                batch, self.accepted = self.accepted, []
                await asyncio.to_thread(self.write_sent, batch)

    def record_sent(self) -> None:
        """Mark every accepted, not yet recorded row 'sent', now (used on cancellation)."""
        batch, self.accepted = self.accepted, []
        self.write_sent(batch)

    def write_sent(self, batch: list[tuple[int, str]]) -> None:
        """One transaction for the batch."""
        if batch:
            self.store.mark_sent_many([i for i, _ in batch], self.now, [r for _, r in batch])

    def release(self) -> None:
        """Give back rows claimed but never handed to SMTP (the run was cancelled)."""
        while self.queue:
            item = self.queue.popleft()
            self.store.mark_retry(item.id, "released: the deliverer stopped before sending it",
                                  self.now)
            self.report.released += 1


async def deliver(store: DeliveryStore, mailer: Mailer, now: datetime, *, renderer: Renderer,
                  limit: int = 1000, concurrency: int = 8, max_attempts: int = 5,
                  backoff: timedelta = timedelta(seconds=60),
                  stale_after: timedelta = timedelta(minutes=15)) -> DeliveryReport:
    """Recover stale rows, then send what is due at ``now`` (at most ``limit`` rows).

    Rows whose retry falls after ``now`` wait for a later run (the scheduled delivery flow
    runs every few minutes; tests pass a later ``now``).
    """
    require_aware(now, "now")
    pacing = Pacing(limit, concurrency, max_attempts, backoff, stale_after)
    run = _Run(store, mailer, now, renderer, pacing)
    recovered = store.recover(now, pacing.stale_after)
    run.report.uncertain = len(recovered)
    for item in recovered:
        run.problem(item, "uncertain: the deliverer stopped while sending; not resent",
                    uncertain=True)
    try:
        async with asyncio.TaskGroup() as group:
            for _ in range(pacing.concurrency):
                group.create_task(run.worker())
    except asyncio.CancelledError:
        run.record_sent()  # accepted by the server: record it, or they would turn 'uncertain'
        run.release()
        raise
    except BaseExceptionGroup as group:  # e.g. the store failed: stop, show the first cause
        try:
            run.record_sent()  # what the server accepted is recorded, if the store still can
        finally:
            run.release()
        raise group.exceptions[0] from group
    run.record_sent()
    if run.report.sent or run.report.failed or run.report.uncertain:
        log.info("delivery at %s: %s", now.isoformat(), run.report)
    return run.report


async def preview(store: DeliveryStore, now: datetime, *, renderer: Renderer,
                  limit: int = 1000) -> list[tuple[OutboxItem, EmailMessage | str]]:
    """What a run at ``now`` would send, without claiming anything (``--dry-run``)."""
    run = _Run(store, RecordingMailer(), now, renderer, Pacing(limit=limit))
    due = [i for i in store.outbox(status="pending") if i.next_attempt_at <= now][:limit]
    out: list[tuple[OutboxItem, EmailMessage | str]] = []
    for item in due:
        try:
            out.append((item, renderer.render(item, run.zone(item), now)))
        except RenderError as exc:
            out.append((item, f"not rendered: {exc}"))
    return out
