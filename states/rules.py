"""The rules a plan must keep, checked over the effective timeline with their slack.

Used three ways: ``prepflow check`` (what-if, no state touched), re-checking every rule when
a milestone or the forum date is amended, and status warnings (a rule at risk).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum

from states.dates import PlanDate, days, human_day, local_day, zone
from states.definition import ProcessDefinition
from states.errors import RuleId
from states.instance import Instance
from states.plan import Kind, Milestone, Span, by_key, plan_milestones

SIX_WEEKS = RuleId.SIX_WEEKS
SEQUENCE = RuleId.SEQUENCE
NOMINATIONS = RuleId.NOMINATIONS


class Status(StrEnum):
    """PASS holds; FAIL breaks; UNKNOWN cannot be decided yet (a date unset or only a month)."""

    PASS = "pass"
    FAIL = "fail"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class RuleResult:
    """One rule applied to one pair of milestones."""

    rule: RuleId
    subject: str
    title: str
    status: Status
    message: str
    slack_days: int | None = None


#: The last few plans of (definition, instance) pairs, by identity. Both are frozen, and one
#: decision asks for the same instance's plan several times (catch-up, guards, notices): a
#: manual transition computed it three times, about a sixth of the core's time.
_RECENT: dict[tuple[int, int], tuple[ProcessDefinition, Instance, tuple[Milestone, ...]]] = {}


def effective_milestones(
    definition: ProcessDefinition, instance: Instance | None = None,
    extra: dict[str, Span] | None = None,
) -> list[Milestone]:
    """The plan as it stands: definition, amendments, what-if changes, actual postings."""
    if instance is None or extra:
        return _effective(definition, instance, extra)
    key = (id(definition), id(instance))
    hit = _RECENT.get(key)
    if hit is None or hit[0] is not definition or hit[1] is not instance:
        if len(_RECENT) >= 8:
            _RECENT.clear()
        hit = (definition, instance, tuple(_effective(definition, instance, None)))
        _RECENT[key] = hit
    return list(hit[2])


def _effective(
    definition: ProcessDefinition, instance: Instance | None, extra: dict[str, Span] | None,
) -> list[Milestone]:
    spans = dict(instance.spans()) if instance else {}
    spans.update(extra or {})
    items = plan_milestones(definition, spans)
    if instance is None:
        return items
    tz = zone(definition.timezone)
    result = []
    for item in items:
        if item.kind is Kind.POSTING and item.cycle is not None:
            posted = instance.posted_at(item.cycle)
            if posted is not None:
                day = local_day(posted, tz)
                item = Milestone(item.key, item.label, item.kind, item.cycle,
                                 PlanDate(day.year, day.month, day.day), amended=True)
        result.append(item)
    return result


def check(definition: ProcessDefinition, milestones: list[Milestone],
          process_id: str | None = None) -> list[RuleResult]:
    """Every rule over the given timeline, in plan order; fixes name ``process_id`` (default:
    the definition's id, as for a plan checked before any process exists)."""
    index = by_key(milestones)
    results = list(_sequence(definition, index))
    results.append(six_weeks(definition, index, process_id))
    return results


def six_weeks(definition: ProcessDefinition, index: dict[str, Milestone],
              process_id: str | None = None) -> RuleResult:
    """The final report goes out ≥ ``final_min_lead_days`` before the opening (WTPF-26: six
    weeks, Council Decision 641, decides 6 d; the title cites the definition's source)."""
    need = definition.rules.final_min_lead_days
    final = index[f"{definition.cycles[-1].id}.posting"]
    forum = index["forum"]
    subject = f"{final.key} → forum"
    title = (f"Final report at least {days(need)} before the forum "
             f"({definition.citation(SIX_WEEKS)})")
    if forum.start is None or final.start is None:
        return RuleResult(
            SIX_WEEKS, subject, title, Status.UNKNOWN,
            "the forum's opening date is not set, so this cannot be checked; posting the final "
            "report will need --override with a reason. Set the date with "
            f"'prepflow amend {process_id or definition.id} forum YYYY-MM-DD'.",
        )
    worst = (forum.start.first_day() - final.start.last_day()).days
    best = (forum.start.last_day() - final.start.first_day()).days
    latest = forum.start.first_day() - timedelta(days=need)
    final_text, forum_text = final.start.human(), forum.start.human()
    if worst >= need:
        return RuleResult(
            SIX_WEEKS, subject, title, Status.PASS,
            f"final report {final_text} → forum {forum_text}: {days(worst)}, "
            f"{days(worst - need)} of slack",
            worst - need,
        )
    if best >= need:
        return RuleResult(
            SIX_WEEKS, subject, title, Status.UNKNOWN,
            f"final report {final_text} → forum {forum_text}: at risk — between {worst} and "
            f"{days(best)} depending on the exact dates, needs {need}; the final report must go "
            f"out by {human_day(latest)}.",
            worst - need,
        )
    where = (f"{days(worst)} before the forum" if worst >= 0
             else f"{days(-worst)} after the forum opens")
    return RuleResult(
        SIX_WEEKS, subject, title, Status.FAIL,
        f"the final report ({final_text}) is {where} ({forum_text}), "
        f"needs {need}: {days(need - worst)} short. The latest allowed posting date is "
        f"{human_day(latest)}.",
        worst - need,
    )


def _pairs(definition: ProcessDefinition, index: dict[str, Milestone]) -> Iterator[
    tuple[RuleId, Milestone, Milestone, bool]
]:
    """(rule, earlier, later, compare earlier's last day) pairs that must be in order."""
    # Informal sessions are outside the sequence (they gate nothing: see MeetingDef).
    first_meeting = next((m for c in definition.cycles for m in c.meetings if not m.informal),
                         None)
    if "nominations" in index and first_meeting is not None:
        yield NOMINATIONS, index["nominations"], index[first_meeting.id], True
    for number, cycle in enumerate(definition.cycles):
        if cycle.kind == "final":
            break
        posting = index[f"{cycle.id}.posting"]
        previous = posting  # a round without a comment window goes on from its posting
        if cycle.comments:
            previous = index[f"{cycle.id}.comments"]
            yield SEQUENCE, posting, previous, True
        if cycle.public_consultation:
            yield SEQUENCE, posting, index[f"{cycle.id}.consultation"], True
        for meeting in (m for m in cycle.meetings if not m.informal):
            yield SEQUENCE, previous, index[meeting.id], True
            previous = index[meeting.id]
        following = definition.cycles[number + 1]
        yield SEQUENCE, previous, index[f"{following.id}.posting"], True


def _sequence(definition: ProcessDefinition, index: dict[str, Milestone]) -> Iterator[RuleResult]:
    for rule, earlier, later, _ in _pairs(definition, index):
        yield _order(rule, earlier, later)


def _order(rule: RuleId, earlier: Milestone, later: Milestone) -> RuleResult:
    """The later milestone must start on a day after the earlier one's last day."""
    subject = f"{earlier.key} → {later.key}"
    title = (
        "Nominations close before the first expert meeting" if rule == NOMINATIONS
        else f"{earlier.label} before {later.label}"
    )
    first, second = earlier.last, later.start
    if first is None or second is None:
        return RuleResult(rule, subject, title, Status.UNKNOWN, "a date is not set")
    worst = (second.first_day() - first.last_day()).days
    best = (second.last_day() - first.first_day()).days
    text = f"{earlier.label} {earlier.span_text()} → {later.label} {later.span_text()}"
    if worst >= 1:
        return RuleResult(rule, subject, title, Status.PASS,
                          f"{text}: {days(worst)} apart", worst - 1)
    if best >= 1:
        return RuleResult(rule, subject, title, Status.UNKNOWN,
                          f"{text}: may overlap until the exact dates are fixed", worst - 1)
    return RuleResult(rule, subject, title, Status.FAIL,
                      f"{text}: out of order — {later.label} must come at least one day after "
                      f"{earlier.label} ends ({earlier.span_text()})", worst - 1)


def newly_broken(before: list[RuleResult], after: list[RuleResult]) -> list[RuleResult]:
    """Rules a change breaks, or breaks further (less slack than before): these refuse it.

    A rule already broken (say, overridden once) does not license making it worse for free:
    moving the forum even earlier after the final report is out needs its own override.
    """
    earlier = {(r.rule, r.subject): r for r in before}
    worse = []
    for result in after:
        if result.status is not Status.FAIL:
            continue
        prior = earlier.get((result.rule, result.subject))
        if prior is None or prior.status is not Status.FAIL or (
                prior.slack_days is not None and result.slack_days is not None
                and result.slack_days < prior.slack_days):
            worse.append(result)
    return worse
