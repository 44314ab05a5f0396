"""Issue 10, "Load and faults": the SMTP server down for an hour of simulated time.

`prepflow outbox deliver` runs every two minutes of simulated time (as `deliver-notifications`
is served) against a port nobody listens on, then a real aiosmtpd server comes up on it. The
README promises: refused connections are retried with backoff (PREPFLOW_SMTP_BACKOFF_SECONDS,
doubling), a message fails after PREPFLOW_SMTP_MAX_ATTEMPTS tries and is reported, and
`prepflow outbox retry ID` queues a failed one again. Either way each message arrives once.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from flows.clock import FixedClock
from flows.definition_file import load_definition
from flows.mail.delivery import MAX_BACKOFF
from flows.mail.sink import RecordingHandler, SmtpServer, free_port, message_key
from flows.settings import load_settings
from flows.shell import Service
from flows.storage import OutboxItem, SqlStore
from flows.storage.notify_model import ExpertDraft
from tests.flows.cli_run import Result, Run, fresh_store, in_process

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
WTPF = load_definition(ROOT / "config" / "wtpf26.yaml")
START = datetime(2024, 7, 10, 8, tzinfo=UTC)
POSTED = datetime(2024, 8, 5, 8, tzinfo=UTC)
CLOSED = datetime(2024, 8, 26, 22, tzinfo=UTC)
EVERY = timedelta(minutes=2)  # deliver-notifications' schedule when served
DOWN = timedelta(hours=1)
BACKOFF = timedelta(seconds=60)  # the documented default, first retry delay


def experts(count: int) -> list[ExpertDraft]:
    """Confirmed experts, each mailed when the draft is posted and when its window closes."""
    return [ExpertDraft(email=f"expert{n}@example.org", first_name="Expert", last_name=str(n),
                        entity="Ministry", nominated_by="Chile", country="Chile", region="AMS",
                        stakeholder_type="government", nominated_at=START, status="confirmed")
            for n in range(count)]


def queued(url: str, run: Run) -> dict[str, int]:
    """WTPF-26 with 6 experts, its First Draft posted and, by `prepflow advance`, its comment
    window closed: the outbox's messages, id by key."""
    with SqlStore(url) as store:
        svc = Service(store, FixedClock(START))
        svc.init(WTPF, START, "wtpf-26")
        store.add_experts("wtpf-26", experts(6))
        svc.transition("wtpf-26", "post_draft1", "wtpf-secretariat", "WTPF-26/1", now=POSTED)
    assert run("advance", "--now", CLOSED.isoformat()).code == 0
    with SqlStore(url) as store:
        return {i.key: i.id for i in store.outbox()}


