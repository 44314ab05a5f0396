"""Messages that time or amendments make due: reminders, invitations, secretariat alerts."""

from __future__ import annotations

from datetime import datetime

from states.engine import advance, amend, apply
from states.instance import Instance
from tests.states.helpers import SEC, fix_meetings, new, utc, wtpf


def _events(decision_effects: tuple, event: str) -> list:  # type: ignore[type-arg]
    return [e for e in decision_effects if e.event == event]


def _posted_draft1() -> Instance:
    definition = wtpf()
    instance = fix_meetings(definition, new(definition))
    return apply(definition, instance, "post_draft1", SEC, utc(2024, 8, 5, 8),
                 document="WTPF-26/1").after


def test_comment_reminders_come_seven_days_and_one_day_before_the_deadline_once() -> None:
    """26 Aug 2024 deadline (CEST): reminders from 19 Aug 22:00Z and 25 Aug 22:00Z, once each."""
    definition, instance = wtpf(), _posted_draft1()
    assert not _events(advance(definition, instance, utc(2024, 8, 19, 21, 59)).effects,
                       "comment_reminder")
    week = advance(definition, instance, utc(2024, 8, 19, 22))
    (reminder,) = _events(week.effects, "comment_reminder")
    assert reminder.data["days"] == 7
    assert reminder.data["deadline"] == "2024-08-26T22:00:00+00:00"
    assert reminder.key == "wtpf-26:reminder:draft1:2024-08-26:7d"
    assert not advance(definition, week.after, utc(2024, 8, 20)).effects  # not twice
    day = advance(definition, week.after, utc(2024, 8, 25, 22))
    assert [e.data["days"] for e in _events(day.effects, "comment_reminder")] == [1]


def test_a_late_tick_sends_only_the_most_urgent_reminder() -> None:
    """A tick that missed the 7-day point sends the 1-day reminder alone, and never the 7-day."""
    definition, instance = wtpf(), _posted_draft1()
    late = advance(definition, instance, utc(2024, 8, 26, 12))
    assert [e.data["days"] for e in _events(late.effects, "comment_reminder")] == [1]
    assert not _events(advance(definition, late.after, utc(2024, 8, 26, 13)).effects,
                       "comment_reminder")


def test_meeting_invitation_then_update_then_cancellation_with_sequences() -> None:
    """Posting invites to its fixed meeting (seq 0); moved: update (1); unfixed: cancel (2)."""
    definition = wtpf()
    instance = fix_meetings(definition, new(definition))
    first = apply(definition, instance, "post_draft1", SEC, utc(2024, 8, 5, 8), document="D")
    (invite,) = _events(first.effects, "meeting_invitation")
    assert (invite.data["meeting"], invite.data["sequence"]) == ("ieg1", 0)
    assert (invite.data["start_day"], invite.data["end_day"]) == ("2024-10-07", "2024-10-08")
    moved = amend(definition, first.after, "ieg1", "2024-10-14..2024-10-15", SEC, "room",
                  utc(2024, 8, 7))
    (update,) = _events(moved.effects, "meeting_updated")
    assert (update.data["sequence"], update.data["start_day"]) == (1, "2024-10-14")
    unfixed = amend(definition, moved.after, "ieg1", "2024-10", SEC, "postponed",
                    utc(2024, 8, 8))
    (cancel,) = _events(unfixed.effects, "meeting_cancelled")
    assert cancel.data["sequence"] == 2
    assert cancel.data["start_day"] == "2024-10-14"  # the dates it cancels
    assert not advance(definition, unfixed.after, utc(2024, 8, 9)).effects


def test_no_invitation_before_the_cycle_is_posted() -> None:
    """A meeting of a draft not yet posted is not announced yet."""
    definition = wtpf()
    instance = fix_meetings(definition, new(definition))
    decision = advance(definition, instance, utc(2024, 8, 1))
    assert not _events(decision.effects, "meeting_invitation")


def test_overdue_step_and_rule_at_risk_alert_the_secretariat_once() -> None:
    """A posting not done by the end of its day, and the undated forum, are told once each."""
    definition = wtpf()
    instance = new(definition)
    overdue_at = utc(2024, 8, 5, 22)  # end of 5 Aug 2024 in Geneva
    before = advance(definition, instance, overdue_at.replace(minute=0, hour=21))
    assert not _events(before.effects, "step_overdue")
    (risk,) = _events(before.effects, "rule_at_risk")
    assert risk.data["audience"] == "secretariat"
    assert risk.data["rule"] == "six-weeks"
    after = advance(definition, before.after, overdue_at)
    (overdue,) = _events(after.effects, "step_overdue")
    assert overdue.data["trigger"] == "post_draft1"
    assert not advance(definition, after.after, datetime(2024, 8, 7, tzinfo=overdue_at.tzinfo)
                       ).effects


