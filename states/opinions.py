"""Decisions on draft Opinions and the Forum's agenda: add, move, outcome, next agenda item.

Each returns a ``Decision`` whose audit record carries the whole new Opinion (or Forum record)
as JSON, so the log alone rebuilds them; a rule's refusal cites its source from the
definition (``rules.citations``, else the definition's source).
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from states.dates import describe, local_day, require_aware, zone
from states.decision import Decision, Record
from states.definition import ProcessDefinition
from states.engine import actor_of, advance, apply
from states.errors import InputError, Refused, RuleId
from states.forum import (
    LABELS,
    OUTCOMES,
    PREPARATION,
    Opinion,
    OpinionChange,
    Stage,
    Where,
)
from states.guards import forum_not_open
from states.instance import Instance
from states.machine import AGENDA, AGENDA_DONE, AGENDA_PENDING, MAIN, table_for
from states.plan import by_key
from states.rules import effective_milestones

_ID = re.compile(r"^[a-z0-9][a-z0-9-]{0,39}$")


def where(definition: ProcessDefinition, instance: Instance) -> Where:
    """The cycle the process is in and its expert-group meeting in session or last held."""
    table = table_for(definition)
    state = instance.regions[MAIN]
    names = table.states[MAIN]
    started = {s.dest: s.milestone for s in table.specs if s.event == "meeting_started"}
    meeting = None
    for name in names[: names.index(state) + 1] if state in names else ():
        meeting = started.get(name, meeting)
    return Where(cycle=table.cycle_of(state), meeting=meeting)


def agenda_item(definition: ProcessDefinition, state: str) -> int:
    """The agenda item an agenda state stands for: 0 before it begins, one past the last
    once it is done (the state, not the forum record, so a step taken otherwise counts)."""
    if state == AGENDA_PENDING:
        return 0
    if state == AGENDA_DONE:
        return len(definition.forum.agenda) + 1
    return int(state.removeprefix(f"{AGENDA}.").partition("-")[0])


def final_posted(definition: ProcessDefinition, instance: Instance) -> datetime | None:
    """When the final report was posted, if it was."""
    return instance.posted_at(definition.cycles[-1].id)


def add(definition: ProcessDefinition, instance: Instance, opinion_id: str, title: str,
        theme: str | None, actor: str, now: datetime, reason: str | None = None) -> Decision:
    """A draft Opinion is presented (its outline proposed); never once the final report is out."""
    now = _now(now)
    member = actor_of(definition, actor)
    if not _ID.match(opinion_id):
        raise InputError(f"Opinion id '{opinion_id}': use lower-case letters, digits and dashes "
                         "(e.g. op-1), at most 40 characters.")
    if opinion_id in instance.opinions:
        known = instance.opinions[opinion_id]
        raise InputError(f"Opinion id '{opinion_id}' is already used (\"{known.title}\", "
                         f"{known.label}); choose another id.")
    if not title.strip():
        raise InputError(f"Opinion '{opinion_id}': --title must not be empty.")
    _check_theme(definition, opinion_id, theme)
    posted = final_posted(definition, instance)
    if posted is not None:
        rule = RuleId.NEW_OPINION
        tz = zone(definition.timezone)
        raise _no(definition, rule,
                  f"the final report was posted on {describe(posted, tz)}; the forum "
                  f"considers no draft Opinion not presented during the preparatory period, "
                  f"so '{opinion_id}' cannot be added now.",
                  "only the Opinions already presented go before the forum; a new one "
                  "may be proposed for a future forum.", dates=(local_day(posted, tz),))
    here = where(definition, instance)
    change = OpinionChange(stage=Stage.OUTLINE, where=here, state=instance.regions[MAIN],
                           at=now, by=member.id, reason=reason)
    opinion = Opinion(id=opinion_id, title=title.strip(), theme=theme, presented_in=here,
                      history=(change,))
    return _record(instance, opinion, "add", member.id, now, reason)


def move(definition: ProcessDefinition, instance: Instance, opinion_id: str, stage: str,
         actor: str, now: datetime, consensus: bool = True,
         reason: str | None = None) -> Decision:
    """An Opinion moves forward beside the drafts; without IEG consensus it is marked so."""
    now = _now(now)
    member = actor_of(definition, actor)
    opinion = _opinion(instance, opinion_id)
    target = _stage(stage, "stage", PREPARATION,
                    " (an outcome is set with 'prepflow opinions outcome')")
    if target in OUTCOMES:
        raise InputError(f"'{target}' is the forum's outcome: use 'prepflow opinions outcome "
                         f"{instance.process_id} {opinion_id} {target} --by NAME'.")
    rule = RuleId.OPINION_STAGE
    if opinion.stage in OUTCOMES:
        raise _no(definition, rule,
                  f"Opinion '{opinion_id}' is {opinion.label}; it changes no more.",
                  "nothing: its outcome stands.")
    _one_stage_on(definition, instance, opinion, target)
    change = OpinionChange(stage=target, where=where(definition, instance),
                           state=instance.regions[MAIN], at=now, by=member.id, reason=reason,
                           consensus=consensus)
    changed = opinion.model_copy(update={"stage": target,
                                         "consensus": opinion.consensus and consensus,
                                         "history": (*opinion.history, change)})
    return _record(instance, changed, "move", member.id, now, reason)


def outcome(definition: ProcessDefinition, instance: Instance, opinion_id: str, result: str,
            actor: str, now: datetime, reason: str | None = None) -> Decision:
    """The forum's outcome for an Opinion (non-binding), or its withdrawal before one."""
    now = _now(now)
    member = actor_of(definition, actor)
    opinion = _opinion(instance, opinion_id)
    target = _stage(result, "outcome", OUTCOMES)
    if target not in OUTCOMES:
        raise InputError(f"outcome '{result}': use one of {_listed(OUTCOMES)}; stages "
                         f"before the forum are set with 'prepflow opinions move'.")
    if opinion.stage in OUTCOMES:
        rule = RuleId.OPINION_STAGE
        raise _no(definition, rule,
                  f"Opinion '{opinion_id}' is already {opinion.label}; an outcome is "
                  "recorded once.", "nothing: it stands.")
    if target is not Stage.WITHDRAWN:
        _at_forum(definition, instance, opinion)
    change = OpinionChange(stage=target, where=where(definition, instance),
                           state=instance.regions[MAIN], at=now, by=member.id, reason=reason)
    changed = opinion.model_copy(update={"stage": target,
                                         "history": (*opinion.history, change)})
    return _record(instance, changed, "outcome", member.id, now, reason)


