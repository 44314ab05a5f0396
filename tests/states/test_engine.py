"""The engine on WTPF-26: start, apply, advance, amend — deadlines, refusals, overrides, effects."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import pytest

from states import InputError, Instance, Refused, RuleId, advance, amend, apply, report, start
from states.machine import AGENDA, CONSULTATION, MAIN
from states.status import WarningKind
from tests.states.helpers import (
    SEC,
    fix_meetings,
    new,
    post,
    utc,
    walk_agenda,
    wtpf,
    wtpf_at_final,
)

ONE_SECOND = timedelta(seconds=1)


def posted_draft1(instance: Instance | None = None) -> Instance:
    """WTPF-26 with the First Draft posted on 5 Aug 2024 (10:00 Geneva)."""
    definition = wtpf()
    return apply(definition, instance or new(definition), "post_draft1", SEC,
                 utc(2024, 8, 5, 8), document="WTPF-26/1").after


def test_start_gives_initial_states_and_an_init_record() -> None:
    """start() puts each region at its initial state and records 'init' with the fingerprint."""
    definition = wtpf()
    decision = start(definition, utc(2024, 7, 10))
    assert decision.after.regions == {MAIN: "draft1.drafting", CONSULTATION: "none",
                                      AGENDA: "agenda.pending"}
    (record,) = decision.records
    assert (record.kind, record.to_state) == ("init", "draft1.drafting")
    assert record.inputs["definition"] == definition.fingerprint()


def test_posting_records_who_what_and_opens_the_window() -> None:
    """A posting moves to the comment window and records the member's id and the document."""
    definition = wtpf()
    decision = apply(definition, new(definition), "post_draft1", SEC,
                     utc(2024, 8, 5, 8), document="  WTPF-26/1 ")
    (record,) = decision.transitions
    assert (record.kind, record.trigger, record.actor) == ("transition", "post_draft1", SEC)
    assert (record.from_state, record.to_state) == ("draft1.drafting", "draft1.comment_window")
    assert record.inputs["document"] == "WTPF-26/1"
    assert decision.after.happened["post_draft1"].document == "WTPF-26/1"
    assert decision.before.regions[MAIN] == "draft1.drafting"  # the input is not mutated


@pytest.mark.parametrize(
    ("amended", "closes"),
    [
        (None, utc(2024, 8, 26, 22)),  # 26 Aug 2024, CEST
        ("2024-09-30", utc(2024, 9, 30, 22)),
        ("2024-10-27", utc(2024, 10, 27, 23)),  # the 25-hour day: summer time ends
        ("2024-09-30 12:00", utc(2024, 9, 30, 10)),
    ],
)
def test_comment_window_closes_exactly_at_the_deadline(
    amended: str | None, closes: datetime
) -> None:
    """The window is open one second before the deadline instant and closed at it."""
    definition = wtpf()
    instance = new(definition)
    if amended:
        instance = amend(definition, instance, "draft1.comments", amended, SEC, "extended",
                         utc(2024, 7, 15)).after
    instance = posted_draft1(instance)
    before = advance(definition, instance, closes - ONE_SECOND)
    assert not before.transitions
    assert before.after.regions[MAIN] == "draft1.comment_window"
    at = advance(definition, instance, closes)
    assert [r.trigger for r in at.records] == ["close_comments_draft1"]
    assert at.records[0].inputs["due"] == closes.isoformat()
    assert at.after.happened["close_comments_draft1"].due == closes


@pytest.mark.parametrize(
    ("cycle", "closes"),
    [
        ("draft2", utc(2024, 12, 20, 23)),  # winter time
        ("draft3", utc(2025, 6, 16, 22)),  # summer time, after 30 Mar 2025
        ("draft4", utc(2025, 12, 19, 23)),  # winter again, after 26 Oct 2025
    ],
)
def test_later_comment_windows_close_at_geneva_midnight_across_dst(
    cycle: str, closes: datetime
) -> None:
    """Each draft's window closes at the end of its day in Geneva, whatever the offset."""
    definition = wtpf()
    instance = fix_meetings(definition, new(definition))
    number = int(cycle[-1])
    posts = [utc(2024, 8, 5, 8), utc(2024, 11, 4, 8), utc(2025, 3, 31, 8), utc(2025, 11, 3, 8)]
    for index, when in enumerate(posts[:number], start=1):
        instance = post(definition, instance, f"post_draft{index}", when).after
    assert instance.regions[MAIN] == f"{cycle}.comment_window"
    assert not advance(definition, instance, closes - ONE_SECOND).transitions
    closing = advance(definition, instance, closes)
    assert f"close_comments_{cycle}" in [r.trigger for r in closing.records]


