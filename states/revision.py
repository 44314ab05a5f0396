"""Reshaping a running process: a new version of its definition, with history kept.

Real preparatory processes slip and reshape: a meeting is added, cancelled, split into a
physical session and informal virtual ones, moved to another place or mode. Since the state
machine is built from the definition (states/machine.py), reshaping a running process means
revising the definition it runs on. ``revise`` decides whether the new version may replace the
old one for this instance: what already happened must still mean the same thing in the new
machine, and the rules are re-checked as for an amendment (a newly broken rule refuses unless
overridden with a reason). The store keeps the new definition in the same transaction as the
decision's state and audit record.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from states.dates import describe, local_day, start_instant, zone
from states.decision import Decision, Effect, Record
from states.definition import MeetingDef, ProcessDefinition
from states.engine import actor_of, advance, engine_for
from states.errors import InputError, Refused, RuleId
from states.instance import Instance, Override
from states.machine import MAIN, Table
from states.notices import notices, with_message
from states.plan import Milestone, by_key, plan_milestones
from states.reshape_plan import keep_plans
from states.revision_diff import changes
from states.rules import check, effective_milestones, newly_broken


def revise(old: ProcessDefinition, new: ProcessDefinition, instance: Instance, actor: str,
           reason: str, now: datetime, override: bool = False,
           sessions: Sequence[str] = ()) -> Decision:
    """The decision of ``revised`` (the definition then in force is its second part)."""
    return revised(old, new, instance, actor, reason, now, override, sessions)[0]


def revised(old: ProcessDefinition, new: ProcessDefinition, instance: Instance, actor: str,
            reason: str, now: datetime, override: bool = False,
            sessions: Sequence[str] = ()) -> tuple[Decision, ProcessDefinition]:
    """Replace the definition ``instance`` runs on by ``new``; a 'revision' audit record.

    The definition put in force keeps each meeting's planned days: a move of them is an
    amendment, a new mode or place a relocation (states/reshape_plan.py), so the timeline
    shows plan → each change → actual. ``sessions``: the meetings a split made, in order;
    their invitations list them all. Every invitation this revision sends says its reason.

    Refused (history, not overridable) when the new machine would rewrite what happened;
    refused (overridable, with a reason) when it breaks a rule the old plan kept. Amendments
    to dates the new version itself changes are dropped: the new version states those dates.
    Experts are told through the usual invitation notices (updated, new) and cancellations of
    meetings the new version no longer has.
    """
    member = actor_of(old, actor)
    if not reason.strip():
        raise InputError("a revision needs a --reason, recorded in the audit log.")
    if new.id != old.id:
        raise InputError(f"the new definition is for '{new.id}', this process runs '{old.id}': "
                         "a revision keeps the definition's id (another process needs init).")
    listed = changes(old, new)
    if not listed:
        raise InputError("the new definition is the same as the one in force: nothing to "
                         "revise.")
    # What fell due before now happens first (as for a posting): a meeting whose start
    # passed while no tick ran has started, and the history rules must see it so.
    caught_up = advance(old, instance, now)
    instance = caught_up.after
    _keep_meeting_history(old, new, instance, now)
    plans = keep_plans(old, new, instance, member.id, reason, now)
    new = plans.definition
    old_table, new_table = engine_for(old).table, engine_for(new).table
    _keep_machine_history(old, new, instance, old_table, new_table)
    kept = _keep_amendments(old, new, instance)
    before_items = effective_milestones(old, instance)
    after_instance = plans.applied(instance.model_copy(update={
        "amendments": kept,
        "invitations": _with_details(instance, before_items)}))
    after_items = effective_milestones(new, after_instance)
    _not_into_past(old, new, before_items, after_items, now)
    broken = newly_broken(check(old, before_items), check(new, after_items))
    if broken and not override:
        first = broken[0]
        raise Refused(first.rule, f"this revision breaks a rule: {first.message}",
                      "change the new definition, or --override with a --reason.",
                      overridable=True, citation=new.citation(first.rule))
    overrides = tuple(Override(rule=r.rule, what="revision", message=r.message, at=now,
                               by=member.id, reason=reason) for r in broken)
    after = after_instance.model_copy(update={"overrides": instance.overrides + overrides})
    state = instance.regions.get(MAIN)
    inputs: dict[str, Any] = {
        "from": old.fingerprint(), "to": new.fingerprint(), "changes": listed,
        "dropped_amendments": sorted(set(instance.amendments) - set(kept)),
        "definition": new.model_dump(mode="json"), "override": bool(overrides),
        **plans.inputs()}
    records = [Record(now, member.id, "revision", None, state, state, reason, inputs)]
    records += [Record(now, member.id, "override", None, None, None, reason,
                       {"rule": o.rule, "what": o.what, "message": o.message})
                for o in overrides]
    cancelled, effects, invitations = _cancel_removed(old, new, after, reason, now)
    after = after.model_copy(update={"invitations": invitations,
                                     "notices": tuple(sorted({*after.notices, *cancelled}))})
    records += [Record(now, "system", "notice", None, None, None, None,
                       {"event": e.event, "key": e.key, "audience": "experts"})
                for e in effects]
    if "forum" in plans.relocations:  # the forum in another mode or place: experts and focal points
        effect = _forum_updated(old, new, after, reason, now)
        after = after.model_copy(update={"notices": tuple(sorted({*after.notices,
                                                                   effect.key}))})
        records.append(Record(now, "system", "notice", None, None, None, None,
                              {"event": effect.event, "key": effect.key,
                               "audience": "experts"}))
        effects.append(effect)
    decision = Decision(instance, after, tuple(records), tuple(effects))
    items = by_key(effective_milestones(new, after))
    told = notices(new, after, new_table, items, now)
    told = replace(told, effects=tuple(_told_why(new, e, reason, sessions, items)
                                       for e in told.effects))
    return caught_up.then(decision).then(told), new


def _forum_updated(old: ProcessDefinition, new: ProcessDefinition, instance: Instance,
                   reason: str, now: datetime) -> Effect:
    """'forum_updated': the forum's new mode and place (old → new), keyed by the version."""
    opens = by_key(effective_milestones(new, instance))["forum"].start
    data: dict[str, Any] = {
        "audience": "experts", "reason": reason,
        "mode": new.forum.mode.value if new.forum.mode else None, "place": new.forum.place,
        "previous_mode": old.forum.mode.value if old.forum.mode else None,
        "previous_place": old.forum.place,
        "opens_day": opens.first_day().isoformat() if opens is not None and opens.exact
        else None}
    key = f"{instance.process_id}:forum-updated:{new.fingerprint()[:16]}"
    effect = Effect("notify", "forum_updated", key, instance.process_id, None, None, now, data)
    return with_message(new, effect)


