"""Questions the edge asks often, answered once: which manual steps are due or overdue, what
falls due next, and what happened per milestone.

Each used to be recomputed at the edge (status, alerts, the await-secretariat requests, the
operator's timeline, the rehearsal's scheduler); now they all call these, so a rule changes in
one place (STYLE habit 13). Pure: ``now`` comes in, nothing reads a clock.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo

from states.dates import PlanDate, end_instant, local_day, start_instant, zone
from states.definition import ProcessDefinition
from states.guards import GUARDS, Context, due_at
from states.instance import Instance
from states.machine import MAIN, Due, Mode, Spec, table_for
from states.plan import Milestone, by_key
from states.rules import effective_milestones


class StepStatus(StrEnum):
    """A manual step's planned day has begun (due) or is over (overdue)."""

    DUE = "due"
    OVERDUE = "overdue"


@dataclass(frozen=True)
class ManualStep:
    """A manual step (e.g. 'Second Draft posted') the secretariat may take now and should."""

    trigger: str
    label: str
    milestone: str
    cycle: str | None
    planned: PlanDate
    opens: datetime
    """Start of the planned day (or its time): from then on the step is due."""
    overdue_from: datetime
    """End of the planned day: from then on the step is overdue."""
    status: StepStatus


def manual_steps(definition: ProcessDefinition, instance: Instance, now: datetime,
                 milestones: dict[str, Milestone] | None = None) -> list[ManualStep]:
    """Manual steps allowed now whose planned day (known to the day) has begun, table order."""
    table = table_for(definition)
    items = milestones if milestones is not None else _items(definition, instance)
    tz = zone(definition.timezone)
    found = []
    for region, state in instance.regions.items():
        for spec in table.outgoing(region, state):
            item = items.get(spec.milestone or "")
            if spec.mode is not Mode.MANUAL or item is None or item.start is None \
                    or not item.start.exact:
                continue  # a month-only day cannot be due yet: status warns to fix it instead
            opens, ends = start_instant(item.start, tz), end_instant(item.start, tz)
            if now < opens:
                continue
            status = StepStatus.OVERDUE if now >= ends else StepStatus.DUE
            found.append(ManualStep(spec.trigger, spec.label, item.key, spec.cycle,
                                    item.start, opens, ends, status))
    return found


def overdue_steps(definition: ProcessDefinition, instance: Instance, now: datetime,
                  milestones: dict[str, Milestone] | None = None) -> list[ManualStep]:
    """The manual steps whose planned day is over and which have not happened."""
    return [s for s in manual_steps(definition, instance, now, milestones)
            if s.status is StepStatus.OVERDUE]


@dataclass(frozen=True)
class DueTransition:
    """An automatic transition allowed from the current state, with the instant it falls due."""

    at: datetime
    spec: Spec
    context: Context


def due_transitions(definition: ProcessDefinition, instance: Instance, now: datetime,
                    milestones: dict[str, Milestone] | None = None) -> list[DueTransition]:
    """Automatic transitions from the current states whose instant is known (past or ahead).

    ``advance`` applies those due at ``now`` whose guards are clear; the rehearsal jumps to
    the others. Month-only or unset dates have no instant, so they are not here.
    """
    table = table_for(definition)
    items = milestones if milestones is not None else _items(definition, instance)
    tz = zone(definition.timezone)
    found = []
    for region, state in instance.regions.items():
        for spec in table.outgoing(region, state):
            if spec.mode is not Mode.AUTOMATIC or spec.trigger in instance.happened:
                continue
            ctx = Context(definition, instance, spec, items, tz, now)
            when = due_at(ctx)
            # one that waits for something other than its time (the forum's close for its
            # agenda) is not due until that is done
            if when is not None and not any(GUARDS[g](ctx) is not None for g in spec.guards
                                            if g not in ("due", "date_fixed")):
                found.append(DueTransition(when, spec, ctx))
    return found


class DueKind(StrEnum):
    """What falls due at an instant."""

    TRANSITION = "transition"
    """An automatic transition: ``advance`` applies it."""
    MANUAL = "manual"
    """A manual step's planned day begins: the secretariat is asked for it."""
    REMINDER = "reminder"
    """A reminder before a comment deadline or the forum."""
    NOMINATIONS = "nominations"
    """The nominations deadline passes."""
    DATE_TO_FIX = "date-to-fix"
    """A month-only milestone's warning period begins: its day must be fixed."""


