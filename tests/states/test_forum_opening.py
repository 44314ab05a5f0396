"""The earliest forum opening the six-week rule allows (states.forum_opening), for a rehearsal
of a plan that leaves the forum undated."""

from __future__ import annotations

from datetime import date, timedelta

from states import amend
from states.forum_opening import earliest_forum_opening
from states.plan import Span, by_key
from states.rules import Status, effective_milestones, six_weeks
from tests.states.helpers import SEC, new, post, utc, wtpf, wtpf_at_final


def test_wtpf26_forum_earliest_opens_42_days_after_the_planned_final_report() -> None:
    """Final report planned for 13 Apr 2026 + 42 days: 25 May 2026."""
    earliest = earliest_forum_opening(wtpf(), new(wtpf()))
    assert earliest is not None
    assert (earliest.final, earliest.opens, earliest.lead_days) == (
        date(2026, 4, 13), date(2026, 5, 25), 42)


def test_the_earliest_opening_passes_the_six_week_rule_with_no_slack_and_a_day_less_fails(
) -> None:
    """Its arithmetic is the rule's: that day passes with 0 days spare, the day before fails."""
    definition = wtpf()
    opens = earliest_forum_opening(definition).opens  # type: ignore[union-attr]
    for day, status, slack in ((opens, Status.PASS, 0),
                               (opens - timedelta(days=1), Status.FAIL, -1)):
        items = effective_milestones(definition, None, {"forum": Span.parse(day.isoformat())})
        result = six_weeks(definition, by_key(items))
        assert (result.status, result.slack_days) == (status, slack)


def test_counts_from_the_amended_or_the_actual_final_report_and_a_month_counts_its_last_day(
) -> None:
    """An amended final report moves the assumption; a month-only one counts from its last
    day; once posted, the actual posting day counts."""
    definition, instance, _ = wtpf_at_final()
    slipped = amend(definition, instance, "final.posting", "2026-05", SEC, "slip",
                    utc(2026, 3, 2)).after
    earliest = earliest_forum_opening(definition, slipped)
    assert earliest is not None
    assert (earliest.final, earliest.opens) == (date(2026, 5, 31), date(2026, 7, 12))
    late = post(definition, instance, "post_final", utc(2026, 4, 20, 8), override=True,
                reason="forum undated").after
    earliest = earliest_forum_opening(definition, late)
    assert earliest is not None
    assert (earliest.final, earliest.opens) == (date(2026, 4, 20), date(2026, 6, 1))