def _told_why(definition: ProcessDefinition, effect: Effect, reason: str,
              sessions: Sequence[str], items: dict[str, Milestone]) -> Effect:
    """An invitation or update this revision sends, with its reason and (a split) every
    session of the split meeting, so the experts read why and what the meeting became."""
    if effect.event not in ("meeting_invitation", "meeting_updated"):
        return effect
    data: dict[str, Any] = {**effect.data, "reason": reason}
    if effect.data.get("meeting") in sessions:
        names = {m.id: m.name for c in definition.cycles for m in c.meetings}
        data["sessions"] = [_session(names[key], items[key]) for key in sessions
                            if key in items]
    return with_message(definition, replace(effect, data=data, message=None))


def _session(name: str, item: Milestone) -> dict[str, Any]:
    """One session as an invitation lists it (states.messages.MeetingSession)."""
    days = item.days
    return {"meeting": item.key, "meeting_name": name, "start": str(item.start),
            "end": str(item.last), "mode": item.mode, "place": item.place,
            "informal": item.informal, "days": [str(d) for d in days] if days else None}


def _keep_machine_history(old: ProcessDefinition, new: ProcessDefinition, instance: Instance,
                          old_table: Table, new_table: Table) -> None:
    """Every fired step still exists with the same meaning; the current states exist; and the
    machine up to where the process stands is the same (nothing inserted before it)."""
    for region, state in instance.regions.items():
        old_states, new_states = old_table.states[region], new_table.states.get(region, [])
        if state not in new_states:
            raise Refused(RuleId.HISTORY, f"the process is at '{old_table.labels[state]}', "
                          "which the new definition no longer has.",
                          "change only what is still ahead of the process.",
                          citation=new.citation(RuleId.HISTORY))
        behind_old = old_states[:old_states.index(state) + 1]
        behind_new = new_states[:new_states.index(state) + 1]
        if behind_old != behind_new:
            extra = [s for s in behind_new if s not in behind_old]
            shown = new_table.labels[extra[0]] if extra else "a step in another order"
            raise Refused(RuleId.HISTORY, f"the new definition puts '{shown}' before where the "
                          f"process stands ('{old_table.labels[state]}'): the past cannot "
                          "gain steps.", "add meetings only after the current position "
                          f"(after '{old_table.labels[state]}').",
                          citation=new.citation(RuleId.HISTORY))
    for trigger in instance.happened:
        was, now_spec = old_table.by_trigger.get(trigger), new_table.by_trigger.get(trigger)
        if was is None:
            continue  # a step of a still older version; its own revision kept it
        if now_spec is None or (now_spec.region, now_spec.source, now_spec.dest) != (
                was.region, was.source, was.dest):
            raise Refused(RuleId.HISTORY, f"'{was.label}' already happened; the new definition "
                          f"{'drops it' if now_spec is None else 'gives it another meaning'}, "
                          "so the record would no longer read.",
                          "change only what is still ahead of the process.",
                          citation=new.citation(RuleId.HISTORY))


