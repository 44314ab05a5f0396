"""Templates, headers and invitations: every event renders, safely, in the right time zones."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email import message_from_bytes
from email.policy import default as default_policy
from pathlib import Path
from typing import Any

import icalendar
import pytest
from jinja2.exceptions import SecurityError

from flows.mail import invitation as ics_invite
from flows.mail.fastmime import build_fast, build_public
from flows.mail.render import EVENTS, SKIPPED, Renderer, RenderError
from flows.mail.wording import instant_text
from states.dates import zone

SNAPSHOTS = Path(__file__).parent / "snapshots" / "mail"
UPDATE = os.environ.get("PREPFLOW_UPDATE_SNAPSHOTS") == "1"
SENDER = "WTPF Secretariat <wtpf@itu.int>"
NOW = datetime(2024, 11, 4, 9, 0, tzinfo=UTC)
#: The issue's list of events (spec, "?" = no mail needed).
SPEC_EVENTS = {
    "nomination_acknowledged", "draft_posted", "draft_revised", "comment_reminder",
    "comments_closed",
    "consultation_opened", "consultation_closed", "meeting_invitation", "meeting_updated",
    "meeting_cancelled", "final_posted", "forum_reminder", "step_overdue", "rule_at_risk",
    "delivery_failures", "forum_updated",
}
COMMON = {"process_id": "wtpf-26", "forum": "WTPF-26", "contact": "wtpf@itu.int",
          "process_name": "Seventh World Telecommunication/ICT Policy Forum (WTPF-26) — "
                          "preparation of the Secretary-General's report"}
DRAFT2 = {"cycle": "draft2", "cycle_name": "Second Draft", "document": "WTPF26/IEG2-1",
          "document_url": "https://www.itu.int/md/S26-WTPF-WTPF26/IEG2-1/en",
          "deadline": "2024-12-20T23:00:00+00:00"}
IEG1 = {"cycle": "draft1", "cycle_name": "First Draft", "meeting": "ieg1",
        "meeting_name": "1st IEG meeting", "start": "2024-10-28", "end": "2024-10-29",
        "place": "Geneva, ITU headquarters", "mode": "hybrid", "sequence": 0}
#: Realistic contexts, one per event, as the lead's effect → outbox code produces them.
CONTEXTS: dict[str, dict[str, Any]] = {
    "nomination_acknowledged": {"nominated_by": "Switzerland", "entity": "OFCOM",
                                "late": True,
                                "nominations_deadline": "2024-08-26T22:00:00+00:00"},
    "draft_posted": {**DRAFT2, "public_consultation": True},
    "draft_revised": {**DRAFT2, "document": "WTPF26/IEG2-1(Rev.1)", "label": "revised",
                      "previous_document": "WTPF26/IEG2-1", "previous_label": "posted",
                      "reason": "annex corrected"},
    "comment_reminder": {**DRAFT2, "days_before": 7},
    "comments_closed": {**DRAFT2, "next_step": "the 2nd IEG meeting, February 2025"},
    "consultation_opened": dict(DRAFT2),
    "consultation_closed": {"cycle": "draft2", "cycle_name": "Second Draft",
                            "deadline": "2024-12-20T23:00:00+00:00"},
    "meeting_invitation": dict(IEG1),
    "meeting_updated": {**IEG1, "start": "2024-11-04", "end": "2024-11-05", "sequence": 1,
                        "changes": "moved to 4-5 November 2024"},
    "meeting_cancelled": {**IEG1, "sequence": 2, "reason": "merged with the 2nd IEG meeting"},
    "final_posted": {"cycle": "final", "cycle_name": "Final Report",
                     "document": "WTPF26/FINAL", "forum_opens": "2026-05-12",
                     "document_url": "https://www.itu.int/md/S26-WTPF-WTPF26/FINAL/en"},
    "forum_reminder": {"forum_opens": "2026-05-12", "days_before": 14, "place": "Geneva"},
    "forum_updated": {"forum_opens": "2026-05-12", "mode": "hybrid", "place": "Geneva",
                      "previous_mode": "virtual", "reason": "Council decision"},
    "step_overdue": {"step": "Second Draft: posting", "step_key": "draft2.posting",
                     "due": "2024-11-04T23:00:00+00:00", "overdue_days": 2.5,
                     "action": "prepflow post wtpf-26 draft2 --document WTPF26/IEG2-1"},
    "rule_at_risk": {"rule": "final report ≥ 42 days before the forum", "status": "RISK",
                     "message": "final report planned 2026-03-31, 42 days before 2026-05-12 "
                                "is 2026-03-31: no slack", "slack_days": 0},
    "delivery_failures": {"failed": 2, "uncertain": 1, "items": [
        {"id": 17, "event": "draft_posted", "recipient": "j***@example.org",
         "error": "550 5.1.1 no such user"},
        {"id": 23, "event": "comment_reminder", "recipient": "a***@example.net",
         "error": "gave up after 5 attempts: 451 4.3.0 try later"},
        {"id": 31, "event": "draft_posted", "recipient": "m***@example.com",
         "error": "uncertain: the deliverer stopped while sending; not resent"}]},
}


@dataclass(frozen=True)
class Row:
    """An OutboxDraft-like row (the renderer reads only these fields)."""

    event: str
    context: dict[str, Any]
    name: str = "Jane Doe"
    email: str = "jane.doe@example.org"
    language: str = "en"
    timezone: str | None = "America/New_York"
    key: str = ""
    process_id: str = "wtpf-26"
    created_at: datetime = field(default=NOW)

    def __post_init__(self) -> None:
        if not self.key:
            object.__setattr__(self, "key", f"wtpf-26:{self.event}:expert:7")


@pytest.fixture(scope="module")
def renderer() -> Renderer:
    return Renderer(SENDER)


def row(event: str, **changes: Any) -> Row:
    context = {**COMMON, **CONTEXTS[event], **changes.pop("context", {})}
    return Row(event, context, **changes)


def parts(message: Any) -> tuple[str, str]:
    text = message.get_body(("plain",)).get_content()
    html = message.get_body(("html",)).get_content()
    return text, html


def check_snapshot(name: str, text: str) -> None:
    path = SNAPSHOTS / f"{name}.txt"
    if UPDATE or not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    assert text == path.read_text(encoding="utf-8"), (
        f"{name} changed; if intended, rerun with PREPFLOW_UPDATE_SNAPSHOTS=1")


def test_every_event_of_the_spec_has_templates(renderer: Renderer) -> None:
    assert set(EVENTS) == SPEC_EVENTS
    assert not SKIPPED & SPEC_EVENTS
    assert {f"{event}/en" for event in SPEC_EVENTS} <= renderer.available
    assert "draft_posted/fr" in renderer.available


@pytest.mark.parametrize("event", sorted(SPEC_EVENTS))
def test_each_event_renders_with_realistic_data(renderer: Renderer, event: str) -> None:
    message = renderer.render(row(event), "Europe/Zurich", NOW)
    text, html = parts(message)
    assert message.get_content_type() in ("multipart/alternative", "multipart/mixed")
    assert message["X-Prepflow-Key"] == f"wtpf-26:{event}:expert:7"
    assert message["Subject"]
    assert "\n" not in message["Subject"]
    assert "<html" in html
    assert "Jane Doe" in html
    check_snapshot(f"{event}.en", f"Subject: {message['Subject']}\n\n{text}")


def test_french_draft_posted_and_fallback_to_english(renderer: Renderer) -> None:
    french = renderer.render(row("draft_posted", language="fr"), "Europe/Zurich", NOW)
    text, _ = parts(french)
    assert french["Content-Language"] == "fr"
    assert "Date limite : 20 déc. 2024, 24:00 CET (heure de Genève)" in text
    check_snapshot("draft_posted.fr", f"Subject: {french['Subject']}\n\n{text}")
    spanish = renderer.render(row("comment_reminder", language="es"), "Europe/Zurich", NOW)
    assert spanish["Content-Language"] == "en"
    assert "A reminder" in parts(spanish)[0]


def test_deadline_in_geneva_time_and_in_the_experts_zone(renderer: Renderer) -> None:
    text, _ = parts(renderer.render(row("draft_posted"), "Europe/Zurich", NOW))
    assert "Deadline: 20 Dec 2024, 24:00 CET (Geneva time)," in text
    assert "that is 20 Dec 2024, 18:00 EST in your time zone." in text
    text, _ = parts(renderer.render(row("draft_posted", timezone=None), "Europe/Zurich", NOW))
    assert "Deadline: 20 Dec 2024, 24:00 CET (Geneva time)." in text
    assert "your time zone" not in text
    # A summer deadline is CEST; a zone without an abbreviation reads as UTC+hh.
    summer = instant_text("2025-06-16T22:00:00+00:00", zone("Europe/Zurich"), "en")
    assert summer == "16 Jun 2025, 24:00 CEST"
    assert instant_text("2025-06-16T22:00:00+00:00", zone("Asia/Riyadh"), "en") == \
        "17 Jun 2025, 01:00 UTC+03"


def test_html_is_escaped_and_text_is_not(renderer: Renderer) -> None:
    message = renderer.render(row("draft_posted", name="Ann <b>&</b> O'Neil",
                                  context={"cycle_name": "Draft <2>"}), "Europe/Zurich", NOW)
    text, html = parts(message)
    assert "Ann &lt;b&gt;&amp;&lt;/b&gt; O&#39;Neil" in html
    assert "<b>" not in html
    assert "Draft &lt;2&gt;" in html
    assert "Dear Ann <b>&</b> O'Neil," in text


def test_a_name_with_line_breaks_cannot_inject_headers(renderer: Renderer) -> None:
    # Our call: names and subjects are folded to one line (the message still goes out,
    # to the one real address); an address with a line break is refused.
    evil = row("draft_posted", name="Eve\r\nBcc: x@evil",
               context={"cycle_name": "Draft\r\nBcc: y@evil\nX-Evil: 1"})
    raw = renderer.render(evil, "Europe/Zurich", NOW).as_bytes()
    parsed = message_from_bytes(raw, policy=default_policy)
    assert parsed["Bcc"] is None
    assert parsed["X-Evil"] is None
    assert [a.addr_spec for a in parsed["To"].addresses] == ["jane.doe@example.org"]
    assert parsed["To"].addresses[0].display_name == "Eve Bcc: x@evil"
    assert "Draft Bcc: y@evil X-Evil: 1" in parsed["Subject"]
    for address in ("jane@example.org\r\nBcc: x@evil", "a b@example.org", "no-at-sign"):
        with pytest.raises(RenderError, match="recipient address"):
            renderer.render(row("draft_posted", email=address), "Europe/Zurich", NOW)


def test_message_id_is_stable_per_key(renderer: Renderer) -> None:
    first = renderer.render(row("draft_posted"), "Europe/Zurich", NOW)
    again = renderer.render(row("draft_posted", name="Someone Else"), "Europe/Zurich", NOW)
    other = renderer.render(row("draft_posted", key="wtpf-26:x:expert:8"), "Europe/Zurich", NOW)
    assert first["Message-ID"] == again["Message-ID"] != other["Message-ID"]
    assert first["Message-ID"].endswith("@itu.int>")


def test_missing_context_is_an_error_that_names_the_keys(renderer: Renderer) -> None:
    broken = Row("comment_reminder", {**COMMON, "cycle": "draft2"})
    with pytest.raises(RenderError, match="cycle_name, document, deadline, days_before"):
        renderer.render(broken, "Europe/Zurich", NOW)
    with pytest.raises(RenderError, match="no template for event 'meeting_started'"):
        renderer.render(Row("meeting_started", dict(COMMON)), "Europe/Zurich", NOW)


def edited(tmp_path: Path, text: str) -> Renderer:
    """A renderer whose draft_posted text template was edited by someone."""
    root = tmp_path / "mail"
    for source in (Renderer(SENDER).templates).rglob("*.j2"):
        target = root / source.relative_to(Renderer(SENDER).templates)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(source.read_text(encoding="utf-8"), encoding="utf-8")
    (root / "draft_posted" / "en.txt.j2").write_text(text, encoding="utf-8")
    return Renderer(SENDER, root)


@pytest.mark.parametrize("attack", [
    "{{ ''.__class__.__mro__ }}",
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ cycle_name.__class__.__init__.__globals__ }}",
    "{{ '{0.__class__.__mro__}'.format(1) }}",
])
def test_an_edited_template_cannot_reach_python_internals(tmp_path: Path, attack: str) -> None:
    renderer = edited(tmp_path, attack)
    template = renderer.env.get_template("draft_posted/en.txt.j2")
    with pytest.raises(SecurityError):
        template.render(renderer.view(row("draft_posted"), "Europe/Zurich", "en"))
    with pytest.raises(RenderError, match="SecurityError"):
        renderer.render(row("draft_posted"), "Europe/Zurich", NOW)


def test_an_undefined_variable_in_a_template_is_an_error(tmp_path: Path) -> None:
    renderer = edited(tmp_path, "Hello {{ nobody_set_this }}")
    with pytest.raises(RenderError, match="UndefinedError"):
        renderer.render(row("draft_posted"), "Europe/Zurich", NOW)


def calendar_of(message: Any) -> icalendar.Calendar:
    (attachment,) = [p for p in message.iter_attachments() if p.get_filename() == "invite.ics"]
    return icalendar.Calendar.from_ical(attachment.get_content())


@pytest.mark.parametrize(("day", "start_utc", "end_utc"), [
    # 27 Oct 2024 clocks went back: the 28th is CET (UTC+1).
    ("2024-10-28", datetime(2024, 10, 28, 8, 30, tzinfo=UTC),
     datetime(2024, 10, 28, 16, 30, tzinfo=UTC)),
    # 30 Mar 2025 clocks went forward: the 31st is CEST (UTC+2).
    ("2025-03-31", datetime(2025, 3, 31, 7, 30, tzinfo=UTC),
     datetime(2025, 3, 31, 15, 30, tzinfo=UTC)),
])
def test_invitation_ics_parses_with_geneva_times_across_dst(
        renderer: Renderer, day: str, start_utc: datetime, end_utc: datetime) -> None:
    message = renderer.render(row("meeting_invitation", context={"start": day, "end": None}),
                              "Europe/Zurich", NOW)
    cal = calendar_of(message)
    assert cal["METHOD"] == "REQUEST"
    (event,) = cal.walk("VEVENT")
    (tz,) = cal.walk("VTIMEZONE")
    assert tz["TZID"] == "Europe/Zurich"
    assert event["DTSTART"].params["TZID"] == "Europe/Zurich"
    assert event.decoded("DTSTART").astimezone(UTC) == start_utc
    assert event.decoded("DTEND").astimezone(UTC) == end_utc
    assert str(event["UID"]) == ics_invite.uid("wtpf-26", "ieg1")
    assert event["SEQUENCE"] == 0
    assert "mailto:jane.doe@example.org" in str(event["ATTENDEE"])
    calendar_part = [p for p in message.walk() if p.get_content_type() == "text/calendar"]
    assert calendar_part
    assert calendar_part[0].get_param("method") == "REQUEST"


def test_update_and_cancellation_keep_the_uid_and_raise_the_sequence(
        renderer: Renderer) -> None:
    invite = calendar_of(renderer.render(row("meeting_invitation"), "Europe/Zurich", NOW))
    update = calendar_of(renderer.render(row("meeting_updated"), "Europe/Zurich", NOW))
    cancel = calendar_of(renderer.render(row("meeting_cancelled"), "Europe/Zurich", NOW))
    uids = {str(c.walk("VEVENT")[0]["UID"]) for c in (invite, update, cancel)}
    assert len(uids) == 1
    assert [c.walk("VEVENT")[0]["SEQUENCE"] for c in (invite, update, cancel)] == [0, 1, 2]
    assert cancel["METHOD"] == "CANCEL"
    assert cancel.walk("VEVENT")[0]["STATUS"] == "CANCELLED"
    timed = ics_invite.meeting_span("2025-03-31 14:00", "2025-03-31 16:00", "Europe/Zurich")
    assert timed[0].astimezone(UTC) == datetime(2025, 3, 31, 12, 0, tzinfo=UTC)
    with pytest.raises(ValueError, match="not fixed to the day"):
        ics_invite.meeting_span("2025-02", None, "Europe/Zurich")


def _structure(message: Any) -> list[tuple[str, list[tuple[str, str]], bytes | str]]:
    """Each part, in order: content type, header (name, value) pairs, decoded content.

    A MIME-Version header inside a part is left out: RFC 2045 §4 gives it meaning only at the
    top, and the public API's add_alternative writes one on the parts it makes."""
    parsed = message_from_bytes(message.as_bytes(), policy=default_policy)
    found = []
    for part in parsed.walk():
        headers = sorted((k.lower(), str(v)) for k, v in part.items()
                         if part is parsed or k.lower() != "mime-version")
        content = b"" if part.is_multipart() else part.get_content()
        found.append((part.get_content_type(), headers, content))
    return found


