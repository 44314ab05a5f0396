"""What operators see in the Prefect UI, as plain data: tables and markdown with mermaid.

Pure functions of (definition, instance, now); the flows publish them as artifacts with
stable keys per process, so the UI always shows the latest version under one name.
"""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import date, datetime, timedelta
from typing import Any

from flows.orchestration import pictures
from states.dates import PlanDate, describe, local_day, zone
from states.definition import ProcessDefinition
from states.instance import Amendment, Instance
from states.machine import table_for
from states.plan import Kind, Milestone
from states.queries import first_days
from states.rules import Status, check, effective_milestones
from states.status import Report, report
from states.versions import Story, stories


def artifact_key(process_id: str, what: str) -> str:
    """Prefect artifact keys allow lower-case letters, digits and dashes only."""
    return re.sub(r"[^a-z0-9-]+", "-", f"{process_id}-{what}".lower()).strip("-")


def status_rows(definition: ProcessDefinition, instance: Instance,
                now: datetime) -> list[dict[str, Any]]:
    """One row per cycle: its state, next milestone, days left, overrides."""
    current = report(definition, instance, now, limit=1000)
    table = table_for(definition)
    specs = table.by_trigger
    main_state = instance.regions["main"]
    rows = []
    for cycle in definition.cycles:
        happened = [t for t in instance.happened if specs[t].cycle == cycle.id]
        if table.cycle_of(main_state) == cycle.id:
            state = current.regions["main"][1]
        elif happened:
            state = "done" if cycle.kind == "draft" else "posted"
        else:
            state = "ahead"
        upcoming = [u for u in current.upcoming if u.cycle == cycle.id]
        nxt = upcoming[0] if upcoming else None
        overrides = [f"{o.rule} ({o.by})" for o in instance.overrides
                     if cycle.id in o.what]
        rows.append({
            "cycle": cycle.name,
            "state": state,
            "next milestone": f"{nxt.label}: {nxt.text}" if nxt else "—",
            # whole days, cut toward zero as `prepflow status` says them ('in 2 days')
            "days left": int(nxt.days_left) if nxt and nxt.days_left is not None else "—",
            "overrides": ", ".join(overrides) or "—",
        })
    return rows


def _gantt_name(text: str) -> str:
    return re.sub(r"[:;#]", " ", text).strip()


def gantt(definition: ProcessDefinition, instance: Instance) -> str:
    """Plan vs actual as mermaid gantt charts (markdown), one per cycle (or forum,
    nominations): a chart of the whole process, fitted to the UI's width, had unreadable
    labels (issue 11)."""
    charts: dict[str, list[str]] = {}
    done = first_days(definition, instance)
    for story in stories(definition, instance):
        item = story.current
        bars = _bars(story, done.get(item.key), definition.forum.days)
        if item.kind is Kind.POSTING and item.cycle in instance.versions:  # later versions
            tz = zone(definition.timezone)
            bars += [f"    {_gantt_name(item.label)} ({_gantt_name(v.label)}) :done, milestone, "
                     f"{local_day(v.at, tz).isoformat()}, 0d"
                     for v in instance.versions[item.cycle]]
        if bars:
            charts.setdefault(_section(definition, item), []).extend(bars)
    return "\n\n".join(pictures.block(f"{section} — plan vs actual",
                                      ["gantt", "    dateFormat YYYY-MM-DD", *_axis(bars),
                                       "    todayMarker off", *bars])
                        for section, bars in charts.items())


