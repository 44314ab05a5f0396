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
   after ``max_attempts``); a 5xx marks it 'failed' with the server's reply.

Residual window, stated honestly: if the process dies after the server's 250 and before the
'sent' update commits, the row is left 'sending' and becomes 'uncertain' — it is never resent
automatically, but a person who re-queues it may send it twice. Likewise, when a connection
drops after the final "." but before the 250 is read (RFC 1047), the server may have kept the
message while the row is retried. The Message-ID is derived from the idempotency key, so
receivers (and people) can recognise such a duplicate.

Rows claimed but not yet handed to SMTP when a run is cancelled are released back to
'pending' (one attempt counted); after a hard kill they too become 'uncertain'. Claims are
small (2 × concurrency) so that window stays small.

Privacy: nothing here logs an address or a name unmasked (``mask('jane@itu.int')`` is
'j***@itu.int'), nor the password. Servers repeat the recipient in their replies ('550 5.1.1
<ana.silva@example.br>: Recipient address rejected'), so every reply and error text goes
through ``mask_addresses`` before it is stored, logged or reported (issue 4: "counts and
masked addresses only" in Prefect logs and artifacts).
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.message import EmailMessage
from typing import Any, Protocol

import aiosmtplib
from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from flows.mail.render import Renderer, RenderError

log = logging.getLogger("prepflow.mail")

DEFAULT_ZONE = "Europe/Zurich"
MAX_BACKOFF = timedelta(days=1)


class MailSettings(BaseSettings):
    """SMTP settings from the environment (PREPFLOW_SMTP_*); never in a definition, never logged."""

    model_config = SettingsConfigDict(env_prefix="PREPFLOW_SMTP_", extra="ignore")

    host: str = "127.0.0.1"
    port: int = 25
    username: str | None = None
    password: SecretStr | None = None
    password_block: str | None = Field(
        default=None, description="name of a Prefect Secret block holding the password")
    starttls: bool = False
    use_tls: bool = False
    validate_certs: bool = True
    sender: str = "prepflow <prepflow@localhost.localdomain>"
    concurrency: int = Field(default=8, ge=1, le=64)
    timeout: float = Field(default=30.0, gt=0)
    max_attempts: int = Field(default=5, ge=1)
    backoff_seconds: float = Field(default=60.0, ge=0)
    stale_after_seconds: float = Field(default=900.0, gt=0)

    def secret(self) -> str | None:
        """The password: from the environment, else from the Prefect Secret block (if named)."""
        if self.password is not None:
            return self.password.get_secret_value()
        if self.password_block:
            from prefect.blocks.system import Secret  # lazy: Prefect is slow to import

            block: Any = Secret.load(self.password_block)  # sync context: a block, not a coroutine
            return str(block.get())
        return None


@dataclass(frozen=True)
class SendResult:
    """What the server said: accepted (250), or refused for good (5xx) or for now."""

    accepted: bool
    permanent: bool
    reply: str


class Mailer(Protocol):
    """The seam: SmtpMailer sends, RecordingMailer records (tests, dry runs)."""

    async def send(self, message: EmailMessage) -> SendResult: ...


def mask(address: str) -> str:
    """'j***@itu.int': enough to tell a secretariat which row, not enough to be personal data."""
    local, _, domain = address.rpartition("@")
    if not local:
        return "***"
    return f"{local[0]}***@{domain}"


#: An addr-spec as it appears in server replies and exception texts, bare or inside <...>:
#: a dot-atom or quoted local part, '@', a domain or [literal]. The local part is taken
#: generously (any run of characters that cannot delimit an address, so UTF-8 mailboxes too):
#: masking a little more than an address is harmless, missing part of one is not.
_ADDRESS = re.compile(
    r'(?:"(?:[^"\\\r\n]|\\.)*"|[^\s<>()\[\]\\,;:@"]+)'
    r"@(?:\[[^\]\s]*\]|[^\s<>()\[\]\\,;:@\"']*)"
)


def mask_addresses(text: str) -> str:
    """``text`` with every email address in it masked: '550 5.1.1 <a***@example.br>: …'."""
    return _ADDRESS.sub(lambda m: mask(m.group(0)), text)


def _recipients(message: EmailMessage) -> str:
    return ", ".join(mask(a.addr_spec) for a in getattr(message["To"], "addresses", ()))


def envelope(message: EmailMessage) -> tuple[str, list[str], bytes]:
    """Sender, recipients and the bytes, flattened once (aiosmtplib's send_message would
    flatten with a cloned policy, which defeats the renderer's header caches)."""
    sender = message["From"].addresses[0].addr_spec
    recipients = [a.addr_spec for name in ("To", "Cc") if message[name] is not None
                  for a in message[name].addresses]
    return sender, recipients, message.as_bytes()


class RecordingMailer:
    """Test double: records what would be sent; ``respond`` may script other answers."""

    def __init__(self, respond: Callable[[EmailMessage], SendResult | None] | None = None):
        self.respond = respond
        self.sent: list[EmailMessage] = []
        self.attempts = 0

    async def send(self, message: EmailMessage) -> SendResult:
        self.attempts += 1
        result = (self.respond(message) if self.respond else None) or SendResult(
            True, False, "250 recorded")
        if result.accepted:
            self.sent.append(message)
        return result

    def keys(self) -> list[str]:
        """The X-Prepflow-Key of every recorded message, in order."""
        return [str(m["X-Prepflow-Key"]) for m in self.sent]


def _reply(code: int, text: str) -> str:
    return f"{code} {' '.join(str(text).split())}"


class SmtpMailer:
    """aiosmtplib over a pool of ``size`` persistent connections, opened on first use.

    A connection that failed in any way is closed and replaced by a fresh one on its next use;
    after a refused recipient or a 4xx/5xx on DATA aiosmtplib has already sent RSET, so the
    connection is reused if it is still up.
    """

    def __init__(self, settings: MailSettings, size: int | None = None) -> None:
        self.settings = settings
        self.size = size or settings.concurrency
        self._idle: asyncio.Queue[aiosmtplib.SMTP | None] = asyncio.Queue()
        for _ in range(self.size):
            self._idle.put_nowait(None)
        self._password: str | None = None
        self._password_loaded = False

    async def _connect(self) -> aiosmtplib.SMTP:
        s = self.settings
        client = aiosmtplib.SMTP(hostname=s.host, port=s.port, timeout=s.timeout,
                                 use_tls=s.use_tls, start_tls=s.starttls,
                                 validate_certs=s.validate_certs)
        await client.connect()
        if s.username:
            if not self._password_loaded:
                self._password = await asyncio.to_thread(s.secret)
                self._password_loaded = True
            await client.login(s.username, self._password or "")
        return client

    async def send(self, message: EmailMessage) -> SendResult:
        client = await self._idle.get()
        keep = False
        try:
            if client is None or not client.is_connected:
                client = await self._connect()
            refused, response = await client.sendmail(*envelope(message))
            keep = True
            if refused:  # some recipients refused, the others accepted: do not resend
                notes = "; ".join(_reply(r.code, r.message) for r in refused.values())
                return SendResult(True, False, f"250 {response} (refused: {notes})")
            return SendResult(True, False, f"250 {' '.join(response.split())}")
        except aiosmtplib.SMTPRecipientsRefused as exc:
            keep = True
            codes = [r.code for r in exc.recipients]
            reply = "; ".join(_reply(r.code, r.message) for r in exc.recipients)
            return SendResult(False, all(500 <= c < 600 for c in codes), reply)
        except (aiosmtplib.SMTPAuthenticationError, aiosmtplib.SMTPConnectResponseError) as exc:
            # Our configuration or the server's state, not the recipient: retry, then fail.
            return SendResult(False, False, _reply(exc.code, exc.message))
        except aiosmtplib.SMTPResponseException as exc:  # SMTPDataError, SMTPSenderRefused…
            keep = True
            return SendResult(False, 500 <= exc.code < 600, _reply(exc.code, exc.message))
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            # Refused or dropped connections, timeouts (SMTPServerDisconnected,
            # SMTPConnectError, SMTPTimeoutError…): temporary by nature.
            return SendResult(False, False, f"{type(exc).__name__}: {exc}")
        except ValueError as exc:  # aiosmtplib refuses an address it cannot send safely
            keep = True
            return SendResult(False, True, f"address refused before sending: {exc}")
        finally:
            if client is not None and not (keep and client.is_connected):
                client.close()
                client = None
            self._idle.put_nowait(client)

    async def aclose(self) -> None:
        """QUIT every open connection."""
        while not self._idle.empty():
            client = self._idle.get_nowait()
            if client is not None and client.is_connected:
                try:
                    await client.quit()
                except (aiosmtplib.SMTPException, OSError):
                    client.close()
        for _ in range(self.size):
            self._idle.put_nowait(None)

    async def __aenter__(self) -> SmtpMailer:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


@dataclass
class DeliveryReport:
    """Counts for one run, and the rows a secretariat must look at (addresses masked)."""

    sent: int = 0
    retried: int = 0
    failed: int = 0
    uncertain: int = 0
    released: int = 0
    problems: list[dict[str, Any]] = field(default_factory=list)

    def __str__(self) -> str:
        return (f"{self.sent} sent, {self.retried} to retry, {self.failed} failed, "
                f"{self.uncertain} uncertain")


def backoff_delay(base: timedelta, attempts: int) -> timedelta:
    """base, 2·base, 4·base … after the 1st, 2nd, 3rd failure; at most a day."""
    delay: timedelta = min(base * (2 ** max(attempts - 1, 0)), MAX_BACKOFF)
    return delay


class _Run:
    def __init__(self, store: Any, mailer: Mailer, now: datetime, renderer: Renderer,
                 limit: int, chunk: int, max_attempts: int, backoff: timedelta) -> None:
        self.store, self.mailer, self.now, self.renderer = store, mailer, now, renderer
        self.limit, self.chunk = limit, chunk
        self.max_attempts, self.backoff = max_attempts, backoff
        self.claimed = 0
        self.queue: deque[Any] = deque()
        self.report = DeliveryReport()
        self.zones: dict[str, str] = {}
        self.exhausted = False
        self.accepted: list[tuple[int, str]] = []
        self.recording = asyncio.Lock()

    def zone(self, item: Any) -> str:
        """The process's time zone: from the row's context, else the stored definition."""
        if item.context.get("timezone"):
            return str(item.context["timezone"])
        if item.process_id not in self.zones:
            try:
                definition = self.store.get(item.process_id).definition
                self.zones[item.process_id] = str(definition.get("timezone") or DEFAULT_ZONE)
            except Exception:  # no such process (e.g. a test store): ITU's zone
                self.zones[item.process_id] = DEFAULT_ZONE
        return self.zones[item.process_id]

    def next_item(self) -> Any | None:
        # Runs without an await between the check and the claim, so workers never race.
        if not self.queue and not self.exhausted and self.claimed < self.limit:
            batch = self.store.claim(self.now, min(self.chunk, self.limit - self.claimed))
            self.claimed += len(batch)
            self.queue.extend(batch)
            self.exhausted = not batch
        return self.queue.popleft() if self.queue else None

    def problem(self, item: Any, error: str) -> None:
        self.report.problems.append({"id": item.id, "event": item.event,
                                     "process": item.process_id,
                                     "recipient": mask(item.email), "error": error})

    async def worker(self) -> None:
        while (item := self.next_item()) is not None:
            await self.one(item)

    async def one(self, item: Any) -> None:
        try:
            message = self.renderer.render(item, self.zone(item), self.now)
        except RenderError as exc:
            error = mask_addresses(f"not rendered: {exc}")
            self.store.mark_failed(item.id, error, self.now)
            self.report.failed += 1
            self.problem(item, error)
            log.warning("outbox #%s (%s) %s", item.id, item.event, error)
            return
        result = await self.mailer.send(message)
        reply = mask_addresses(result.reply)  # before it is stored, logged or reported
        if result.accepted:
            self.accepted.append((item.id, reply))
            self.report.sent += 1
            await self.flush_sent()
            return
        attempts = item.attempts + 1
        if result.permanent or attempts >= self.max_attempts:
            error = reply if result.permanent else f"gave up after {attempts} attempts: {reply}"
            self.store.mark_failed(item.id, error, self.now)
            self.report.failed += 1
            self.problem(item, error)
            log.warning("outbox #%s to %s failed: %s", item.id, mask(item.email), error)
            return
        self.store.mark_retry(item.id, reply, self.now + backoff_delay(self.backoff, attempts))
        self.report.retried += 1
        log.info("outbox #%s to %s: retry %d (%s)", item.id, mask(item.email), attempts, reply)

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
        if not batch:
            return
        many = getattr(self.store, "mark_sent_many", None)
        if many is not None:
            many([i for i, _ in batch], self.now, [r for _, r in batch])
        else:
            for item_id, reply in batch:
                self.store.mark_sent(item_id, self.now, reply)

    def release(self) -> None:
        """Give back rows claimed but never handed to SMTP (the run was cancelled)."""
        while self.queue:
            item = self.queue.popleft()
            self.store.mark_retry(item.id, "released: the deliverer stopped before sending it",
                                  self.now)
            self.report.released += 1


async def deliver(store: Any, mailer: Mailer, now: datetime, *, limit: int = 1000,
                  concurrency: int = 8, max_attempts: int = 5,
                  backoff: timedelta = timedelta(seconds=60),
                  stale_after: timedelta = timedelta(minutes=15),
                  renderer: Renderer | None = None) -> DeliveryReport:
    """Recover stale rows, then send what is due at ``now`` (at most ``limit`` rows).

    Rows whose retry falls after ``now`` wait for a later run (the scheduled delivery flow
    runs every few minutes; tests pass a later ``now``).
    """
    if now.tzinfo is None:
        raise ValueError(f"now={now.isoformat()} has no time zone; give an aware UTC datetime")
    renderer = renderer or Renderer(MailSettings().sender)
    run = _Run(store, mailer, now, renderer, limit, max(2 * concurrency, 1), max_attempts,
               backoff)
    recovered: Sequence[Any] = store.recover(now, stale_after)
    run.report.uncertain = len(recovered)
    for item in recovered:
        run.problem(item, "uncertain: the deliverer stopped while sending; not resent")
    try:
        async with asyncio.TaskGroup() as group:
            for _ in range(concurrency):
                group.create_task(run.worker())
    except asyncio.CancelledError:
        run.record_sent()  # accepted by the server: record it, or they would turn 'uncertain'
        run.release()
        raise
    except BaseExceptionGroup as group:  # e.g. the store failed: stop, show the first cause
        run.release()
        raise group.exceptions[0] from group
    run.record_sent()
    if run.report.sent or run.report.failed or run.report.uncertain:
        log.info("delivery at %s: %s", now.isoformat(), run.report)
    return run.report


async def preview(store: Any, now: datetime, *, limit: int = 1000,
                  renderer: Renderer | None = None) -> list[tuple[Any, EmailMessage | str]]:
    """What a run at ``now`` would send, without claiming anything (``--dry-run``)."""
    renderer = renderer or Renderer(MailSettings().sender)
    run = _Run(store, RecordingMailer(), now, renderer, limit, 1, 1, timedelta(0))
    due = [i for i in store.outbox(status="pending") if i.next_attempt_at <= now][:limit]
    out: list[tuple[Any, EmailMessage | str]] = []
    for item in due:
        try:
            out.append((item, renderer.render(item, run.zone(item), now)))
        except RenderError as exc:
            out.append((item, f"not rendered: {exc}"))
    return out
