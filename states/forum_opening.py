"""The earliest day the forum may open, by the six-week rule, after the final report.

A rehearsal of a plan that leaves the forum undated (WTPF-26's: "first half of 2026", set
later by Council) assumes this day, so the process can run to the forum's close. It is the
six-week rule's own arithmetic (``states.rules.six_weeks``): the rule passes when the forum's
first day is at least ``final_min_lead_days`` after the final report's last possible day.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

from states.definition import ProcessDefinition
from states.instance import Instance
from states.plan import by_key
from states.rules import effective_milestones


@dataclass(frozen=True)
class EarliestOpening:
    """The final report's day the assumption counts from, and the forum's earliest opening."""

    final: date
    """The final report's (last possible) day: planned, amended, or actually posted."""
    opens: date
    lead_days: int


def earliest_forum_opening(definition: ProcessDefinition,
                           instance: Instance | None = None) -> EarliestOpening | None:
    """Decision 641 decides 6 d: final report + ``final_min_lead_days``, as an exact day.

    Counts from the final report as the plan stands (its amended or actual posting day); a
    month-only final report counts from the month's last day, as the rule does. None when the
    final report has no date at all.
    """
    final = by_key(effective_milestones(definition, instance))[
        f"{definition.cycles[-1].id}.posting"].start
    if final is None:
        return None
    lead = definition.rules.final_min_lead_days
    last = final.last_day()
    return EarliestOpening(last, last + timedelta(days=lead), lead)
