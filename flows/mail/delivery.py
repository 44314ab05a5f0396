"""Draining the outbox over SMTP: nothing lost to a crash, a duplicate only where it must be.

Each run, and why a crash loses nothing (issue 9):

1. The run records itself with a lease (flows/mail/leases.py) and renews it while alive.
2. ``store.recover``: rows 'sending' for a run that is dead (lease run out, or its process
   gone on this host) are taken back at once. Such a row may have been accepted by the
   server before the dead run could record it, so one more possible send is counted
   (``sends``) and, by default (PREPFLOW_SMTP_UNCERTAIN=resend), it is sent again under the
   same Message-ID (derived from its idempotency key), so receivers can drop the copy; with
   ``hold`` it is 'uncertain', for a person (``prepflow outbox retry ID``).
3. Each connection claims its next row itself, only when it is about to send it: a run holds
   at most one row per connection, so a crash strands at most one per connection.
4. On the server's 250 the row is marked 'sent' at once, and the connection's next row is
   claimed in the same transaction (group commit: the 250s and claims of the connections
   that are waiting meanwhile go into one transaction, in a thread, so an fsync never stalls
   the others); the connection sends again only once its 250 is durable. A 4xx, a refused
   or dropped connection or a timeout puts the row back to 'pending' with exponential backoff
   (failed after ``max_attempts``); a 5xx marks it 'failed' with the server's reply. A row
   whose message cannot be built is marked 'failed' alone; the run goes on with the others.

What remains, stated honestly: a message whose 250 was received but not yet recorded when
the process died is sent twice (at most one per open connection), and so is one whose
connection dropped after its final "." and before the 250 (RFC 1047): the server may have
kept it. Both carry the same Message-ID, and the row counts its sends (``sends`` 2: shown as
"sent, maybe twice" by ``prepflow outbox``).

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
import contextlib
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.message import EmailMessage
from typing import Literal, Protocol

from flows.addresses import get_logger, mask_addresses, mask_email
from flows.mail.leases import Wall, dead_runs, keep_alive, new_run, wall_clock
from flows.mail.mail_transport import Mailer, SendResult
from flows.mail.render import Renderable, Renderer, RenderError
from flows.storage import OutboxItem, OutboxStore, StoredProcess, UnknownProcess
from states.dates import require_aware

log = get_logger("prepflow.mail")

DEFAULT_ZONE = "Europe/Zurich"
#: The longest wait between two tries: with the default 10 tries and 60 s doubling, a message
#: outlives an SMTP outage of about four hours, and is sent within the hour after it ends.
MAX_BACKOFF = timedelta(hours=1)
#: What happens to a message that may have reached the server unrecorded (PREPFLOW_SMTP_UNCERTAIN).
UncertainPolicy = Literal["resend", "hold"]
HELD = "uncertain: the server may have it (the connection was lost after the data); not resent"
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
    """Counts for one run, and the rows a secretariat must look at (addresses masked).

    ``recovered``: rows a stopped run held, taken back at the start; ``resent``: messages
    sent in this run that may have reached a server before (same Message-ID); ``uncertain``:
    rows held for a person (PREPFLOW_SMTP_UNCERTAIN=hold)."""

    sent: int = 0
    retried: int = 0
    failed: int = 0
    uncertain: int = 0
    released: int = 0
    recovered: int = 0
    resent: int = 0
    problems: list[DeliveryProblem] = field(default_factory=list)

    def __str__(self) -> str:
        return (f"{self.sent} sent ({self.resent} resent with the same Message-ID), "
                f"{self.retried} to retry, {self.failed} failed, {self.uncertain} uncertain "
                f"(held), {self.recovered} recovered from a stopped run")


def backoff_delay(base: timedelta, attempts: int) -> timedelta:
    """base, 2·base, 4·base … after the 1st, 2nd, 3rd failure; at most MAX_BACKOFF."""
    delay: timedelta = min(base * (2 ** max(attempts - 1, 0)), MAX_BACKOFF)
    return delay


@dataclass(frozen=True)
class Pacing:
    """How a run paces itself: rows per run, connections, tries, retry delays, the lease's
    length and what to do with a message that may have arrived unrecorded."""

    limit: int = 1000
    concurrency: int = 8
    max_attempts: int = 10
    backoff: timedelta = timedelta(seconds=60)
    lease: timedelta = timedelta(seconds=60)
    uncertain: UncertainPolicy = "resend"


class _Zones:
    """Each process's time zone: from the row's context, else the stored definition."""

    def __init__(self, store: DeliveryStore) -> None:
        self.store = store
        self.zones: dict[str, str] = {}

    def zone(self, item: Renderable) -> str:
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


_Request = tuple[tuple[int, str] | None, "asyncio.Future[OutboxItem | None]"]


class _Run:
    """One delivery run: ``concurrency`` workers, each claiming its next row as it goes."""

    def __init__(self, store: DeliveryStore, mailer: Mailer, now: datetime,
                 renderer: Renderer, pacing: Pacing, run_id: str) -> None:
        self.store, self.mailer, self.now, self.renderer = store, mailer, now, renderer
        self.pacing, self.run_id = pacing, run_id
        self.zones = _Zones(store)
        self.claimed = 0
        self.report = DeliveryReport()
        self.exhausted = False
        self.requests: list[_Request] = []
        self.handed: set[int] = set()
        self.recording = asyncio.Lock()

    def stop_claiming(self) -> None:
        """No more rows for this run (its lease was lost)."""
        self.exhausted = True

    def problem(self, item: OutboxItem, error: str, *, uncertain: bool = False) -> None:
        """A row the secretariat must look at (address masked)."""
        self.report.problems.append(DeliveryProblem(
            item.id, item.event, item.process_id, mask_email(item.email), error, uncertain))

    def held(self, items: list[OutboxItem]) -> None:
        """Rows now 'uncertain', for a person."""
        self.report.uncertain += len(items)
        for item in items:
            self.problem(item, item.last_error or HELD, uncertain=True)

    async def step(self, done: tuple[int, str] | None) -> OutboxItem | None:
        """Record ``done`` (a row the server accepted) and take this connection's next row:
        one transaction with the other connections waiting meanwhile (group commit)."""
        future: asyncio.Future[OutboxItem | None] = asyncio.get_running_loop().create_future()
        self.requests.append((done, future))
        async with self.recording:
            if self.requests:  # else an earlier writer took ours too
                batch, self.requests = self.requests, []
                await self.write(batch)
        return future.result()

    async def write(self, batch: list[_Request]) -> None:
        """One transaction for the batch; each waiting connection gets a row or None."""
        sent = [done for done, _ in batch if done is not None]
        want = 0 if self.exhausted else min(len(batch), self.pacing.limit - self.claimed)
        try:
            items = await asyncio.to_thread(self.store.record_and_claim, sent, self.now,
                                            self.now, want, run=self.run_id)
        except BaseException as exc:
            for _, future in batch:
                if future.done():
                    continue
                if isinstance(exc, Exception):
                    future.set_exception(exc)
                else:
                    future.cancel()
            raise
        self.claimed += len(items)
        self.exhausted = self.exhausted or len(items) < want
        for (_, future), item in zip(batch, [*items, *[None] * len(batch)], strict=False):
            future.set_result(item)

    async def worker(self) -> None:
        """Send rows until none is left."""
        item = await self.step(None)
        while item is not None:
            item = await self.step(await self.one(item))

    def failed(self, item: OutboxItem, error: str) -> None:
        """Record a permanent failure."""
        self.store.mark_failed(item.id, error, self.now)
        self.report.failed += 1
        self.problem(item, error)
        log.warning("outbox #%s (%s) to %s failed: %s", item.id, item.event, item.email, error)

    async def one(self, item: OutboxItem) -> tuple[int, str] | None:
        """Render and send one row; (id, reply) if the server accepted it (recorded by the
        next step), else None with what happened recorded."""
        try:
            message = self.renderer.render(item, self.zones.zone(item), self.now)
        except RenderError as exc:
            self.failed(item, mask_addresses(f"not rendered: {exc}"))
            return None
        except Exception as exc:  # noqa: BLE001 - one message that cannot be built fails alone
            self.failed(item, mask_addresses(f"not built: {type(exc).__name__}: {exc}"))
            return None
        self.handed.add(item.id)  # from here the server may get it
        try:
            result = await self.mailer.send(message)
        except Exception as exc:  # noqa: BLE001 - the mailer's own bug: this row, not the run
            result = SendResult(False, False, f"not sent: {type(exc).__name__}: {exc}")
        reply = mask_addresses(result.reply)  # before it is stored or reported
        if result.accepted:
            self.report.sent += 1
            self.report.resent += item.sends > 0
            return item.id, reply
        attempts = item.attempts + 1
        if result.maybe_delivered and self.pacing.uncertain == "hold":
            self.store.mark_held(item.id, f"{HELD}: {reply}")
            self.held([item])
            return None
        if result.permanent or attempts >= self.pacing.max_attempts:
            self.failed(item, reply if result.permanent
                        else f"gave up after {attempts} attempts: {reply}")
            return None
        self.store.mark_retry(item.id, reply,
                              self.now + backoff_delay(self.pacing.backoff, attempts),
                              maybe_sent=result.maybe_delivered)
        self.report.retried += 1
        log.info("outbox #%s to %s: retry %d (%s)", item.id, item.email, attempts, reply)
        return None

    def finish(self) -> None:
        """End the run: record what the server accepted, give back rows claimed but never
        handed to SMTP, settle this run's rows cut off mid-send by policy, drop the lease."""
        sent = [done for done, _ in self.requests if done is not None]
        self.requests = []
        self.store.record_and_claim(sent, self.now, self.now, 0, run=self.run_id)
        for item in self.store.outbox(status="sending"):
            if item.claimed_by == self.run_id and item.id not in self.handed:
                self.store.mark_retry(item.id, "released: the deliverer stopped before "
                                      "sending it", self.now)
                self.report.released += 1
        left = self.store.recover(self.now, [self.run_id],
                                  resend=self.pacing.uncertain == "resend")
        self.report.released += len(left.resent)
        self.held(left.held)