def test_advance_twice_changes_nothing_the_second_time() -> None:
    """A tick that runs twice applies what is due once; the second has no records or effects."""
    definition = wtpf()
    first = advance(definition, posted_draft1(), utc(2024, 9, 1))
    assert first.transitions
    second = advance(definition, first.after, utc(2024, 9, 1))
    assert second.records == ()
    assert second.effects == ()
    assert second.after == first.after


def test_late_advance_catches_up_in_due_order() -> None:
    """A tick months late applies every missed step once, ordered by due instant, across regions."""
    definition = wtpf()
    instance = fix_meetings(definition, new(definition))
    instance = apply(definition, instance, "post_draft1", SEC, utc(2024, 8, 5, 8),
                     document="D").after
    instance = post(definition, instance, "post_draft2", utc(2024, 11, 4, 8)).after
    late = advance(definition, instance, utc(2025, 5, 1))
    assert [r.trigger for r in late.transitions] == [
        "close_comments_draft2", "close_consultation_draft2", "start_ieg2", "end_ieg2"]
    dues = [r.inputs["due"] for r in late.transitions]
    assert dues == sorted(dues)
    assert all(r.at == utc(2025, 5, 1) for r in late.records)
    assert late.after.regions == {MAIN: "draft3.drafting",
                                  CONSULTATION: "draft2.consultation_closed",
                                  AGENDA: "agenda.pending"}


def test_posting_after_missed_ticks_catches_up_first() -> None:
    """Posting the next draft when no tick recorded the meeting's end applies the end first."""
    definition = wtpf()
    instance = posted_draft1(fix_meetings(definition, new(definition)))
    decision = apply(definition, instance, "post_draft2", SEC, utc(2024, 11, 4, 8),
                     document="D")
    assert [r.trigger for r in decision.transitions] == [
        "close_comments_draft1", "start_ieg1", "end_ieg1", "post_draft2",
        "open_consultation_draft2"]
    assert decision.before == instance


def test_month_only_meeting_waits_warns_and_fires_once_amended() -> None:
    """'October 2024' cannot start by itself; status warns; after amend it starts on its day."""
    definition = wtpf()
    instance = advance(definition, posted_draft1(), utc(2024, 10, 15)).after
    assert instance.regions[MAIN] == "draft1.comments_closed"
    assert "start_ieg1" not in instance.happened
    warnings = report(definition, instance, utc(2024, 10, 15)).warnings
    assert any(w.kind is WarningKind.DATE_NOT_FIXED and w.milestone == "ieg1"
               and w.text.startswith("DATE NOT FIXED: '1st IEG meeting'")
               and "prepflow amend wtpf-26 ieg1" in w.text for w in warnings)
    late = report(definition, instance, utc(2024, 11, 2)).warnings
    assert any(w.kind is WarningKind.MONTH_PASSED and w.urgent
               and w.text.startswith("DATE NOT FIXED AND MONTH PASSED") for w in late)

    fixed = amend(definition, instance, "ieg1", "2024-10-21..2024-10-22", SEC, "CWG cluster",
                  utc(2024, 10, 15)).after
    assert not advance(definition, fixed, utc(2024, 10, 20, 21, 59, 59)).transitions
    started = advance(definition, fixed, utc(2024, 10, 20, 22))  # Geneva midnight, CEST
    assert [r.trigger for r in started.records] == ["start_ieg1"]
    ended = advance(definition, started.after, utc(2024, 10, 22, 22))
    assert [r.trigger for r in ended.records] == ["end_ieg1"]
    assert ended.after.regions[MAIN] == "draft2.drafting"
    assert not any(w.milestone == "ieg1" for w in report(definition, ended.after,
                                                         utc(2024, 10, 23)).warnings)


