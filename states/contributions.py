"""The contributions register's decisions: is a contribution on time, late, or refused?

Comments on a draft come from the membership (Member States, Sector Members, Associates,
Academia) while its comment window is open; after the deadline they are still accepted, but
as *late*: flagged, counted apart, never dropped. The public may contribute only while a public
consultation on that draft is open (CL-24/44's open consultations). A draft whose window never
opened takes nothing. When a window closes, its summary is recorded with the transition.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from states.contribution_types import (
    Contribution,
    ContributionDraft,
    ContributionKind,
    SubmitterCategory,
    WindowSummary,
    audit_inputs,
    audit_submitter,
    reference,
    summarize,
)
from states.dates import PlanDate, describe, end_instant, require_aware, zone
from states.decision import SYSTEM, Decision, Record
from states.definition import CycleDef, ProcessDefinition
from states.errors import InputError, Refused, RuleId, first_problems
from states.instance import Instance
from states.machine import table_for
from states.plan import by_key
from states.rules import effective_milestones

__all__ = [
    "Contribution",
    "ContributionDraft",
    "ContributionKind",
    "FieldError",
    "Receipt",
    "SubmitterCategory",
    "WindowSummary",
    "closing_cycles",
    "comment_deadline",
    "receive",
    "receive_many",
    "summarize",
    "with_summaries",
]

#: The audit kinds this register writes (a refusal is the engine's "refusal").
CONTRIBUTION = "contribution"
WINDOW_SUMMARY = "window-summary"


class FieldError(InputError):
    """Bad input in one field of a contribution: the edge names it as its option or column."""

    def __init__(self, field: str, problem: str) -> None:
        self.field = field
        self.problem = problem
        super().__init__(f"{field}: {problem}")


@dataclass(frozen=True)
class Receipt:
    """A contribution accepted (on time or late), the deadline that decided, its audit record."""

    contribution: Contribution
    deadline: datetime
    record: Record

    @property
    def late(self) -> bool:
        """Received after the deadline: accepted, flagged late."""
        return self.contribution.late


def receive(definition: ProcessDefinition, instance: Instance, draft: ContributionDraft,
            now: datetime, *, by: str = SYSTEM,
            register: Sequence[Contribution] = ()) -> Receipt:
    """Decide on one contribution received at ``draft.received_at`` and recorded at ``now``.

    InputError for what cannot be a contribution (an unknown draft, region, a receipt in the
    future); Refused when the draft's window never opened, or public input comes while no
    public consultation on that draft is open. Lateness and the consultation's close are
    decided on the received time against the effective deadlines (end of the named day in the
    process's zone), not on the region's state: a paper received in time but entered after the
    tick closed the window is on time. ``register``: the contributions already recorded (read
    in the write's transaction); one with the same document reference is bad input.
    """
    now = require_aware(now)
    cycle = _cycle(definition, draft)
    _check(definition, instance, draft, now)
    tz = zone(definition.timezone)
    _unique(draft, register, tz)
    cite = definition.citation(RuleId.CONTRIBUTION)
    received = draft.received_at
    posted = instance.posted_at(cycle.id)
    if posted is None:
        raise Refused(
            RuleId.CONTRIBUTION,
            f"the {cycle.name} ({cycle.id}) has not been posted, so its comment window never "
            f"opened (posting planned {cycle.posting.human()}); nothing was recorded.",
            f"contributions on a draft already posted: {_posted(definition, instance)}.",
            dates=(cycle.posting.first_day(),), citation=cite)
    if received < posted:
        raise Refused(
            RuleId.CONTRIBUTION,
            f"received {describe(received, tz)}, before the {cycle.name} was posted "
            f"({describe(posted, tz)}): its comment window was not open yet.",
            f"a receipt time from {describe(posted, tz)} on (--received).",
            dates=(received.astimezone(tz).date(), posted.astimezone(tz).date()),
            citation=cite)
    deadline = comment_deadline(definition, instance, cycle.id)
    late = received >= deadline
    if draft.category is SubmitterCategory.PUBLIC:
        milestones = by_key(effective_milestones(definition, instance))
        deadline = _public(definition, cycle, milestones[f"{cycle.id}.consultation"].start
                           if cycle.public_consultation else None, posted, received, tz)
        late = False  # public input is taken only while the consultation is open
    contribution = Contribution(**draft.model_dump(), late=late, recorded_at=now,
                                recorded_by=by)
    state = instance.regions.get("main")
    when = "late " if late else ""
    record = Record(now, by, CONTRIBUTION, None, state, state,
                    f"{when}{draft.kind.value} on {cycle.id} from {audit_submitter(draft)} "
                    f"({draft.category.value}), received {describe(received, tz)}",
                    audit_inputs(contribution))
    return Receipt(contribution, deadline, record)


def receive_many(definition: ProcessDefinition, instance: Instance,
                 drafts: Sequence[tuple[str, ContributionDraft]], now: datetime, *,
                 by: str = SYSTEM, problems: Sequence[str] = (),
                 register: Sequence[Contribution] = ()) -> list[Receipt]:
    """``receive`` for a batch (an import), all or nothing: every bad or refused one is named
    by its label (e.g. 'line 4'), after the ``problems`` the edge found reading the batch; a
    document reference given twice in the batch is bad on its second line.
    Bad input wins over refusals: it is fixed first."""
    receipts: list[Receipt] = []
    bad: list[str] = list(problems)
    refused: list[tuple[str, Refused]] = []
    seen: dict[tuple[str, str, str], str] = {}
    for label, draft in drafts:
        first = seen.setdefault(reference(draft), label)
        try:
            receipt = receive(definition, instance, draft, now, by=by, register=register)
            if first != label:
                bad.append(f"{label}: document '{draft.document}' on {draft.cycle} is already "
                           f"on {first}")
            receipts.append(receipt)
        except Refused as exc:
            refused.append((label, exc))
        except InputError as exc:
            bad.append(f"{label}: {str(exc).rstrip('.')}")
    if bad:
        bad.sort(key=_in_order)
        raise InputError(f"{len(bad)} bad row(s), nothing recorded: " + first_problems(bad) + ".")
    if refused:
        dates = tuple(sorted({d for _, exc in refused for d in exc.dates}))
        raise Refused(RuleId.CONTRIBUTION,
                      f"{len(refused)} row(s) refused, nothing recorded: "
                      + " ".join(f"{label}: {exc.message}" for label, exc in refused),
                      refused[0][1].allowed, dates=dates,
                      citation=definition.citation(RuleId.CONTRIBUTION))
    return receipts


def _in_order(problem: str) -> list[int | str]:
    """'line 10: …' after 'line 9: …': labels compared with their numbers as numbers."""
    label = problem.split(":", 1)[0]
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", label)]


def comment_deadline(definition: ProcessDefinition, instance: Instance, cycle: str) -> datetime:
    """When the comment window of ``cycle`` closes: the end of its (effective, maybe amended)
    deadline day in the process's zone; a month-only deadline runs to its month's end."""
    milestone = by_key(effective_milestones(definition, instance))[f"{cycle}.comments"]
    return _end(milestone.start, zone(definition.timezone))


def _cycle(definition: ProcessDefinition, draft: ContributionDraft) -> CycleDef:
    """The draft commented on; a final report or unknown id is bad input."""
    drafts = [c.id for c in definition.cycles if c.comment_deadline is not None]
    try:
        cycle = definition.cycle(draft.cycle)
    except KeyError:
        raise InputError(f"cycle: '{draft.cycle}' is not a draft of {definition.id}; drafts "
                         f"with a comment window: {', '.join(drafts)}.") from None
    if cycle.comment_deadline is None:
        raise InputError(f"cycle: the {cycle.name} ({cycle.id}) has no comment window; drafts "
                         f"with one: {', '.join(drafts)}.")
    return cycle


def _check(definition: ProcessDefinition, instance: Instance, draft: ContributionDraft,
           now: datetime) -> None:
    """What the definition and the clock say a contribution cannot be."""
    if draft.process_id != instance.process_id:
        raise InputError(f"process: the contribution names '{draft.process_id}', not "
                         f"'{instance.process_id}'.")
    regions = [r.id for r in definition.notifications.regions]
    if draft.region is not None and draft.region not in regions:
        scheme = definition.notifications.region_scheme or "the definition's regions"
        raise InputError(f"region: '{draft.region}' is not in {scheme} "
                         f"({', '.join(regions) or 'none defined'}).")
    if draft.opinion is not None and draft.kind is not ContributionKind.OPINION_COMMENT:
        raise InputError(f"opinion: '{draft.opinion}' is given, but only a comment on a draft "
                         f"Opinion (kind {ContributionKind.OPINION_COMMENT.value}) names one.")
    if draft.opinion is not None and draft.opinion not in instance.opinions:
        known = ", ".join(sorted(instance.opinions)) or "none yet"
        raise FieldError("opinion", f"'{draft.opinion}' is not a draft Opinion of "
                         f"{instance.process_id}; Opinions: {known}.")
    if draft.received_at > now:
        tz = zone(definition.timezone)
        raise InputError(f"received: {describe(draft.received_at, tz)} is later than now "
                         f"({describe(now, tz)}); give the time it was received.")


def _unique(draft: ContributionDraft, register: Sequence[Contribution], tz: ZoneInfo) -> None:
    """A contribution is recorded once: its document reference on that draft is not yet in
    the register (a second import of the same file, a copy saved another way)."""
    key = reference(draft)
    earlier = next((c for c in register if reference(c) == key), None)
    if earlier is not None:
        raise FieldError("document", f"'{draft.document}' on {draft.cycle} is already in the "
                         f"register as #{earlier.id} ({earlier.kind.value} from "
                         f"{audit_submitter(earlier)}, recorded "
                         f"{describe(earlier.recorded_at, tz)}).")


def _public(definition: ProcessDefinition, cycle: CycleDef, closes: PlanDate | None,
            posted: datetime, received: datetime, tz: ZoneInfo) -> datetime:
    """The consultation's close when public input falls inside it; Refused otherwise."""
    allowed = ("public input on a draft while its consultation is open "
               f"({_consultations(definition)}); Member States, Sector Members, Associates "
               "and Academia may comment in the comment window.")
    if closes is None:
        raise Refused(
            RuleId.CONTRIBUTION,
            f"no public consultation is held on the {cycle.name} ({cycle.id}), so input from "
            "the public is not accepted on it.", allowed,
            citation=definition.citation(RuleId.CONTRIBUTION))
    end = _end(closes, tz)
    if received >= end:
        raise Refused(
            RuleId.CONTRIBUTION,
            f"the public consultation on the {cycle.name} ran from {describe(posted, tz)} to "
            f"{describe(end, tz)}; public input received {describe(received, tz)} is not "
            "accepted after it closed.", allowed,
            dates=(posted.astimezone(tz).date(), end.astimezone(tz).date()),
            citation=definition.citation(RuleId.CONTRIBUTION))
    return end


def _end(value: PlanDate | None, tz: ZoneInfo) -> datetime:
    """A deadline's instant; a month-only one runs to the end of its month."""
    assert value is not None, "a draft cycle always has a comment deadline"
    if not value.exact:
        value = PlanDate(value.year, value.month, value.last_day().day)
    return end_instant(value, tz)


def _posted(definition: ProcessDefinition, instance: Instance) -> str:
    done = [c.id for c in definition.cycles
            if c.comment_deadline is not None and instance.posted_at(c.id) is not None]
    return ", ".join(done) or "none yet"


def _consultations(definition: ProcessDefinition) -> str:
    held = [c.id for c in definition.cycles if c.public_consultation]
    return f"held on {', '.join(held)}" if held else "none is held in this process"


def closing_cycles(definition: ProcessDefinition, decision: Decision) -> list[str]:
    """The cycles whose comment window this decision closes (the edge reads their register)."""
    return [cycle for cycle, _ in _closing(definition, decision)]


def _closing(definition: ProcessDefinition, decision: Decision) -> list[tuple[str, Record]]:
    specs = table_for(definition).by_trigger
    return [(spec.cycle, r) for r in decision.transitions
            if r.trigger in specs and (spec := specs[r.trigger]).event == "comments_closed"
            and spec.cycle is not None]


def with_summaries(definition: ProcessDefinition, decision: Decision,
                   contributions: Sequence[Contribution]) -> Decision:
    """``decision`` plus, for each window it closes, the window's summary: kept in the
    instance and recorded (kind window-summary, the summary as inputs) right after the close."""
    closing = {id(record): cycle for cycle, record in _closing(definition, decision)}
    if not closing:
        return decision
    summaries = dict(decision.after.summaries)
    records: list[Record] = []
    for record in decision.records:
        records.append(record)
        cycle = closing.get(id(record))
        if cycle is None:
            continue
        summary = summaries[cycle] = summarize(contributions, cycle)
        # No trigger: the entry records the close's outcome; the close itself is the
        # transition entry before it (one entry per trigger fired, as the log always had).
        records.append(Record(record.at, SYSTEM, WINDOW_SUMMARY, None, record.to_state,
                              record.to_state,
                              f"comment window of {cycle} closed: {summary.total} "
                              f"contribution(s), {summary.late} late",
                              summary.model_dump(mode="json")))
    after = decision.after.model_copy(update={"summaries": summaries})
    return Decision(decision.before, after, tuple(records), decision.effects)
