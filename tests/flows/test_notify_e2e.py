"""From a decision to a mailbox: the outbox written with the transition, delivered once
through a real SMTP server (aiosmtpd on 127.0.0.1), failures reported to the secretariat."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from flows.clock import FixedClock
from flows.definition_file import load_definition
from flows.mail.sink import RecordingHandler, SmtpServer
from flows.nominations import acknowledgements, check_row
from flows.orchestration.deliver import dry_run, run_delivery
from flows.settings import SmtpSettings
from flows.shell import Service
from flows.storage import SqlStore

BY = "wtpf-secretariat"
PEOPLE = [("Ana", "ana@example.br", "A", "fr"), ("Kofi", "kofi@example.gh", "D", "en"),
          ("Mei", "mei@example.cn", "E", "zh")]


def utc(*args: int) -> datetime:
    """An aware UTC instant."""
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


@pytest.fixture
def svc(tmp_path: Path) -> Iterator[Service]:
    """WTPF-26 on a SQLite store with three nominated experts (acknowledgements queued)."""
    store = SqlStore(f"sqlite:///{tmp_path / 'store.db'}")
    service = Service(store, FixedClock(utc(2024, 7, 10)))
    definition = load_definition("config/wtpf26.yaml")
    service.init(definition, utc(2024, 7, 10))
    now = utc(2024, 8, 1)
    drafts = [check_row(definition, {
        "first_name": name, "last_name": "Test", "entity": "Org", "email": email,
        "nominated_by": "State", "country": "XX", "region": region,
        "stakeholder_type": "government", "language": language}, now)
        for name, email, region, language in PEOPLE]
    store.add_experts("wtpf-26", drafts, acknowledgements(definition, "wtpf-26", drafts, now))
    yield service
    store.close()


def test_posting_queues_and_delivers_each_message_exactly_once(svc: Service) -> None:
    """Post the First Draft: three acknowledgements, three 'draft posted', one secretariat alert,
    each received once; a second delivery run sends nothing."""
    svc.transition("wtpf-26", "post_draft1", BY, "WTPF-26/1", now=utc(2024, 8, 5, 8))
    events = sorted(m.event for m in svc.store.outbox("wtpf-26"))
    assert events == ["draft_posted"] * 3 + ["nomination_acknowledged"] * 3 + ["rule_at_risk"]
    handler = RecordingHandler()
    with SmtpServer(handler) as server:
        settings = SmtpSettings(host=server.host, port=server.port, concurrency=2)
        first = run_delivery(svc, utc(2024, 8, 5, 8, 1), settings=settings)
        second = run_delivery(svc, utc(2024, 8, 5, 8, 2), settings=settings)
    assert (first.sent, first.failed, second.sent) == (7, 0, 0)
    assert handler.count == 7
    assert all(count == 1 for count in handler.keys.values())
    assert {m.status for m in svc.store.outbox("wtpf-26")} == {"sent"}
    audit = " ".join(str(dict(e.inputs)) + (e.reason or "") for e in svc.store.audit("wtpf-26"))
    assert "example" not in audit  # no address in the audit log


def test_a_retried_decision_never_queues_twice(svc: Service) -> None:
    """Advancing twice at the same instant decides reminders once: one row per expert."""
    svc.transition("wtpf-26", "post_draft1", BY, "WTPF-26/1", now=utc(2024, 8, 5, 8))
    svc.advance(utc(2024, 8, 19, 22))
    svc.advance(utc(2024, 8, 19, 22))
    reminders = [m for m in svc.store.outbox("wtpf-26") if m.event == "comment_reminder"]
    assert len(reminders) == 3
    assert len({m.key for m in reminders}) == 3


def test_withdrawn_experts_receive_nothing_more(svc: Service) -> None:
    """A withdrawn nomination is not among the recipients of later messages."""
    svc.store.set_expert_status("wtpf-26", "kofi@example.gh", "withdrawn")
    svc.transition("wtpf-26", "post_draft1", BY, "WTPF-26/1", now=utc(2024, 8, 5, 8))
    posted = [m.email for m in svc.store.outbox("wtpf-26") if m.event == "draft_posted"]
    assert sorted(posted) == ["ana@example.br", "mei@example.cn"]


def test_permanent_failures_are_reported_to_the_secretariat_once(svc: Service) -> None:
    """A 550 for one expert fails that message, and the secretariat gets one report of it."""
    svc.transition("wtpf-26", "post_draft1", BY, "WTPF-26/1", now=utc(2024, 8, 5, 8))
    handler = RecordingHandler()
    handler.fail("mei@example.cn", "550 5.1.1 mailbox unavailable")
    with SmtpServer(handler) as server:
        settings = SmtpSettings(host=server.host, port=server.port, concurrency=2)
        report = run_delivery(svc, utc(2024, 8, 5, 8, 1), settings=settings)
        run_delivery(svc, utc(2024, 8, 5, 8, 2), settings=settings)
    assert report.failed == 2  # acknowledgement and 'draft posted' to the refused address
    failures = [m for m in svc.store.outbox("wtpf-26") if m.event == "delivery_failures"]
    assert len(failures) == 1
    assert failures[0].status == "sent"
    assert failures[0].context["failed"] == 2
    assert "mei@example.cn" not in str(failures[0].context)  # masked
    assert all("550" in (m.last_error or "") for m in svc.store.outbox("wtpf-26", "failed"))


def test_dry_run_counts_without_sending_or_claiming(svc: Service) -> None:
    """--dry-run shows what would go out and leaves every row pending."""
    svc.transition("wtpf-26", "post_draft1", BY, "WTPF-26/1", now=utc(2024, 8, 5, 8))
    counts = dry_run(svc, utc(2024, 8, 5, 8, 1))
    assert counts == {"draft_posted": 3, "nomination_acknowledged": 3, "rule_at_risk": 1}
    assert {m.status for m in svc.store.outbox("wtpf-26")} == {"pending"}


def test_every_queued_row_stores_its_events_typed_payload(svc: Service) -> None:
    """Rows queued by a transition, its notices and the register hold model_dump(mode="json")
    of their event's model: it validates back to an equal model, event included."""
    from states.messages import MODELS, parse_message

    svc.transition("wtpf-26", "post_draft1", BY, "WTPF-26/1", now=utc(2024, 8, 5, 8))
    svc.advance(utc(2024, 8, 20, 12))  # the 7-day comment reminder falls due
    rows = svc.store.outbox("wtpf-26")
    assert {"draft_posted", "comment_reminder", "nomination_acknowledged"} <= {
        r.event for r in rows}
    for row in rows:
        message = parse_message(row.event, row.context)
        assert isinstance(message, MODELS[row.event])
        assert row.context["event"] == row.event
        assert message.model_dump(mode="json") == dict(row.context)


