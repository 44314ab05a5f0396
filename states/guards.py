"""Guards: named checks on a transition, each returning a refusal that explains itself.

The table names guards; this registry resolves the names. The same functions serve twice:
the engine evaluates them first to produce refusal messages and overrides, and the
``transitions`` machine re-checks them as conditions so no path can skip them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol
from zoneinfo import ZoneInfo

from states.dates import (
    days,
    describe,
    end_instant,
    human_day,
    local_day,
    start_instant,
    zone_city,
)
from states.definition import ProcessDefinition
from states.errors import Refused, RuleId
from states.forum import OUTCOMES, Stage
from states.instance import Instance
from states.machine import AGENDA, AGENDA_DONE, MAIN, Due, Spec, table_for
from states.plan import Milestone


@dataclass(frozen=True)
class Context:
    """Everything a guard may look at: no clock, ``now`` comes in."""

    definition: ProcessDefinition
    instance: Instance
    spec: Spec
    milestones: dict[str, Milestone]
    tz: ZoneInfo
    now: datetime
    override: bool = False


Guard = Callable[[Context], Refused | None]


def _cite(ctx: Context, rule: RuleId) -> str:
    """The rule's source as the process's own definition cites it."""
    return ctx.definition.citation(rule)



def due_at(ctx: Context) -> datetime | None:
    """When an automatic transition falls due; None while its date is unknown or unfixed."""
    spec = ctx.spec
    if spec.due is Due.POSTED:
        posted = ctx.instance.posted_at(spec.cycle) if spec.cycle else None
        # A consultation opens at its draft's posting, but not before the one before it has
        # closed (one at a time): a draft posted early is opened for comment when that happens.
        entered = _entered(ctx)
        return max(posted, entered) if posted is not None and entered is not None else posted
    item = ctx.milestones.get(spec.milestone or "")
    if item is None:
        return None
    value = item.start if spec.due is Due.START else item.last
    if value is None or not value.exact:
        return None
    return start_instant(value, ctx.tz) if spec.due is Due.START else end_instant(value, ctx.tz)


def _entered(ctx: Context) -> datetime | None:
    """When the spec's region reached its current state: the due instant (else the time) of
    the transition that led there; None at the region's initial state."""
    spec = ctx.spec
    for other in table_for(ctx.definition).specs:
        if other.region == spec.region and other.dest == spec.source:
            happening = ctx.instance.happened.get(other.trigger)
            if happening is not None:
                return happening.due or happening.at
    return None


def date_fixed(ctx: Context) -> Refused | None:
    """A milestone known only to the month, or not at all, cannot fire automatically."""
    item = ctx.milestones[ctx.spec.milestone or ""]
    value = item.start if ctx.spec.due is Due.START else item.last
    if value is not None and value.exact:
        return None
    known = f"known only to the month ({value.human()})" if value else "not set"
    return Refused(
        RuleId.DATE_FIXED,
        f"the date of '{item.label}' is {known}, so it cannot happen automatically.",
        f"fix the date with 'prepflow amend {ctx.instance.process_id} {item.key} YYYY-MM-DD'.",
        dates=(value.first_day(),) if value else (),
        citation=_cite(ctx, RuleId.DATE_FIXED),
    )


def due(ctx: Context) -> Refused | None:
    """Nothing time-driven happens early: e.g. a comment window cannot close before its deadline."""
    when = due_at(ctx)
    if when is not None and ctx.now >= when:
        return None
    if when is None:
        return Refused(RuleId.DUE, f"'{ctx.spec.label}' has no date yet.", "wait for its date.",
                       citation=_cite(ctx, RuleId.DUE))
    return Refused(
        RuleId.DUE,
        f"'{ctx.spec.label}' is due at {describe(when, ctx.tz)}; it is now "
        f"{describe(ctx.now, ctx.tz)}.",
        "wait until then; 'prepflow advance' applies it automatically.",
        dates=(local_day(when, ctx.tz), local_day(ctx.now, ctx.tz)),
        allowed_date=local_day(when, ctx.tz), citation=_cite(ctx, RuleId.DUE),
    )


