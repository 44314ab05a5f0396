"""Issue 9, "a crash loses nothing": a deliverer killed mid-run, a connection lost after the
data, a dead run's lease. Real aiosmtpd servers on 127.0.0.1, real stores, and for the crash a
real `prepflow outbox deliver` process killed with SIGKILL."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.parser import BytesHeaderParser
from email.policy import default as default_policy
from pathlib import Path
from typing import Any

import pytest

from flows.mail.delivery import DeliveryReport, deliver
from flows.mail.mail_transport import SmtpMailer
from flows.mail.render import Renderer
from flows.mail.sink import RecordingHandler, SmtpServer
from flows.settings import SmtpSettings
from flows.storage import SqlStore
from flows.storage.notify_model import DeliveryRun, OutboxDraft
from tests.flows.cli_run import fresh_store, in_process

ROOT = Path(__file__).resolve().parents[2]
SENDER = "WTPF Secretariat <wtpf@itu.int>"
T0 = datetime(2024, 11, 4, 9, 0, tzinfo=UTC)
CONTEXT = {"process_id": "wtpf-26", "process_name": "WTPF-26 preparation", "forum": "WTPF-26",
           "cycle": "draft2", "cycle_name": "Second Draft", "document": "WTPF26/IEG2-1",
           "deadline": "2024-12-20T23:00:00+00:00", "timezone": "Europe/Zurich"}
CONNECTIONS = 8
HEADERS = BytesHeaderParser(policy=default_policy)


def drafts(n: int) -> list[OutboxDraft]:
    """``n`` 'draft posted' messages to distinct experts."""
    return [OutboxDraft(key=f"wtpf-26:post_draft2:expert:{i}", process_id="wtpf-26",
                        event="draft_posted", recipient=f"expert:{i}",
                        email=f"expert{i}@example.org", name=f"Expert {i}", language="en",
                        timezone=None, context=CONTEXT, created_at=T0) for i in range(n)]


class Slow(RecordingHandler):
    """A server that takes a moment per message, so a kill lands mid-run."""

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        await asyncio.sleep(0.002)
        return await super().handle_DATA(server, session, envelope)


@dataclass
class KeepsThenDrops(RecordingHandler):
    """Keeps the message to ``victim``, then closes the connection before replying 250, once
    (RFC 1047's case: the client cannot know the server has it)."""

    victim: str = ""
    dropped: int = 0

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        reply = await super().handle_DATA(server, session, envelope)
        if self.victim in envelope.rcpt_tos and not self.dropped:
            self.dropped += 1
            assert isinstance(server.transport, asyncio.Transport)
            server.transport.abort()
        return reply


def run(store: Any, port: int, now: datetime, **options: Any) -> DeliveryReport:
    """One delivery run in-process, with a fresh pool of connections."""
    async def go() -> DeliveryReport:
        mailer = SmtpMailer(SmtpSettings(port=port, sender=SENDER, timeout=5))
        try:
            return await deliver(store, mailer, now, renderer=Renderer(SENDER), **options)
        finally:
            await mailer.aclose()
    return asyncio.run(go())


def message_ids(handler: RecordingHandler) -> dict[str, list[str]]:
    """The Message-ID of each copy the server received, by idempotency key."""
    found: dict[str, list[str]] = defaultdict(list)
    for got in handler.received:
        head = HEADERS.parsebytes(got.data.split(b"\r\n\r\n", 1)[0] + b"\r\n\r\n")
        found[str(got.key)].append(str(head["Message-ID"]))
    return found


def prepflow(url: str) -> list[str]:
    """`prepflow outbox deliver` on the store at ``url``, as a command of its own."""
    return [sys.executable, "-m", "flows.cli", "outbox", "deliver", "--database", url]


def command_env(port: int) -> dict[str, str]:
    """The environment a secretariat's deliverer would have: the PREPFLOW_SMTP_* settings."""
    return {**os.environ, "PYTHONPATH": str(ROOT), "PREPFLOW_SMTP_HOST": "127.0.0.1",
            "PREPFLOW_SMTP_PORT": str(port), "PREPFLOW_SMTP_SENDER": SENDER,
            "PREPFLOW_SMTP_CONCURRENCY": str(CONNECTIONS), "PREPFLOW_SMTP_TIMEOUT": "10"}


def wait_for(ready: Callable[[], bool], seconds: float) -> None:
    """Poll until ``ready`` (a condition on another process), failing after ``seconds``."""
    deadline = time.monotonic() + seconds
    while not ready():
        if time.monotonic() > deadline:
            pytest.fail(f"not ready after {seconds} s")
        time.sleep(0.005)


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgres",
                                                             marks=pytest.mark.postgres)])
