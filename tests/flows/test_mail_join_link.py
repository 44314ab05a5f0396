"""A virtual or hybrid meeting's join link (issue 12): https only, refused when the definition
is read; carried from the definition into the invitation's text, HTML and .ics; and the .ics
part typed ``text/calendar; charset=utf-8; method=…``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import icalendar
import pytest

from flows.mail.render import Renderer
from states.definition import parse_definition
from states.engine import apply
from states.errors import DefinitionError
from states.messages import MeetingInvitation
from tests.flows.cli_run import Run, fresh_store, in_process
from tests.flows.test_mail_render import NOW, SENDER, parts, row
from tests.states.helpers import SEC, WTPF26, fix_meetings, new, raw, utc

ZOOM = "https://itu.zoom.us/j/123456789?pwd=a1b2"
TEAMS = "https://teams.microsoft.com/l/meetup-join/19%3ameeting_ab%40thread.v2/0?context=x"


def with_link(link: object) -> dict[str, Any]:
    """config/wtpf26.yaml with a join link on the first draft's first meeting."""
    data = raw(WTPF26)
    data["cycles"][0]["meetings"][0]["join_url"] = link
    return data


def render(event: str, **context: Any) -> Any:
    return Renderer(SENDER).render(row(event, context=context), "Europe/Zurich", NOW)


def event_of(message: Any) -> Any:
    (part,) = [p for p in message.walk() if p.get_content_type() == "text/calendar"]
    (event,) = icalendar.Calendar.from_ical(part.get_content()).walk("VEVENT")
    return event


@pytest.mark.parametrize("link", [
    "http://itu.zoom.us/j/1", "javascript:alert(1)", "itu.zoom.us/j/1", "https://",
    "https://itu.zoom.us/j/1 now", "ftp://itu.int/x"])
def test_a_join_link_that_is_not_https_is_refused_with_its_field(link: str) -> None:
    """Refused when the definition is read, naming the field and saying what is allowed."""
    with pytest.raises(DefinitionError) as caught:
        parse_definition(with_link(link), "wtpf26.yaml")
    text = str(caught.value)
    assert "cycles[0].meetings[0].join_url" in text
    assert "https://" in text


def test_prepflow_check_refuses_a_plain_http_join_link(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """`prepflow check`: exit 2, one paragraph naming the field and the bad link."""
    fresh_store(tmp_path, monkeypatch)
    run: Run = in_process(capsys)
    text = WTPF26.read_text(encoding="utf-8").replace(
        "        place: Geneva\n", "        place: Geneva\n        join_url: http://itu.int/j\n", 1)
    path = tmp_path / "http-link.yaml"
    path.write_text(text, encoding="utf-8")
    result = run("check", str(path))
    assert result.code == 2
    said = " ".join((result.out + result.err).split())
    assert "join_url" in said
    assert "'http://itu.int/j' is not an https link" in said
    assert "Traceback" not in said


def test_the_invitation_carries_the_definitions_join_link() -> None:
    """The core's invitation payload holds the meeting's link from the definition."""
    definition = parse_definition(with_link(ZOOM), "wtpf26.yaml")
    instance = fix_meetings(definition, new(definition))
    posted = apply(definition, instance, "post_draft1", SEC, utc(2024, 8, 5, 8), document="D")
    invitations = [e.message for e in posted.effects if e.event == "meeting_invitation"]
    linked = [m for m in invitations if isinstance(m, MeetingInvitation) and m.join_url]
    assert [(m.meeting, m.join_url) for m in linked] == [("ieg1", ZOOM)]


def test_a_virtual_meeting_shows_its_link_in_mail_and_calendar() -> None:
    """Text and HTML say 'Join online'; the .ics has URL, LOCATION (the link),
    CONFERENCE and X-GOOGLE-CONFERENCE."""
    message = render("meeting_invitation", mode="virtual", place=None, join_url=ZOOM)
    text, html = parts(message)
    assert f"Join online: {ZOOM}" in text
    assert f'<a href="{ZOOM.replace("&", "&amp;")}">' in html
    event = event_of(message)
    assert str(event["URL"]) == ZOOM
    assert str(event["LOCATION"]) == ZOOM
    assert str(event["CONFERENCE"]) == ZOOM
    assert event["CONFERENCE"].params["FEATURE"] == ["AUDIO", "VIDEO"]
    assert str(event["X-GOOGLE-CONFERENCE"]) == ZOOM
    assert "X-MICROSOFT-SKYPETEAMSMEETINGURL" not in event
    assert ZOOM in str(event["DESCRIPTION"])


def test_a_hybrid_meeting_names_place_and_link_and_teams_gets_its_field() -> None:
    """Hybrid: LOCATION is the place and the link; a Teams link also goes in Outlook's field."""
    event = event_of(render("meeting_updated", mode="hybrid", join_url=TEAMS))
    assert str(event["LOCATION"]) == f"Geneva, ITU headquarters and online: {TEAMS}"
    assert str(event["X-MICROSOFT-SKYPETEAMSMEETINGURL"]) == TEAMS


def test_without_a_link_nothing_changes() -> None:
    """No link: the location is the place, and no link properties or lines appear."""
    message = render("meeting_invitation")
    event = event_of(message)
    assert str(event["LOCATION"]) == "Geneva, ITU headquarters"
    assert "URL" not in event
    assert "Join online" not in parts(message)[0]


@pytest.mark.parametrize(("event", "method"), [
    ("meeting_invitation", "REQUEST"), ("meeting_updated", "REQUEST"),
    ("meeting_cancelled", "CANCEL")])
def test_the_calendar_part_is_utf8_text_calendar_with_its_method(event: str,
                                                                 method: str) -> None:
    """`text/calendar; charset=utf-8; method=…` as calendar clients expect (RFC 6047)."""
    message = render(event, place="Genève, siège de l'UIT")
    (part,) = [p for p in message.walk() if p.get_content_type() == "text/calendar"]
    assert part.get_content_charset() == "utf-8"
    assert part.get_param("method") == method
    assert "Genève" in part.get_content()
