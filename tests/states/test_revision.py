"""Revising a running process's definition: history kept, rules re-checked, changes listed."""

from __future__ import annotations

import pytest

from states.dates import PlanDate
from states.definition import Mode, ProcessDefinition, parse_definition
from states.errors import InputError, Refused, RuleId
from states.invitations import Invitation
from states.machine import build_table
from states.reshape import Dates, Session, add_meeting, cancel_meeting, split_meeting
from states.revision import revise
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
    decision = revise(definition, new_def, instance, SEC, "CWG", utc(2024, 11, 5))
    (record,) = [r for r in decision.records if r.kind == "revision"]
    assert record.inputs["to"] == new_def.fingerprint()
    assert record.inputs["definition"] == new_def.model_dump(mode="json")
    assert "ieg4.place: none → Geneva" in record.inputs["changes"]
    assert "ieg4" not in decision.after.amendments  # the new version states its dates


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