@pytest.mark.parametrize("pair", sorted(Renderer(SENDER).available))
def test_the_fast_build_matches_the_public_api_build(renderer: Renderer, pair: str) -> None:
    """For every template × language, fastmime's message parses to the same parts, header
    values and decoded contents as the public-API build (the bytes differ in quoted-printable
    line wrapping, a part's header order, and MIME-Version inside parts)."""
    event, language = pair.split("/")
    parts_ = renderer.parts(row(event, language=language), "Europe/Zurich", NOW)
    fast, public = build_fast(parts_), build_public(parts_)
    assert _structure(fast) == _structure(public)
    assert fast["Message-ID"] == public["Message-ID"]
    assert fast["Date"] == public["Date"]


def test_rows_stored_by_release_0_1_validate_into_their_models() -> None:
    """Every pending and sent row of the release-0.1 fixture store parses into its event's
    payload model and renders."""
    import sqlite3
    from json import loads

    from flows.storage.notify_model import OutboxDraft
    from states.messages import MODELS, parse_message

    fixture = Path(__file__).resolve().parents[1] / "fixtures" / "prepflow-release-0.1.db"
    # immutable: read as a file, so no -wal/-shm is written next to the committed fixture
    with sqlite3.connect(f"file:{fixture}?mode=ro&immutable=1", uri=True) as db:
        rows = db.execute("SELECT event, context, email, name, language, timezone, \"key\" "
                          "FROM outbox WHERE context NOT LIKE '%erased%'").fetchall()
    assert {r[0] for r in rows} >= {"meeting_invitation", "comments_closed", "draft_posted"}
    renderer = Renderer(SENDER)
    for event, context, address, name, language, timezone, key in rows:
        message = parse_message(event, loads(context))
        assert isinstance(message, MODELS[event])
        draft = OutboxDraft(key=key, process_id="wtpf-26", event=event, recipient="r",
                            email=address, name=name, language=language, timezone=timezone,
                            context=loads(context), created_at=NOW)
        assert renderer.render(draft, "Europe/Zurich", NOW)["X-Prepflow-Key"] == key


def test_a_payload_round_trips_through_the_outbox_json() -> None:
    """model_dump(mode="json") is what a row stores; validating it gives the same model."""
    from states.messages import MeetingUpdated, parse_message

    sent = MeetingUpdated(**{**COMMON, **IEG1, "sequence": 3})
    stored = sent.model_dump(mode="json")
    assert stored["event"] == "meeting_updated"
    assert parse_message("meeting_updated", stored) == sent
