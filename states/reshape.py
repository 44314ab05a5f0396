"""Typed reshaping operations: each builds the next version of a definition from the current.

Pure functions (no instance, no clock): ``add_meeting``, ``cancel_meeting``, ``split_meeting``,
``change_meeting`` and ``change_forum`` return a new ProcessDefinition; whether a running
process may switch to it is ``states.revision.revise``'s decision (history kept, rules
re-checked). Bad input (an unknown meeting, a session written wrongly, an id used twice) is an
InputError naming what was typed and what would be valid.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from states.dates import PlanDate
from states.definition import Mode, ProcessDefinition, parse_definition
from states.errors import DefinitionError, InputError, Problem

SESSION_FORM = ("[informal ]MODE:DATES[@PLACE][ as ID], MODE one of physical, in-person, "
                "virtual, hybrid; DATES 2026-01-20, 2026-01-20..2026-01-22 or "
                "2026-01-20,2026-01-22 (non-contiguous days); e.g. "
                "'physical:2026-01-20..2026-01-22@Geneva' or 'informal virtual:2026-03-10'")
_SESSION = re.compile(r"^\s*(?P<informal>informal\s+)?(?P<mode>[a-z-]+)\s*:\s*(?P<dates>[^@]+?)"
                      r"\s*(?:@\s*(?P<place>.+?))?\s*(?:\s+as\s+(?P<id>[a-z0-9-]+))?\s*$")


@dataclass(frozen=True)
class Dates:
    """A meeting's days: a start (and end), or a list of exact non-contiguous days."""

    start: PlanDate
    end: PlanDate | None = None
    days: tuple[PlanDate, ...] | None = None

    @classmethod
    def parse(cls, text: str) -> Dates:
        """'2026-01-20', '2026-01-20..2026-01-22', or '2026-01-20,2026-01-22,2026-02-03'."""
        try:
            if "," in text:
                days = tuple(sorted(PlanDate.parse(d.strip()) for d in text.split(",")))
                return cls(days[0], days[-1], days)
            first, sep, second = text.partition("..")
            start = PlanDate.parse(first.strip())
            return cls(start, PlanDate.parse(second.strip()) if sep else None)
        except ValueError as exc:
            raise InputError(f"dates '{text}': {exc}. Write 2026-01-20, 2026-01-20..2026-01-22 "
                             "or 2026-01-20,2026-01-22 for non-contiguous days.") from None

    def check(self, start: str = "--start", end: str = "--end") -> Dates:
        """These dates, or an InputError in the command's terms when the end comes first."""
        if self.end is not None and self.end.first_day() < self.start.first_day():
            raise InputError(f"{end} {self.end} is before {start} {self.start}: the last day "
                             "comes on or after the first.")
        return self

    def fields(self) -> dict[str, Any]:
        """As MeetingDef fields."""
        return {"start": str(self.start), "end": str(self.end) if self.end else None,
                "days": [str(d) for d in self.days] if self.days else None}


@dataclass(frozen=True)
class Session:
    """One session of a split meeting."""

    mode: Mode
    dates: Dates
    place: str | None = None
    informal: bool = False
    id: str | None = None

    def name(self, meeting_id: str, number: int) -> str:
        """This session's id when it is the ``number``-th (from 1) of the split meeting."""
        return meeting_id if number == 1 else self.id or f"{meeting_id}-{number}"

    @classmethod
    def parse(cls, text: str) -> Session:
        """'physical:2026-01-20..2026-01-22@Geneva', 'informal virtual:2026-03-10 as ieg4-x'."""
        match = _SESSION.match(text)
        if match is None:
            raise InputError(f"--session '{text}': expected {SESSION_FORM}.")
        dates = Dates.parse(match["dates"]).check("the first day",
                                                  f"--session '{text}': the last day")
        return cls(mode_of(match["mode"], f"--session '{text}'"), dates,
                   match["place"], bool(match["informal"]), match["id"])


def mode_of(text: str, where: str) -> Mode:
    """A mode as typed ('physical' is in-person), or an InputError listing the modes."""
    try:
        return Mode(text.strip().lower())
    except ValueError:
        raise InputError(f"{where}: mode '{text}' is not one of physical (in-person), virtual, "
                         "hybrid.") from None


_MEETING_PATH = re.compile(r"^cycles\[(\d+)\]\.meetings\[(\d+)\]")


def _rebuilt(doc: dict[str, Any]) -> ProcessDefinition:
    """The new definition; a problem inside a meeting is named by the meeting's id (as the
    command was typed), not by its index in the document."""
    try:
        return parse_definition(doc, "the revised definition")
    except DefinitionError as exc:
        problems = []
        for problem in exc.problems:
            found = _MEETING_PATH.match(problem.path)
            path = problem.path
            if found is not None:
                meeting = doc["cycles"][int(found[1])]["meetings"][int(found[2])]
                path = f"meeting '{meeting.get('id')}'{problem.path[found.end():]}"
            problems.append(Problem(path, problem.value, problem.message))
        raise DefinitionError(exc.source, problems) from None


