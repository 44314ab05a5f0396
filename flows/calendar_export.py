"""RFC 5545 calendar of a process's deadlines, postings, meetings and the forum."""

from __future__ import annotations

from datetime import datetime, timedelta

from icalendar import Calendar, Event

from states.dates import describe, end_instant, zone
from states.definition import ProcessDefinition
from states.plan import Kind, Milestone


def to_ics(definition: ProcessDefinition, milestones: list[Milestone],
           stamp: datetime) -> tuple[bytes, list[Milestone]]:
    """The calendar, and the milestones left out because their day is not fixed yet.

    Days are all-day events (as the plan states them); deadlines carry their exact instant in
    the description, in the process's zone and UTC, so no reader has to guess the time zone.
    """
    tz = zone(definition.timezone)
    cal = Calendar()
    cal.add("prodid", "-//prepflow//preparatory process calendar//EN")
    cal.add("version", "2.0")
    cal.add("x-wr-calname", definition.name)
    skipped = []
    for item in milestones:
        if item.start is None or not item.start.exact or (item.last and not item.last.exact):
            skipped.append(item)
            continue
        last = item.last or item.start
        event = Event()
        event.add("uid", f"{definition.id}.{item.key}@prepflow")
        event.add("dtstamp", stamp)
        event.add("summary", f"{definition.forum.name}: {item.label}")
        if item.start.at is not None and item.kind is not Kind.MEETING:
            instant = end_instant(item.start, tz)
            event.add("dtstart", instant)
            event.add("dtend", instant)
        else:
            event.add("dtstart", item.start.first_day())
            event.add("dtend", last.last_day() + timedelta(days=1))
        lines = [item.label]
        if item.kind in (Kind.COMMENTS, Kind.CONSULTATION, Kind.NOMINATIONS):
            instant = end_instant(item.start, tz)
            lines.append(f"Deadline: end of {item.start.human()} in {tz.key} "
                         f"(until {describe(instant, tz)}, {instant:%Y-%m-%d %H:%M} UTC).")
        if item.place:
            event.add("location", item.place)
        if item.mode:
            lines.append(f"Meeting mode: {item.mode}.")
        event.add("description", "\n".join(lines))
        cal.add_component(event)
    return cal.to_ical(), skipped
