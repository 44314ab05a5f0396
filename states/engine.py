"""Decisions: given a definition, an instance and ``now``, what happens — never how.

Each function returns a ``Decision`` (the new instance, audit records, effects) or raises
``Refused`` (a rule said no: exit 1) or ``InputError`` (bad input: exit 2). The shell records
the decision atomically and performs the effects; nothing here touches a clock or a database.
"""

from __future__ import annotations

from collections import OrderedDict
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from states.dates import (
    PlanDate,
    describe,
    end_instant,
    local_day,
    require_aware,
    start_instant,
    zone,
)
from states.decision import SYSTEM as SYSTEM  # re-exported: callers import them from here
from states.decision import Decision as Decision
from states.decision import Effect as Effect
from states.decision import Record as Record
from states.definition import Member, ProcessDefinition
from states.errors import InputError, Refused, RuleId
from states.guards import GUARDS, Context, condition
from states.instance import Amendment, Happening, Instance, Override
from states.machine import MAIN, Due, Engine, Mode, Spec, build_engine
from states.notices import AUDIENCE, notices, with_message
from states.plan import Kind, Span, by_key, milestone_keys
from states.queries import due_transitions
from states.roles import Role, granted
from states.rules import RuleResult, Status, check, effective_milestones, newly_broken

_ENGINES: OrderedDict[int, tuple[ProcessDefinition, Engine]] = OrderedDict()


def engine_for(definition: ProcessDefinition) -> Engine:
    """The shared machines for a definition, built once (not per tick, not per instance)."""
    hit = _ENGINES.get(id(definition))
    if hit is not None and hit[0] is definition:
        return hit[1]
    engine = build_engine(definition, condition)
    _ENGINES[id(definition)] = (definition, engine)
    while len(_ENGINES) > 64:
        _ENGINES.popitem(last=False)
    return engine


def start(definition: ProcessDefinition, now: datetime,
          process_id: str | None = None) -> Decision:
    """A new instance at the initial states, with its 'init' audit record.

    The process id defaults to the definition's id; rehearsals and benchmarks run many
    processes from one definition under other ids.
    """
    now = _now(now)
    table = engine_for(definition).table
    instance = Instance(process_id=process_id or definition.id, regions=dict(table.initial))
    record = Record(now, SYSTEM, "init", None, None, table.initial["main"],
                    f"process created from definition '{definition.name}'",
                    {"definition": definition.fingerprint()})
    return Decision(instance, instance, (record,))


def actor_of(definition: ProcessDefinition, actor: str) -> Member:
    """The secretariat member acting, named by id; anyone else is refused (and audited)."""
    member = definition.member(actor)
    if member is None:
        typed = actor.strip().casefold()
        named = next((m for m in definition.secretariat
                      if typed in (m.name.casefold(), m.email.casefold())), None)
        listed = ", ".join(f"{m.id} ({m.name})" for m in definition.secretariat)
        hint = (f"use the member id '{named.id}' (a name or address is not an identity)"
                if named else f"act as one of its members, by id: {listed}")
        raise Refused(RuleId.MEMBER, f"'{actor}' is not a secretariat member id of "
                      f"{definition.id}, so may not act on it.", f"{hint}.")
    return member


def authorize(definition: ProcessDefinition, actor: str, needs: tuple[Role, ...]) -> Member:
    """The member acting, when they hold every role ``needs`` (roles.needed); else Refused
    naming the role and who holds it (issue 10)."""
    member = actor_of(definition, actor)
    for role in needs:
        if role not in granted(member.roles):
            holders = [m.id for m in definition.secretariat if role in granted(m.roles)]
            allowed = (f"ask a member who holds it: {', '.join(holders)}" if holders else
                       "no member holds it; list it under the member's roles: in the "
                       "definition and move the process to it with 'prepflow revise'")
            raise Refused(RuleId.ROLE, f"'{member.id}' does not hold the '{role}' role this "
                          f"act needs on {definition.id}.", f"{allowed}.")
    return member