def forum_next(definition: ProcessDefinition, instance: Instance, actor: str, now: datetime,
               chair: str | None = None, document: str | None = None,
               reason: str | None = None) -> Decision:
    """The forum moves to its next agenda item; the chair's election records the chair, the
    adoption the chair's report (its reference)."""
    now = _now(now)
    member = actor_of(definition, actor)
    tick = advance(definition, instance, now)
    current = tick.after
    table = table_for(definition)
    source = current.regions[AGENDA]
    steps = table.outgoing(AGENDA, source)
    if not steps:
        rule = RuleId.AGENDA
        raise _no(definition, rule, "the forum's agenda is completed.",
                  "nothing more on the agenda.")
    spec = steps[0]
    forum = current.forum
    leaving_chair = "chair_elected" in spec.guards
    if chair is not None and not leaving_chair:
        election = definition.forum.agenda[definition.forum.chair_item - 1]
        raise InputError(f"--chair is given when leaving item {definition.forum.chair_item} "
                         f"('{election}'); the forum is at '{table.labels[source]}'.")
    if leaving_chair:
        if not (chair and chair.strip()) and not forum.chair:
            raise InputError("the chair's election ends with the chair's name: give it with "
                             "--chair NAME.")
        if chair and chair.strip():
            forum = forum.model_copy(update={"chair": chair.strip()})
    if source == AGENDA_PENDING and definition.forum.working_groups == "per-opinion":
        groups = tuple(sorted(o.id for o in current.opinions.values() if o.stage is Stage.FINAL))
        forum = forum.model_copy(update={"working_groups": groups})
    if spec.needs_document and not (document and document.strip()):
        raise InputError(f"leaving item {definition.forum.adoption_item} ('"
                         f"{definition.forum.agenda[definition.forum.adoption_item - 1]}') "
                         "records the chair's report: give the chair's report's reference "
                         f"with --document (e.g. --document {definition.forum.name}/CR).")
    staged = current.model_copy(update={"forum": forum})
    stepped = apply(definition, staged, spec.trigger, actor, now, document, reason)
    dest = spec.dest
    forum = forum.model_copy(update={"item": agenda_item(definition, dest)})
    if spec.needs_document and document:
        forum = forum.model_copy(update={"report": document.strip()})
    after = stepped.after.model_copy(update={"forum": forum})
    record = Record(now, member.id, "forum", spec.trigger, source, dest, reason,
                    {"forum": forum.model_dump(mode="json"), "label": spec.label})
    records = list(stepped.records)
    at = next((i + 1 for i, r in enumerate(records) if r.trigger == spec.trigger), len(records))
    records.insert(at, record)
    return tick.then(Decision(current, after, tuple(records), stepped.effects))


