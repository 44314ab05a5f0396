"""Stepping a rehearsal: from one instant that matters to the next.

What falls due comes from the core (``states.queries.due_items``, the same query ``advance``
applies); this module only adds what a rehearsal alone knows: when the scripted secretariat
posts, the scenario's events, the nights summer time ends (a 02:30 cron tick runs twice), and
when each stage action (``StageAction``, registered in ``flows.rehearsal.stages``) next acts.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Protocol, runtime_checkable
from zoneinfo import ZoneInfo

from pydantic import SecretStr

from flows.identity.gate import Caller
from flows.rehearsal.mail import MailLog
from flows.rehearsal.scenario import Event, Scenario, local
from states.dates import local_day, zone
from states.definition import ProcessDefinition
from states.instance import Instance
from states.machine import Spec, table_for
from states.plan import Milestone, by_key
from states.queries import DueItem, DueKind, due_items
from states.roles import Channel
from states.rules import effective_milestones

TICK = timedelta(minutes=15)  # the advance deployment's cron step



@runtime_checkable
class StageAction(Protocol):
    """Something the scripted secretariat does at a stage of the process, beyond the plan's
    own postings: the driver asks every action when it next acts, and performs the earliest
    step of all (an action's step comes after scenario events and date fixes at the same
    instant, before the cron tick and the postings).

    ``next_at`` looks only at the rehearsal and the instance (no store, no clock); ``perform``
    acts through the real flows (``flows.rehearsal.runs``) and may add transcript lines; the
    driver then reads the audit log back. An action must change something when it performs
    (or stop asking): a step that keeps falling due at one instant and changes nothing stops
    the rehearsal as stuck.
    """

    name: str

    def next_at(self, r: Rehearsal, instance: Instance, now: datetime) -> datetime | None:
        """When this action acts next from where the process stands (None: nothing to do)."""
        ...

    def perform(self, r: Rehearsal, now: datetime) -> None:
        """Act at ``now`` through the real flows."""
        ...


#: What a step carries: a posting's spec, a milestone to fix, a scenario event, a DST night,
#: a stage action.
Payload = Spec | Milestone | tuple[int, Event] | date | StageAction | None


@dataclass(order=True)
class Step:
    """One thing to do at one instant; ``rank`` orders things at the same instant."""

    at: datetime
    rank: int
    kind: str = field(compare=False)
    payload: Payload = field(compare=False, default=None)


@dataclass
class Rehearsal:
    """The state of one rehearsal run."""

    definition: ProcessDefinition
    scenario: Scenario
    database: str
    start: datetime
    end: datetime
    experts: int
    comments: int
    lines: list[str] = field(default_factory=list)
    seen: int = 0
    runs: int = 0
    done_events: set[int] = field(default_factory=set)
    fixed: set[str] = field(default_factory=set)
    dst_done: set[date] = field(default_factory=set)
    mail: MailLog | None = None
    deliver: bool = False
    stages: list[StageAction] = field(default_factory=list)
    token: str | None = field(default=None, repr=False)
    """The scripted secretariat's own token, when the process requires tokens (issue 10)."""
    process_id: str = ""
    """The process under rehearsal: its own id (``rehearsal_id``), never the live one's."""

    @property
    def pid(self) -> str:
        """The process under rehearsal (the definition's id when none is given)."""
        return self.process_id or self.definition.id

    @property
    def actor(self) -> str:
        """Who the scripted secretariat acts as."""
        return self.scenario.actor or self.definition.secretariat[0].id

    @property
    def caller(self) -> Caller:
        """The scripted secretariat as the shell sees it: its token, when it has one."""
        return Caller(Channel.CLI, self.token)

    @property
    def secret(self) -> SecretStr | None:
        """Its token as a form's token field takes it."""
        return SecretStr(self.token) if self.token else None


