"""`prepflow rehearse --experts N --mail-sink DIR`: every message the process makes goes out
for real, through the delivery flow and SMTP, to a local server writing one .eml each."""

from __future__ import annotations

import email
import email.policy
import re
from collections import Counter
from pathlib import Path

import pytest

from flows.storage import open_store
from tests.flows.test_rehearsal import rehearse

pytestmark = [pytest.mark.usefixtures("prefect_server"), pytest.mark.slow]


def test_every_expected_message_arrives_exactly_once_and_is_listed(tmp_path: Path) -> None:
    """Each outbox row was sent and sits in the sink once (by idempotency key); the transcript
    names every event and the total."""
    sink, transcript = tmp_path / "mail", tmp_path / "transcript.txt"
    database = f"sqlite:///{tmp_path / 'rehearsal.db'}"
    rehearse("config/wtpf26.yaml", "--experts", "12", "--mail-sink", str(sink),
             "--transcript", str(transcript), "--database", database)
    files = sorted(sink.glob("*.eml"))
    keys = Counter()
    for path in files:
        message = email.message_from_bytes(path.read_bytes(), policy=email.policy.SMTP)
        keys[str(message["X-Prepflow-Key"]).strip()] += 1  # a long key is folded
    assert all(count == 1 for count in keys.values()), "a key arrived twice"
    assert not [p for p in files if ".dup" in p.name]
    with open_store(database) as store:
        rows = store.outbox("wtpf-26-rehearsal")
    assert {r.status for r in rows} == {"sent"}
    assert set(keys) == {r.key for r in rows}
    text = transcript.read_text()
    events = Counter(r.event for r in rows)
    for event, count in events.items():
        listed = re.findall(rf"mail +{event}: (\d+) message", text)
        assert sum(map(int, listed)) == count, event
    assert f"# {len(rows)} messages delivered to the mail sink" in text
    experts = {k for k in keys if ":expert:" in k}
    assert {"draft_posted", "comment_reminder", "meeting_invitation", "final_posted",
            "nomination_acknowledged"} <= set(events)
    assert len({k.rsplit(":", 1)[1] for k in experts}) == 12  # every expert reached


def test_the_sink_is_reached_through_settings_not_the_environment(tmp_path: Path) -> None:
    """mail_sink yields where to deliver and leaves PREPFLOW_SMTP_* untouched; delivery
    pointed there by Settings.pointed_at writes the .eml file."""
    import os
    from datetime import UTC, datetime

    from flows.addresses import normalise_email
    from flows.mail.delivery import deliver
    from flows.mail.mail_transport import SmtpMailer
    from flows.mail.render import Renderer
    from flows.rehearsal.mail import mail_sink
    from flows.settings import load_settings
    from flows.storage import OutboxDraft
    from flows.storage.testing import sqlite_store

    before = {k: v for k, v in os.environ.items() if k.startswith("PREPFLOW_")}
    now = datetime(2024, 11, 4, 9, tzinfo=UTC)
    store = sqlite_store(tmp_path)
    store.enqueue([OutboxDraft(
        key="wtpf-26:rule:x:member:1", process_id="wtpf-26", event="rule_at_risk",
        recipient="member:1", email=normalise_email("ops@itu.int"), name="Ops", language="en",
        timezone=None, created_at=now, context={
            "process_id": "wtpf-26", "process_name": "WTPF-26", "forum": "WTPF-26",
            "rule": "six-weeks", "status": "RISK", "message": "no forum date"})])
    with mail_sink(tmp_path / "sink") as target:
        assert {k: v for k, v in os.environ.items() if k.startswith("PREPFLOW_")} == before
        settings = load_settings().pointed_at(target)

        async def go() -> int:
            async with SmtpMailer(settings.smtp) as mailer:
                report = await deliver(store, mailer, now,
                                       renderer=Renderer("W <wtpf@itu.int>"))
                return report.sent

        import asyncio

        assert asyncio.run(go()) == 1
    assert len(list((tmp_path / "sink").glob("*.eml"))) == 1
