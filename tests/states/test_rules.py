"""The plan's rules, table-driven, as `prepflow check DEFINITION --set K=V` computes them."""

from __future__ import annotations

import pytest

from states import ProcessDefinition, RuleResult, Span, Status, check, effective_milestones
from states.rules import NOMINATIONS, SEQUENCE, SIX_WEEKS
from tests.states.helpers import other, wtpf

SIX = ("six-weeks", "final.posting → forum")


def checked(definition: ProcessDefinition, **changes: str) -> dict[tuple[str, str], RuleResult]:
    """Every rule over the plan with what-if changes (key=value, dots written as '__')."""
    extra = {key.replace("__", "."): Span.parse(value) for key, value in changes.items()}
    results = check(definition, effective_milestones(definition, None, extra))
    return {(r.rule, r.subject): r for r in results}


@pytest.mark.parametrize(
    ("forum", "status", "fragments", "slack"),
    [
        ("2026-05-10", Status.FAIL,
         ["13 Apr 2026", "27 days", "needs 42", "15 days short", "29 Mar 2026"], -15),
        ("2026-06-02", Status.PASS, ["50 days, 8 days of slack"], 8),
        ("2026-05-25", Status.PASS, ["42 days, 0 days of slack"], 0),  # exactly six weeks
        ("2026-05-24", Status.FAIL, ["41 days", "needs 42", "12 Apr 2026"], -1),
        ("2026-05", Status.UNKNOWN,
         ["at risk", "between 18 and 48 days", "needs 42", "20 Mar 2026"], -24),
        # even the best case fails:
        ("2026-04", Status.FAIL, ["12 days after the forum opens", "needs 42"], -54),
        ("2026-07", Status.PASS, ["79 days, 37 days of slack"], 37),
    ],
)
def test_six_weeks_rule_on_the_wtpf26_plan(
    forum: str, status: Status, fragments: list[str], slack: int
) -> None:
    """Decision 641 decides 6 d over the plan: days between final and forum vs 42, with slack."""
    result = checked(wtpf(), forum=forum)[SIX]
    assert result.status is status
    for fragment in fragments:
        assert fragment in result.message
    assert result.slack_days == slack


def test_six_weeks_is_unknown_while_the_forum_is_unset() -> None:
    """With no forum date the rule cannot be decided, and the message says how to fix it."""
    result = checked(wtpf())[SIX]
    assert result.status is Status.UNKNOWN
    assert "not set" in result.message
    assert "--override" in result.message
    assert "prepflow amend wtpf-26 forum" in result.message
    assert result.slack_days is None


@pytest.mark.parametrize(
    ("final", "forum", "status"),
    [
        ("2026-04", "2026-05-20", Status.UNKNOWN),  # 20..49 days: at risk
        ("2026-04", "2026-06-15", Status.PASS),  # 46 days even if posted on 30 April
        ("2026-04", "2026-05-05", Status.FAIL),  # at most 34 days
        ("2026-04", "2026-06", Status.UNKNOWN),  # both months: 32..91 days
    ],
)
def test_six_weeks_with_month_only_final_uses_worst_and_best_case(
    final: str, forum: str, status: Status
) -> None:
    """A month-only final or forum passes only if the worst case passes; fails if the best fails."""
    assert checked(wtpf(), final__posting=final, forum=forum)[SIX].status is status


def test_six_weeks_uses_the_definitions_own_lead_days() -> None:
    """RPD-27 needs 30 days, not 42: 35 days pass there."""
    result = checked(other(), forum="2026-10-19")[SIX]
    assert result.status is Status.PASS
    assert result.message.endswith("35 days, 5 days of slack")
    result = checked(other(), forum="2026-10-13")[SIX]
    assert result.status is Status.FAIL
    assert "needs 30" in result.message