@dataclass(frozen=True, order=True)
class DueItem:
    """One thing that falls due, at one instant (UTC)."""

    at: datetime
    kind: DueKind
    trigger: str | None = None
    milestone: str | None = None
    planned: PlanDate | None = None


def due_items(definition: ProcessDefinition, instance: Instance,
              now: datetime) -> list[DueItem]:
    """Everything that falls due from the current state, earliest first.

    Transitions and manual steps already due are included (their instant may be before
    ``now``); reminders and the nominations deadline only while still ahead.
    """
    items = _items(definition, instance)
    found = [DueItem(t.at, DueKind.TRANSITION, t.spec.trigger, t.spec.milestone)
             for t in due_transitions(definition, instance, now, items)]
    found += _manual_ahead(definition, instance, items)
    found += [DueItem(when, DueKind.REMINDER) for when in
              reminder_instants(definition, instance, items) if when > now]
    found += _nominations(definition, items, now)
    found += _dates_to_fix(definition, instance, items)
    return sorted(found)


def next_due(definition: ProcessDefinition, instance: Instance,
             now: datetime) -> DueItem | None:
    """The earliest thing that falls due, or None when nothing more can happen by itself."""
    found = due_items(definition, instance, now)
    return found[0] if found else None


def _manual_ahead(definition: ProcessDefinition, instance: Instance,
                  items: dict[str, Milestone]) -> list[DueItem]:
    """Manual steps allowed from the current state whose day is fixed, due or not yet."""
    table, tz = table_for(definition), zone(definition.timezone)
    found = []
    for region, state in instance.regions.items():
        for spec in table.outgoing(region, state):
            item = items.get(spec.milestone or "")
            if spec.mode is Mode.MANUAL and item is not None and item.start is not None \
                    and item.start.exact:
                found.append(DueItem(start_instant(item.start, tz), DueKind.MANUAL,
                                     spec.trigger, item.key, item.start))
    return found


def _nominations(definition: ProcessDefinition, items: dict[str, Milestone],
                 now: datetime) -> list[DueItem]:
    item = items.get("nominations")
    if item is None or item.start is None or not item.start.exact:
        return []
    closes = end_instant(item.start, zone(definition.timezone))
    return [DueItem(closes, DueKind.NOMINATIONS, None, item.key, item.start)] \
        if closes > now else []


def _dates_to_fix(definition: ProcessDefinition, instance: Instance,
                  items: dict[str, Milestone]) -> list[DueItem]:
    """Month-only milestones still ahead: due for fixing ``month_warning_days`` before."""
    table, tz = table_for(definition), zone(definition.timezone)
    done = {s.milestone for s in table.specs
            if s.region == MAIN and s.trigger in instance.happened}
    found = []
    for item in items.values():
        if item.start is not None and not item.start.exact and item.key not in done:
            found.append(DueItem(_midnight(fixing_due_from(definition, item.start), tz),
                                 DueKind.DATE_TO_FIX, None, item.key, item.start))
    return found


def fixing_due_from(definition: ProcessDefinition, planned: PlanDate) -> date:
    """The local day from which a month-only date must be fixed: ``month_warning_days`` before
    its month begins (status warns from then; a rehearsal's secretariat fixes it then)."""
    return planned.first_day() - timedelta(days=definition.rules.month_warning_days)


def days_before(at: datetime, days: int, tz: ZoneInfo) -> datetime:
    """``days`` calendar days before an instant, on the local clock (same Geneva time of day,
    also across a summer-time change)."""
    return (at.astimezone(tz) - timedelta(days=days)).astimezone(UTC)


@dataclass(frozen=True)
class ReminderTarget:
    """A moment the current state reminds experts of: a comment deadline (``cycle`` set) or
    the forum's opening, with the days before it that a reminder goes out.

    Only the days whose reminder falls after the posting that opened the window are kept: a
    window shorter than a reminder's offset (posted 3 days before the deadline) skips that
    reminder rather than send "7 days left" (issue 8). It would be pointless anyway: the
    posting's own mail, sent on that same tick, already carries the deadline (or the forum's
    opening) to the same experts.
    """

    milestone: Milestone
    at: datetime
    days: tuple[int, ...]
    cycle: str | None = None


