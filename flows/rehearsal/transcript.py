"""The rehearsal transcript: one line per audit entry, read back from the real store.

The lines depend only on the audit log and the inputs, so two runs give identical bytes.
"""

from __future__ import annotations

from datetime import datetime

from flows.storage import AuditEntry
from states.dates import describe, local_day, zone
from states.definition import ProcessDefinition
from states.forum import Opinion
from states.instance import Instance
from states.machine import Spec, table_for
from states.queries import occurred_day
from states.rules import SIX_WEEKS, Status, check, effective_milestones


def describe_entry(definition: ProcessDefinition, e: AuditEntry, instance: Instance,
                   comments: int) -> list[str]:
    """Transcript lines for one audit entry (``comments``: simulated comments per window)."""
    tz = zone(definition.timezone)
    spec = table_for(definition).by_trigger.get(e.trigger or "")
    day = local_day(e.at, tz).isoformat()
    who = f"{e.actor:<12}"
    if e.kind == "transition" and spec is not None:
        return _transition(definition, e, spec, instance, comments)
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
        "init": f"process {definition.id} created",
        "notice": f"message decided: {e.inputs.get('event')} to {e.inputs.get('audience')}",
        "forum": f"forum record: agenda item {(e.inputs.get('forum') or {}).get('item')}, "
                 f"chair {(e.inputs.get('forum') or {}).get('chair') or '—'}, chair's report "
                 f"{(e.inputs.get('forum') or {}).get('report') or '—'}",
    }
    text = texts.get(e.kind, f"{e.kind} {e.trigger or ''}".rstrip())
    return [f"{day} {who} {text}"]


def _opinion(e: AuditEntry) -> str:
    """An Opinion's change: its stage as people read it, and where the process stood."""
    opinion = Opinion.model_validate(e.inputs["opinion"])
    where = opinion.history[-1].where
    text = f"Opinion {opinion.id} ({opinion.theme or 'no theme'}): {opinion.label}"
    text += f" [cycle {where.cycle or '—'}, IEG meeting {where.meeting or '—'}]"
    if e.inputs.get("non_binding"):
        text += " (non-binding)"
    return text if opinion.consensus else f"{text} (no IEG consensus)"


def _transition(definition: ProcessDefinition, e: AuditEntry, spec: Spec, instance: Instance,
                comments: int) -> list[str]:
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
    if spec.event == "comments_closed" and comments:
        lines.append(f"{day} register     {comments} comments on the "
                     f"{definition.cycle(spec.cycle or '').name} counted as received "
                     "(simulated)")
    return lines
