"""Outbox delivery against a real SMTP server (aiosmtpd on 127.0.0.1): exactly once, or honest.

Time never passes for real here: each round of delivery gets a later ``now``, past the
backoff of the round before.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email import message_from_bytes
from email.policy import default as default_policy
from pathlib import Path
from typing import Any

import pytest

from flows.addresses import mask_addresses, mask_email
from flows.mail.delivery import DeliveryReport, backoff_delay, deliver, preview
from flows.mail.mail_transport import RecordingMailer, SendResult, SmtpMailer
from flows.mail.render import Renderer
from flows.mail.sink import EmlHandler, RecordingHandler, SmtpServer, file_name, free_port
from flows.settings import SmtpSettings
from flows.storage import SqlStore
from flows.storage.notify_model import OutboxDraft
from flows.storage.testing import throwaway_store

ROOT = Path(__file__).resolve().parents[2]
SENDER = "WTPF Secretariat <wtpf@itu.int>"
T0 = datetime(2024, 11, 4, 9, 0, tzinfo=UTC)
BACKOFF = timedelta(seconds=60)
CONTEXT = {"process_id": "wtpf-26", "process_name": "WTPF-26 preparation", "forum": "WTPF-26",
           "cycle": "draft2", "cycle_name": "Second Draft", "document": "WTPF26/IEG2-1",
           "deadline": "2024-12-20T23:00:00+00:00", "timezone": "Europe/Zurich"}


def drafts(n: int, **changes: Any) -> list[OutboxDraft]:
    base: dict[str, Any] = {"process_id": "wtpf-26", "event": "draft_posted",
                            "language": "en", "timezone": None, "context": CONTEXT,
                            "created_at": T0}
    base.update(changes)
    return [OutboxDraft(key=f"wtpf-26:post_draft2:expert:{i}", recipient=f"expert:{i}",
                        email=f"expert{i}@example.org", name=f"Expert {i}", **base)
            for i in range(n)]


@pytest.fixture
def server() -> Iterator[SmtpServer]:
    with SmtpServer(RecordingHandler()) as running:
        yield running


def handler(server: SmtpServer) -> RecordingHandler:
    assert isinstance(server.handler, RecordingHandler)
    return server.handler


def settings(port: int, **changes: Any) -> SmtpSettings:
    return SmtpSettings(port=port, sender=SENDER, timeout=5, **changes)


def run(store: Any, port: int, now: datetime, **options: Any) -> DeliveryReport:
    """One delivery run with a fresh SmtpMailer (as each scheduled flow run would have)."""
    async def go() -> DeliveryReport:
        mailer = SmtpMailer(settings(port))
        try:
            return await deliver(store, mailer, now, renderer=Renderer(SENDER),
                                 backoff=BACKOFF, **options)
        finally:
            await mailer.aclose()
    return asyncio.run(go())


def statuses(store: Any) -> dict[str, int]:
    counts: dict[str, int] = {}
    for item in store.outbox():
        counts[item.status] = counts.get(item.status, 0) + 1
    return counts


def test_fan_out_to_500_experts_delivers_each_exactly_once(server: SmtpServer) -> None:
    store = throwaway_store()
    store.enqueue(drafts(500))
    report = run(store, server.port, T0)
    assert (report.sent, report.retried, report.failed, report.uncertain) == (500, 0, 0, 0)
    keys = handler(server).keys
    assert len(keys) == 500
    assert set(keys.values()) == {1}
    assert statuses(store) == {"sent": 500}
    assert all(i.reply and i.reply.startswith("250") for i in store.outbox())
    again = run(store, server.port, T0 + timedelta(hours=1))
    assert again.sent == 0
    assert handler(server).count == 500
    received = message_from_bytes(handler(server).received[0].data, policy=default_policy)
    assert received["Message-ID"]
    assert received["X-Prepflow-Key"].startswith("wtpf-26:")


def test_temporary_failures_on_20_percent_end_with_all_delivered(server: SmtpServer) -> None:
    store = throwaway_store()
    store.enqueue(drafts(200))
    h = handler(server)
    for i in range(0, 200, 5):  # 40 of 200: RCPT 451 / DATA 421, once or twice
        h.fail(f"expert{i}@example.org", "451 4.3.0 try again later" if i % 2 else
               "421 4.7.0 too busy, closing", times=1 + (i % 3 == 0),
               stage="rcpt" if i % 10 else "data")
    now, rounds = T0, []
    for _ in range(4):
        rounds.append(run(store, server.port, now))
        now += timedelta(minutes=10)  # past any backoff so far (60 s, then 120 s)
    assert [r.sent for r in rounds] == [160, 26, 14, 0]
    assert sum(r.failed for r in rounds) == 0
    assert statuses(store) == {"sent": 200}
    assert len(h.keys) == 200
    assert set(h.keys.values()) == {1}
    retried = [i for i in store.outbox() if i.last_error]
    assert len(retried) == 40
    assert all(i.last_error[:3] in ("451", "421") for i in retried)


def test_permanent_failures_are_kept_with_the_reply_and_not_retried(
        server: SmtpServer) -> None:
    store = throwaway_store()
    store.enqueue(drafts(20))
    h = handler(server)
    h.fail("expert3@example.org", "550 5.1.1 <expert3@example.org>: no such user")
    h.fail("expert4@example.org", "554 5.6.0 message refused", stage="data")
    first = run(store, server.port, T0)
    assert (first.sent, first.failed, first.retried) == (18, 2, 0)
    failed = {i.email: i for i in store.outbox(status="failed")}
    assert failed["expert3@example.org"].last_error.startswith("550 5.1.1")
    assert failed["expert4@example.org"].last_error == "554 5.6.0 message refused"
    assert {p.recipient for p in first.problems} == {"e***@example.org"}
    later = run(store, server.port, T0 + timedelta(days=1))
    assert later.sent == later.failed == 0
    assert h.attempts["expert3@example.org"] == 1


def test_server_replies_naming_the_recipient_are_masked_everywhere(
        server: SmtpServer, caplog: pytest.LogCaptureFixture) -> None:
    """Issue 4: servers repeat the address in refusals; it is masked before it is stored,
    logged or reported, so no full address reaches the outbox, the report or a log."""
    ana, bruno, carla = "ana.silva@example.br", "Bruno.Lima@example.br", "carla@example.br"
    store = throwaway_store()
    store.enqueue([OutboxDraft(**{**d.__dict__, "email": email})
                   for d, email in zip(drafts(3), [ana, bruno, carla], strict=True)])
    h = handler(server)
    h.fail(ana, f"550 5.1.1 <{ana}>: Recipient address rejected")
    h.fail(bruno, f"451 4.2.0 {bruno}... mailbox busy, try later", times=1)
    h.fail(carla, f"554 5.7.1 message to <{carla}> refused", stage="data")
    with caplog.at_level(logging.DEBUG, logger="prepflow"):
        report = run(store, server.port, T0)
    assert (report.sent, report.retried, report.failed) == (0, 1, 2)
    errors = {i.email: i.last_error for i in store.outbox()}
    assert errors == {
        ana: "550 5.1.1 <a***@example.br>: Recipient address rejected",
        bruno: "451 4.2.0 B***@example.br... mailbox busy, try later",
        carla: "554 5.7.1 message to <c***@example.br> refused",
    }
    assert sorted(p.error for p in report.problems) == [
        "550 5.1.1 <a***@example.br>: Recipient address rejected",
        "554 5.7.1 message to <c***@example.br> refused",
    ]
    # Ours only: the test server's own log (aiosmtpd's mail.log) shows the SMTP dialogue.
    logged = "\n".join(r.getMessage() for r in caplog.records if r.name.startswith("prepflow"))
    assert "a***@example.br" in logged
    assert "B***@example.br" in logged
    shown = [logged, repr(report.problems), *map(str, errors.values())]
    for address in (ana, bruno, carla):
        assert not [text for text in shown if address.lower() in text.lower()]
    run(store, server.port, T0 + timedelta(hours=1))  # bruno's retry succeeds
    assert "250" in (store.outbox(status="sent")[0].reply or "")


def test_mask_addresses_in_free_text() -> None:
    assert mask_addresses("ValueError: bad a.b@x.org, 'bob+tag@y.com'.") == (
        "ValueError: bad a***@x.org, '***@y.com'.")
    assert mask_addresses('550 <"ana silva"@[10.0.0.1]> and joão@exemplo.br') == (
        '550 <"***@[10.0.0.1]> and j***@exemplo.br')
    assert mask_addresses("user ana@ unknown; 250 ok") == "user a***@ unknown; 250 ok"
    assert mask_addresses("already a***@itu.int") == "already a***@itu.int"


def test_giving_up_after_max_attempts(server: SmtpServer) -> None:
    store = throwaway_store()
    store.enqueue(drafts(1))
    handler(server).fail("expert0@example.org", "451 4.3.0 try later")  # always
    now = T0
    for _ in range(3):
        run(store, server.port, now, max_attempts=3)
        now += timedelta(hours=1)
    (item,) = store.outbox()
    assert item.status == "failed"
    assert item.attempts == 3
    assert item.last_error == "gave up after 3 attempts: 451 4.3.0 try later"
    assert backoff_delay(BACKOFF, 1) == BACKOFF
    assert backoff_delay(BACKOFF, 3) == 4 * BACKOFF


def test_dropped_connection_mid_data_is_temporary(server: SmtpServer) -> None:
    store = throwaway_store()
    store.enqueue(drafts(10))
    h = handler(server)
    h.drop("expert2@example.org")
    first = run(store, server.port, T0)
    assert (first.sent, first.retried, h.drops) == (9, 1, 1)
    (pending,) = store.outbox(status="pending")
    assert pending.email == "expert2@example.org"
    assert pending.next_attempt_at > T0
    second = run(store, server.port, T0 + timedelta(minutes=5))
    assert second.sent == 1
    assert set(h.keys.values()) == {1}
    assert len(h.keys) == 10


def test_no_server_is_temporary() -> None:
    store = throwaway_store()
    store.enqueue(drafts(5))
    report = run(store, free_port(), T0)
    assert (report.sent, report.retried, report.failed) == (0, 5, 0)
    assert all("SMTPConnect" in (i.last_error or "") for i in store.outbox())


def nothing_lost(store: Any, h: RecordingHandler, total: int, connections: int) -> None:
    """Every row sent and received at least once; a copy received twice is one of at most
    ``connections`` and its row counts two sends."""
    assert statuses(store) == {"sent": total}
    sent = {i.key: i for i in store.outbox()}
    assert set(h.keys) == set(sent)
    twice = [key for key, n in h.keys.items() if n > 1]
    assert len(twice) <= connections
    assert all(h.keys[key] == 2 and sent[key].sends == 2 for key in twice)


def test_cancelled_mid_batch_then_restarted_loses_nothing() -> None:
    """A cancelled run records its 250s, releases nothing unsent and resends only what was
    cut off mid-send (same Message-ID, counted twice); the restart sends the rest."""
    store = throwaway_store()
    store.enqueue(drafts(300))

    class Slow(RecordingHandler):
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            await asyncio.sleep(0.002)
            return await super().handle_DATA(server, session, envelope)

    with SmtpServer(Slow()) as server:
        h = handler(server)

        async def killed() -> None:
            mailer = SmtpMailer(settings(server.port))
            task = asyncio.create_task(deliver(store, mailer, T0, renderer=Renderer(SENDER)))
            while h.count < 100:
                await asyncio.sleep(0.001)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            await mailer.aclose()

        asyncio.run(killed())
        after_kill = statuses(store)
        assert "sending" not in after_kill  # settled by the cancelled run itself
        assert after_kill["sent"] >= 100 - 8  # the server's count, give or take replies
        run(store, server.port, T0 + timedelta(hours=1))
        nothing_lost(store, h, 300, 8)


DELIVER_SCRIPT = textwrap.dedent("""
    import asyncio, sys
    from datetime import datetime, UTC
    from flows.mail.delivery import deliver
    from flows.mail.mail_transport import SmtpMailer
    from flows.mail.render import Renderer
    from flows.settings import SmtpSettings
    from flows.storage import SqlStore
    store = SqlStore(sys.argv[1])
    mailer = SmtpMailer(SmtpSettings(port=int(sys.argv[2]), sender="w <wtpf@itu.int>"))
    asyncio.run(deliver(store, mailer, datetime(2024, 11, 4, 9, tzinfo=UTC), limit=10000,
                        renderer=Renderer("w <wtpf@itu.int>")))