def _find(definition: ProcessDefinition, meeting_id: str) -> tuple[int, int]:
    for c, cycle in enumerate(definition.cycles):
        for m, meeting in enumerate(cycle.meetings):
            if meeting.id == meeting_id:
                return c, m
    known = ", ".join(m.id for c in definition.cycles for m in c.meetings)
    raise InputError(f"'{meeting_id}' is not a meeting of {definition.id}. Meetings: {known}.")


def _meeting_doc(**fields: object) -> dict[str, Any]:
    return {k: v for k, v in fields.items() if v is not None and v is not False}


def add_meeting(definition: ProcessDefinition, cycle_id: str, meeting_id: str, name: str,
                dates: Dates, mode: Mode | None = None, place: str | None = None,
                informal: bool = False, remote: bool | None = None) -> ProcessDefinition:
    """The definition with one more meeting in a cycle, placed among its meetings by date."""
    try:
        cycle_index = [c.id for c in definition.cycles].index(cycle_id)
    except ValueError:
        known = ", ".join(c.id for c in definition.cycles)
        raise InputError(f"--cycle '{cycle_id}' is not a cycle of {definition.id}. "
                         f"Cycles: {known}.") from None
    doc = definition.model_dump(mode="json", exclude_none=True)
    meetings: list[dict[str, Any]] = doc["cycles"][cycle_index].setdefault("meetings", [])
    new = _meeting_doc(id=meeting_id, name=name, **dates.fields(), place=place,
                       mode=mode.value if mode else None, informal=informal,
                       remote_participation=remote)
    cycle = definition.cycles[cycle_index]
    at = next((i for i, m in enumerate(cycle.meetings)
               if m.start.first_day() > dates.start.first_day()), len(cycle.meetings))
    meetings.insert(at, new)
    return _rebuilt(doc)


def cancel_meeting(definition: ProcessDefinition, meeting_id: str) -> ProcessDefinition:
    """The definition without the meeting (``revise`` refuses it once the meeting started)."""
    c, m = _find(definition, meeting_id)
    doc = definition.model_dump(mode="json", exclude_none=True)
    del doc["cycles"][c]["meetings"][m]
    return _rebuilt(doc)


def split_meeting(definition: ProcessDefinition, meeting_id: str,
                  sessions: Sequence[Session]) -> ProcessDefinition:
    """One planned meeting becomes several sessions: the first keeps its id and name, the
    others follow it as '<id>-2', '<id>-3' (or the ids given), informal ones marked so."""
    if len(sessions) < 2:
        raise InputError("a split needs at least two --session values (the first keeps the "
                         f"meeting's id); each: {SESSION_FORM}.")
    c, m = _find(definition, meeting_id)
    meeting = definition.cycles[c].meetings[m]
    doc = definition.model_dump(mode="json", exclude_none=True)
    base = doc["cycles"][c]["meetings"][m]
    built = []
    for number, session in enumerate(sessions, start=1):
        if number == 1:
            fields = {**base, "start": None, "end": None, "days": None}
            ident, name = meeting.id, meeting.name
        else:
            fields = {}
            ident = session.name(meeting.id, number)
            kind = "informal session" if session.informal else "session"
            name = f"{meeting.name}, {kind} {number}"
        fields.update(id=ident, name=name, **session.dates.fields(), mode=session.mode.value,
                      place=session.place, informal=session.informal)
        if number > 1:
            fields.pop("remote_participation", None)
        built.append(_meeting_doc(**fields))
    doc["cycles"][c]["meetings"][m:m + 1] = built
    return _rebuilt(doc)


def change_meeting(definition: ProcessDefinition, meeting_id: str, mode: Mode | None = None,
                   place: str | None = None, remote: bool | None = None,
                   join_url: str | None = None) -> ProcessDefinition:
    """The meeting held in another mode or place, or with another join link ('' removes it);
    its dates are ``amend``'s business."""
    if mode is None and place is None and remote is None and join_url is None:
        raise InputError("say what changes: --mode, --place, --join-url and/or "
                         "--remote/--no-remote.")
    c, m = _find(definition, meeting_id)
    doc = definition.model_dump(mode="json", exclude_none=True)
    target = doc["cycles"][c]["meetings"][m]
    if mode is not None:
        target["mode"] = mode.value
    if place is not None:
        target["place"] = place or None
    if remote is not None:
        target["remote_participation"] = remote
    if join_url is not None:
        target["join_url"] = join_url or None  # checked (https only) when rebuilt
    return _rebuilt(doc)


def change_forum(definition: ProcessDefinition, mode: Mode | None = None,
                 place: str | None = None) -> ProcessDefinition:
    """The forum held in another mode or place (its date is ``amend forum``'s business)."""
    if mode is None and place is None:
        raise InputError("say what changes for the forum: --mode and/or --place.")
    doc = definition.model_dump(mode="json", exclude_none=True)
    if mode is not None:
        doc["forum"]["mode"] = mode.value
    if place is not None:
        doc["forum"]["place"] = place or None
    return _rebuilt(doc)

