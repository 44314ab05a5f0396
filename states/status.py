"""What an operator needs to see now: where the process stands, what is next, what is at risk."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict

from states.dates import PlanDate, describe, end_instant, human_day, local_day, start_instant, zone
from states.definition import ProcessDefinition
from states.forum import LABELS, Stage
from states.guards import Context, due_at
from states.instance import Instance, Override
from states.machine import AGENDA, CONSULTATION, MAIN, Due, Mode, table_for
from states.plan import Kind, Milestone, by_key
from states.queries import fixing_due_from, overdue_steps
from states.rules import RuleResult, Status, check, effective_milestones


@dataclass(frozen=True)
class Upcoming:
    """A milestone still ahead, with its instant when known and the time left."""

    key: str
    label: str
    cycle: str | None
    """The cycle the milestone belongs to (a meeting: its cycle); None for the forum."""
    when: datetime | None
    text: str
    days_left: float | None
    how: str


class WarningKind(StrEnum):
    """What a status warning is about; the edge filters and styles by kind, never by text."""

    OVERDUE = "overdue"
    """A manual step's planned day is over and it has not happened."""
    DATE_NOT_FIXED = "date-not-fixed"
    """A month-only milestone approaches: it cannot fire until its day is fixed."""
    MONTH_PASSED = "month-passed"
    """A month-only milestone's month is over and its day was never fixed."""
    RULE_BROKEN = "rule-broken"
    RULE_AT_RISK = "rule-at-risk"


#: Kinds an operator must act on now: logged by every tick and listed in the alerts artifact.
URGENT = frozenset({WarningKind.OVERDUE, WarningKind.MONTH_PASSED, WarningKind.RULE_BROKEN})


class StatusWarning(BaseModel):
    """One warning of a status report: typed fields, and the text exactly as people read it."""

    model_config = ConfigDict(frozen=True)

    kind: WarningKind
    text: str
    milestone: str | None = None
    """The milestone concerned (e.g. 'draft2.posting', 'ieg1'), for step and date warnings."""
    rule: str | None = None
    """The rule concerned (e.g. 'six-weeks'), for rule warnings."""
    planned: PlanDate | None = None
    """The planned date concerned, for step and date warnings."""

    @property
    def urgent(self) -> bool:
        """Whether an operator must act now (see ``URGENT``)."""
        return self.kind in URGENT

    def __str__(self) -> str:
        return self.text


@dataclass(frozen=True)
class Report:
    """The status of one process at ``now``."""

    process_id: str
    name: str
    now: datetime
    regions: dict[str, tuple[str, str]]
    upcoming: list[Upcoming]
    warnings: list[StatusWarning]
    overrides: tuple[Override, ...]
    rules: list[RuleResult]
    opinions: dict[str, int] = field(default_factory=dict)
    """Draft Opinions by stage (as people read it), in stage order."""
    agenda: str | None = None
    """Where the forum's agenda stands, once the forum is in session."""


def report(definition: ProcessDefinition, instance: Instance, now: datetime,
           limit: int = 5) -> Report:
    """Current states, next milestones with countdowns, overrides and warnings."""
    tz = zone(definition.timezone)
    table = table_for(definition)
    items = effective_milestones(definition, instance)
    index = by_key(items)
    # A meeting in session is still ahead (until it ends); a consultation opening is not
    # its posting milestone happening.
    done = {s.milestone for s in table.specs
            if s.trigger in instance.happened and s.region == MAIN and s.due is not Due.START}
    ordered = sorted(items, key=lambda m: (m.start is None, m.start.first_day() if m.start
                                           else None))
    upcoming = [u for m in ordered if m.key not in done
                if (u := _upcoming(m, tz, now)) is not None]
    warnings = _step_warnings(definition, instance, index, now)
    warned = {w.milestone for w in warnings}
    for item in items:
        if item.key not in done and item.key not in warned:
            warnings.extend(_month_warning(definition, instance.process_id, item, now))
    rules = check(definition, items, instance.process_id)
    warnings += [_rule_warning(r) for r in rules if r.status is not Status.PASS]
    regions = {r: (instance.regions[r], table.labels[instance.regions[r]]) for r in table.states
               if not (r == CONSULTATION and len(table.states[r]) == 1) and r != AGENDA}
    stages = [o.stage for o in instance.opinions.values()]
    opinions = {LABELS[s]: stages.count(s) for s in Stage if s in stages}
    agenda = None
    if instance.regions[MAIN] in ("forum", "closed"):
        agenda = table.labels[instance.regions[AGENDA]]
        if instance.forum.chair:
            agenda += f" (chair: {instance.forum.chair})"
    return Report(instance.process_id, definition.name, now, regions, upcoming[:limit], warnings,
                  instance.overrides, rules, opinions, agenda)


