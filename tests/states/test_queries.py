"""The core's queries, table-driven: manual steps due or overdue, what falls due next, and what
happened per milestone, including across the summer-time changes of 27 Oct 2024 (a 25-hour
day in Geneva) and 30 Mar 2025 (a 23-hour day)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime
from functools import cache

import pytest

from states import Instance, advance, amend
from states.queries import (
    DueKind,
    StepStatus,
    due_items,
    first_days,
    history,
    manual_steps,
    next_due,
    overdue_steps,
)
from tests.states.helpers import SEC, fix_meetings, new, post, utc, wtpf


@cache
def at_draft2_posting_on_fall_back_day() -> Instance:
    """WTPF-26 after the 1st IEG meeting, with the Second Draft due on 27 Oct 2024."""
    definition = wtpf()
    instance = post(definition, fix_meetings(definition, new(definition)), "post_draft1",
                    utc(2024, 8, 5, 8)).after
    instance = advance(definition, instance, utc(2024, 10, 20)).after
    assert instance.regions["main"] == "draft2.drafting"
    return amend(definition, instance, "draft2.posting", "2024-10-27", SEC, "moved",
                 utc(2024, 10, 20)).after


@cache
def at_draft3_posting_on_spring_forward_day() -> Instance:
    """WTPF-26 after the 2nd IEG meeting, with the Third Draft due on 30 Mar 2025."""
    definition = wtpf()
    instance = post(definition, at_draft2_posting_on_fall_back_day(), "post_draft2",
                    utc(2024, 10, 27, 8)).after
    instance = advance(definition, instance, utc(2025, 3, 1)).after
    assert instance.regions["main"] == "draft3.drafting"
    return amend(definition, instance, "draft3.posting", "2025-03-30", SEC, "moved",
                 utc(2025, 3, 1)).after


@cache
def in_comment_window_closing_on_fall_back_day() -> Instance:
    """WTPF-26 with the Second Draft posted on 21 Oct 2024 and comments due on 27 Oct 2024."""
    definition = wtpf()
    instance = amend(definition, at_draft2_posting_on_fall_back_day(), "draft2.posting",
                     "2024-10-21", SEC, "earlier", utc(2024, 10, 20)).after
    instance = post(definition, instance, "post_draft2", utc(2024, 10, 21, 8)).after
    return amend(definition, instance, "draft2.comments", "2024-10-27", SEC, "short window",
                 utc(2024, 10, 21, 9)).after


STEPS = [
    # fixture, now (UTC), expected status of the posting (None: not due yet)
    # 27 Oct 2024 in Geneva runs from 26 Oct 22:00 UTC (CEST) to 27 Oct 23:00 UTC (CET).
    (at_draft2_posting_on_fall_back_day, utc(2024, 10, 26, 21, 59, 59), None),
    (at_draft2_posting_on_fall_back_day, utc(2024, 10, 26, 22), StepStatus.DUE),
    (at_draft2_posting_on_fall_back_day, utc(2024, 10, 27, 22, 30), StepStatus.DUE),
    (at_draft2_posting_on_fall_back_day, utc(2024, 10, 27, 22, 59, 59), StepStatus.DUE),
    (at_draft2_posting_on_fall_back_day, utc(2024, 10, 27, 23), StepStatus.OVERDUE),
    # 30 Mar 2025 in Geneva runs from 29 Mar 23:00 UTC (CET) to 30 Mar 22:00 UTC (CEST).
    (at_draft3_posting_on_spring_forward_day, utc(2025, 3, 29, 22, 59, 59), None),
    (at_draft3_posting_on_spring_forward_day, utc(2025, 3, 29, 23), StepStatus.DUE),
    (at_draft3_posting_on_spring_forward_day, utc(2025, 3, 30, 21, 59, 59), StepStatus.DUE),
    (at_draft3_posting_on_spring_forward_day, utc(2025, 3, 30, 22), StepStatus.OVERDUE),
]


@pytest.mark.parametrize(("fixture", "now", "expected"), STEPS)
def test_manual_step_is_due_on_its_local_day_and_overdue_after_it(
        fixture: Callable[[], Instance], now: datetime, expected: StepStatus | None) -> None:
    """A posting is due from local midnight of its day and overdue from the next midnight,
    whatever the day's length."""
    instance = fixture()
    steps = manual_steps(wtpf(), instance, now)
    assert [s.status for s in steps] == ([expected] if expected else [])
    assert [s.trigger for s in overdue_steps(wtpf(), instance, now)] == (
        [steps[0].trigger] if expected is StepStatus.OVERDUE else [])


