"""Deadlines shown to people are the instants the machine enforces, on every DST-change day.

Each rendering (mail text and HTML, the recipient's own zone, the `.ics` description, the
status/timeline wording, `comments status`) is parsed back to UTC, with the zone abbreviation
read through zoneinfo independently of the code under test, and compared to
``states.dates.end_instant`` — the instant at which the window really closes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from icalendar import Calendar

from flows.calendar_export import to_ics
from flows.cli.comments_cmds import _deadline
from flows.definition_file import load_definition
from flows.mail.render import Renderer
from flows.orchestration.operator_view import status_rows
from states import apply, parse_definition, start
from states.dates import PlanDate, describe, end_instant
from states.plan import Kind, Milestone
from tests.states.helpers import SEC, raw

ROOT = Path(__file__).resolve().parents[2]
ZONES = ("Europe/Zurich", "America/New_York", "Australia/Sydney")
#: The process's own DST-change days (Geneva), to which each zone's own change days are added.
PROCESS_DST_DAYS = (date(2024, 10, 27), date(2025, 3, 30), date(2025, 10, 26), date(2026, 3, 29))
MONTHS = {name: number for number, name in enumerate(
    ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"], 1)}
MONTHS.update({name: number for number, name in enumerate(
    ["janv.", "févr.", "mars", "avr.", "mai", "juin", "juil.", "août", "sept.", "oct.", "nov.",
     "déc."], 1)})
SHOWN = re.compile(r"(\d{1,2}) (\S+) (\d{4}),? (\d{2}):(\d{2}) (?:\(|end of day \()?([A-Z+\-0-9]+)")


def change_days(tz: ZoneInfo) -> list[date]:
    """The days of the process's span on which ``tz`` changes its offset."""
    days, day = [], date(2024, 9, 1)
    while day < date(2026, 12, 31):
        start = datetime.combine(day, time(12), tzinfo=tz).utcoffset()
        if datetime.combine(day + timedelta(days=1), time(12), tzinfo=tz).utcoffset() != start:
            days.append(day + timedelta(days=1))  # the change is in the small hours
        day += timedelta(days=1)
    return days


CASES = [(key, day) for key in ZONES
         for day in sorted(set(PROCESS_DST_DAYS) | set(change_days(ZoneInfo(key))))]


def offsets(tz: ZoneInfo, around: date) -> dict[str, timedelta]:
    """Every abbreviation ``tz`` uses near ``around`` with its UTC offset (zoneinfo's own)."""
    found: dict[str, timedelta] = {}
    start = datetime.combine(around - timedelta(days=2), time(0), tzinfo=UTC)
    for hour in range(24 * 5):
        local = (start + timedelta(hours=hour)).astimezone(tz)
        name, offset = local.tzname() or "", local.utcoffset()
        assert offset is not None
        found["UTC" + name if name[:1] in "+-" else name] = offset
    return found


def parse_back(text: str, tz: ZoneInfo, around: date) -> list[datetime]:
    """Every 'day month year, HH:MM ZONE' shown in ``text``, as the UTC instant it names."""
    instants = []
    for day, month, year, hour, minute, name in SHOWN.findall(text):
        known = offsets(tz, around)
        assert name in known, f"{name!r} is not an abbreviation {tz.key} uses: {text!r}"
        wall = datetime(int(year), MONTHS[month], int(day)) + timedelta(
            hours=int(hour), minutes=int(minute))  # '24:00' is the next day's 00:00
        instants.append((wall - known[name]).replace(tzinfo=UTC))
    return instants


@dataclass(frozen=True)
class Row:
    """An outbox-like row (the renderer reads only these fields)."""

    event: str
    context: dict[str, Any]
    language: str
    timezone: str
    name: str = "Jane Doe"
    email: str = "jane.doe@example.org"
    key: str = "wtpf-26:dst:expert:7"
    process_id: str = "wtpf-26"
    created_at: datetime = field(default=datetime(2024, 9, 1, tzinfo=UTC))


@pytest.fixture(scope="module")
def renderer() -> Renderer:
    return Renderer("WTPF Secretariat <wtpf@itu.int>")