def test_transition_messages_carry_their_audience_and_deadlines() -> None:
    """'Draft posted' tells the experts, with the comment deadline as an instant and a day."""
    definition = wtpf()
    decision = apply(definition, new(definition), "post_draft1", SEC, utc(2024, 8, 5, 8),
                     document="WTPF-26/1")
    (posted,) = _events(decision.effects, "draft_posted")
    assert posted.data["audience"] == "experts"
    assert posted.data["document"] == "WTPF-26/1"
    assert posted.data["deadline"] == "2024-08-26T22:00:00+00:00"
    assert posted.data["deadline_day"] == "2024-08-26"
    assert posted.key == "wtpf-26:post_draft1"


def test_an_extended_deadline_is_reminded_again_at_geneva_time_across_dst() -> None:
    """Moved from 26 Aug to 28 Oct 2024: new reminders, 7 days before at 00:00 Geneva time
    on 22 Oct (CEST, 22:00Z) although the deadline itself falls in CET (23:00Z)."""
    definition, instance = wtpf(), _posted_draft1()
    first = advance(definition, instance, utc(2024, 8, 26, 12)).after
    moved = amend(definition, first, "draft1.comments", "2024-10-28", SEC, "extended",
                  utc(2024, 8, 26, 13), override=True).after  # past the fixed IEG dates
    assert not _events(advance(definition, moved, utc(2024, 10, 21, 21, 59)).effects,
                       "comment_reminder")
    week = advance(definition, moved, utc(2024, 10, 21, 22))
    (reminder,) = _events(week.effects, "comment_reminder")
    assert reminder.data["days"] == 7
    assert reminder.data["deadline"] == "2024-10-28T23:00:00+00:00"


def test_a_window_shorter_than_the_first_reminder_gets_no_seven_day_mail() -> None:
    """Posted 3 days before the deadline: no '7 days' reminder; the 1-day one still comes."""
    definition = wtpf()
    instance = fix_meetings(definition, new(definition))
    posted = apply(definition, instance, "post_draft1", SEC, utc(2024, 8, 23, 8), document="D")
    assert _events(posted.effects, "draft_posted")
    assert not _events(posted.effects, "comment_reminder")
    assert not _events(advance(definition, posted.after, utc(2024, 8, 24)).effects,
                       "comment_reminder")
    day = advance(definition, posted.after, utc(2024, 8, 25, 22))
    assert [e.data["days"] for e in _events(day.effects, "comment_reminder")] == [1]


def test_a_deadline_moved_nearer_is_reminded_with_the_days_really_left() -> None:
    """Deadline cut to 23 Aug on 20 Aug 13:00Z: the reminder says 4 days (3 d 9 h), not 7."""
    definition, instance = wtpf(), _posted_draft1()
    cut = amend(definition, instance, "draft1.comments", "2024-08-23", SEC, "shortened",
                utc(2024, 8, 20, 13))
    (reminder,) = _events(cut.effects, "comment_reminder")
    assert reminder.data["days"] == 4
    assert reminder.key == "wtpf-26:reminder:draft1:2024-08-23:7d"


def test_rule_at_risk_key_names_an_unset_forum_date_without_none() -> None:
    """The undated forum's six-weeks alert has a key saying 'unset', the same on every tick."""
    definition = wtpf()
    first = advance(definition, new(definition), utc(2024, 8, 1))
    (risk,) = _events(first.effects, "rule_at_risk")
    assert "None" not in risk.key
    assert risk.key.endswith(":unset")
    assert not _events(advance(definition, first.after, utc(2024, 8, 2)).effects,
                       "rule_at_risk")


def test_an_old_form_rule_key_on_record_does_not_mail_the_same_situation_again() -> None:
    """A store written with the '…:None' key form sends no second alert for that situation."""
    definition = wtpf()
    (risk,) = _events(advance(definition, new(definition), utc(2024, 8, 1)).effects,
                      "rule_at_risk")
    old_key = risk.key.removesuffix(":unset") + ":None"
    stored = new(definition).model_copy(update={"notices": (old_key,)})
    assert not _events(advance(definition, stored, utc(2024, 8, 1)).effects, "rule_at_risk")
