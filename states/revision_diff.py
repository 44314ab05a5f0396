"""What a new version of a definition changes, in words: the 'changes' of a revision record.

A revision's audit record carries the whole new definition (to rebuild the process from the
log) and this list, for people reading the log: 'ieg4: mode virtual → in-person'.
"""

from __future__ import annotations

from typing import Any

from states.definition import MeetingDef, ProcessDefinition


def _show(value: object) -> str:
    if value is None:
        return "none"
    if isinstance(value, list):
        return ", ".join(_show(v) for v in value) or "none"
    return str(value)


def _fields(prefix: str, before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    """'prefix.field: old → new' for each field that differs (nested mappings by name)."""
    said = []
    for name in sorted(set(before) | set(after), key=lambda n: (n not in before, n)):
        was, now = before.get(name), after.get(name)
        if was == now:
            continue
        if isinstance(was, dict) and isinstance(now, dict):
            said += _fields(f"{prefix}{name}.", was, now)
        else:
            said.append(f"{prefix}{name}: {_show(was)} → {_show(now)}")
    return said


def _meeting_text(meeting: MeetingDef) -> str:
    days = (f"on {_show([str(d) for d in meeting.days])}" if meeting.days
            else f"{meeting.start}" + (f"..{meeting.end}" if meeting.end else ""))
    kind = "informal session" if meeting.informal else "meeting"
    where = f", {meeting.place}" if meeting.place else ""
    return f"{kind} '{meeting.name}' {days}, {meeting.mode.value}{where}"


def changes(old: ProcessDefinition, new: ProcessDefinition) -> list[str]:
    """Every difference between two versions, readable, in the definition's order."""
    said: list[str] = []
    old_doc, new_doc = old.model_dump(mode="json"), new.model_dump(mode="json")
    top = {k: v for k, v in old_doc.items() if k != "cycles"}
    said += _fields("", top, {k: v for k, v in new_doc.items() if k != "cycles"})
    old_cycles = {c.id: c for c in old.cycles}
    new_cycles = {c.id: c for c in new.cycles}
    for cycle in old.cycles:
        if cycle.id not in new_cycles:
            said.append(f"cycle {cycle.id} ('{cycle.name}') removed")
    old_meetings = {m.id: (c.id, m) for c in old.cycles for m in c.meetings}
    new_meetings = {m.id: (c.id, m) for c in new.cycles for m in c.meetings}
    for cycle in new.cycles:
        before = old_cycles.get(cycle.id)
        if before is None:
            said.append(f"cycle {cycle.id} ('{cycle.name}') added")
        else:
            said += _fields(f"{cycle.id}.", before.model_dump(mode="json", exclude={"meetings"}),
                            cycle.model_dump(mode="json", exclude={"meetings"}))
        for meeting in cycle.meetings:
            prior = old_meetings.get(meeting.id)
            if prior is None:
                said.append(f"{meeting.id}: added to {cycle.id}: {_meeting_text(meeting)}")
                continue
            if prior[0] != cycle.id:
                said.append(f"{meeting.id}: moved from {prior[0]} to {cycle.id}")
            said += _fields(f"{meeting.id}.", prior[1].model_dump(mode="json"),
                            meeting.model_dump(mode="json"))
    for meeting_id, (cycle_id, meeting) in old_meetings.items():
        if meeting_id not in new_meetings:
            said.append(f"{meeting_id}: removed from {cycle_id} ({_meeting_text(meeting)})")
    return said