""")


def test_a_killed_deliverer_process_then_restarted_loses_nothing(tmp_path: Path) -> None:
    """SIGKILL mid-run: the restart takes the dead run's rows back at once and resends
    them; at most one copy per connection arrives twice, and its row says so."""
    url = f"sqlite:///{tmp_path / 'outbox.db'}"
    store = SqlStore(url)
    store.enqueue(drafts(400))

    class Slow(RecordingHandler):
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            await asyncio.sleep(0.005)
            return await super().handle_DATA(server, session, envelope)

    with SmtpServer(Slow()) as server:
        h = handler(server)
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        proc = subprocess.Popen([sys.executable, "-c", DELIVER_SCRIPT, url, str(server.port)],
                                cwd=ROOT, env=env)
        deadline = time.monotonic() + 30
        while h.count < 60 and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.005)
        proc.send_signal(signal.SIGKILL)  # no cleanup at all: the crash case
        proc.wait()
        assert 60 <= h.count < 400
        in_flight = statuses(store).get("sending", 0)  # claimed, fate unknown
        assert in_flight <= 8  # one row per connection at most
        restart = run(store, server.port, T0 + timedelta(hours=1))
        assert restart.recovered == restart.resent == in_flight
        nothing_lost(store, h, 400, 8)
    store.close()


def test_header_injection_through_the_server_is_harmless(server: SmtpServer) -> None:
    store = throwaway_store()
    (draft,) = drafts(1)
    store.enqueue([OutboxDraft(**{**draft.__dict__, "name": "Eve\r\nBcc: x@evil"})])
    assert run(store, server.port, T0).sent == 1
    (got,) = handler(server).received
    assert got.rcpt_tos == ["expert0@example.org"]
    parsed = message_from_bytes(got.data, policy=default_policy)
    assert parsed["Bcc"] is None
    assert parsed["To"].addresses[0].display_name == "Eve Bcc: x@evil"


def test_unrenderable_rows_fail_without_stopping_the_others(server: SmtpServer) -> None:
    store = throwaway_store()
    good, bad = drafts(2)
    store.enqueue([good, OutboxDraft(**{**bad.__dict__, "context": {"process_id": "wtpf-26"}})])
    report = run(store, server.port, T0)
    assert (report.sent, report.failed) == (1, 1)
    (failed,) = store.outbox(status="failed")
    assert failed.last_error.startswith("not rendered:")
    assert "cycle_name" in failed.last_error


def test_eml_sink_writes_one_file_per_key_and_shows_duplicates(tmp_path: Path) -> None:
    with SmtpServer(EmlHandler(tmp_path / "mail")) as sink:
        store = throwaway_store()
        store.enqueue(drafts(5))
        assert run(store, sink.port, T0).sent == 5
        store2 = throwaway_store()
        store2.enqueue(drafts(1))  # the same key again, from another store
        run(store2, sink.port, T0)
    files = sorted(p.name for p in (tmp_path / "mail").iterdir())
    first = file_name("wtpf-26:post_draft2:expert:0")
    assert len(files) == 6
    assert f"{first}.eml" in files
    assert f"{first}.dup1.eml" in files


def test_recording_mailer_and_privacy_helpers() -> None:
    store = throwaway_store()
    store.enqueue(drafts(3))
    shown = asyncio.run(preview(store, T0, renderer=Renderer(SENDER)))
    assert [item.key for item, _ in shown] == [d.key for d in drafts(3)]
    assert statuses(store) == {"pending": 3}  # a dry run claims nothing
    mailer = RecordingMailer(lambda m: SendResult(False, True, "550 no") if
                             "expert1@" in str(m["To"]) else None)
    report = asyncio.run(deliver(store, mailer, T0, renderer=Renderer(SENDER)))
    assert (report.sent, report.failed) == (2, 1)
    assert mailer.keys() == ["wtpf-26:post_draft2:expert:0", "wtpf-26:post_draft2:expert:2"]
    assert mask_email("jane.doe@itu.int") == "j***@itu.int"
    assert mask_email("nonsense") == "***"
    secret = SmtpSettings(password="hunter2", username="u")  # type: ignore[arg-type]
    assert "hunter2" not in repr(secret)
    assert "hunter2" not in str(secret)
    assert secret.secret() == "hunter2"


def test_smtp_login_and_pool_reuse_connections() -> None:
    # aiosmtpd refuses AUTH over plain text unless told otherwise; this checks the pool only:
    # 50 messages over 3 connections open 3 sessions, not 50.
    class Counting(RecordingHandler):
        sessions = 0

        async def handle_EHLO(self, server: Any, session: Any, envelope: Any, hostname: str,
                              responses: list[str]) -> list[str]:
            Counting.sessions += 1
            session.host_name = hostname
            return responses

    with SmtpServer(Counting()) as server:
        store = throwaway_store()
        store.enqueue(drafts(50))

        async def go() -> DeliveryReport:
            mailer = SmtpMailer(settings(server.port, concurrency=3))
            try:
                return await deliver(store, mailer, T0, concurrency=3,
                                     renderer=Renderer(SENDER))
            finally:
                await mailer.aclose()

        assert asyncio.run(go()).sent == 50
    assert Counting.sessions == 3
