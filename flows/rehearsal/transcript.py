"""The rehearsal transcript: one line per audit entry, read back from the real store.

The lines depend only on the audit log and the inputs, so two runs give identical bytes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from flows.storage import AuditEntry
from states.contribution_types import SubmitterCategory, WindowSummary
from states.contributions import CONTRIBUTION, WINDOW_SUMMARY, comment_deadline
from states.dates import describe, local_day, zone
from states.definition import ProcessDefinition
from states.forum import Opinion
from states.instance import Instance
from states.machine import Spec, table_for
from states.queries import occurred_day
from states.rules import SIX_WEEKS, Status, check, effective_milestones


def describe_entries(definition: ProcessDefinition, entries: Sequence[AuditEntry],
                     instance: Instance) -> list[str]:
    """Transcript lines for audit entries in log order: one per entry, except one per batch
    of contributions (recorded together, on one draft, late or not), however many it holds."""
    lines: list[str] = []
    batch: list[AuditEntry] = []
    for e in [*entries, None]:
        if batch and (e is None or _batch_key(e) != _batch_key(batch[0])):
            lines.append(_contributions(definition, batch))
            batch = []
        if e is not None and e.kind == CONTRIBUTION:
            batch.append(e)
        elif e is not None:
            lines.extend(describe_entry(definition, e, instance))
    return lines


def _batch_key(e: AuditEntry) -> tuple[str, datetime, object, object] | None:
    return (e.kind, e.at, e.inputs.get("cycle"), e.inputs.get("late")) \
        if e.kind == CONTRIBUTION else None


def _contributions(definition: ProcessDefinition, batch: list[AuditEntry]) -> str:
    """'12 contributions on the Second Draft recorded (2 from the public)'."""
    tz = zone(definition.timezone)
    first = batch[0].inputs
    name = definition.cycle(str(first.get("cycle"))).name
    public = sum(e.inputs.get("category") == SubmitterCategory.PUBLIC.value for e in batch)
    plural = "s" if len(batch) != 1 else ""
    text = f"{len(batch)} contribution{plural} on the {name} recorded"
    if first.get("late"):
        text = f"{len(batch)} late contribution{plural} on the {name} recorded (received " \
               "after the deadline: flagged, counted apart)"
    elif public:
        text += f" ({public} from the public)"
    return f"{local_day(batch[0].at, tz).isoformat()} register     {text}"


def window_text(definition: ProcessDefinition, summary: WindowSummary) -> str:
    """One comment window in a line: total, on time, late, by kind, by source, by region."""
    def counts(values: dict[str, int]) -> str:
        return ", ".join(f"{k} {v}" for k, v in values.items() if v) or "none"
    s = summary
    return (f"{definition.cycle(s.cycle).name} ({s.cycle}): {s.total} contribution"
            f"{'s' if s.total != 1 else ''}, {s.on_time} on time, {s.late} late; by kind "
            f"{counts(s.by_kind)}; by source {counts(s.by_category)}; by region "
            f"{counts(s.by_region)}")


def describe_entry(definition: ProcessDefinition, e: AuditEntry,
                   instance: Instance) -> list[str]:
    """Transcript lines for one audit entry."""
    tz = zone(definition.timezone)
    spec = table_for(definition).by_trigger.get(e.trigger or "")
    day = local_day(e.at, tz).isoformat()
    who = f"{e.actor:<12}"
    if e.kind == "transition" and spec is not None:
        return _transition(definition, e, spec, instance)
    if e.kind == WINDOW_SUMMARY:  # the close's outcome: its day is the close's (the deadline)
        summary = WindowSummary.model_validate(e.inputs)
        deadline = comment_deadline(definition, instance, summary.cycle)
        closed = local_day(deadline - timedelta(microseconds=1), tz).isoformat()
        return [f"{closed} register     comment window closed: "
                f"{window_text(definition, summary)}"]
    if e.kind == "amendment":
        results = check(definition, effective_milestones(definition, instance))
        broken = sum(x.status is Status.FAIL for x in results)
        return [f"{day} {who} amended {e.inputs.get('milestone')}: "
                f"{e.inputs.get('from')} → {e.inputs.get('to')} ({e.reason}); rules re-checked: "
                f"{len(results)}, {broken} broken"]
    if e.kind == "opinion" and "opinion" in e.inputs:
        return [f"{day} {who} {_opinion(e)}"]
    texts = {
        "override": f"OVERRIDE {e.inputs.get('rule')}: {e.reason}",
        "refusal": f"REFUSED {e.trigger}: {e.reason}",
        "init": f"process {instance.process_id} created",
        "notice": f"message decided: {e.inputs.get('event')} to {e.inputs.get('audience')}",
        "forum": _forum(definition, e.inputs.get("forum") or {}),
    }
    text = texts.get(e.kind, f"{e.kind} {e.trigger or ''}".rstrip())
    return [f"{day} {who} {text}"]


def _forum(definition: ProcessDefinition, record: Mapping[str, Any]) -> str:
    """The forum's record after a step: the agenda item under way (or the agenda done), the
    chair and the chair's report."""
    item, agenda = int(record.get("item") or 0), definition.forum.agenda
    where = ("agenda completed" if item > len(agenda) else
             f"agenda item {item}/{len(agenda)}" if item else "agenda not begun")
    return (f"forum record: {where}, chair {record.get('chair') or '—'}, chair's report "
            f"{record.get('report') or '—'}")


def _opinion(e: AuditEntry) -> str:
    """An Opinion's change: its stage as people read it, and where the process stood."""
    opinion = Opinion.model_validate(e.inputs["opinion"])
    where = opinion.history[-1].where
    text = f"Opinion {opinion.id} ({opinion.theme or 'no theme'}): {opinion.label}"
    text += f" [cycle {where.cycle or '—'}, IEG meeting {where.meeting or '—'}]"
    if e.inputs.get("non_binding"):
        text += " (non-binding)"
    return text if opinion.consensus else f"{text} (no IEG consensus)"


def _transition(definition: ProcessDefinition, e: AuditEntry, spec: Spec,
                instance: Instance) -> list[str]:
    """A transition, with its due time, the checks it passed, and what follows from it."""
    tz = zone(definition.timezone)
    due = e.inputs.get("due")
    instant = datetime.fromisoformat(str(due)) if due else None
    day = (occurred_day(spec, instant, tz) if instant else local_day(e.at, tz)).isoformat()
    text = f"{day} {e.actor:<12} {spec.label}"
    if e.inputs.get("document"):
        text += f" (document {e.inputs['document']})"
    if instant is not None:
        text += f" — due {describe(instant, tz)}"
    overridden = sorted({o.rule for o in instance.overrides if o.what == spec.trigger})
    if spec.guards and overridden:  # a refusal set aside is not a check passed
        text += (f" [checks: {', '.join(spec.guards)}; set aside by override: "
                 f"{', '.join(overridden)}]")
    elif spec.guards:
        text += f" [checks passed: {', '.join(spec.guards)}]"
    lines = [text]
    if spec.trigger == f"post_{definition.cycles[-1].id}":  # the final report: Decision 641
        six = [x for x in check(definition, effective_milestones(definition, instance))
               if x.rule == SIX_WEEKS]
        lines += [f"{day} rules        six-weeks: {x.status.value} — {x.message}" for x in six]
    return lines
