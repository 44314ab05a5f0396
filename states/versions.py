"""What the process really went through: each milestone's plan, every change and what happened;
each draft's versions after its first posting.

Real processes slip and reshape: the definition is the plan, amendments are the changes (all of
them, in order, not only the latest), and happenings are the actual. ``stories`` answers
"plan → each change → actual" for the timeline and the gantt; ``post_version`` records a
further version of a posted draft (e.g. 'revised') and tells the experts.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from states.dates import describe, end_instant, local_day, zone
from states.decision import Decision, Effect, Record
from states.definition import CycleDef, ProcessDefinition
from states.engine import actor_of
from states.errors import InputError, Refused, RuleId
from states.instance import Amendment, DraftVersion, Instance, Relocation
from states.notices import with_message
from states.plan import Milestone, plan_milestones
from states.queries import Occurrence, history
from states.rules import effective_milestones

#: The label of a draft's first posting, when nothing else names it.
FIRST_LABEL = "posted"


@dataclass(frozen=True)
class Story:
    """One milestone as it really ran: the definition's plan, each change, what happened."""

    planned: Milestone
    changes: tuple[Amendment, ...]
    current: Milestone
    actual: tuple[Occurrence, ...]
    relocations: tuple[Relocation, ...] = ()
    """Each change of mode or place (a revision's), in order."""


def stories(definition: ProcessDefinition, instance: Instance) -> list[Story]:
    """Every milestone in plan order, with its whole amendment history and occurrences."""
    happened: dict[str, list[Occurrence]] = {}
    for occurrence in history(definition, instance):
        happened.setdefault(occurrence.milestone, []).append(occurrence)
    planned = {m.key: m for m in plan_milestones(definition)}
    return [Story(planned[item.key], instance.history.get(item.key, ()), item,
                  tuple(happened.get(item.key, ())), instance.relocations.get(item.key, ()))
            for item in effective_milestones(definition, instance)]


@dataclass(frozen=True)
class Version:
    """One version of a draft: the first posting ('posted') or a later one."""

    label: str
    document: str | None
    at: datetime
    by: str
    reason: str | None = None


def draft_versions(instance: Instance, cycle: str) -> list[Version]:
    """The cycle's versions in order, its first posting first (empty while unposted)."""
    first = instance.happened.get(f"post_{cycle}")
    if first is None:
        return []
    return [Version(FIRST_LABEL, first.document, first.at, first.by),
            *(Version(v.label, v.document, v.at, v.by, v.reason)
              for v in instance.versions.get(cycle, ()))]


def post_version(definition: ProcessDefinition, instance: Instance, cycle_id: str,
                 document: str, label: str, actor: str, reason: str | None,
                 now: datetime) -> Decision:
    """A further version of a posted draft, while it is still the current draft; experts are
    told ('draft_revised'). The audit record carries the whole version, to rebuild it."""
    member = actor_of(definition, actor)
    cycle = _draft_cycle(definition, cycle_id)
    document, label = document.strip(), label.strip()
    if not document:
        raise InputError(f"a version of '{cycle.id}' needs its document: --document REF.")
    if not label:
        raise InputError("a version needs a --label, e.g. revised.")
    tz = zone(definition.timezone)
    versions = draft_versions(instance, cycle.id)
    _still_current(definition, instance, cycle, now)
    used = [v.label for v in versions]
    if label in used:
        raise InputError(f"--label '{label}': {cycle.name} already has a version so named "
                         f"({', '.join(used)}); choose another, e.g. '{label}-2'.")
    version = DraftVersion(label=label, document=document, at=now, by=member.id,
                           reason=(reason or "").strip() or None)
    after = instance.model_copy(update={
        "versions": {**instance.versions, cycle.id: (*instance.versions.get(cycle.id, ()),
                                                     version)}})
    previous = versions[-1]
    inputs: dict[str, Any] = {"cycle": cycle.id, "version": version.model_dump(mode="json"),
                              "previous": previous.document}
    record = Record(now, member.id, "draft_version", None, None, None, version.reason, inputs)
    data: dict[str, Any] = {
        "audience": "experts", "cycle_name": cycle.name, "document": document, "label": label,
        "previous_document": previous.document, "previous_label": previous.label,
        "reason": version.reason, "posted_day": local_day(now, tz).isoformat()}
    deadline = _open_deadline(definition, instance, cycle)
    if deadline is not None:
        data["deadline"] = deadline.isoformat()
    key = f"{instance.process_id}:version:{cycle.id}:{label}"
    effect = Effect("notify", "draft_revised", key, instance.process_id, cycle.id, None, now,
                    data)
    return Decision(instance, after, (record,), (with_message(definition, effect),))


def _draft_cycle(definition: ProcessDefinition, cycle_id: str) -> CycleDef:
    drafts = [c for c in definition.cycles if c.kind == "draft"]
    for cycle in drafts:
        if cycle.id == cycle_id:
            return cycle
    raise InputError(f"'{cycle_id}' is not a draft cycle of {definition.id}; versions are "
                     f"posted for drafts: {', '.join(c.id for c in drafts)}.")


def _still_current(definition: ProcessDefinition, instance: Instance, cycle: CycleDef,
                   now: datetime) -> None:
    """A version is of the current draft: after its first posting, before the next one's."""
    tz = zone(definition.timezone)
    cite = definition.citation(RuleId.DRAFT_VERSION)
    posted = instance.happened.get(f"post_{cycle.id}")
    if posted is None:
        raise Refused(RuleId.DRAFT_VERSION,
                      f"the {cycle.name} has not been posted yet (it is {describe(now, tz)}), so "
                      "it has no first version to revise.",
                      f"post it first: 'prepflow transition {instance.process_id} "
                      f"post_{cycle.id} --by NAME --document REF'.",
                      dates=(local_day(now, tz),), citation=cite)
    index = definition.cycles.index(cycle)
    following = definition.cycles[index + 1]
    superseded = instance.happened.get(f"post_{following.id}")
    if superseded is not None:
        raise Refused(RuleId.DRAFT_VERSION,
                      f"the {following.name} was posted on {describe(superseded.at, tz)}, so "
                      f"the {cycle.name} is no longer the current draft; a version now would "
                      "not be what experts comment on.",
                      f"post a version of the current draft ({following.id}) instead, or "
                      "raise the change at the next expert meeting.",
                      dates=(local_day(posted.at, tz), local_day(superseded.at, tz)),
                      citation=cite)


def _open_deadline(definition: ProcessDefinition, instance: Instance,
                   cycle: CycleDef) -> datetime | None:
    """The comment deadline while the cycle's window is open (the revised mail repeats it)."""
    if instance.regions.get("main") != f"{cycle.id}.comment_window":
        return None
    item = {m.key: m for m in effective_milestones(definition, instance)}.get(
        f"{cycle.id}.comments")
    if item is None or item.start is None or not item.start.exact:
        return None
    return end_instant(item.start, zone(definition.timezone))
