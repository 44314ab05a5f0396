"""The review of Opinions and the forum: refusals name the forum's date, Opinions move one stage
at a time, commands list only what they take, and every refusal cites its source."""

from __future__ import annotations

from datetime import date

import pytest

from states import InputError, Refused, amend
from states.errors import RuleId
from states.forum import Stage
from states.opinions import add, forum_next, move, outcome
from states.reshape import cancel_meeting
from states.revision import revise
from tests.states.helpers import (
    SEC,
    fix_meetings,
    new,
    other,
    post,
    utc,
    wtpf,
    wtpf_at_final,
)


def test_outcome_before_the_forum_names_its_date_or_how_to_set_it() -> None:
    """Undated: says so and how to amend it; dated: the opening day in Geneva time, as dates."""
    definition, instance, _ = wtpf_at_final()
    instance = add(definition, instance, "op-1", "T", "space", SEC, utc(2026, 3, 2)).after
    with pytest.raises(Refused) as undated:
        outcome(definition, instance, "op-1", "adopted", SEC, utc(2026, 3, 3))
    assert undated.value.rule is RuleId.OUTCOME_BEFORE_FORUM
    assert "the forum's date is not set yet" in undated.value.message
    assert "prepflow amend wtpf-26 forum YYYY-MM-DD" in undated.value.allowed
    assert (undated.value.dates, undated.value.allowed_date) == ((), None)
    dated = amend(definition, instance, "forum", "2026-06-15", SEC, "Council",
                  utc(2026, 3, 3)).after
    with pytest.raises(Refused) as refused:
        outcome(definition, dated, "op-1", "adopted", SEC, utc(2026, 3, 4))
    assert "the forum opens on 15 Jun 2026 (Geneva time); record outcomes from then" in str(
        refused.value)
    assert (refused.value.dates, refused.value.allowed_date) == ((date(2026, 6, 15),),
                                                                  date(2026, 6, 15))
    assert "(source: Resolution 2" in str(refused.value)


def test_forum_next_before_the_forum_names_its_effective_date() -> None:
    """Another forum's planned opening, in its own zone; once amended, the amended day."""
    rpd = other()
    instance = new(rpd, utc(2026, 1, 1))
    with pytest.raises(Refused) as planned:
        forum_next(rpd, instance, "ana", utc(2026, 1, 2))
    assert planned.value.rule is RuleId.OUTCOME_BEFORE_FORUM
    assert "the forum opens on 16 Nov 2026 (New York time)" in planned.value.message
    assert planned.value.allowed_date == date(2026, 11, 16)
    moved = amend(rpd, instance, "forum", "2026-11-23", "ana", "venue", utc(2026, 1, 2)).after
    with pytest.raises(Refused) as amended:
        forum_next(rpd, moved, "ana", utc(2026, 1, 3))
    assert amended.value.allowed_date == date(2026, 11, 23)
    assert "test fixture: not a real process" in amended.value.citation


def test_the_default_agenda_names_no_forum_and_wtpf_keeps_its_own() -> None:
    """A definition without an agenda gets Annex 1's order in generic words; WTPF-26 its own."""
    agenda = other().forum.agenda
    assert agenda[0] == "Inauguration of the Forum"
    assert agenda[3] == "Organization of the work of the Forum"
    assert not any("WTPF" in item or "World Telecommunication" in item for item in agenda)
    assert len(agenda) == 10
    assert agenda[7] == "Consideration of draft opinions"
    wtpf_agenda = wtpf().forum.agenda
    assert wtpf_agenda[0] == "Inauguration of the seventh World Telecommunication/ICT Policy Forum"
    assert wtpf_agenda[3] == "Organization of the work of the WTPF"
    assert wtpf_agenda[1:3] == agenda[1:3]
    assert wtpf_agenda[4:] == agenda[4:]


def test_an_unknown_outcome_lists_only_the_outcomes() -> None:
    """'maybe' as an outcome names adopted | not-adopted | withdrawn, no preparation stage."""
    definition = wtpf()
    instance = add(definition, new(definition), "op-1", "T", "space", SEC, utc(2024, 8, 1)).after
    with pytest.raises(InputError) as bad:
        outcome(definition, instance, "op-1", "maybe", SEC, utc(2024, 8, 2))
    assert "use one of adopted | not-adopted | withdrawn." in str(bad.value)
    assert "outline" not in str(bad.value)
    assert "annexed" not in str(bad.value)