def posted(ctx: Context) -> Refused | None:
    """A public consultation opens only once its draft is online."""
    if ctx.spec.cycle and ctx.instance.posted_at(ctx.spec.cycle) is not None:
        return None
    return Refused(RuleId.POSTED, f"'{ctx.spec.label}' waits for the draft to be posted.", "",
                   citation=_cite(ctx, RuleId.POSTED))


def window_ahead(ctx: Context) -> Refused | None:
    """A draft posted after its comment deadline would close at once: amend the deadline first."""
    item = ctx.milestones.get(f"{ctx.spec.cycle}.comments")
    if item is None or item.start is None or not item.start.exact:
        return None
    closes = end_instant(item.start, ctx.tz)
    if ctx.now < closes:
        return None
    return Refused(
        RuleId.COMMENT_WINDOW,
        f"the comment deadline for this draft ({item.start.human()}) has already passed "
        f"(now {describe(ctx.now, ctx.tz)}), so its comment window would close at once.",
        f"first set a new deadline with 'prepflow amend {ctx.instance.process_id} {item.key} "
        "YYYY-MM-DD --reason ...', then post.",
        dates=(item.start.first_day(), local_day(ctx.now, ctx.tz)),
        citation=_cite(ctx, RuleId.COMMENT_WINDOW),
    )


def six_weeks(ctx: Context) -> Refused | None:
    """The final report is circulated ≥ ``final_min_lead_days`` before the opening (WTPF-26:
    six weeks, Council Decision 641, decides 6 d; the citation comes from the definition)."""
    need = ctx.definition.rules.final_min_lead_days
    today = local_day(ctx.now, ctx.tz)
    forum = ctx.milestones["forum"].start
    if forum is None:
        return Refused(
            RuleId.SIX_WEEKS,
            f"the forum's opening date is not set, so the six-week rule cannot be checked "
            f"for posting the final report today ({human_day(today)}).",
            f"set the forum date first ('prepflow amend {ctx.instance.process_id} forum "
            "YYYY-MM-DD'), or post with --override and a --reason (recorded and shown in status).",
            overridable=True, dates=(today,), citation=_cite(ctx, RuleId.SIX_WEEKS),
        )
    opening = forum.first_day()
    lead = (opening - today).days
    if lead >= need:
        return None
    latest = opening - timedelta(days=need)
    return Refused(
        RuleId.SIX_WEEKS,
        f"posting the final report today ({human_day(today)}) puts it {days(lead)} before the "
        f"forum opens ({forum.human()}); the rule requires {days(need)}: "
        f"{days(need - lead)} short. "
        f"The latest allowed posting date was {human_day(latest)}.",
        f"move the forum to {human_day(today + timedelta(days=need))} or later with "
        f"'prepflow amend {ctx.instance.process_id} forum YYYY-MM-DD', or --override with a "
        "--reason.",
        overridable=True, dates=(today, opening, latest),
        allowed_date=today + timedelta(days=need), citation=_cite(ctx, RuleId.SIX_WEEKS),
    )


def forum_in_session(ctx: Context) -> Refused | None:
    """The forum's agenda is taken only while the forum is in session."""
    if ctx.instance.regions.get(MAIN) == "forum":
        return None
    here = table_for(ctx.definition).labels.get(ctx.instance.regions.get(MAIN, ""), "")
    return forum_not_open(ctx.definition, ctx.instance, ctx.milestones, ctx.tz,
                          f"'{ctx.spec.label}' happens at the forum, which is not in session "
                          f"(the process is at '{here}')", "take its agenda",
                          "'prepflow advance' opens the forum on its date.")