def apply(
    definition: ProcessDefinition, instance: Instance, trigger: str, actor: str,
    now: datetime, document: str | None = None, reason: str | None = None,
    override: bool = False,
) -> Decision:
    """A secretariat member fires a manual trigger; what is due at ``now`` happens first
    and due automatic consequences follow."""
    now = _now(now)
    member = actor_of(definition, actor)
    engine = engine_for(definition)
    # Habit 3: a tick that has not run yet must not turn a timely posting into an 'order'
    # refusal (the previous meeting ended, but no 'advance' recorded it): catch up first.
    caught_up = advance(definition, instance, now)
    instance = caught_up.after
    spec = _manual_spec(definition, engine, instance, trigger)
    if override and not (reason and reason.strip()):
        raise InputError("--override needs a --reason saying why the rule is set aside.")
    if spec.needs_document and not (document and document.strip()):
        raise InputError(
            f"'{trigger}' posts a document: give its reference with --document "
            "(e.g. --document WTPF-26/2)."
        )
    ctx = _context(definition, instance, spec, now, override)
    refusals = [r for g in spec.guards if (r := GUARDS[g](ctx)) is not None]
    blocking = [r for r in refusals if not (r.overridable and override)]
    if blocking:
        raise blocking[0]
    overrides = tuple(
        Override(rule=r.rule, what=trigger, message=r.message, at=now, by=member.id,
                 reason=reason or "")
        for r in refusals
    )
    decision = _step(definition, engine, instance, spec, ctx, member.id, now, None,
                     document.strip() if document else None, reason, overrides)
    return caught_up.then(decision).then(advance(definition, decision.after, now))


def refusal_record(
    definition: ProcessDefinition, instance: Instance, action: str, actor: str,
    now: datetime, refused: Refused, inputs: dict[str, Any],
) -> Record:
    """The audit record of a refusal: the store's state stays as it was."""
    member = definition.member(actor)
    state = instance.regions.get("main")
    return Record(_now(now), member.id if member else actor, "refusal", action, state, state,
                  str(refused), {**inputs, "rule": refused.rule})


def advance(definition: ProcessDefinition, instance: Instance, now: datetime) -> Decision:
    """Apply every automatic transition due at ``now``, earliest first; idempotent.

    Called late it catches up in order; called twice the second call finds nothing due.
    """
    now = _now(now)
    engine = engine_for(definition)
    decision = Decision(instance, instance)
    while True:
        current = decision.after
        milestones = by_key(effective_milestones(definition, current))
        # The same query the rehearsal steps by: what advance applies is what it expects.
        ready = [t for t in due_transitions(definition, current, now, milestones)
                 if t.at <= now and not any(GUARDS[g](t.context) is not None
                                            for g in t.spec.guards)]
        if not ready:
            return decision.then(notices(definition, current, engine.table, milestones, now))
        best = min(ready, key=lambda t: t.at)  # earliest first; ties keep table order
        decision = decision.then(_step(definition, engine, current, best.spec, best.context,
                                       SYSTEM, now, best.at, None, None, ()))


def amend(
    definition: ProcessDefinition, instance: Instance, key: str, value: str | Span,
    actor: str, reason: str, now: datetime, override: bool = False,
) -> Decision:
    """Change a milestone's date; every rule is re-checked and a newly broken one refuses."""
    now = _now(now)
    member = actor_of(definition, actor)
    if not reason.strip():
        raise InputError("an amendment needs a --reason, recorded in the audit log.")
    keys = milestone_keys(definition)
    if key not in keys:
        raise InputError(f"'{key}' is not a milestone of {definition.id}. "
                         f"Milestones: {', '.join(keys)}.")
    try:
        span = value if isinstance(value, Span) else Span.parse(value)
        tz = zone(definition.timezone)
        span.start.check_local_time(tz)
        if span.end:
            span.end.check_local_time(tz)
    except ValueError as exc:
        raise InputError(f"new date for {key}: {exc}. Write 2025-02-10, 2025-02, or "
                         "2025-02-10..2025-02-12 for a meeting of several days.") from None
    before_items = effective_milestones(definition, instance)
    item = by_key(before_items)[key]
    _not_past(definition, instance, item.key, item.kind, item.start, span, tz)
    after_items = effective_milestones(definition, instance, {key: span})
    broken = newly_broken(check(definition, before_items), check(definition, after_items))
    past = _into_past(item.kind, item.label, span, tz, now)
    if past is not None:
        broken = [past, *broken]
    if broken and not override:
        first = broken[0]
        raise Refused(first.rule, f"moving '{item.label}' to {_span_text(span)} breaks a rule: "
                      f"{first.message}",
                      "choose another date, or --override with a --reason.", overridable=True,
                      dates=(span.start.first_day(), (span.end or span.start).last_day()),
                      citation=definition.citation(first.rule))
    if override and not broken:
        override = False
    amendment = Amendment(start=span.start, end=span.end, at=now, by=member.id, reason=reason)
    overrides = tuple(Override(rule=r.rule, what=f"amend {key}", message=r.message, at=now,
                               by=member.id, reason=reason) for r in broken)
    after = instance.model_copy(update={
        "amendments": {**instance.amendments, key: amendment},
        "history": {**instance.history, key: (*instance.history.get(key, ()), amendment)},
        "overrides": instance.overrides + overrides,
    })
    inputs = {"milestone": key, "from": item.span_text(), "to": _span_text(span),
              "amendment": amendment.model_dump(mode="json")}  # rebuilt by states.replay
    records = [Record(now, member.id, "amendment", None, None, None, reason, inputs)]
    records += [Record(now, member.id, "override", None, None, None, reason,
                       {"rule": o.rule, "what": o.what, "message": o.message}) for o in overrides]
    decision = Decision(instance, after, tuple(records))
    table = engine_for(definition).table
    return decision.then(notices(definition, after, table,
                                 by_key(effective_milestones(definition, after)), now))