def test_a_stranded_message_is_reported_as_uncertain_not_failed(svc: Service) -> None:
    """With PREPFLOW_SMTP_UNCERTAIN=hold, a row left 'sending' by a deliverer that died becomes
    uncertain on the next run, and the secretariat's report counts it as uncertain (a typed
    flag, not the error's wording)."""
    svc.transition("wtpf-26", "post_draft1", BY, "WTPF-26/1", now=utc(2024, 8, 5, 8))
    (stranded,) = svc.store.claim(utc(2024, 8, 5, 8, 1), 1)  # the deliverer dies here
    with SmtpServer(RecordingHandler()) as server:
        settings = SmtpSettings(host=server.host, port=server.port, uncertain="hold")
        report = run_delivery(svc, utc(2024, 8, 5, 9), settings=settings)
    assert (report.uncertain, report.failed) == (1, 0)
    assert [(p.id, p.uncertain) for p in report.problems] == [(stranded.id, True)]
    (failures,) = [m for m in svc.store.outbox("wtpf-26") if m.event == "delivery_failures"]
    assert (failures.context["failed"], failures.context["uncertain"]) == (0, 1)


def test_a_report_of_only_uncertain_messages_says_how_to_handle_them(svc: Service) -> None:
    """All uncertain (hold policy): the mail lists them with --status uncertain (not failed)
    and says a retry resends with the same Message-ID, not 're-queue a failed one'."""
    from flows.mail.render import Renderer

    svc.transition("wtpf-26", "post_draft1", BY, "WTPF-26/1", now=utc(2024, 8, 5, 8))
    svc.store.claim(utc(2024, 8, 5, 8, 1), 1)  # the deliverer dies here
    with SmtpServer(RecordingHandler()) as server:
        settings = SmtpSettings(host=server.host, port=server.port, uncertain="hold")
        run_delivery(svc, utc(2024, 8, 5, 9), settings=settings)
    (failures,) = [m for m in svc.store.outbox("wtpf-26") if m.event == "delivery_failures"]
    message = Renderer("WTPF <wtpf@itu.int>").render(failures, "Europe/Zurich",
                                                     utc(2024, 8, 5, 9))
    text = " ".join(message.get_body(("plain",)).get_content().split())
    assert "prepflow outbox --status uncertain" in text
    assert "--status failed" not in text
    assert "check whether it arrived" in text
    assert "same Message-ID" in text
    assert "Re-queue a failed one" not in text