def attempt_times(max_attempts: int) -> list[timedelta]:
    """When a message refused at every try is tried, after the first try, by runs every two
    minutes: each retry is due BACKOFF·2^(n-1) after the n-th try, and goes with the first run
    at or after that."""
    tries, at = [timedelta(0)], timedelta(0)
    for n in range(1, max_attempts):
        due = at + min(BACKOFF * 2 ** (n - 1), MAX_BACKOFF)
        at = -(-due // EVERY) * EVERY  # the next run at or after ``due``
        tries.append(at)
    return tries


@dataclass
class Outage:
    """A store with messages queued and a port nobody listens on, the deliverer pointed at
    it; ``at``: simulated time since the first delivery run."""

    url: str
    run: Run
    messages: dict[str, int]
    port: int
    at: timedelta = timedelta(0)

    def deliver(self) -> Result:
        """One `prepflow outbox deliver` run now; the clock moves on to the next run."""
        result = self.run("outbox", "deliver", "--now", (CLOSED + self.at).isoformat())
        assert "Traceback" not in result.out + result.err
        self.at += EVERY
        return result

    def down_for_an_hour(self) -> dict[timedelta, Result]:
        """Every run of the hour the server is down, by its time."""
        runs = {}
        while self.at <= DOWN:
            when = self.at
            runs[when] = self.deliver()
            assert "0 sent" in runs[when].out, runs[when].out
        return runs

    def rows(self) -> dict[str, OutboxItem]:
        """The queued messages' rows now, by key."""
        with SqlStore(self.url) as store:
            return {i.key: i for i in store.outbox() if i.key in self.messages}

    def until_sent(self, handler: RecordingHandler) -> Counter[str]:
        """Runs until every message is sent, then a few more; copies received, by key."""
        while {i.status for i in self.rows().values()} != {"sent"}:
            assert self.at <= DOWN + timedelta(hours=2), "still unsent two hours later"
            result = self.deliver()
            assert result.code == 0, result.out
        for later in (EVERY, timedelta(hours=1), timedelta(days=1)):  # nothing goes twice
            self.at += later
            assert "0 sent" in self.deliver().out
        return Counter(handler.keys)


@pytest.fixture
def outage(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
           capsys: pytest.CaptureFixture[str]) -> Outage:
    """Messages queued by a real tick; the deliverer's settings from PREPFLOW_SMTP_* (the
    pacing left at its defaults unless a test sets it)."""
    url = fresh_store(tmp_path, monkeypatch)
    run = in_process(capsys)
    messages = queued(url, run)
    assert len(messages) >= 12  # posted and closed, to each of 6 experts
    port = free_port()
    for name, value in {"HOST": "127.0.0.1", "PORT": str(port), "TIMEOUT": "5",
                        "SENDER": "WTPF Secretariat <wtpf@itu.int>"}.items():
        monkeypatch.setenv(f"PREPFLOW_SMTP_{name}", value)
    for name in ("MAX_ATTEMPTS", "BACKOFF_SECONDS", "CONCURRENCY", "UNCERTAIN"):
        monkeypatch.delenv(f"PREPFLOW_SMTP_{name}", raising=False)
    return Outage(url, run, messages, port)


def test_smtp_down_an_hour_with_few_tries_fails_each_then_a_retry_sends_it_once(
        outage: Outage, monkeypatch: pytest.MonkeyPatch) -> None:
    """PREPFLOW_SMTP_MAX_ATTEMPTS=5 (60 s doubling): 15 minutes in, every message fails, named
    by the run (exit 1), and the secretariat's report of them fails too later on; with the
    server back, `prepflow outbox retry` (audited) sends each exactly once."""
    monkeypatch.setenv("PREPFLOW_SMTP_MAX_ATTEMPTS", "5")
    tries = attempt_times(5)
    gives_up = tries[-1]
    report_gives_up = gives_up + EVERY + tries[-1]  # queued then, tried from the next run on
    assert report_gives_up <= DOWN
    runs = outage.down_for_an_hour()
    count = len(outage.messages)
    for when, result in runs.items():
        if when == gives_up:  # the last try of every message: each named, exit 1
            assert result.code == 1
            assert f"{count} failed" in result.out
            assert result.out.count("gave up after 5 attempts") == count
        elif when == report_gives_up:
            assert result.code == 1
            assert "1 failed" in result.out
            assert "delivery_failures to w***@itu.int: gave up after 5 attempts" in result.out
        else:
            assert result.code == 0, result.out
    rows = outage.rows()
    assert {(i.status, i.attempts) for i in rows.values()} == {("failed", 5)}
    assert all(f"Error connecting to 127.0.0.1 on port {outage.port}" in (i.last_error or "")
               for i in rows.values())
    with SqlStore(outage.url) as store:
        reports = [(i.recipient, i.status) for i in store.outbox()
                   if i.event == "delivery_failures"]
    assert reports == [("member:wtpf-secretariat", "failed")]

    with SmtpServer(RecordingHandler(), port=outage.port) as server:
        assert isinstance(server.handler, RecordingHandler)
        for item_id in outage.messages.values():  # the documented way back, one by one
            retried = outage.run("outbox", "retry", str(item_id), "--by", "wtpf-secretariat",
                                 "--reason", "SMTP server back", "--now",
                                 (CLOSED + outage.at).isoformat())
            assert retried.code == 0, retried.err
        sent_at = outage.at
        arrived = outage.until_sent(server.handler)
    assert {key: arrived[key] for key in outage.messages} == dict.fromkeys(outage.messages, 1)
    assert {(i.status, i.sends, i.sent_at) for i in outage.rows().values()} == {
        ("sent", 1, CLOSED + sent_at)}  # all with the first run after the retries
    with SqlStore(outage.url) as store:
        assert len([e for e in store.audit("wtpf-26") if e.kind == "outbox-retry"]) == count


def test_smtp_down_an_hour_with_the_defaults_then_each_arrives_once_unaided(
        outage: Outage) -> None:
    """Default pacing (10 tries, at most an hour apart, the last well past the hour): no
    message fails, none is reported; once the server is back each goes at its next try,
    exactly once."""
    tries = attempt_times(load_settings().smtp.max_attempts)
    within = [t for t in tries if t <= DOWN]
    assert len(within) < len(tries)
    runs = outage.down_for_an_hour()
    assert {r.code for r in runs.values()} == {0}
    assert {(i.status, i.attempts) for i in outage.rows().values()} == {
        ("pending", len(within))}

    with SmtpServer(RecordingHandler(), port=outage.port) as server:
        assert isinstance(server.handler, RecordingHandler)
        arrived = outage.until_sent(server.handler)
    assert {key: arrived[key] for key in outage.messages} == dict.fromkeys(outage.messages, 1)
    next_try = tries[len(within)]
    assert {(i.status, i.sends, i.sent_at) for i in outage.rows().values()} == {
        ("sent", 1, CLOSED + next_try)}
    with SqlStore(outage.url) as store:
        assert not [i for i in store.outbox() if i.event == "delivery_failures"]


def test_a_key_folded_after_the_colon_is_read_without_the_folds_space() -> None:
    """A key too long for one header line (a rule warning's) is folded after the colon; the
    sink reads the key itself, so it counts and names that message by its key."""
    key = "wtpf-26:rule:six-weeks:unknown:2026-04-13:unset:member:wtpf-secretariat"
    raw = (f"From: a@example.org\r\nX-Prepflow-Key:\r\n {key}\r\n\r\nbody\r\n").encode()
    assert message_key(raw) == key