def _not_past(definition: ProcessDefinition, instance: Instance, key: str, kind: Kind,
              current: PlanDate | None, span: Span, tz: ZoneInfo) -> None:
    """What has happened stays as it happened: the record is not rewritten by amend."""
    table = engine_for(definition).table
    # Every region counts (a closed public consultation is history too); opening a
    # consultation is keyed to the posting milestone, which its own posting already covers.
    done = [s for s in table.specs if s.milestone == key and s.trigger in instance.happened
            and s.due is not Due.POSTED]
    if not done:
        return
    if kind is Kind.MEETING and len(done) == 1 and span.start == current:
        return  # a meeting under way may still have its end moved
    happening = instance.happened[done[-1].trigger]
    raise Refused(RuleId.HISTORY, f"'{key}' already happened ({done[-1].label}, "
                  f"{describe(happening.at, tz)}); the record cannot be changed.",
                  "amend only milestones still ahead.",
                  dates=(local_day(happening.at, tz),),
                  citation=definition.citation(RuleId.HISTORY))


def _into_past(kind: Kind, label: str, span: Span, tz: ZoneInfo,
               now: datetime) -> RuleResult | None:
    """A deadline or meeting moved to a moment already past would fire at the next tick."""
    if kind not in (Kind.COMMENTS, Kind.CONSULTATION, Kind.MEETING, Kind.FORUM) \
            or not span.start.exact:
        return None
    last = span.end or span.start
    if kind in (Kind.COMMENTS, Kind.CONSULTATION):
        when = end_instant(span.start, tz)
    elif kind is Kind.MEETING:  # a meeting in session may still have its end moved
        if not last.exact:
            return None
        when = end_instant(last, tz)
    else:
        when = start_instant(span.start, tz)
    if when > now:
        return None
    return RuleResult(RuleId.PAST, label, f"no {label.lower()} in the past", Status.FAIL,
                      f"{_span_text(span)} is already past ({describe(when, tz)} ≤ now "
                      f"{describe(now, tz)}): '{label}' would happen at the next tick.")


def _span_text(span: Span) -> str:
    return span.start.human() + (f" – {span.end.human()}" if span.end else "")