def forum_not_open(definition: ProcessDefinition, instance: Instance,
                   milestones: dict[str, Milestone], tz: ZoneInfo, message: str, then: str,
                   allowed: str) -> Refused:
    """The forum-not-open refusal, naming the forum's effective opening day (what ``then``
    is allowed from), or saying it is not set (or only to the month) and how to set it."""
    rule = RuleId.OUTCOME_BEFORE_FORUM
    cite = definition.citation(rule)
    opening = milestones["forum"].start
    amend = f"'prepflow amend {instance.process_id} forum YYYY-MM-DD --reason ...'"
    if opening is None:
        return Refused(rule, f"{message}; the forum's date is not set yet, so it has no "
                       f"opening day to {then} from.", f"set it with {amend}; {allowed}",
                       citation=cite)
    first = opening.first_day()
    if not opening.exact:
        return Refused(rule, f"{message}; the forum opens in {opening.human()}, its day not "
                       f"fixed yet; {then} from its opening.",
                       f"fix its day with {amend}; {allowed}", dates=(first,), citation=cite)
    return Refused(rule, f"{message}; the forum opens on {opening.human()} "
                   f"({zone_city(tz)} time); {then} from then.", allowed, dates=(first,),
                   allowed_date=first, citation=cite)


def chair_elected(ctx: Context) -> Refused | None:
    """The chair's election is over only once the chair is named."""
    if ctx.instance.forum.chair:
        return None
    return Refused(RuleId.AGENDA, "the chair's election is recorded with the chair's name.",
                   f"'prepflow forum next {ctx.instance.process_id} --chair NAME --by NAME'.",
                   citation=_cite(ctx, RuleId.AGENDA))


def outcomes_recorded(ctx: Context) -> Refused | None:
    """The adoption of the chair's report and Opinions closes every Opinion before the forum."""
    pending = sorted(o.id for o in ctx.instance.opinions.values() if o.stage is Stage.FINAL)
    if not pending:
        return None
    return Refused(RuleId.AGENDA, f"the adoption item ends with every Opinion's outcome "
                   f"recorded; still without one: {', '.join(pending)}.",
                   f"'prepflow opinions outcome {ctx.instance.process_id} ID "
                   f"{'|'.join(o.value for o in OUTCOMES)} --by NAME' for each.",
                   citation=_cite(ctx, RuleId.AGENDA))


def agenda_done(ctx: Context) -> Refused | None:
    """The process closes only once the forum's agenda is completed."""
    if ctx.instance.regions.get(AGENDA) == AGENDA_DONE:
        return None
    return Refused(RuleId.AGENDA, f"'{ctx.spec.label}' waits for the forum's agenda to be "
                   "completed.", f"'prepflow forum next {ctx.instance.process_id} --by NAME' "
                   "to the end of the agenda.", citation=_cite(ctx, RuleId.AGENDA))


GUARDS: dict[str, Guard] = {
    "date_fixed": date_fixed,
    "due": due,
    "posted": posted,
    "window_ahead": window_ahead,
    "six_weeks": six_weeks,
    "forum_in_session": forum_in_session,
    "chair_elected": chair_elected,
    "outcomes_recorded": outcomes_recorded,
    "agenda_done": agenda_done,
}


class _Event(Protocol):
    """What ``transitions`` hands a condition (``send_event=True``): the trigger's kwargs."""

    kwargs: dict[str, object]


def condition(name: str) -> Callable[[_Event], bool]:
    """The guard as a ``transitions`` condition: passes when clear, or overridden if allowed."""
    guard = GUARDS[name]

    def check(event: _Event) -> bool:
        ctx = event.kwargs["ctx"]
        if not isinstance(ctx, Context):
            raise TypeError(f"a transition needs ctx=Context(...), got {type(ctx).__name__}")
        refusal = guard(ctx)
        return refusal is None or (refusal.overridable and ctx.override)

    check.__name__ = name
    return check