def _step_warnings(definition: ProcessDefinition, instance: Instance,
                   index: dict[str, Milestone], now: datetime) -> list[StatusWarning]:
    """Overdue manual steps, then automatic steps that wait for a month-only day to be fixed."""
    warnings = [StatusWarning(
        kind=WarningKind.OVERDUE, milestone=step.milestone, planned=step.planned,
        text=f"OVERDUE: '{step.label}' was planned for {step.planned.human()} and has not "
             f"happened; use 'prepflow transition {instance.process_id} {step.trigger} "
             "--by NAME --document REF'.")
        for step in overdue_steps(definition, instance, now, index)]
    tz, table = zone(definition.timezone), table_for(definition)
    for region, state in instance.regions.items():
        for spec in table.outgoing(region, state):
            item = index.get(spec.milestone or "")
            ctx = Context(definition, instance, spec, index, tz, now)
            if spec.mode is Mode.AUTOMATIC and item is not None and due_at(ctx) is None:
                warnings.extend(_month_warning(definition, instance.process_id, item, now,
                                                 force=True))
    return warnings


def _rule_warning(result: RuleResult) -> StatusWarning:
    """A rule that fails, or cannot be decided yet (a date unset or only a month)."""
    broken = result.status is Status.FAIL
    head = "RULE BROKEN" if broken else "RULE AT RISK"
    return StatusWarning(kind=WarningKind.RULE_BROKEN if broken else WarningKind.RULE_AT_RISK,
                         rule=result.rule, text=f"{head} ({result.rule}): {result.message}")


def _upcoming(item: Milestone, tz: ZoneInfo, now: datetime) -> Upcoming | None:
    """The milestone as a countdown, or None once it is behind us."""
    how = {Kind.POSTING: "secretariat", Kind.NOMINATIONS: "deadline"}.get(item.kind, "automatic")
    if item.start is None:
        return Upcoming(item.key, item.label, item.cycle, None, "date not set", None, how)
    last = item.last or item.start
    if not item.start.exact:
        if last.last_day() < local_day(now, tz):
            return None
        return Upcoming(item.key, item.label, item.cycle, None,
                        f"{item.span_text()} (day not fixed)", None, how)
    deadline = item.kind in (Kind.COMMENTS, Kind.CONSULTATION, Kind.NOMINATIONS)
    when = end_instant(item.start, tz) if deadline else start_instant(item.start, tz)
    finished = end_instant(last, tz) if last.exact else when
    if finished <= now and item.kind is not Kind.POSTING:
        return None
    text = describe(when, tz)
    if deadline and item.start.at is None:
        text = f"{item.start.human()}, end of day ({text})"
    elif item.start.at is None:
        text = item.span_text()
    return Upcoming(item.key, item.label, item.cycle, when, text,
                    (when - now) / timedelta(days=1), how)


def _month_warning(definition: ProcessDefinition, process_id: str, item: Milestone,
                   now: datetime, force: bool = False) -> list[StatusWarning]:
    """A month-only milestone cannot fire by itself: warn as its month approaches (the fix
    names the process, whose id need not be the definition's)."""
    if item.start is None or item.start.exact:
        return []
    tz = zone(definition.timezone)
    today = local_day(now, tz)
    if not force and today < fixing_due_from(definition, item.start):
        return []
    late = today > item.start.last_day()
    head = "DATE NOT FIXED" + (" AND MONTH PASSED" if late else "")
    kind = WarningKind.MONTH_PASSED if late else WarningKind.DATE_NOT_FIXED
    return [StatusWarning(
        kind=kind, milestone=item.key, planned=item.start,
        text=f"{head}: '{item.label}' is planned only for {item.start.human()} (today is "
             f"{human_day(today)}); it cannot happen automatically until its day is fixed with "
             f"'prepflow amend {process_id} {item.key} YYYY-MM-DD'.")]