def reminder_targets(definition: ProcessDefinition, instance: Instance,
                     milestones: dict[str, Milestone]) -> list[ReminderTarget]:
    """What the current state reminds of: the open comment window's deadline, or, once the
    final report is posted, the forum's opening. The one place this rule is written: the
    notices decide reminders from it and the rehearsal steps to them."""
    tz = zone(definition.timezone)
    main = instance.regions[MAIN]
    found = []
    for cycle in definition.cycles:
        item = milestones.get(f"{cycle.id}.comments")
        if main == f"{cycle.id}.comment_window" and item is not None and item.start \
                is not None and item.start.exact:
            at = end_instant(item.start, tz)
            days = _after_opening(instance, cycle.id, at, definition.rules.reminder_days, tz)
            found.append(ReminderTarget(item, at, days, cycle.id))
    forum = milestones["forum"]
    last = definition.cycles[-1].id
    if main == f"{last}.posted" and forum.start and forum.start.exact:
        at = start_instant(forum.start, tz)
        found.append(ReminderTarget(forum, at, _after_opening(
            instance, last, at, definition.notifications.forum_reminder_days, tz)))
    return found


def _after_opening(instance: Instance, cycle: str, at: datetime, offsets: list[int],
                   tz: ZoneInfo) -> tuple[int, ...]:
    """The offsets whose reminder falls at or after the cycle's posting (all if not posted)."""
    posted = instance.happened.get(f"post_{cycle}")
    if posted is None:
        return tuple(offsets)
    return tuple(d for d in offsets if days_before(at, d, tz) >= posted.at)


def reminder_instants(definition: ProcessDefinition, instance: Instance,
                      milestones: dict[str, Milestone]) -> list[datetime]:
    """When the reminders of the current state fall due (before a deadline or the forum)."""
    tz = zone(definition.timezone)
    return sorted(days_before(target.at, d, tz)
                  for target in reminder_targets(definition, instance, milestones)
                  for d in target.days)


@dataclass(frozen=True)
class Occurrence:
    """Something that happened to a milestone: a posting, a deadline passing, a meeting day."""

    milestone: str
    trigger: str
    label: str
    when: datetime
    """When it was due (automatic) or happened (manual), UTC."""
    day: date
    """The local day it belongs to: a deadline passing at 00:00 belongs to the day before."""
    document: str | None


def occurred_day(spec: Spec, instant: datetime, tz: ZoneInfo) -> date:
    """The local day of a transition: a deadline passes at 00:00 the next day, but is its day."""
    if spec.due is Due.END:
        instant -= timedelta(microseconds=1)
    return local_day(instant, tz)


def history(definition: ProcessDefinition, instance: Instance) -> list[Occurrence]:
    """What happened per milestone, in time order (openings of consultations are not a
    milestone's own event: they follow the posting)."""
    table, tz = table_for(definition), zone(definition.timezone)
    found = []
    # In time order: the store's canonical JSON sorts keys, so dict order is alphabetical
    # (end_ieg1 before start_ieg1), not the order things happened.
    for trigger, happening in sorted(instance.happened.items(),
                                     key=lambda kv: kv[1].due or kv[1].at):
        spec = table.by_trigger.get(trigger)
        if spec is None or spec.milestone is None or spec.due is Due.POSTED:
            continue
        when = happening.due or happening.at
        found.append(Occurrence(spec.milestone, trigger, spec.label, when,
                                occurred_day(spec, when, tz), happening.document))
    return found


def first_days(definition: ProcessDefinition, instance: Instance) -> dict[str, date]:
    """The local day each milestone first happened (a meeting shows its first day)."""
    days: dict[str, date] = {}
    for occurrence in history(definition, instance):
        days.setdefault(occurrence.milestone, occurrence.day)
    return days


def _items(definition: ProcessDefinition, instance: Instance) -> dict[str, Milestone]:
    return by_key(effective_milestones(definition, instance))


def _midnight(day: date, tz: ZoneInfo) -> datetime:
    return datetime.combine(day, datetime.min.time(), tzinfo=tz).astimezone(UTC)
