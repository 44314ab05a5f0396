"""Revising a running process's definition: history kept, rules re-checked, changes listed."""

from __future__ import annotations

import re

import pytest

from states.dates import PlanDate
from states.definition import Mode, ProcessDefinition, parse_definition
from states.errors import InputError, Refused, RuleId
from states.invitations import Invitation
from states.machine import build_table
from states.messages import ForumUpdated, MeetingInvitation, MeetingUpdated
from states.replay import rebuild
from states.reshape import Dates, Session, add_meeting, cancel_meeting, change_forum, split_meeting
from states.revision import revise, revised
from tests.states.helpers import SEC, WTPF26, fix_meetings, new, post, raw, utc, wtpf

SESSIONS = [Session.parse("physical:2026-01-20..2026-01-22@Geneva"),
            Session.parse("informal virtual:2026-03-10"),
            Session.parse("informal virtual:2026-04-02 as ieg4-last")]


def test_old_files_stay_valid_and_physical_is_in_person() -> None:
    """config/wtpf26.yaml reads as before; 'physical' is accepted as in-person."""
    data = raw(WTPF26)
    data["cycles"][0]["meetings"][0]["mode"] = "physical"
    assert parse_definition(data, "x").cycles[0].meetings[0].mode is Mode.IN_PERSON
    assert not any(m.informal for c in wtpf().cycles for m in c.meetings)


def test_days_give_start_and_end_and_must_be_in_order() -> None:
    """A meeting by its days starts on the first and ends on the last; unordered days fail."""
    data = raw(WTPF26)
    meeting = data["cycles"][0]["meetings"][0]
    meeting.pop("start")
    meeting["days"] = ["2024-10-07", "2024-10-09", "2024-10-14"]
    parsed = parse_definition(data, "x").cycles[0].meetings[0]
    assert (str(parsed.start), str(parsed.end)) == ("2024-10-07", "2024-10-14")
    meeting["days"] = ["2024-10-09", "2024-10-07"]
    meeting["start"], meeting["end"] = "2024-10-09", "2024-10-07"
    with pytest.raises(InputError):
        parse_definition(data, "x")


def test_informal_sessions_are_not_states() -> None:
    """A split's informal sessions gate nothing: the machine has ieg4 only."""
    split = split_meeting(wtpf(), "ieg4", SESSIONS)
    table = build_table(split)
    assert "start_ieg4" in table.by_trigger
    assert not {"start_ieg4-2", "start_ieg4-last"} & set(table.by_trigger)
    assert [m.id for m in split.cycles[3].meetings] == ["ieg4", "ieg4-2", "ieg4-last"]


def test_session_syntax() -> None:
    """Sessions name mode, dates (several or non-contiguous), place and optional id."""
    session = Session.parse("informal hybrid:2026-03-10,2026-03-12@Geneva as x-1")
    assert (session.mode, session.place, session.informal, session.id) == (
        Mode.HYBRID, "Geneva", True, "x-1")
    assert session.dates.days == (PlanDate(2026, 3, 10), PlanDate(2026, 3, 12))
    with pytest.raises(InputError, match="MODE:DATES"):
        Session.parse("Tuesday")


def _running() -> tuple[ProcessDefinition, object]:
    definition = wtpf()
    instance = fix_meetings(definition, new(definition))
    instance = post(definition, instance, "post_draft1", utc(2024, 8, 5, 8)).after
    instance = post(definition, instance, "post_draft2", utc(2024, 11, 4, 8)).after
    return definition, instance


def test_a_revision_lists_its_changes_and_keeps_the_new_definition() -> None:
    """Its record holds both hashes, the changes in words and the whole new definition."""
    definition, instance = _running()
    new_def = split_meeting(definition, "ieg4", SESSIONS)
    decision, in_force = revised(definition, new_def, instance, SEC, "CWG", utc(2024, 11, 5))
    (record,) = [r for r in decision.records if r.kind == "revision"]
    assert record.inputs["to"] == in_force.fingerprint()
    assert record.inputs["definition"] == in_force.model_dump(mode="json")
    assert "ieg4.place: none → Geneva" in record.inputs["changes"]
    assert "ieg4.start: 2026-02 → 2026-01-20" in record.inputs["changes"]


def test_a_split_keeps_the_plan_and_records_the_move_as_a_change() -> None:
    """ieg4 keeps its planned days in the version in force; the split's new days are an
    amendment with its reason, the new mode and place a relocation; the log rebuilds both."""
    definition, instance = _running()
    planned = definition.cycles[3].meetings[0]
    decision, in_force = revised(definition, split_meeting(definition, "ieg4", SESSIONS),
                                 instance, SEC, "CWG", utc(2024, 11, 5))
    kept = in_force.cycles[3].meetings[0]
    assert (kept.start, kept.end, kept.mode) == (planned.start, planned.end, Mode.IN_PERSON)
    moved = decision.after.history["ieg4"][-1]
    assert (str(moved.start), str(moved.end), moved.reason) == ("2026-01-20", "2026-01-22",
                                                                "CWG")
    assert decision.after.amendments["ieg4"] == moved
    (relocation,) = decision.after.relocations["ieg4"]
    assert relocation.text() == "mode virtual → in-person, place — → Geneva"
    assert "ieg4-2" not in decision.after.history  # a new session's days are its plan
    again = rebuild(in_force, decision.records, instance.process_id)  # the revision's records
    assert (again.amendments["ieg4"], again.history["ieg4"][-1]) == (moved, moved)
    assert again.relocations == decision.after.relocations