def test_posting_the_next_draft_before_the_meeting_ends_is_refused_order() -> None:
    """The Second Draft cannot be posted while the 1st IEG meeting is ahead or in session."""
    definition = wtpf()
    instance = advance(definition, posted_draft1(), utc(2024, 9, 1)).after
    with pytest.raises(Refused) as caught:
        apply(definition, instance, "post_draft2", SEC, utc(2024, 9, 2), document="D")
    assert caught.value.rule is RuleId.ORDER
    assert caught.value.allowed_triggers == ()  # only automatic steps are ahead
    assert caught.value.exit_code == 1
    assert "awaiting 1st IEG meeting" in caught.value.message
    in_session = fix_meetings(definition, new(definition))
    in_session = advance(definition, posted_draft1(in_session), utc(2024, 10, 7, 12)).after
    assert in_session.regions[MAIN] == "draft1.ieg1"
    with pytest.raises(Refused, match="'order'"):
        apply(definition, in_session, "post_draft2", SEC, utc(2024, 10, 7, 12), document="D")


def test_posting_twice_is_refused_once() -> None:
    """A draft is posted once: a second posting is refused by rule 'once', naming the first."""
    definition = wtpf()
    with pytest.raises(Refused) as caught:
        apply(definition, posted_draft1(), "post_draft1", SEC, utc(2024, 8, 6), document="D2")
    assert caught.value.rule == "once"
    assert "WTPF-26/1" in caught.value.message


def test_firing_an_automatic_trigger_by_hand_is_an_input_error() -> None:
    """close_comments_* is automatic: applying it is bad input, pointing to advance and amend."""
    definition = wtpf()
    with pytest.raises(InputError) as caught:
        apply(definition, posted_draft1(), "close_comments_draft1", SEC, utc(2024, 8, 6),
              document="D")
    assert "is automatic" in str(caught.value)
    assert "prepflow amend" in str(caught.value)
    assert caught.value.exit_code == 2


def test_unknown_trigger_lists_the_valid_ones() -> None:
    """An unknown trigger is refused listing every manual trigger and those allowed now."""
    definition = wtpf()
    with pytest.raises(InputError) as caught:
        apply(definition, new(definition), "post_draft9", SEC, utc(2024, 8, 5), document="D")
    text = str(caught.value)
    assert "'post_draft9' is not a trigger" in text
    assert "post_draft1, post_draft2, post_draft3, post_draft4, post_final" in text
    assert "Allowed now: post_draft1." in text


def test_unknown_actor_lists_the_secretariat() -> None:
    """Someone not in the secretariat is refused by the 'member' rule (exit 1, audited by the
    shell); the message lists who may."""
    definition = wtpf()
    with pytest.raises(Refused, match=r"wtpf-secretariat \(WTPF Secretariat\)") as caught:
        apply(definition, new(definition), "post_draft1", "mallory", utc(2024, 8, 5),
              document="D")
    assert caught.value.rule is RuleId.MEMBER
    with pytest.raises(Refused, match="not a secretariat member"):
        amend(definition, new(definition), "forum", "2026-06-02", "mallory", "r",
              utc(2024, 8, 5))


@pytest.mark.parametrize("typed", ["WTPF Secretariat", "wtpf@itu.int", " WTPF@ITU.INT "])
def test_a_name_or_address_is_no_identity_but_the_refusal_names_the_id(typed: str) -> None:
    """Members are matched by id only (issue 10); a member's name or email is refused with a
    hint giving the id to use."""
    definition = wtpf()
    with pytest.raises(Refused, match="use the member id 'wtpf-secretariat'"):
        apply(definition, new(definition), "post_draft1", typed, utc(2024, 8, 5),
              document="D")


@pytest.mark.parametrize("document", [None, "", "   "])
def test_posting_without_a_document_is_an_input_error(document: str | None) -> None:
    """A posting carries its document reference; without one nothing happens."""
    definition = wtpf()
    with pytest.raises(InputError, match="--document"):
        apply(definition, new(definition), "post_draft1", SEC, utc(2024, 8, 5),
              document=document)