def next_step(r: Rehearsal, instance: Instance, now: datetime) -> Step | None:
    """The earliest thing that happens after ``now``, or None when nothing more can."""
    tz = zone(r.definition.timezone)
    items = by_key(effective_milestones(r.definition, instance))
    steps = [step for due in due_items(r.definition, instance, now)
             if (step := _step_for(r, due, items, now, tz)) is not None]
    for number, event in enumerate(r.scenario.events):
        if number not in r.done_events and event.kind != "post-late":
            steps.append(Step(max(now, local(event.on, event.on.at or time(9), tz)), 0,
                              "event", (number, event)))
    for night in fall_back_nights(tz, now, r.end):
        if night not in r.dst_done:
            steps.append(Step(local_fold(night, tz, 0), 2, "dst", night))
    for action in r.stages:
        at = action.next_at(r, instance, now)
        if at is not None:
            steps.append(Step(max(now, at), 1, "stage", action))
    return min(steps) if steps else None


def _step_for(r: Rehearsal, due: DueItem, items: dict[str, Milestone], now: datetime,
              tz: ZoneInfo) -> Step | None:
    """What the rehearsal does about one thing the core says falls due."""
    item = items.get(due.milestone or "")
    if due.kind in (DueKind.TRANSITION, DueKind.REMINDER):
        return Step(ceil_tick(max(due.at, now)), 3, "tick")  # the next cron tick applies it
    if due.kind is DueKind.MANUAL and due.trigger is not None:
        spec = table_for(r.definition).by_trigger[due.trigger]
        if spec.cycle is None or spec.trigger != f"post_{spec.cycle}":
            return None  # not a document posting: a stage action's business, if any
        return _posting(r, spec, due, now, tz)
    if due.kind is DueKind.NOMINATIONS and item is not None and "nominations" not in r.fixed:
        return Step(due.at, 2, "nominations", item)
    if due.kind is DueKind.DATE_TO_FIX and item is not None:
        # the scripted secretariat fixes the day at 09:00 on the first day it is warned
        return Step(max(now, local(local_day(due.at, tz), time(9), tz)), 1, "fix", item)
    return None


def _posting(r: Rehearsal, spec: Spec, due: DueItem, now: datetime, tz: ZoneInfo) -> Step | None:
    """The scripted secretariat posts at its posting time on the planned day (plus any
    scenario delay), or the next day when that is already past."""
    if due.planned is None:
        return None
    at = local(due.planned, r.scenario.posting_clock(), tz)
    at += timedelta(days=r.scenario.delay(spec.trigger))
    if at <= now:
        at = local(local_day(now, tz) + timedelta(days=1), r.scenario.posting_clock(), tz)
    return Step(at, 4, "post", spec)


def more_ahead(r: Rehearsal, instance: Instance, now: datetime) -> bool:
    """Whether anything but summer-time nights is still ahead."""
    probe = Rehearsal(r.definition, r.scenario, r.database, r.start, r.end, 0, 0,
                      done_events=r.done_events,
                      dst_done=set(fall_back_nights(zone(r.definition.timezone), now, r.end)),
                      stages=r.stages)
    return next_step(probe, instance, now) is not None


def ceil_tick(instant: datetime) -> datetime:
    """The first cron tick at or after an instant."""
    seconds = instant.timestamp()
    step = TICK.total_seconds()
    return datetime.fromtimestamp(math.ceil(seconds / step) * step, UTC)


def fall_back_nights(tz: ZoneInfo, start: datetime, end: datetime) -> list[date]:
    """Days in (start, end] when clocks go back, so a 02:30 cron tick happens twice."""
    years = range(local_day(start, tz).year, local_day(end, tz).year + 1)
    return [n for year in years for n in _nights(tz, year)
            if start < local_fold(n, tz, 0) and local(n, time(12), tz) <= end]


@functools.lru_cache(maxsize=32)
def _nights(tz: ZoneInfo, year: int) -> tuple[date, ...]:
    """The year's fall-back days in a zone (none where there is no summer time)."""
    nights = []
    day = date(year, 1, 1)
    while day.year == year:
        early = datetime.combine(day, time(2, 30), tzinfo=tz)
        offsets = early.utcoffset(), early.replace(fold=1).utcoffset()
        if offsets[0] is not None and offsets[1] is not None and offsets[0] > offsets[1]:
            nights.append(day)
        day += timedelta(days=1)
    return tuple(nights)


def local_fold(day: date, tz: ZoneInfo, fold: int) -> datetime:
    """02:30 local on ``day``, the first (fold 0) or second (fold 1) time it happens, in UTC."""
    return datetime.combine(day, time(2, 30), tzinfo=tz).replace(fold=fold).astimezone(UTC)