def _axis(bars: list[str]) -> list[str]:
    """About eight ticks whatever the chart's span: weeks ('12 Aug 2024') or months ('Aug 2024')."""
    days = sorted(date.fromisoformat(d) for d in re.findall(r"\d{4}-\d{2}-\d{2}", "".join(bars)))
    span = (days[-1] - days[0]).days + 28 if days else 0
    weeks = -(-span // 56) or 1
    if weeks <= 4:
        return ["    axisFormat %d %b %Y", f"    tickInterval {weeks}week"]
    return ["    axisFormat %b %Y", f"    tickInterval {-(-span // 240)}month"]


def _section(definition: ProcessDefinition, item: Milestone) -> str:
    if item.cycle:
        return definition.cycle(item.cycle).name
    return "Forum" if item.kind is Kind.FORUM else "Nominations"


def _bars(story: Story, actual: date | None, forum_days: int) -> list[str]:
    """The plan's bar, one per change (the latest active while it has not happened), and the
    actual day."""
    item, planned = story.current, story.planned
    name = _gantt_name(item.label)
    out = []
    if planned.start is not None:
        days = _days(planned)
        out.append(f"    {name} (plan) :{'milestone, ' if days == 0 else ''}"
                   f"{planned.start.first_day().isoformat()}, {max(days, 0)}d")
    for number, change in enumerate(story.changes, 1):
        span = replace(planned, start=change.start, end=_changed_end(item, change, forum_days))
        days = _days(span)
        latest = number == len(story.changes) and actual is None
        tags = ("active, " if latest else "") + ("milestone, " if days == 0 else "")
        out.append(f"    {name} (change {number}) :{tags}{change.start.first_day().isoformat()}"
                   f", {max(days, 0)}d")
    if actual is not None:
        out.append(f"    {name} (actual) :done, milestone, {actual.isoformat()}, 0d")
    elif item.amended and item.start is not None and not story.changes:
        out.append(f"    {name} (now planned) :active, {item.start.first_day().isoformat()}, "
                   f"{max(_days(item), 0)}d")
    return out


def _changed_end(item: Milestone, change: Amendment, forum_days: int) -> PlanDate | None:
    """A change's last day: its own end, else (the forum) its opening plus its days."""
    if change.end is not None or item.kind is not Kind.FORUM or not change.start.exact:
        return change.end
    last = change.start.first_day() + timedelta(days=forum_days - 1)
    return PlanDate(last.year, last.month, last.day)


def _days(item: Milestone) -> int:
    if item.kind not in (Kind.MEETING, Kind.FORUM) or item.start is None:
        return 0
    last = item.last or item.start
    return (last.last_day() - item.start.first_day()).days + 1


def diagram(definition: ProcessDefinition, instance: Instance) -> str:
    """The machine's state diagrams, one per cycle and side region, current states marked."""
    return "\n\n".join(pictures.state_diagrams(definition, instance.regions))


def rules_rows(definition: ProcessDefinition, instance: Instance) -> list[dict[str, Any]]:
    """Every rule with its verdict and slack, six-week line first (a table artifact)."""
    results = check(definition, effective_milestones(definition, instance))
    results.sort(key=lambda r: r.rule != "six-weeks")
    mark = {Status.PASS: "pass", Status.FAIL: "FAIL", Status.UNKNOWN: "at risk"}
    return [{"rule": r.rule, "verdict": mark[r.status],
             "slack (days)": "—" if r.slack_days is None else r.slack_days,
             "detail": r.message} for r in results]


def status_markdown(current: Report, definition: ProcessDefinition) -> str:
    """Warnings and overrides as markdown, for the status artifact's description."""
    tz = zone(definition.timezone)
    lines = [f"**{current.process_id}** as of {describe(current.now, tz)}"]
    lines += [f"- ⚠️ {w.text}" for w in current.warnings] or ["- no warnings"]
    lines += [f"- override: {o.rule} on {o.what} by {o.by}: {o.reason}" for o in current.overrides]
    if current.agenda:
        lines.append(f"- forum: {current.agenda}")
    if current.opinions:
        lines.append("- draft Opinions: " + ", ".join(f"{n} {stage}"
                                                      for stage, n in current.opinions.items()))
    return "\n".join(lines)


def comments_markdown(definition: ProcessDefinition, instance: Instance) -> str:
    """Each closed comment window's summary as recorded at its close (issue 8), for the IEG
    meeting that follows: counts by kind, source and region, on time and late."""
    lines = [f"### Comment windows of {definition.id}", ""]
    if not instance.summaries:
        return "\n".join([*lines, "- no comment window has closed yet"])
    lines += ["| draft | total | on time | late | by kind | by source | by region |",
              "|---|---|---|---|---|---|---|"]
    for cycle in definition.cycles:
        s = instance.summaries.get(cycle.id)
        if s is None:
            continue
        counts = [", ".join(f"{k} {v}" for k, v in c.items() if v) or "—"
                  for c in (s.by_kind, s.by_category, s.by_region)]
        lines.append(f"| {cycle.name} | {s.total} | {s.on_time} | {s.late} | "
                     + " | ".join(counts) + " |")
    return "\n".join(lines)