def _at_forum(definition: ProcessDefinition, instance: Instance, opinion: Opinion) -> None:
    """Adopted or not adopted: only at the forum, while its Opinions are considered, and only
    for an Opinion in the final report presented during the preparation."""
    state = instance.regions[MAIN]
    table = table_for(definition)
    names = table.states[MAIN]
    if names.index(state) < names.index("forum"):
        milestones = by_key(effective_milestones(definition, instance))
        raise forum_not_open(definition, instance, milestones, zone(definition.timezone),
                             f"an Opinion's outcome is recorded at the forum, which has not "
                             f"opened (the process is at '{table.labels[state]}')",
                             "record outcomes", "before the forum, only 'withdrawn' (or "
                             "'opinions move').")
    position = agenda_item(definition, instance.regions[AGENDA])
    first, last = definition.forum.opinions_item, definition.forum.adoption_item
    if not first <= position <= last:
        rule = RuleId.AGENDA
        items = definition.forum.agenda
        raise _no(definition, rule, f"outcomes are recorded during agenda items {first} "
                  f"('{items[first - 1]}') to {last} ('{items[last - 1]}'); the forum is at "
                  f"'{table.labels[instance.regions[AGENDA]]}'.",
                  "'prepflow forum next' to the item first." if position < first else
                  "nothing: the forum's Opinions were decided.")
    if opinion.presented_after_final:
        _not_before_forum(definition, opinion)
    if opinion.stage is not Stage.FINAL:
        rule = RuleId.OPINION_STAGE
        raise _no(definition, rule, f"Opinion '{opinion.id}' is {opinion.label}, not in the final "
                  f"report, so it is not before the forum.",
                  "'withdrawn'.")


def _not_before_forum(definition: ProcessDefinition, opinion: Opinion) -> None:
    rule = RuleId.NEW_OPINION
    raise _no(definition, rule,
              f"Opinion '{opinion.id}' was first presented after the final report "
              f"was posted; the forum considers no draft Opinion not presented during the "
              "preparatory period.", "'withdrawn'.")


def _no(definition: ProcessDefinition, rule: RuleId, message: str, allowed: str,
        **fields: Any) -> Refused:  # noqa: ANN401
    """A refusal by ``rule``, citing its source as the process's definition gives it."""
    return Refused(rule, message, allowed, citation=definition.citation(rule), **fields)