@pytest.mark.parametrize(
    ("changes", "subject", "fragment"),
    [
        # a meeting before the comments close
        ({"ieg1": "2024-08-20"}, "draft1.comments → ieg1", "out of order"),
        ({"ieg1": "2024-08-26"}, "draft1.comments → ieg1", "at least one day after"),
        # a draft posted before the previous meeting ends
        ({"ieg1": "2024-10-07..2024-11-05"}, "ieg1 → draft2.posting", "out of order"),
        ({"ieg1": "2024-10-07..2024-11-04"}, "ieg1 → draft2.posting", "out of order"),
        # comments due before the draft is posted
        ({"draft3__comments": "2025-03-01"}, "draft3.posting → draft3.comments", "out of order"),
        # the final report before the last meeting
        ({"ieg4": "2026-04-13..2026-04-14"}, "ieg4 → final.posting", "out of order"),
    ],
)
def test_sequence_violations_fail(changes: dict[str, str], subject: str, fragment: str) -> None:
    """Milestones out of order (touching or overlapping) break the sequence rule."""
    result = checked(wtpf(), **changes)[(SEQUENCE, subject)]
    assert result.status is Status.FAIL
    assert fragment in result.message


@pytest.mark.parametrize(
    ("changes", "subject", "status"),
    [
        ({"ieg1": "2024-10-07..2024-11-03"}, "ieg1 → draft2.posting", Status.PASS),
        ({"ieg1": "2024-11"}, "ieg1 → draft2.posting", Status.UNKNOWN),  # may overlap
        ({"ieg1": "2024-08"}, "draft1.comments → ieg1", Status.UNKNOWN),
        ({"ieg1": "2024-10-07"}, "draft1.comments → ieg1", Status.PASS),
    ],
)
def test_sequence_boundaries_and_month_only_overlap(
    changes: dict[str, str], subject: str, status: Status
) -> None:
    """One clear day apart passes; a month that may overlap is at risk, not broken."""
    assert checked(wtpf(), **changes)[(SEQUENCE, subject)].status is status


def test_nominations_must_close_before_the_first_expert_meeting() -> None:
    """Nominations due after the 1st IEG meeting breaks the nominations rule."""
    results = checked(wtpf(), ieg1="2024-10-07..2024-10-08", nominations="2024-10-10")
    result = results[(NOMINATIONS, "nominations → ieg1")]
    assert result.status is Status.FAIL


def test_wtpf26_plan_as_published_breaks_nothing() -> None:
    """The WTPF-26 plan has no broken rule; only the six-week rule is open (forum unset)."""
    results = checked(wtpf())
    assert not [r for r in results.values() if r.status is Status.FAIL]
    unknown = [key for key, r in results.items() if r.status is Status.UNKNOWN]
    assert unknown == [SIX]


def test_rpd27_plan_checks_its_own_pairs_and_passes() -> None:
    """RPD-27's chain (consultation, two meetings, a draft without one) is checked and passes."""
    results = checked(other())
    assert {r.status for r in results.values()} == {Status.PASS}
    assert set(results) == {
        (SEQUENCE, "zero-draft.posting → zero-draft.comments"),
        (SEQUENCE, "zero-draft.posting → zero-draft.consultation"),
        (SEQUENCE, "zero-draft.comments → vm1"),
        (SEQUENCE, "vm1 → ip1"),
        (SEQUENCE, "ip1 → revised.posting"),
        (SEQUENCE, "revised.posting → revised.comments"),
        (SEQUENCE, "revised.comments → final.posting"),
        (SIX_WEEKS, "final.posting → forum"),
    }
    assert results[(SIX_WEEKS, "final.posting → forum")].message.endswith(
        "63 days, 33 days of slack"
    )


def test_two_meetings_of_one_cycle_must_not_overlap() -> None:
    """The in-person meeting starting on the virtual call's day breaks the sequence."""
    result = checked(other(), ip1="2026-04-07..2026-04-09")[(SEQUENCE, "vm1 → ip1")]
    assert result.status is Status.FAIL


def test_consultation_deadline_before_posting_fails() -> None:
    """A public consultation cannot close before its draft is posted."""
    extra = {"zero-draft.consultation": Span.parse("2026-01-10")}
    results = {(r.rule, r.subject): r
               for r in check(other(), effective_milestones(other(), None, extra))}
    assert results[(SEQUENCE, "zero-draft.posting → zero-draft.consultation")].status is (
        Status.FAIL
    )


def test_a_count_of_one_day_is_singular() -> None:
    """Rule messages say '1 day', never '1 days' (issue 8's known defect)."""
    from states.dates import days

    assert [days(n) for n in (0, 1, 2, -1)] == ["0 days", "1 day", "2 days", "-1 day"]