def _meetings(definition: ProcessDefinition) -> dict[str, tuple[str, MeetingDef]]:
    return {m.id: (c.id, m) for c in definition.cycles for m in c.meetings}


def _keep_meeting_history(old: ProcessDefinition, new: ProcessDefinition, instance: Instance,
                          now: datetime) -> None:
    """A meeting already started (or ended) is neither removed, moved nor renamed; an informal
    session counts as started once its first day has begun."""
    tz = zone(old.timezone)
    after = _meetings(new)
    items = by_key(effective_milestones(old, instance))
    for meeting_id, (cycle_id, meeting) in _meetings(old).items():
        item = items[meeting_id]
        began = (f"start_{meeting_id}" in instance.happened or (
            meeting.informal and item.start is not None and item.start.exact
            and start_instant(item.start, tz) <= now))
        if not began:
            continue
        ended = f"end_{meeting_id}" in instance.happened
        kept = after.get(meeting_id)
        if kept is None:
            raise Refused(RuleId.HISTORY, f"'{meeting.name}' has already started; it cannot be "
                          "removed or cancelled.", "change only meetings still ahead.",
                          dates=_day(item, tz), citation=new.citation(RuleId.HISTORY))
        new_cycle, new_meeting = kept
        if new_cycle != cycle_id or new_meeting.name != meeting.name:
            raise Refused(RuleId.HISTORY, f"'{meeting.name}' has already started; it cannot be "
                          "renamed or moved to another cycle.", "change only meetings ahead.",
                          dates=_day(item, tz), citation=new.citation(RuleId.HISTORY))
        if meeting_id in instance.amendments:
            continue  # its amended dates stand (see _keep_amendments)
        if new_meeting.start != meeting.start or (ended and new_meeting.last != meeting.last):
            raise Refused(RuleId.HISTORY, f"'{meeting.name}' has already started "
                          f"({item.span_text()}); its dates cannot be moved now.",
                          "an ended meeting keeps its days; one in session may have its end "
                          "moved.", dates=_day(item, tz),
                          citation=new.citation(RuleId.HISTORY))