def test_posting_after_the_comment_deadline_is_refused_until_amended() -> None:
    """A draft whose deadline has passed is refused 'comment-window'; a new deadline allows it."""
    definition = wtpf()
    late = utc(2024, 8, 26, 22)  # the instant the First Draft's deadline passes
    with pytest.raises(Refused) as caught:
        apply(definition, new(definition), "post_draft1", SEC, late, document="D")
    assert caught.value.rule is RuleId.COMMENT_WINDOW
    assert "26 Aug 2024" in caught.value.message
    assert caught.value.dates == (date(2024, 8, 26), date(2024, 8, 27))  # deadline, today
    assert not caught.value.overridable
    just_in_time = apply(definition, new(definition), "post_draft1", SEC, late - ONE_SECOND,
                         document="D")
    assert just_in_time.after.regions[MAIN] == "draft1.comment_window"
    moved = amend(definition, new(definition), "draft1.comments", "2024-09-16", SEC,
                  "late posting", late).after
    assert apply(definition, moved, "post_draft1", SEC, late, document="D").changed


def test_final_without_forum_date_is_refused_and_overridable() -> None:
    """With the forum unset, posting the final is refused by six-weeks, which may be overridden."""
    definition, instance, _ = wtpf_at_final()
    now = utc(2026, 4, 13, 8)
    with pytest.raises(Refused) as caught:
        apply(definition, instance, "post_final", SEC, now, document="WTPF-26/final")
    assert caught.value.rule == "six-weeks"
    assert caught.value.overridable
    assert "not set" in caught.value.message
    with pytest.raises(InputError, match="--reason"):
        apply(definition, instance, "post_final", SEC, now, document="F", override=True)
    decision = apply(definition, instance, "post_final", SEC, now, document="F",
                     reason="Council has not fixed the dates yet", override=True)
    assert decision.after.regions[MAIN] == "final.posted"
    (override,) = decision.after.overrides
    assert (override.rule, override.what, override.by) == ("six-weeks", "post_final", SEC)
    assert override.reason == "Council has not fixed the dates yet"
    kinds = [(r.kind, r.trigger) for r in decision.records]
    assert kinds == [("transition", "post_final"), ("override", "post_final")]
    assert report(definition, decision.after, now).overrides == (override,)


def test_override_without_a_refusal_records_nothing() -> None:
    """--override when no rule objects posts normally and records no override."""
    definition, instance, _ = wtpf_at_final()
    instance = amend(definition, instance, "forum", "2026-06-02", SEC, "Council",
                     utc(2026, 3, 2)).after
    decision = apply(definition, instance, "post_final", SEC, utc(2026, 4, 13, 8),
                     document="F", reason="just in case", override=True)
    assert decision.after.overrides == ()
    assert [r.kind for r in decision.records] == ["transition"]


@pytest.mark.parametrize(
    ("now", "allowed"),
    [
        (utc(2026, 4, 20, 21, 59), True),  # 20 Apr 23:59 Geneva: 43 days
        (utc(2026, 4, 21, 21, 59), True),  # 21 Apr 23:59 Geneva: exactly 42 days
        (utc(2026, 4, 21, 22, 0), False),  # 22 Apr 00:00 Geneva: 41 days
    ],
)
def test_final_six_weeks_counts_geneva_days(now: datetime, allowed: bool) -> None:
    """The six weeks are counted in Geneva calendar days up to the forum's opening day."""
    definition, instance, _ = wtpf_at_final()
    instance = amend(definition, instance, "forum", "2026-06-02", SEC, "Council",
                     utc(2026, 3, 2)).after
    if allowed:
        assert apply(definition, instance, "post_final", SEC, now, document="F").changed
    else:
        with pytest.raises(Refused, match="six-weeks"):
            apply(definition, instance, "post_final", SEC, now, document="F")


def test_final_too_close_to_the_forum_names_dates_shortfall_and_latest_day() -> None:
    """Refusal text: posting day, forum day, days short and the latest allowed posting date."""
    definition, instance, _ = wtpf_at_final()
    instance = amend(definition, instance, "forum", "2026-06-02", SEC, "Council",
                     utc(2026, 3, 2)).after
    with pytest.raises(Refused) as caught:
        apply(definition, instance, "post_final", SEC, utc(2026, 4, 24, 8), document="F")
    message = caught.value.message
    for fragment in ["24 Apr 2026", "2 Jun 2026", "39 days", "requires 42", "3 days short",
                     "latest allowed posting date was 21 Apr 2026"]:
        assert fragment in message
    assert "5 Jun 2026" in caught.value.allowed  # the forum date that would make it legal
    assert caught.value.allowed_date == date(2026, 6, 5)
    assert caught.value.dates == (date(2026, 4, 24), date(2026, 6, 2), date(2026, 4, 21))
    assert caught.value.overridable


