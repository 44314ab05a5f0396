"""The effective timeline: the definition's plan, with amendments, as named milestones.

Every date a person can amend or a rule can check is a milestone with a stable key:
``<cycle>.posting``, ``<cycle>.comments``, ``<cycle>.consultation``, ``<meeting>``, ``forum``,
``nominations``. Meetings and the forum span days (start .. end).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import timedelta
from enum import StrEnum

from states.dates import PlanDate
from states.definition import ProcessDefinition


class Kind(StrEnum):
    """What sort of milestone: decides how its dates become instants."""

    NOMINATIONS = "nominations"
    POSTING = "posting"
    COMMENTS = "comments"
    CONSULTATION = "consultation"
    MEETING = "meeting"
    FORUM = "forum"


@dataclass(frozen=True)
class Milestone:
    """A dated point (or span) of the plan."""

    key: str
    label: str
    kind: Kind
    cycle: str | None
    start: PlanDate | None
    end: PlanDate | None = None
    amended: bool = False
    place: str | None = None
    mode: str | None = None
    informal: bool = False
    """An informal meeting session: in the plan, not a state of the machine (MeetingDef)."""
    days: tuple[PlanDate, ...] | None = None
    """A meeting's exact days when held on non-contiguous days (None once its dates are amended
    to a plain span)."""

    @property
    def last(self) -> PlanDate | None:
        """The last day of a span, or the date itself."""
        return self.end or self.start

    def span_text(self) -> str:
        """'7 Oct 2024 – 8 Oct 2024', 'October 2024', or 'not set'."""
        if self.start is None:
            return "not set"
        if self.end is None or self.end == self.start:
            return self.start.human()
        return f"{self.start.human()} – {self.end.human()}"


@dataclass(frozen=True)
class Span:
    """A new value for a milestone: one date, or a start and end for meetings and the forum."""

    start: PlanDate
    end: PlanDate | None = None

    @classmethod
    def parse(cls, text: str) -> Span:
        """'2025-02-10', '2025-02', or '2025-02-10..2025-02-12'; ValueError says what is valid."""
        first, sep, second = text.partition("..")
        start = PlanDate.parse(first)
        end = PlanDate.parse(second) if sep else None
        if end is not None and end.last_day() < start.first_day():
            raise ValueError(f"'{text}': the end comes before the start")
        return cls(start, end)

    def __str__(self) -> str:
        return f"{self.start}..{self.end}" if self.end else str(self.start)


_BASE: dict[int, tuple[ProcessDefinition, tuple[Milestone, ...]]] = {}


def plan_milestones(
    definition: ProcessDefinition, amendments: Mapping[str, Span] | None = None
) -> list[Milestone]:
    """The milestones in plan order, with amendments applied.

    The definition's own plan is built once per definition (it is immutable, and every tick of
    every instance asks for it); amendments are applied on top.
    """
    hit = _BASE.get(id(definition))
    if hit is None or hit[0] is not definition:
        if len(_BASE) > 64:
            _BASE.clear()
        hit = (definition, tuple(_definition_plan(definition)))
        _BASE[id(definition)] = hit
    if not amendments:
        return list(hit[1])
    days = definition.forum.days
    return [_amend(m, amendments[m.key], days) if m.key in amendments else m for m in hit[1]]


def _definition_plan(definition: ProcessDefinition) -> list[Milestone]:
    items: list[Milestone] = []
    if definition.nominations_deadline is not None:
        items.append(
            Milestone("nominations", "Nominations of experts due", Kind.NOMINATIONS, None,
                      definition.nominations_deadline)
        )
    for cycle in definition.cycles:
        items.append(
            Milestone(f"{cycle.id}.posting", f"{cycle.name} posted", Kind.POSTING, cycle.id,
                      cycle.posting)
        )
        if cycle.comment_deadline is not None:
            items.append(
                Milestone(f"{cycle.id}.comments", f"Comments on the {cycle.name} due",
                          Kind.COMMENTS, cycle.id, cycle.comment_deadline)
            )
        consultation = cycle.consultation_due
        if consultation is not None:
            items.append(
                Milestone(f"{cycle.id}.consultation",
                          f"Public consultation on the {cycle.name} closes",
                          Kind.CONSULTATION, cycle.id, consultation)
            )
        for meeting in cycle.meetings:
            items.append(
                Milestone(meeting.id, meeting.name, Kind.MEETING, cycle.id, meeting.start,
                          meeting.end, place=meeting.place, mode=meeting.mode.value,
                          informal=meeting.informal,
                          days=tuple(meeting.days) if meeting.days else None)
            )
    forum = definition.forum
    items.append(
        Milestone("forum", forum.name, Kind.FORUM, None, forum.opens, _forum_end(forum.opens,
                  forum.days), place=forum.place, mode=forum.mode.value if forum.mode else None)
    )
    return items


def _forum_end(opens: PlanDate | None, days: int) -> PlanDate | None:
    if opens is None or opens.day is None:
        return None
    last = opens.first_day() + timedelta(days=days - 1)
    return PlanDate(last.year, last.month, last.day)


def _amend(item: Milestone, span: Span | None, forum_days: int) -> Milestone:
    if span is None:
        return item
    if item.kind is Kind.MEETING:
        return replace(item, start=span.start, end=span.end, amended=True, days=None)
    if item.kind is Kind.FORUM:
        end = span.end or _forum_end(span.start, forum_days)
        return replace(item, start=span.start, end=end, amended=True)
    return replace(item, start=span.start, end=None, amended=True)


def milestone_keys(definition: ProcessDefinition) -> list[str]:
    """Every key that `amend` accepts, in plan order."""
    return [m.key for m in plan_milestones(definition)]


def by_key(milestones: list[Milestone]) -> dict[str, Milestone]:
    """Index milestones by key."""
    return {m.key: m for m in milestones}