def _day(item: Milestone, tz: ZoneInfo) -> tuple[date, ...]:
    return (item.start.first_day(),) if item.start is not None else ()


def _keep_amendments(old: ProcessDefinition,
                     new: ProcessDefinition, instance: Instance) -> dict[str, Any]:
    """Amendments stand unless the new version drops the milestone or plans it anew (then the
    new version's dates are the plan; a started meeting's amendment always stands)."""
    before = by_key(plan_milestones(old))
    after = by_key(plan_milestones(new))
    kept = {}
    for key, amendment in instance.amendments.items():
        was, now = before.get(key), after.get(key)
        if now is None:
            continue
        started = f"start_{key}" in instance.happened
        if was is not None and (was.start, was.end, was.days) != (now.start, now.end, now.days) \
                and not started:
            continue
        kept[key] = amendment
    return kept


def _not_into_past(old: ProcessDefinition, new: ProcessDefinition,
                   before: list[Milestone], after: list[Milestone], now: datetime) -> None:
    """A meeting added or moved to a day already begun would fire (or be missed) at once."""
    tz = zone(new.timezone)
    was = by_key(before)
    for item in after:
        if item.key not in _meetings(new) or item.start is None or not item.start.exact:
            continue
        prior = was.get(item.key)
        if prior is not None and (prior.start, prior.end, prior.days) == (
                item.start, item.end, item.days):
            continue
        if start_instant(item.start, tz) <= now:
            raise Refused(RuleId.PAST, f"'{item.label}' would start {item.span_text()}, which "
                          f"is already past (now {describe(now, tz)}).",
                          "give meetings days still ahead.", dates=(local_day(now, tz),),
                          citation=new.citation(RuleId.PAST))


def _with_details(instance: Instance, items: list[Milestone]) -> dict[str, Any]:
    """Invitations sent before they recorded place and mode named the old definition's: say
    so, so that a changed place or mode is an update."""
    index = by_key(items)
    result = dict(instance.invitations)
    for key, sent in instance.invitations.items():
        item = index.get(key)
        if item is not None and not sent.details and sent.start is not None:
            result[key] = sent.with_details(item.place, item.mode, item.days)
    return result


def _cancel_removed(old: ProcessDefinition, new: ProcessDefinition, instance: Instance,
                    reason: str, now: datetime) -> tuple[set[str], list[Effect], dict[str, Any]]:
    """Cancellations (RFC 5545 METHOD:CANCEL) of invited meetings the new version drops."""
    kept = _meetings(new)
    invitations = dict(instance.invitations)
    keys: set[str] = set()
    effects: list[Effect] = []
    for meeting_id, (cycle_id, meeting) in _meetings(old).items():
        sent = invitations.get(meeting_id)
        if meeting_id in kept or sent is None or sent.start is None:
            continue
        sequence = sent.sequence + 1
        invitations[meeting_id] = sent.model_copy(update={
            "sequence": sequence, "start": None, "end": None, "days": None})
        key = f"{instance.process_id}:invite:{meeting_id}:{sequence}"
        keys.add(key)
        data = {"audience": "experts", "cycle_name": old.cycle(cycle_id).name,
                "meeting": meeting_id, "meeting_name": meeting.name,
                "start_day": str(sent.start), "end_day": str(sent.end or sent.start),
                "place": sent.place, "mode": sent.mode or meeting.mode.value,
                "sequence": sequence, "reason": reason, "informal": meeting.informal,
                "timezone": old.timezone}
        effect = Effect("notify", "meeting_cancelled", key, instance.process_id, cycle_id, None,
                        now, data)
        effects.append(with_message(new, effect))
    return keys, effects, invitations