def test_moving_the_forum_earlier_after_the_final_is_refused_unless_overridden() -> None:
    """Once the final is out, a forum date breaking six weeks is refused; override records it."""
    definition, instance, _ = wtpf_at_final()
    instance = amend(definition, instance, "forum", "2026-06-02", SEC, "Council",
                     utc(2026, 3, 2)).after
    instance = apply(definition, instance, "post_final", SEC, utc(2026, 4, 13, 8),
                     document="F").after
    now = utc(2026, 4, 20)
    with pytest.raises(Refused) as caught:
        amend(definition, instance, "forum", "2026-05-10", SEC, "Council moved it", now)
    assert caught.value.rule == "six-weeks"
    assert caught.value.overridable
    assert "27 days" in caught.value.message
    later = amend(definition, instance, "forum", "2026-06-09", SEC, "Council", now)
    assert later.after.overrides == ()
    forced = amend(definition, instance, "forum", "2026-05-10", SEC, "Council decision",
                   now, override=True)
    assert [o.rule for o in forced.after.overrides] == ["six-weeks"]
    assert forced.after.overrides[0].what == "amend forum"
    assert [r.kind for r in forced.records] == ["amendment", "override", "notice"]
    assert forced.records[-1].inputs["event"] == "rule_at_risk"  # the secretariat is told


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("draft1.posting", "2024-08-06"),
        ("draft1.comments", "2024-09-30"),
        ("ieg1", "2024-10-14..2024-10-15"),
        ("draft2.consultation", "2025-01-10"),
    ],
)
def test_amending_what_already_happened_is_refused_history(key: str, value: str) -> None:
    """Postings, closed windows, finished meetings and closed consultations stay as they were."""
    definition = wtpf()
    instance = fix_meetings(definition, new(definition))
    instance = apply(definition, instance, "post_draft1", SEC, utc(2024, 8, 5, 8),
                     document="D").after
    instance = post(definition, instance, "post_draft2", utc(2024, 11, 4, 8)).after
    instance = advance(definition, instance, utc(2025, 1, 5)).after
    with pytest.raises(Refused) as caught:
        amend(definition, instance, key, value, SEC, "fix", utc(2025, 1, 5))
    assert caught.value.rule == "history"
    assert "already happened" in caught.value.message


def test_a_meeting_in_session_may_have_its_end_moved() -> None:
    """A meeting under way keeps its start but may end on another day."""
    definition = wtpf()
    instance = posted_draft1(fix_meetings(definition, new(definition)))
    instance = advance(definition, instance, utc(2024, 10, 7, 12)).after
    assert instance.regions[MAIN] == "draft1.ieg1"
    longer = amend(definition, instance, "ieg1", "2024-10-07..2024-10-09", SEC, "extra day",
                   utc(2024, 10, 7, 12)).after
    assert not advance(definition, longer, utc(2024, 10, 8, 22)).transitions
    assert advance(definition, longer, utc(2024, 10, 9, 22)).transitions
    with pytest.raises(Refused, match="'history'"):
        amend(definition, instance, "ieg1", "2024-10-08..2024-10-09", SEC, "moved start",
              utc(2024, 10, 7, 12))


@pytest.mark.parametrize(
    ("key", "value", "rule"),
    [
        ("ieg2", "2024-12-10", "sequence"),  # before the Second Draft's comments close
        ("draft2.posting", "2024-10-01", "sequence"),  # before the 1st IEG meeting (October)
        ("nominations", "2024-11-15", "nominations"),  # after the 1st IEG meeting
        ("draft1.comments", "2024-08-01", "sequence"),  # before the posting
        ("final.posting", "2026-05-01", "six-weeks"),  # 32 days before a 2 Jun forum
        ("forum", "2026-05-10", "six-weeks"),
    ],
)
def test_amend_rechecks_every_rule(key: str, value: str, rule: str) -> None:
    """An amendment that newly breaks any rule is refused naming the rule; override is possible."""
    definition = wtpf()
    instance = amend(definition, new(definition), "ieg1", "2024-10-07..2024-10-08", SEC, "r",
                     utc(2024, 7, 15)).after
    if key != "forum":
        instance = amend(definition, instance, "forum", "2026-06-02", SEC, "r",
                         utc(2024, 7, 15)).after
    with pytest.raises(Refused) as caught:
        amend(definition, instance, key, value, SEC, "try", utc(2024, 7, 20))
    assert caught.value.rule == rule
    assert "breaks a rule" in caught.value.message
    forced = amend(definition, instance, key, value, SEC, "try", utc(2024, 7, 20),
                   override=True)
    assert rule in [o.rule for o in forced.after.overrides]