def _manual_spec(definition: ProcessDefinition, engine: Engine, instance: Instance,
                 trigger: str) -> Spec:
    """The manual trigger asked for, or a clear reason it cannot be fired now."""
    table = engine.table
    spec = table.by_trigger.get(trigger)
    manual_now = tuple(s.trigger for r, st in instance.regions.items()
                       for s in table.outgoing(r, st) if s.mode is Mode.MANUAL
                       and s.while_main in (None, instance.regions.get(MAIN)))
    allowed = ", ".join(manual_now) or "none (only automatic steps are ahead)"
    if spec is None:
        every = ", ".join(s.trigger for s in table.specs if s.mode is Mode.MANUAL)
        raise InputError(f"'{trigger}' is not a trigger of {definition.id}. Manual triggers: "
                         f"{every}. Allowed now: {allowed}.")
    if spec.mode is Mode.AUTOMATIC:
        raise InputError(f"'{trigger}' ({spec.label}) is automatic: 'prepflow advance' applies it "
                         f"when it falls due. To change when, use 'prepflow amend'. "
                         f"Manual triggers allowed now: {allowed}.")
    if trigger in instance.happened:
        done = instance.happened[trigger]
        tz = zone(definition.timezone)
        raise Refused(RuleId.ONCE, f"'{spec.label}' already happened at "
                      f"{describe(done.at, tz)} by {done.by} (document {done.document}); nothing "
                      f"fires twice.", f"manual triggers allowed now: {allowed}.",
                      dates=(local_day(done.at, tz),), allowed_triggers=manual_now,
                      citation=definition.citation(RuleId.ONCE))
    if instance.regions[spec.region] != spec.source:
        here = table.labels[instance.regions[spec.region]]
        why = ("A cycle is posted only once the previous cycle's expert meetings are done."
               if spec.region == MAIN else "Its steps are taken in order.")
        raise Refused(RuleId.ORDER, f"'{spec.label}' cannot happen yet: the process is at "
                      f"'{here}'. {why}", f"manual triggers allowed now: {allowed}.",
                      allowed_triggers=manual_now, citation=definition.citation(RuleId.ORDER))
    return spec


def _context(definition: ProcessDefinition, instance: Instance, spec: Spec, now: datetime,
             override: bool) -> Context:
    milestones = by_key(effective_milestones(definition, instance))
    return Context(definition, instance, spec, milestones, zone(definition.timezone), now,
                   override)


def _step(definition: ProcessDefinition, engine: Engine, instance: Instance, spec: Spec,
          ctx: Context, actor: str, now: datetime, due: datetime | None, document: str | None,
          reason: str | None, overrides: tuple[Override, ...]) -> Decision:
    source = instance.regions[spec.region]
    dest = engine.fire(spec.trigger, source, ctx=ctx)
    happening = Happening(trigger=spec.trigger, at=now, due=due, by=actor, document=document)
    after = instance.model_copy(update={
        "regions": {**instance.regions, spec.region: dest},
        "happened": {**instance.happened, spec.trigger: happening},
        "overrides": instance.overrides + overrides,
    })
    inputs: dict[str, Any] = {"region": spec.region, "label": spec.label}
    if due is not None:
        inputs["due"] = due.isoformat()
    if document:
        inputs["document"] = document
    records = [Record(now, actor, "transition", spec.trigger, source, dest, reason, inputs)]
    records += [Record(now, actor, "override", spec.trigger, source, dest, o.reason,
                       {"rule": o.rule, "message": o.message}) for o in overrides]
    effect = Effect("notify", spec.event, f"{instance.process_id}:{spec.trigger}",
                    instance.process_id, spec.cycle, spec.trigger, now,
                    _message_data(definition, ctx, spec, document))
    return Decision(instance, after, tuple(records), (with_message(definition, effect),))


def _message_data(definition: ProcessDefinition, ctx: Context, spec: Spec,
                  document: str | None) -> dict[str, Any]:
    """What a message about this transition needs to say (the templates' context)."""
    data: dict[str, Any] = {"audience": AUDIENCE.get(spec.event, "none"), "label": spec.label,
                            "document": document}
    if spec.cycle:
        cycle = definition.cycle(spec.cycle)
        data["cycle_name"] = cycle.name
        posted = ctx.instance.happened.get(f"post_{cycle.id}")
        if document is None and posted is not None:
            data["document"] = posted.document  # e.g. the consultation is on this document
        for name, key in (("deadline", "comments"), ("consultation_deadline", "consultation")):
            item = ctx.milestones.get(f"{cycle.id}.{key}")
            if item is not None and item.start is not None and item.start.exact:
                data[name] = end_instant(item.start, ctx.tz).isoformat()
                data[f"{name}_day"] = item.start.first_day().isoformat()
    forum = ctx.milestones["forum"].start
    if spec.event == "final_posted":
        data["forum"] = definition.forum.name
        data["opens_day"] = forum.first_day().isoformat() if forum and forum.exact else None
    return data


def _now(now: datetime) -> datetime:
    try:
        return require_aware(now)
    except ValueError as exc:
        raise InputError(f"time: {exc}") from None