def test_leaving_the_adoption_without_a_document_asks_for_the_chairs_report() -> None:
    """No internal trigger name; the chair's report's reference, with the forum's example."""
    definition, instance, _ = wtpf_at_final()
    instance = amend(definition, instance, "forum", "2026-06-02", SEC, "Council",
                     utc(2026, 3, 4)).after
    instance = post(definition, instance, "post_final", utc(2026, 4, 13, 8)).after
    instance = forum_next(definition, instance, SEC, utc(2026, 6, 2, 7)).after
    while instance.forum.item < definition.forum.adoption_item:
        chair = "Ms Chair" if instance.forum.item == definition.forum.chair_item else None
        instance = forum_next(definition, instance, SEC, utc(2026, 6, 2, 8), chair).after
    with pytest.raises(InputError) as missing:
        forum_next(definition, instance, SEC, utc(2026, 6, 2, 9))
    text = str(missing.value)
    assert "give the chair's report's reference with --document (e.g. --document WTPF-26/CR)" \
        in text
    assert "agenda_" not in text


def test_an_opinion_moves_one_stage_at_a_time_and_final_only_with_the_final_report() -> None:
    """Outline → final is refused naming 'possible'; 'final' in the Fourth Draft's window is
    refused; once the final report is in preparation it is allowed; withdrawal at any time."""
    definition = wtpf()
    instance = fix_meetings(definition, new(definition))
    for cycle, at in (("draft1", utc(2024, 8, 5, 8)), ("draft2", utc(2024, 11, 4, 8)),
                      ("draft3", utc(2025, 3, 31, 8)), ("draft4", utc(2025, 11, 3, 8))):
        instance = post(definition, instance, f"post_{cycle}", at).after
    instance = add(definition, instance, "op-1", "T", "space", SEC, utc(2025, 11, 4)).after
    with pytest.raises(Refused) as jump:
        move(definition, instance, "op-1", "final", SEC, utc(2025, 11, 5))
    assert jump.value.rule is RuleId.OPINION_STAGE
    assert "'possible' (possible draft Opinion)" in jump.value.allowed
    assert "Council Decision 641, Annex 2" in jump.value.citation
    for stage in ("possible", "annexed"):
        instance = move(definition, instance, "op-1", stage, SEC, utc(2025, 11, 5)).after
    with pytest.raises(Refused) as early:
        move(definition, instance, "op-1", "final", SEC, utc(2025, 11, 6))
    assert "every draft has been posted and the final report is in preparation" in str(
        early.value)
    assert "withdrawn" in early.value.allowed
    assert instance.opinions["op-1"].stage is Stage.ANNEXED
    withdrawn = outcome(definition, instance, "op-1", "withdrawn", SEC, utc(2025, 11, 6)).after
    assert withdrawn.opinions["op-1"].stage is Stage.WITHDRAWN
    definition, at_final, _ = wtpf_at_final()
    at_final = add(definition, at_final, "op-2", "T", "space", SEC, utc(2026, 3, 2)).after
    for stage in ("possible", "annexed", "final"):
        at_final = move(definition, at_final, "op-2", stage, SEC, utc(2026, 3, 2)).after
    assert at_final.opinions["op-2"].stage is Stage.FINAL
    with pytest.raises(Refused, match="goes before the forum as it is"):
        move(definition, at_final, "op-2", "final", SEC, utc(2026, 3, 3))


def test_history_and_revision_refusals_cite_their_source() -> None:
    """Amending a meeting held, and a revision dropping a started meeting, say '(source: …)'."""
    definition = wtpf()
    instance = fix_meetings(definition, new(definition))
    instance = post(definition, instance, "post_draft1", utc(2024, 8, 5, 8)).after
    with pytest.raises(Refused) as amended:
        amend(definition, instance, "draft1.posting", "2024-08-06", SEC, "x", utc(2024, 8, 6))
    assert amended.value.rule is RuleId.HISTORY
    assert "(source: " in str(amended.value)
    instance = post(definition, instance, "post_draft2", utc(2024, 11, 4, 8)).after
    with pytest.raises(Refused) as revised:
        revise(definition, cancel_meeting(definition, "ieg1"), instance, SEC, "x",
               utc(2024, 11, 5))
    assert revised.value.rule is RuleId.HISTORY
    assert revised.value.citation
    assert f"(source: {revised.value.citation})" in str(revised.value)