def test_sigkill_during_2000_messages_then_restart_loses_nothing(
        backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    """The issue's probe: `prepflow outbox deliver` killed with SIGKILL after some hundreds of
    2,000 messages, restarted at once: every message arrives, a copy arrives twice only for
    at most one row per connection, under the same Message-ID, and that row says so."""
    url = (f"sqlite:///{tmp_path / 'outbox.db'}" if backend == "sqlite"
           else request.getfixturevalue("postgres_url"))
    store = SqlStore(url)
    store.enqueue(drafts(2000))
    with SmtpServer(Slow()) as server:
        h = server.handler
        assert isinstance(h, RecordingHandler)
        env = command_env(server.port)
        proc = subprocess.Popen(prepflow(url), cwd=ROOT, env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for(lambda: h.count >= 300 or proc.poll() is not None, 60)
        proc.send_signal(signal.SIGKILL)  # no cleanup at all: the crash case
        proc.wait()
        assert 300 <= h.count < 2000
        after_kill = {i.id: i.status for i in store.outbox()}
        held = [i for i, status in after_kill.items() if status == "sending"]
        assert len(held) <= CONNECTIONS  # one row per connection at most
        assert set(after_kill.values()) <= {"sent", "sending", "pending"}  # none lost

        restart = subprocess.run(prepflow(url), cwd=ROOT, env=env,
                                 capture_output=True, text=True, timeout=120)
        assert restart.returncode == 0, restart.stderr
        assert f"{len(held)} recovered from a stopped run" in restart.stdout

        rows = {i.key: i for i in store.outbox()}
        assert {i.status for i in rows.values()} == {"sent"}
        ids = message_ids(h)
        assert set(ids) == set(rows)  # every message arrived
        twice = {key for key, copies in ids.items() if len(copies) > 1}
        assert len(twice) <= len(held) <= CONNECTIONS
        assert all(len(set(ids[key])) == 1 and len(ids[key]) == 2 for key in twice)
        assert all(rows[key].sends == 2 for key in twice)  # the row says it was sent twice
        assert {i.id for i in rows.values() if i.sends == 2} == set(held)
        assert store.delivery_runs() == []  # both runs' leases are gone
    store.close()


def test_drop_after_the_data_resends_once_and_the_row_says_sent_twice(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """A server that keeps a message and drops the connection before its 250: the message is
    retried (same Message-ID), arrives twice, and the row and `prepflow outbox` say so."""
    url = fresh_store(tmp_path, monkeypatch)
    store = SqlStore(url)
    store.enqueue(drafts(5))
    with SmtpServer(KeepsThenDrops(victim="expert2@example.org")) as server:
        h = server.handler
        assert isinstance(h, KeepsThenDrops)
        first = run(store, server.port, T0)
        assert (first.sent, first.retried, first.uncertain, h.dropped) == (4, 1, 0, 1)
        (pending,) = store.outbox(status="pending")
        assert (pending.email, pending.sends) == ("expert2@example.org", 1)
        second = run(store, server.port, T0 + timedelta(minutes=10))
        assert (second.sent, second.resent) == (1, 1)
    ids = message_ids(h)
    assert len(ids[pending.key]) == 2
    assert len(set(ids[pending.key])) == 1  # the same Message-ID both times
    assert {i.key: i.sends for i in store.outbox()} == {
        d.key: 2 if d.key == pending.key else 1 for d in drafts(5)}
    listing = in_process(capsys)("outbox")
    assert listing.code == 0
    assert listing.out.count("sent, maybe twice (same Message-ID)") == 1
    store.close()


def test_drop_after_the_data_with_hold_leaves_it_uncertain(tmp_path: Path) -> None:
    """With PREPFLOW_SMTP_UNCERTAIN=hold the dropped message is not resent: 'uncertain', one
    send counted, reported for a person."""
    store = SqlStore(f"sqlite:///{tmp_path / 'outbox.db'}")
    store.enqueue(drafts(3))
    with SmtpServer(KeepsThenDrops(victim="expert1@example.org")) as server:
        h = server.handler
        assert isinstance(h, KeepsThenDrops)
        first = run(store, server.port, T0, uncertain="hold")
        later = run(store, server.port, T0 + timedelta(hours=1), uncertain="hold")
    assert (first.sent, first.uncertain, later.sent) == (2, 1, 0)
    assert [(p.recipient, p.uncertain) for p in first.problems] == [("e***@example.org", True)]
    (held,) = store.outbox(status="uncertain")
    assert (held.email, held.sends) == ("expert1@example.org", 1)
    assert h.keys[held.key] == 1  # kept by the server once, and not sent again
    store.close()


def dead_pid() -> int:
    """The id of a process of this host that has ended (and been reaped)."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_leases_decide_which_stranded_rows_are_taken_back(tmp_path: Path) -> None:
    """At a run's start: a dead process's rows on this host are taken back at once although
    its lease runs on, an expired lease's rows too; a live run elsewhere keeps its rows."""
    import socket

    store = SqlStore(f"sqlite:///{tmp_path / 'outbox.db'}")
    store.enqueue(drafts(3))
    wall = datetime.now(UTC)
    runs = {"dead-here": DeliveryRun("dead-here", socket.gethostname(), dead_pid(), wall,
                                     wall + timedelta(hours=1)),
            "expired": DeliveryRun("expired", "elsewhere", 1, wall, wall - timedelta(seconds=1)),
            "alive": DeliveryRun("alive", "elsewhere", 1, wall, wall + timedelta(hours=1))}
    for n, (run_id, lease) in enumerate(runs.items()):
        store.start_run(lease)
        store.claim(T0, 1, run=run_id)
        assert n + 1 == len(store.outbox(status="sending"))
    with SmtpServer(RecordingHandler()) as server:
        report = run(store, server.port, T0)
    assert (report.recovered, report.sent, report.resent) == (2, 2, 2)
    assert [i.status for i in store.outbox()] == ["sent", "sent", "sending"]
    assert store.outbox(status="sending")[0].claimed_by == "alive"
    assert [r.run_id for r in store.delivery_runs()] == ["alive"]
    store.close()


def test_a_killed_process_is_dead_even_before_it_is_reaped() -> None:
    """A live process is alive; killed, it is dead at once, also as a zombie not yet reaped
    by its parent (a worker's supervisor may be slow to wait for it)."""
    from flows.mail.leases import process_alive

    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        assert process_alive(proc.pid)
        proc.send_signal(signal.SIGKILL)
        wait_for(lambda: not process_alive(proc.pid), 10)  # a zombie until proc.wait()
    finally:
        proc.kill()
        proc.wait()
    assert not process_alive(proc.pid)