def test_a_split_tells_why_and_lists_every_session() -> None:
    """The updated invitation and the new session's invitation carry the reason and both
    sessions in order (typed payload)."""
    definition, instance = _running()
    sessions = [Session.parse("physical:2025-02-10..2025-02-12@Geneva"),
                Session.parse("informal virtual:2025-03-10")]
    decision = revise(definition, split_meeting(definition, "ieg2", sessions), instance, SEC,
                      "CWG decision", utc(2024, 11, 5), sessions=("ieg2", "ieg2-2"))
    sent = {e.data["meeting"]: e.message for e in decision.effects
            if e.event in ("meeting_updated", "meeting_invitation")}
    updated = sent["ieg2"]
    assert isinstance(updated, MeetingUpdated)
    assert updated.reason == "CWG decision"
    assert [(s.meeting, s.start, s.end, s.mode, s.place, s.informal)
            for s in updated.sessions] == [
        ("ieg2", "2025-02-10", "2025-02-12", "in-person", "Geneva", False),
        ("ieg2-2", "2025-03-10", "2025-03-10", "virtual", None, True)]
    invited = sent["ieg2-2"]
    assert isinstance(invited, MeetingInvitation)
    assert (invited.reason, len(invited.sessions)) == ("CWG decision", 2)


def test_a_new_forum_mode_and_place_tell_the_experts() -> None:
    """The forum held hybrid in Geneva: a 'forum_updated' message (old → new, with the reason),
    decided once, and a relocation in the forum's history."""
    definition, instance = _running()
    decision = revise(definition, change_forum(definition, Mode.HYBRID, "Geneva"), instance,
                      SEC, "Council", utc(2024, 11, 5))
    (effect,) = [e for e in decision.effects if e.event == "forum_updated"]
    assert isinstance(effect.message, ForumUpdated)
    assert (effect.message.mode, effect.message.place, effect.message.previous_place,
            effect.message.reason) == ("hybrid", "Geneva", definition.forum.place, "Council")
    assert effect.key in decision.after.notices
    assert effect.data["audience"] == "experts"
    (relocation,) = decision.after.relocations["forum"]
    assert relocation.place is not None
    assert relocation.place.after == "Geneva"


def test_an_end_before_the_start_is_said_in_the_commands_terms() -> None:
    """--end before --start names both options; a session's reversed days name the session."""
    with pytest.raises(InputError, match="--end 2026-05-01 is before --start 2026-05-05"):
        Dates.parse("2026-05-05..2026-05-01").check()
    with pytest.raises(InputError, match=re.escape("--session 'virtual:2026-05-05..2026-05-01'")):
        Session.parse("virtual:2026-05-05..2026-05-01")


def test_a_definition_problem_names_the_meeting_not_an_index() -> None:
    """A problem the new definition still has is said of the meeting's id."""
    with pytest.raises(InputError) as bad:
        add_meeting(wtpf(), "draft4", "ieg4b", "", Dates.parse("2026-03-10"))
    assert "meeting 'ieg4b'" in str(bad.value)
    assert "meetings[" not in str(bad.value)


def test_removing_a_held_meeting_is_refused() -> None:
    """ieg1 has ended: cancelling it is refused by the history rule."""
    definition, instance = _running()
    with pytest.raises(Refused) as refused:
        revise(definition, cancel_meeting(definition, "ieg1"), instance, SEC, "x",
               utc(2024, 11, 5))
    assert refused.value.rule == RuleId.HISTORY


def test_a_meeting_added_in_the_past_is_refused() -> None:
    """An informal session dated before now would be recorded as if ahead: refused."""
    definition, instance = _running()
    added = add_meeting(definition, "draft2", "ieg2x", "x", Dates.parse("2024-11-04"),
                        informal=True)
    with pytest.raises(Refused) as refused:
        revise(definition, added, instance, SEC, "x", utc(2024, 11, 5))
    assert refused.value.rule == RuleId.PAST


def test_the_same_definition_is_nothing_to_revise() -> None:
    """Revising to the definition in force is bad input, not an empty audit record."""
    definition, instance = _running()
    with pytest.raises(InputError, match="nothing to revise"):
        revise(definition, definition, instance, SEC, "x", utc(2024, 11, 5))


def test_stored_invitations_read_in_both_forms() -> None:
    """Release 0.1's 'sequence|start..end' and the detailed object both read back."""
    old = Invitation.model_validate(Invitation.parse("2|2026-02-16..2026-02-16"))
    assert (old.stored(), old.details) == ("2|2026-02-16..2026-02-16", False)
    detailed = old.with_details("Geneva", "in-person", None)
    again = Invitation.model_validate(Invitation.parse(detailed.stored()))
    assert again == detailed


def test_a_meeting_under_way_without_a_tick_is_still_history() -> None:
    """ieg1 began at 09:30 but no tick recorded it: the revision catches up, then refuses."""
    definition = wtpf()
    instance = fix_meetings(definition, new(definition))
    instance = post(definition, instance, "post_draft1", utc(2024, 8, 5, 8)).after
    with pytest.raises(Refused, match="already started") as refused:
        revise(definition, cancel_meeting(definition, "ieg1"), instance, SEC, "x",
               utc(2024, 10, 7, 12))
    assert refused.value.rule == RuleId.HISTORY
