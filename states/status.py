"""What an operator needs to see now: where the process stands, what is next, what is at risk."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from states.dates import describe, end_instant, human_day, local_day, start_instant, zone
from states.definition import ProcessDefinition
from states.engine import engine_for
from states.guards import Context, due_at
from states.instance import Instance, Override
from states.machine import Mode
from states.plan import Kind, Milestone
from states.rules import RuleResult, Status, check, effective_milestones


@dataclass(frozen=True)
class Upcoming:
    """A milestone still ahead, with its instant when known and the time left."""

    key: str
    label: str
    when: datetime | None
    text: str
    days_left: float | None
    how: str


@dataclass(frozen=True)
class Report:
    """The status of one process at ``now``."""

    process_id: str
    name: str
    now: datetime
    regions: dict[str, tuple[str, str]]
    upcoming: list[Upcoming]
    warnings: list[str]
    overrides: tuple[Override, ...]
    rules: list[RuleResult]


def report(definition: ProcessDefinition, instance: Instance, now: datetime,
           limit: int = 5) -> Report:
    """Current states, next milestones with countdowns, overrides and warnings."""
    tz = zone(definition.timezone)
    table = engine_for(definition).table
    items = effective_milestones(definition, instance)
    index = {m.key: m for m in items}
    done = {s.milestone for s in table.specs
            if s.trigger in instance.happened and s.region == "main"
            and not (s.due is not None and s.due.value == "start")}
    ordered = sorted(items, key=lambda m: (m.start is None, m.start.first_day() if m.start
                                           else None))
    upcoming = [u for m in ordered if m.key not in done
                if (u := _upcoming(m, tz, now)) is not None]
    warnings: list[str] = []
    for region, state in instance.regions.items():
        for spec in table.outgoing(region, state):
            ctx = Context(definition, instance, spec, index, tz, now)
            item = index.get(spec.milestone or "")
            if spec.mode is Mode.MANUAL and item is not None and item.start is not None:
                if item.start.exact and now >= end_instant(item.start, tz):
                    warnings.append(f"OVERDUE: '{spec.label}' was planned for "
                                    f"{item.start.human()} and has not happened; use "
                                    f"'prepflow transition {instance.process_id} "
                                    f"{spec.trigger} --by NAME --document REF'.")
            elif spec.mode is Mode.AUTOMATIC and due_at(ctx) is None and item is not None:
                warnings.extend(_month_warning(definition, item, now, force=True))
    for item in items:
        if item.key not in done and not any(item.label in w for w in warnings):
            warnings.extend(_month_warning(definition, item, now))
    rules = check(definition, items)
    for result in rules:
        if result.status is Status.FAIL:
            warnings.append(f"RULE BROKEN ({result.rule}): {result.message}")
        elif result.status is Status.UNKNOWN:
            warnings.append(f"RULE AT RISK ({result.rule}): {result.message}")
    regions = {r: (instance.regions[r], table.labels[instance.regions[r]]) for r in table.states
               if not (r == "consultation" and len(table.states[r]) == 1)}
    return Report(instance.process_id, definition.name, now, regions, upcoming[:limit], warnings,
                  instance.overrides, rules)


def _upcoming(item: Milestone, tz: ZoneInfo, now: datetime) -> Upcoming | None:
    """The milestone as a countdown, or None once it is behind us."""
    how = {Kind.POSTING: "secretariat", Kind.NOMINATIONS: "deadline"}.get(item.kind, "automatic")
    if item.start is None:
        return Upcoming(item.key, item.label, None, "date not set", None, how)
    last = item.last or item.start
    if not item.start.exact:
        if last.last_day() < local_day(now, tz):
            return None
        return Upcoming(item.key, item.label, None, f"{item.span_text()} (day not fixed)",
                        None, how)
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
    return Upcoming(item.key, item.label, when, text, (when - now) / timedelta(days=1), how)


def _month_warning(definition: ProcessDefinition, item: Milestone, now: datetime,
                   force: bool = False) -> list[str]:
    """A month-only milestone cannot fire by itself: warn as its month approaches."""
    if item.start is None:
        return []
    if item.start.exact:
        return []
    tz = zone(definition.timezone)
    today = local_day(now, tz)
    warn_from = item.start.first_day() - timedelta(days=definition.rules.month_warning_days)
    if not force and today < warn_from:
        return []
    late = today > item.start.last_day()
    head = "DATE NOT FIXED" + (" AND MONTH PASSED" if late else "")
    return [f"{head}: '{item.label}' is planned only for {item.start.human()} (today is "
            f"{human_day(today)}); it cannot happen automatically until its day is fixed with "
            f"'prepflow amend {definition.id} {item.key} YYYY-MM-DD'."]