def _check_theme(definition: ProcessDefinition, opinion_id: str, theme: str | None) -> None:
    ids = [t.id for t in definition.themes]
    listed = "; ".join(f"{t.id} ({t.name})" for t in definition.themes)
    if not ids:
        if theme is not None:
            raise InputError(f"Opinion '{opinion_id}': {definition.id} defines no themes, so "
                             "leave out --theme.")
        return
    if theme not in ids:
        said = f"theme '{theme}' is not one of" if theme else "give --theme, one of"
        raise InputError(f"Opinion '{opinion_id}': {said} {definition.id}'s themes: {listed}.")


def _opinion(instance: Instance, opinion_id: str) -> Opinion:
    found = instance.opinions.get(opinion_id)
    if found is None:
        known = ", ".join(sorted(instance.opinions)) or "none yet"
        raise InputError(f"no Opinion '{opinion_id}' in {instance.process_id}; Opinions: "
                         f"{known}.")
    return found


def _stage(text: str, what: str, offered: tuple[Stage, ...], more: str = "") -> Stage:
    """The stage named; an unknown one lists only the stages this command takes."""
    try:
        return Stage(text.strip().lower())
    except ValueError:
        raise InputError(f"{what} '{text}': use one of {_listed(offered)}{more}.") from None


def _listed(stages: tuple[Stage, ...]) -> str:
    return " | ".join(s.value for s in stages)


def _one_stage_on(definition: ProcessDefinition, instance: Instance, opinion: Opinion,
                  target: Stage) -> None:
    """Annex 2's rhythm: one stage forward at a time beside the drafts, and into the final
    report only once every draft is posted (the final report in preparation or posted)."""
    rule = RuleId.OPINION_STAGE
    at = PREPARATION.index(opinion.stage)
    following = PREPARATION[at + 1] if at + 1 < len(PREPARATION) else None
    withdraw = (f"'prepflow opinions outcome {instance.process_id} {opinion.id} withdrawn' "
                "at any time before an outcome")
    if following is None:
        raise _no(definition, rule, f"Opinion '{opinion.id}' is already {opinion.label}; it "
                  "goes before the forum as it is.", f"its outcome at the forum, or {withdraw}.")
    if target is not following:
        raise _no(definition, rule, f"Opinion '{opinion.id}' is {opinion.label}; its stages move "
                  f"forward one at a time ({' → '.join(s.value for s in PREPARATION)}), so it "
                  f"cannot become '{target.value}' now.",
                  f"'{following.value}' ({LABELS[following]}), or {withdraw}.")
    if target is Stage.FINAL and opinion.presented_after_final:
        _not_before_forum(definition, opinion)
    final = definition.cycles[-1]
    here = where(definition, instance)
    if target is Stage.FINAL and here.cycle != final.id and final_posted(
            definition, instance) is None:
        planned = by_key(effective_milestones(definition, instance))[f"{final.id}.posting"]
        state = table_for(definition).labels[instance.regions[MAIN]]
        raise _no(definition, rule, f"Opinion '{opinion.id}' goes into the final report only "
                  "once every draft has been posted and the final report is in preparation; "
                  f"the process is at '{state}'.",
                  f"it stays {opinion.label} until then (the {final.name} is to be posted "
                  f"{planned.span_text()}), or {withdraw}.",
                  dates=(planned.start.first_day(),) if planned.start else ())


def _record(instance: Instance, opinion: Opinion, action: str, actor: str, now: datetime,
            reason: str | None) -> Decision:
    """The new instance and its audit record, carrying the whole Opinion (to rebuild it)."""
    after = instance.model_copy(update={"opinions": {**instance.opinions, opinion.id: opinion}})
    state = instance.regions[MAIN]
    inputs: dict[str, object] = {"action": action, "opinion": opinion.model_dump(mode="json")}
    if opinion.stage in (Stage.ADOPTED, Stage.NOT_ADOPTED):
        inputs["non_binding"] = instance.forum.non_binding  # an opinion, not a regulation
    record = Record(now, actor, "opinion", f"opinion {action}", state, state, reason, inputs)
    return Decision(instance, after, (record,))


def _now(now: datetime) -> datetime:
    try:
        return require_aware(now)
    except ValueError as exc:
        raise InputError(f"time: {exc}") from None
