"""RFC 5545 meeting invitations (iTIP REQUEST / CANCEL) for one attendee.

Times are written with TZID=<process zone> and the matching VTIMEZONE, so a calendar shows a
meeting in Geneva at the right hour on both sides of a daylight-saving change (a meeting on
28 Oct 2024 is CET, UTC+1; one on 31 Mar 2025 is CEST, UTC+2).

The UID is stable per (process, meeting): an update or cancellation replaces the same entry
in the attendee's calendar; SEQUENCE (from the core, +1 on every change) orders them.
A meeting known only by its days gets ITU's usual meeting day, 09:30-17:30 local time
(DEFAULT_HOURS), stated in the description; a plan date with a time uses that time. A meeting
held on non-contiguous days is one VEVENT: its first day as DTSTART/DTEND and each further day
as an RDATE (RFC 5545 §3.8.5.2; each instance lasts as long as the first), so an update or a
cancellation still replaces one calendar entry.

A virtual or hybrid meeting's join link (issue 12) goes where calendars look for it: URL
(RFC 5545; Apple Calendar shows it), LOCATION (the link for a virtual meeting, place and link
for a hybrid one: every calendar shows the location, most make a link in it clickable),
CONFERENCE (RFC 7986), X-GOOGLE-CONFERENCE (as Google Calendar writes it), and for a Microsoft
Teams link X-MICROSOFT-SKYPETEAMSMEETINGURL (as Outlook writes it); the description (the
mail's text) names it too.
"""

from __future__ import annotations

from datetime import datetime, time
from functools import lru_cache
from zoneinfo import ZoneInfo

from icalendar import Calendar, Event, Timezone, vCalAddress, vText, vUri

from states.dates import PlanDate

DEFAULT_HOURS = (time(9, 30), time(17, 30))
PRODID = "-//prepflow//meeting invitation//EN"


def uid(process_id: str, meeting_id: str) -> str:
    """The same for every invitation, update and cancellation of one meeting."""
    return f"{process_id}.{meeting_id}.meeting@prepflow"


def meeting_span(start: str, end: str | None, zone: str) -> tuple[datetime, datetime]:
    """Local aware start and end of a meeting from plan dates ('2024-10-28' or with HH:MM)."""
    tz = ZoneInfo(zone)
    first, last = PlanDate.parse(start), PlanDate.parse(end or start)
    if not first.exact or not last.exact:
        raise ValueError(f"meeting {start}..{end} is not fixed to the day; no invitation yet")
    begins = datetime.combine(first.first_day(), first.at or DEFAULT_HOURS[0], tzinfo=tz)
    ends = datetime.combine(last.last_day(), last.at or DEFAULT_HOURS[1], tzinfo=tz)
    if ends <= begins:
        raise ValueError(f"meeting ends ({ends:%Y-%m-%d %H:%M}) before it starts "
                         f"({begins:%Y-%m-%d %H:%M})")
    return begins, ends


def _location(place: str | None, mode: str | None, join_url: str | None) -> str | None:
    """The place; the link for a virtual meeting; both for a hybrid one."""
    if not join_url or mode == "in-person":
        return place
    if mode == "virtual" or not place:
        return join_url
    return f"{place} and online: {join_url}"


def _add_link(event: Event, join_url: str) -> None:
    """The join link in the properties calendars read it from (see the module's note)."""
    event.add("url", vUri(join_url))
    conference = vUri(join_url)  # RFC 7986: FEATURE is a list, written unquoted
    conference.params.update({"VALUE": "URI", "FEATURE": ["AUDIO", "VIDEO"],
                              "LABEL": "Join online"})
    event.add("conference", conference)
    event.add("x-google-conference", vUri(join_url))
    if ".teams.microsoft.com/" in join_url or "//teams.microsoft.com/" in join_url:
        event.add("x-microsoft-skypeteamsmeetingurl", vUri(join_url))


@lru_cache(maxsize=8)
def _vtimezone(zone: str) -> bytes:
    # Building a VTIMEZONE walks the zone's transitions: slow, so once per zone.
    ical: bytes = Timezone.from_tzid(zone).to_ical()
    return ical


def invitation(*, process_id: str, meeting_id: str, summary: str, start: str, end: str | None,
               place: str | None, description: str, sequence: int, method: str,
               organizer: tuple[str, str], attendee: tuple[str, str], zone: str,
               stamp: datetime, days: tuple[str, ...] | None = None,
               mode: str | None = None, join_url: str | None = None) -> bytes:
    """One VEVENT in a METHOD:REQUEST or METHOD:CANCEL calendar, as bytes (with ``days``,
    the first day's hours and an RDATE for each further day)."""
    if method not in ("REQUEST", "CANCEL"):
        raise ValueError(f"method {method!r}: use REQUEST or CANCEL")
    if days and len(days) > 1:
        start, end = days[0], days[0]
    begins, ends = meeting_span(start, end, zone)
    cal = Calendar()
    cal.add("prodid", PRODID)
    cal.add("version", "2.0")
    cal.add("method", method)
    cal.add_component(Timezone.from_ical(_vtimezone(zone)))
    event = Event()
    event.add("uid", uid(process_id, meeting_id))
    event.add("sequence", sequence)
    event.add("dtstamp", stamp)
    event.add("dtstart", begins)
    event.add("dtend", ends)
    if days and len(days) > 1:
        event.add("rdate", [meeting_span(day, day, zone)[0] for day in days[1:]])
    event.add("summary", summary)
    event.add("description", description)
    location = _location(place, mode, join_url)
    if location:
        event.add("location", location)
    if join_url:
        _add_link(event, join_url)
    event.add("status", "CANCELLED" if method == "CANCEL" else "CONFIRMED")
    event.add("transp", "OPAQUE")
    who = vCalAddress(f"mailto:{organizer[1]}")
    who.params["cn"] = vText(organizer[0] or organizer[1])
    event.add("organizer", who)
    guest = vCalAddress(f"mailto:{attendee[1]}")
    guest.params["cn"] = vText(attendee[0] or attendee[1])
    guest.params["role"] = vText("REQ-PARTICIPANT")
    guest.params["partstat"] = vText("NEEDS-ACTION")
    guest.params["rsvp"] = vText("TRUE")
    event.add("attendee", guest)
    cal.add_component(event)
    ical: bytes = cal.to_ical()
    return ical
