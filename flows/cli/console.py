"""Turning reports into what a person reads on a terminal (rich), and plain text for logs.

Text that comes from people (reasons, document references, labels in a definition) is
escaped: rich would read '[/x]' in a reason as markup and fail, or drop '[draft]' silently.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from flows.cli import wallclock
from flows.cli.common import markup
from flows.storage import AuditEntry
from states.dates import describe, zone
from states.definition import ProcessDefinition
from states.instance import Instance
from states.notices import after_final
from states.plan import Milestone
from states.queries import history
from states.rules import RuleResult, Status
from states.status import Report
from states.versions import Story, stories

MARK = {Status.PASS: "[green]PASS[/]", Status.FAIL: "[bold red]FAIL[/]",
        Status.UNKNOWN: "[yellow]RISK[/]"}


def rules(console: Console, results: Sequence[RuleResult]) -> None:
    """One line per rule: verdict, rule, what it found and the slack."""
    for result in results:
        console.print(MARK[result.status] + markup("  [bold]{}[/]  {}", result.rule,
                                                   result.message),
                      soft_wrap=True, highlight=False)


def countdown(days: float | None) -> str:
    """'in 3 days', 'in 5 hours', '2 days ago'."""
    if days is None:
        return "—"
    if abs(days) < 1:
        hours = round(abs(days) * 24)
        return f"in {hours} h" if days >= 0 else f"{hours} h ago"
    whole = int(abs(days))
    unit = "day" if whole == 1 else "days"
    return f"in {whole} {unit}" if days >= 0 else f"{whole} {unit} ago"


def status(console: Console, report: Report, timezone: str) -> None:
    """The operator's status block for one process."""
    tz = zone(timezone)
    console.print(markup("[bold]{}[/] — {}", report.process_id, report.name), soft_wrap=True)
    console.print(markup("as of {}", describe(report.now, tz)), highlight=False)
    for region, (state, label) in report.regions.items():
        console.print(markup("  {}: [cyan]{}[/] ({})", region, label, state), soft_wrap=True,
                      highlight=False)
    if report.agenda:
        console.print(f"  forum: [cyan]{escape(report.agenda)}[/]", soft_wrap=True,
                      highlight=False)
    if report.opinions:
        counts = ", ".join(f"{n} {stage}" for stage, n in report.opinions.items())
        console.print(markup("  draft Opinions: {}", counts), soft_wrap=True, highlight=False)
    table = Table(title="Next milestones", title_justify="left")
    for column in ("milestone", "what", "when", "countdown", "how"):
        table.add_column(column)
    for item in report.upcoming:
        table.add_row(item.key, escape(item.label), item.text, countdown(item.days_left),
                      item.how)
    console.print(table)
    if report.overrides:
        console.print("[bold]Overrides[/]")
        for o in report.overrides:
            console.print(escape(f"  {o.rule} on '{o.what}' by {o.by}, {describe(o.at, tz)}: "
                                 f"{o.reason}"), soft_wrap=True, highlight=False)
    if report.warnings:
        console.print("[bold yellow]Warnings[/]")
        for warning in report.warnings:
            console.print(f"  - {escape(warning.text)}", soft_wrap=True, highlight=False)
    else:
        console.print("[green]No warnings.[/]")


def timeline(console: Console, definition: ProcessDefinition, plan: list[Milestone],
             effective: list[Milestone], instance: Instance) -> None:
    """Plan vs actual, one row per milestone."""
    tz = zone(definition.timezone)
    planned = {m.key: m for m in plan}
    by_milestone: dict[str, list[str]] = {}
    for occurrence in history(definition, instance):
        mark = describe(occurrence.when, tz)
        if occurrence.document:
            mark += f" ({occurrence.document})"
        by_milestone.setdefault(occurrence.milestone, []).append(mark)
    for cycle, versions in instance.versions.items():  # a draft posted in versions
        by_milestone.setdefault(f"{cycle}.posting", []).extend(
            f"{v.label}: {describe(v.at, tz)} ({v.document})" for v in versions)
    table = Table(title=markup("{}: plan vs actual", definition.id), title_justify="left")
    for column in ("milestone", "what", "planned", "now planned", "happened"):
        table.add_column(column)
    index = {m.key: m for m in effective}
    for item in effective:
        original = planned[item.key].span_text()
        current = item.span_text() if item.amended else "="
        label = item.label + (" (informal; does not change the report)"
                              if after_final(definition, index, item) else
                              " (informal)" if item.informal else "")
        table.add_row(item.key, escape(label), original, current,
                      escape("; ".join(by_milestone.get(item.key, [])) or "—"))
    console.print(table)
    changed = [s for s in stories(definition, instance) if s.changes or s.relocations]
    if changed:
        console.print("[bold]Changes[/] (plan → each change → actual)")
    for story in changed:
        console.print(f"  [bold]{escape(story.current.key)}[/] {escape(story.current.label)}",
                      soft_wrap=True, highlight=False)
        console.print(markup("    plan      {}", story.planned.span_text()), highlight=False)
        for number, (what, at, by, reason) in enumerate(_changes(story), 1):
            console.print(escape(f"    change {number}  {what}  ({describe(at, tz)}, "
                                 f"by {by}: {reason})"), soft_wrap=True, highlight=False)
        actual = "; ".join(describe(o.when, tz) + (f" ({o.document})" if o.document else "")
                           for o in story.actual) or "not yet"
        console.print(escape(f"    actual    {actual}"), soft_wrap=True, highlight=False)


def _changes(story: Story) -> list[tuple[str, datetime, str, str]]:
    """Each change of a milestone in time order: new dates, a new mode or place, or both
    (a revision that did both at once is one change)."""
    lines: dict[tuple[datetime, str, str], list[str]] = {}
    for change in story.changes:
        span = change.start.human() + (f" – {change.end.human()}" if change.end else "")
        lines.setdefault((change.at, change.by, change.reason), []).append(span)
    for relocation in story.relocations:
        lines.setdefault((relocation.at, relocation.by, relocation.reason),
                         []).append(relocation.text())
    return [("; ".join(what), at, by, reason)
            for (at, by, reason), what in sorted(lines.items(), key=lambda i: i[0][0])]


def audit(console: Console, entries: Sequence[AuditEntry], timezone: str | None,
          zones: Mapping[str, str] | None = None) -> None:
    """The audit log as a table; times in UTC and, when known, the process's zone (``zones``
    by process id); an entry made with --now far from the clock says when it was recorded."""
    table = Table(title="Audit log", title_justify="left")
    for column in ("process", "#", "time (UTC)", "actor", "kind", "trigger", "from → to",
                   "reason / details"):
        table.add_column(column)
    for e in entries:
        moved = f"{e.from_state or ''} → {e.to_state or ''}" if e.from_state != e.to_state else ""
        details = e.reason or ""
        if e.inputs.get("document"):
            details = f"{details} [document {e.inputs['document']}]".strip()
        if isinstance(via := e.inputs.get("via"), dict):  # who acted how (issue 10)
            run = f", flow run {via['flow_run_id']}" if via.get("flow_run_id") else ""
            details = f"{details} [as {via.get('role')} via {via.get('channel')}{run}]".strip()
        details = f"{details} {wallclock.mark(e, (zones or {}).get(e.process_id, timezone))}"
        # Every cell escaped: a process id made before ids were checked, or a trigger as typed,
        # may hold brackets.
        table.add_row(*map(escape, (e.process_id, str(e.seq), e.at.strftime("%Y-%m-%d %H:%M:%S"),
                                    e.actor, e.kind, e.trigger or "", moved, details.strip())))
    console.print(table)