@pytest.mark.parametrize(("key", "day"), CASES, ids=[f"{k}-{d}" for k, d in CASES])
@pytest.mark.parametrize("event", ["comment_reminder", "draft_posted"])
@pytest.mark.parametrize("language", ["en", "fr"])
def test_mail_shows_the_enforced_deadline(renderer: Renderer, key: str, day: date, event: str,
                                          language: str) -> None:
    """Text and HTML name end_instant, in the process's zone and in the recipient's."""
    tz = ZoneInfo(key)
    enforced = end_instant(PlanDate.parse(day.isoformat()), tz)
    theirs = ZONES[(ZONES.index(key) + 1) % len(ZONES)]
    context = {"process_id": "wtpf-26", "forum": "WTPF-26", "contact": "wtpf@itu.int",
               "process_name": "WTPF-26", "cycle": "draft2", "cycle_name": "Second Draft",
               "document": "WTPF26/IEG2-1", "deadline": enforced.isoformat(),
               "days_before": 7, "public_consultation": True}
    parts = renderer.parts(Row(event, context, language, theirs), key)
    for body in (parts.text, parts.html):
        process_part, recipient_part = re.split(r"\b(?:that is|soit)\b", body)
        ours = parse_back(process_part, tz, day)
        yours = parse_back(recipient_part, ZoneInfo(theirs), day)
        assert ours == [enforced], body
        assert yours == [enforced], body
        label = {"Europe/Zurich": "Geneva"}.get(key, key.rsplit("/", 1)[-1].replace("_", " "))
        named = f"(heure de {'Genève' if label == 'Geneva' else label})" \
            if parts.language == "fr" else f"({label} time)"
        assert named in process_part, body  # the zone named beside the hour is the process's


@pytest.mark.parametrize(("key", "day"), CASES, ids=[f"{k}-{d}" for k, d in CASES])
def test_status_calendar_and_comments_show_the_enforced_deadline(key: str, day: date) -> None:
    """`status`/`timeline` (describe), `comments status` and the `.ics` name end_instant."""
    tz = ZoneInfo(key)
    plan_date = PlanDate.parse(day.isoformat())
    enforced = end_instant(plan_date, tz)
    assert parse_back(describe(enforced, tz), tz, day) == [enforced]
    shown = _deadline(enforced, tz)
    match = re.fullmatch(r"(.+), end of day \((\S+)\)", shown)
    assert match, shown
    assert parse_back(f"{match[1]}, 24:00 {match[2]}", tz, day) == [enforced]
    definition = load_definition(ROOT / "config" / "wtpf26.yaml").model_copy(
        update={"timezone": key})
    milestone = Milestone("draft2.comments", "Second Draft: comments", Kind.COMMENTS, "draft2",
                          plan_date)
    data, _ = to_ics(definition, [milestone], datetime(2024, 9, 1, tzinfo=UTC))
    (event,) = Calendar.from_ical(data).walk("VEVENT")
    description = str(event["description"])
    assert parse_back(description, tz, day) == [enforced], description
    assert f"{enforced:%Y-%m-%d %H:%M} UTC" in description


@pytest.mark.parametrize(("key", "day"), CASES, ids=[f"{k}-{d}" for k, d in CASES])
def test_the_status_artifact_shows_the_enforced_deadline(key: str, day: date) -> None:
    """The operator's status table (the `<process>-status` artifact) names end_instant for a
    comment deadline on a DST-change day, in the definition's own zone."""
    data = raw(ROOT / "config" / "wtpf26.yaml")
    data["timezone"] = key
    data["nominations_deadline"] = (day - timedelta(days=60)).isoformat()
    draft1 = data["cycles"][0]
    draft1["posting"] = (day - timedelta(days=21)).isoformat()
    draft1["comment_deadline"] = day.isoformat()
    draft1["meetings"][0]["start"] = (day + timedelta(days=30)).isoformat()
    definition = parse_definition(data, "test")
    tz = ZoneInfo(key)
    enforced = end_instant(PlanDate.parse(day.isoformat()), tz)
    posted = apply(definition, start(definition, enforced - timedelta(days=20)).after,
                   "post_draft1", SEC, enforced - timedelta(days=20), document="D1").after
    rows = status_rows(definition, posted, enforced - timedelta(days=2))
    (row,) = [r for r in rows if r["cycle"] == draft1["name"]]
    assert parse_back(row["next milestone"], tz, day) == [enforced], row