def test_a_manual_step_names_its_day_and_instants() -> None:
    """The step carries its planned day and both instants, for the edge to show, not recompute."""
    step = manual_steps(wtpf(), at_draft2_posting_on_fall_back_day(), utc(2024, 10, 27, 12))[0]
    assert (step.trigger, step.milestone, step.cycle) == ("post_draft2", "draft2.posting",
                                                           "draft2")
    assert (step.opens, step.overdue_from) == (utc(2024, 10, 26, 22), utc(2024, 10, 27, 23))
    assert step.overdue_from - step.opens == utc(2024, 1, 2, 1) - utc(2024, 1, 1)  # 25 hours


NEXT = [
    # now (UTC), expected (kind, instant) of next_due
    # Reminders fall at the same Geneva time of day: 1 day before 28 Oct 00:00 CET is
    # 27 Oct 00:00 CEST, 25 hours earlier (not 24); the 7-day one (21 Oct 00:00) is past.
    (utc(2024, 10, 21, 10), (DueKind.REMINDER, utc(2024, 10, 26, 22))),
    (utc(2024, 10, 26, 22, 1), (DueKind.TRANSITION, utc(2024, 10, 27, 23))),
]


@pytest.mark.parametrize(("now", "expected"), NEXT)
def test_next_due_across_the_fall_back_night(now: datetime,
                                              expected: tuple[DueKind, datetime]) -> None:
    """What falls due next in a comment window closing on 27 Oct 2024 (25-hour day)."""
    instance = in_comment_window_closing_on_fall_back_day()
    found = next_due(wtpf(), instance, now)
    assert found is not None
    assert (found.kind, found.at) == expected


def test_due_items_include_the_transition_advance_applies() -> None:
    """At the deadline advance closes the window: the same instant the query gave."""
    definition, instance = wtpf(), in_comment_window_closing_on_fall_back_day()
    close = [d for d in due_items(definition, instance, utc(2024, 10, 22))
             if d.kind is DueKind.TRANSITION and d.trigger == "close_comments_draft2"]
    assert [(d.trigger, d.at) for d in close] == [("close_comments_draft2",
                                                   utc(2024, 10, 27, 23))]
    assert not advance(definition, instance, utc(2024, 10, 27, 22, 59, 59)).transitions
    applied = advance(definition, instance, close[0].at)
    assert [r.trigger for r in applied.records if r.kind == "transition"] == [
        "close_comments_draft2"]


def test_a_month_only_milestone_is_due_for_fixing_before_its_month() -> None:
    """'October 2024' (1st IEG meeting) is due for fixing 30 days before 1 Oct, Geneva midnight."""
    definition = wtpf()
    instance = post(definition, new(definition), "post_draft1", utc(2024, 8, 5, 8)).after
    fixes = [d for d in due_items(definition, instance, utc(2024, 8, 6))
             if d.kind is DueKind.DATE_TO_FIX]
    assert (fixes[0].milestone, fixes[0].at) == ("ieg1", utc(2024, 8, 31, 22))


def test_only_milestones_known_to_the_month_are_due_for_fixing() -> None:
    """Once every meeting has exact days, nothing is due for fixing (the forum is unset)."""
    definition = wtpf()
    fixes = [d for d in due_items(definition, at_draft2_posting_on_fall_back_day(),
                                  utc(2024, 10, 21)) if d.kind is DueKind.DATE_TO_FIX]
    assert fixes == []


def test_history_shows_each_milestone_on_its_own_local_day() -> None:
    """A deadline passing at 00:00 belongs to the day before; a meeting shows its first day."""
    definition = wtpf()
    instance = advance(definition, in_comment_window_closing_on_fall_back_day(),
                       utc(2024, 10, 28)).after
    events = history(definition, instance)
    closed = next(e for e in events if e.trigger == "close_comments_draft2")
    assert (closed.when, closed.day) == (utc(2024, 10, 27, 23), date(2024, 10, 27))
    days = first_days(definition, instance)
    assert days["ieg1"] == date(2024, 10, 7)
    assert days["draft2.posting"] == date(2024, 10, 21)
    assert days["draft2.comments"] == date(2024, 10, 27)
    assert [e.trigger for e in events if e.milestone == "ieg1"] == ["start_ieg1", "end_ieg1"]