def test_amend_with_a_rule_already_broken_allows_unrelated_changes() -> None:
    """Only newly broken rules refuse: an overridden forum date does not block other amendments."""
    definition = wtpf()
    instance = amend(definition, new(definition), "forum", "2026-05-10", SEC, "Council",
                     utc(2024, 7, 15), override=True).after
    moved = amend(definition, instance, "draft3.comments", "2025-06-20", SEC, "more time",
                  utc(2024, 7, 16))
    assert moved.after.amendments["draft3.comments"].reason == "more time"
    assert moved.after.overrides == instance.overrides


@pytest.mark.parametrize(
    ("key", "value", "reason", "fragment"),
    [
        ("ieg9", "2024-10-07", "r", "Milestones: nominations, draft1.posting"),
        ("ieg1", "October", "r", "Write 2025-02-10, 2025-02, or 2025-02-10..2025-02-12"),
        ("ieg1", "2024-10-08..2024-10-07", "r", "the end comes before the start"),
        ("ieg1", "2024-10-07", "  ", "needs a --reason"),
    ],
)
def test_amend_bad_input_is_an_input_error(
    key: str, value: str, reason: str, fragment: str
) -> None:
    """An unknown milestone, a malformed date or a missing reason is bad input (exit 2)."""
    definition = wtpf()
    with pytest.raises(InputError) as caught:
        amend(definition, new(definition), key, value, SEC, reason, utc(2024, 7, 15))
    assert fragment in str(caught.value)


def test_amendment_is_recorded_with_from_to_and_reason() -> None:
    """An amendment keeps who, when, why, and the old and new dates."""
    definition = wtpf()
    decision = amend(definition, new(definition), "ieg1", "2024-10-07..2024-10-08", SEC,
                     "CL-24/44", utc(2024, 7, 15))
    (record,) = [r for r in decision.records if r.kind != "notice"]
    assert record.kind == "amendment"
    assert record.reason == "CL-24/44"
    assert record.inputs == {"milestone": "ieg1", "from": "October 2024",
                             "to": "7 Oct 2024 – 8 Oct 2024",
                             "amendment": {"start": "2024-10-07", "end": "2024-10-08",
                                           "at": "2024-07-15T00:00:00Z", "by": SEC,
                                           "reason": "CL-24/44"}}
    kept = decision.after.amendments["ieg1"]
    assert (kept.by, kept.at, str(kept.start), str(kept.end)) == (
        SEC, utc(2024, 7, 15), "2024-10-07", "2024-10-08")


def test_consultation_opens_with_its_draft_and_closes_at_its_deadline() -> None:
    """Posting the Second Draft opens its public consultation; 20 Dec 2024 (CET) closes it."""
    definition = wtpf()
    instance = posted_draft1(fix_meetings(definition, new(definition)))
    instance = advance(definition, instance, utc(2024, 10, 9)).after
    posted = apply(definition, instance, "post_draft2", SEC, utc(2024, 11, 4, 8),
                   document="WTPF-26/2")
    assert [r.trigger for r in posted.transitions] == ["post_draft2", "open_consultation_draft2"]
    assert posted.after.regions[CONSULTATION] == "draft2.consultation_open"
    assert posted.transitions[1].inputs["due"] == utc(2024, 11, 4, 8).isoformat()
    deadline = utc(2024, 12, 20, 23)
    assert not advance(definition, posted.after, deadline - ONE_SECOND).transitions
    closed = advance(definition, posted.after, deadline)
    assert {r.trigger for r in closed.transitions} == {"close_comments_draft2",
                                                       "close_consultation_draft2"}
    assert closed.after.regions[CONSULTATION] == "draft2.consultation_closed"


def test_first_draft_has_no_consultation() -> None:
    """The First Draft (no public consultation) leaves the consultation region untouched."""
    definition = wtpf()
    instance = advance(definition, posted_draft1(), utc(2024, 9, 1)).after
    assert instance.regions[CONSULTATION] == "none"


