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
"""

from __future__ import annotations

from datetime import datetime, time
from functools import lru_cache
from zoneinfo import ZoneInfo

from icalendar import Calendar, Event, Timezone, vCalAddress, vText

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


@lru_cache(maxsize=8)
def _vtimezone(zone: str) -> bytes:
    # Building a VTIMEZONE walks the zone's transitions: slow, so once per zone.
    ical: bytes = Timezone.from_tzid(zone).to_ical()
    return ical


def invitation(*, process_id: str, meeting_id: str, summary: str, start: str, end: str | None,
               place: str | None, description: str, sequence: int, method: str,
               organizer: tuple[str, str], attendee: tuple[str, str], zone: str,
               stamp: datetime, days: tuple[str, ...] | None = None) -> bytes:
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
    if place:
        event.add("location", place)
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