async def deliver(store: DeliveryStore, mailer: Mailer, now: datetime, *, renderer: Renderer,
                  limit: int = 1000, concurrency: int = 8, max_attempts: int = 10,
                  backoff: timedelta = timedelta(seconds=60),
                  stale_after: timedelta = timedelta(seconds=60),
                  uncertain: UncertainPolicy = "resend",
                  wall: Wall = wall_clock) -> DeliveryReport:
    """Take back what stopped runs held, then send what is due at ``now`` (at most ``limit``
    rows); ``stale_after`` is the length of this run's lease, ``wall`` the real clock.

    Rows whose retry falls after ``now`` wait for a later run (the scheduled delivery flow
    runs every few minutes; tests pass a later ``now``).
    """
    require_aware(now, "now")
    pacing = Pacing(limit, concurrency, max_attempts, backoff, stale_after, uncertain)
    me = new_run(wall, pacing.lease)
    store.start_run(me)
    run = _Run(store, mailer, now, renderer, pacing, me.run_id)
    beat = asyncio.create_task(keep_alive(store, me.run_id, pacing.lease, wall,
                                          run.stop_claiming))
    failing = True
    try:
        back = await asyncio.to_thread(
            lambda: store.recover(now, dead_runs(store.delivery_runs(), wall),
                                  resend=uncertain == "resend"))
        run.report.recovered = len(back.resent) + len(back.held)
        run.held(back.held)
        async with asyncio.TaskGroup() as group:
            for _ in range(pacing.concurrency):
                group.create_task(run.worker())
        failing = False
    except BaseExceptionGroup as group:  # e.g. the store failed: stop, show the first cause
        raise group.exceptions[0] from group
    finally:
        beat.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await beat
        try:
            run.finish()  # accepted: recorded; unsent: released; cut off: resent or held
        except Exception:
            if not failing:
                raise
            # The first failure is the one to show; the next run takes back what is left.
            log.exception("delivery run %s could not settle its messages", me.run_id)
    if run.report.sent or run.report.failed or run.report.uncertain or run.report.recovered:
        log.info("delivery at %s: %s", now.isoformat(), run.report)
    return run.report


async def preview(store: DeliveryStore, now: datetime, *, renderer: Renderer,
                  limit: int = 1000) -> list[tuple[OutboxItem, EmailMessage | str]]:
    """What a run at ``now`` would send, without claiming anything (``--dry-run``)."""
    zones = _Zones(store)
    due = [i for i in store.outbox(status="pending") if i.next_attempt_at <= now][:limit]
    out: list[tuple[OutboxItem, EmailMessage | str]] = []
    for item in due:
        try:
            out.append((item, renderer.render(item, zones.zone(item), now)))
        except RenderError as exc:
            out.append((item, f"not rendered: {exc}"))
    return out