def test_effects_have_idempotency_keys_unique_per_trigger() -> None:
    """Each transition's effect has key '<process>:<trigger>', unique over a whole run."""
    definition, instance, decisions = wtpf_at_final()
    instance = amend(definition, instance, "forum", "2026-06-02", SEC, "Council",
                     utc(2026, 3, 2)).after
    decisions.append(apply(definition, instance, "post_final", SEC, utc(2026, 4, 13, 8),
                           document="F"))
    decisions.append(advance(definition, decisions[-1].after, utc(2026, 6, 2, 8)))
    decisions.append(walk_agenda(definition, decisions[-1].after, utc(2026, 6, 3, 8)))
    decisions.append(advance(definition, decisions[-1].after, utc(2026, 6, 10)))
    assert decisions[-1].after.regions[MAIN] == "closed"
    every = [e for d in decisions for e in d.effects]
    assert len({e.key for e in every}) == len(every)  # notices too: each decided once
    effects = [e for e in every if e.trigger is not None]
    keys = [e.key for e in effects]
    assert len(keys) == len(set(keys))
    assert {e.trigger for e in effects} == set(decisions[-1].after.happened)
    for effect in effects:
        assert effect.key == f"wtpf-26:{effect.trigger}"
        assert effect.process_id == "wtpf-26"
    events = [e.event for e in effects]
    assert events.count("draft_posted") == 4
    assert events.count("meeting_started") == events.count("meeting_ended") == 4
    agenda = len(definition.forum.agenda) + 1  # each item and the agenda's end
    assert events[-3 - agenda:] == ["final_posted", "forum_opened", *["forum_agenda"] * agenda,
                                    "forum_closed"]


def test_same_step_decided_twice_gives_the_same_effect_key() -> None:
    """A retried decision yields the same key, so the shell sends the email once."""
    definition = wtpf()
    instance = posted_draft1()
    first = advance(definition, instance, utc(2024, 9, 1)).effects
    again = advance(definition, instance, utc(2024, 9, 2)).effects
    assert [e.key for e in first] == [e.key for e in again] == ["wtpf-26:close_comments_draft1"]


def test_status_warns_about_overdue_postings_and_rules_at_risk() -> None:
    """Status names an overdue posting and the six-week rule at risk while the forum is unset."""
    definition = wtpf()
    status = report(definition, new(definition), utc(2024, 8, 7))
    assert any(w.kind is WarningKind.OVERDUE and w.milestone == "draft1.posting"
               and w.text.startswith("OVERDUE: 'First Draft posted'") for w in status.warnings)
    assert any(w.kind is WarningKind.RULE_AT_RISK and w.rule == "six-weeks"
               and w.text.startswith("RULE AT RISK (six-weeks)") for w in status.warnings)
    assert status.upcoming[0].key == "draft1.posting"


def test_breaking_a_broken_rule_further_needs_its_own_override() -> None:
    """Forum moved too early with an override; moving it earlier still is refused without one."""
    definition, instance, _ = wtpf_at_final()
    instance = apply(definition, instance, "post_final", SEC, utc(2026, 4, 13, 8), document="F",
                     override=True, reason="forum not set").after
    now = utc(2026, 4, 20)
    instance = amend(definition, instance, "forum", "2026-05-10", SEC, "Council", now,
                     override=True).after
    with pytest.raises(Refused) as caught:
        amend(definition, instance, "forum", "2026-04-30", SEC, "Council again", now)
    assert caught.value.rule == "six-weeks"
    later = amend(definition, instance, "forum", "2026-05-20", SEC, "Council relents", now)
    assert later.after.amendments["forum"].start.day == 20  # better, though still short: allowed


def test_a_deadline_moved_into_the_past_is_refused_unless_overridden() -> None:
    """Moving comments due to a day already past would close the window at the next tick."""
    definition = wtpf()
    instance = posted_draft1(fix_meetings(definition, new(definition)))
    now = utc(2024, 8, 8)
    with pytest.raises(Refused) as caught:
        amend(definition, instance, "draft1.comments", "2024-08-06", SEC, "typo", now)
    assert caught.value.rule == "past"
    assert caught.value.overridable
    forced = amend(definition, instance, "draft1.comments", "2024-08-06", SEC, "close early",
                   now, override=True)
    assert [o.rule for o in forced.after.overrides] == ["past"]
