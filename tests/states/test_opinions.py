"""Draft Opinions and the Forum's agenda in the core: stages, guards with their citations, the
agenda as states, and audit records that rebuild what changed."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from states import Decision, InputError, Instance, Refused, advance, amend, parse_definition
from states.decision import Record
from states.errors import RuleId
from states.forum import PREPARATION, ForumRecord, Opinion, Stage
from states.instance import Happening
from states.machine import AGENDA, MAIN
from states.opinions import add, forum_next, move, outcome
from states.replay import rebuild
from tests.states.helpers import (
    OTHER,
    SEC,
    new,
    other,
    post,
    raw,
    utc,
    walk_agenda,
    wtpf,
    wtpf_at_final,
)


def at_forum(opinions: dict[str, str]) -> tuple[Instance, Any]:
    """WTPF-26 with these Opinions (id → stage before the final report), the forum set for
    2 June 2026, the final report posted and the forum open."""
    definition, instance, _ = wtpf_at_final()
    for number, (opinion, stage) in enumerate(opinions.items()):
        instance = add(definition, instance, opinion, f"Opinion {number}", "space", SEC,
                       utc(2026, 3, 2)).after
        for step in PREPARATION[1:PREPARATION.index(Stage(stage)) + 1]:  # one at a time
            instance = move(definition, instance, opinion, step, SEC, utc(2026, 3, 3)).after
    instance = amend(definition, instance, "forum", "2026-06-02", SEC, "Council",
                     utc(2026, 3, 4)).after
    instance = post(definition, instance, "post_final", utc(2026, 4, 13, 8)).after
    return advance(definition, instance, utc(2026, 6, 2, 6)).after, definition


def to_item(instance: Instance, number: int) -> Instance:
    """The forum's agenda walked to item ``number`` (the chair named on the way)."""
    definition = wtpf()
    while instance.forum.item < number:
        chair = "Ms Chair" if instance.forum.item == definition.forum.chair_item else None
        instance = forum_next(definition, instance, SEC, utc(2026, 6, 2, 8), chair).after
    return instance


def test_an_opinion_records_where_the_process_stood() -> None:
    """Added in the Second Draft's window, it records cycle draft2 and the 1st IEG meeting;
    its audit record carries the whole Opinion."""
    definition = wtpf()
    instance = post(definition, new(definition), "post_draft1", utc(2024, 8, 5, 8)).after
    instance = amend(definition, instance, "ieg1", "2024-10-07..2024-10-08", SEC, "CL-24/44",
                     utc(2024, 8, 6)).after
    instance = post(definition, instance, "post_draft2", utc(2024, 11, 4, 8)).after
    decision = add(definition, instance, "op-1", "Affordable access", "digital-divides", SEC,
                   utc(2024, 11, 5))
    opinion = decision.after.opinions["op-1"]
    assert (opinion.stage, opinion.presented_in.cycle, opinion.presented_in.meeting) == (
        Stage.OUTLINE, "draft2", "ieg1")
    (record,) = decision.records
    assert record.kind == "opinion"
    assert Opinion.model_validate(record.inputs["opinion"]) == opinion


def test_moves_go_forward_and_remember_no_consensus() -> None:
    """Possible without IEG consensus marks it for good; going back is refused, citing."""
    definition = wtpf()
    instance = add(definition, new(definition), "op-1", "T", "green", SEC, utc(2024, 8, 1)).after
    instance = move(definition, instance, "op-1", "possible", SEC, utc(2024, 8, 2),
                    consensus=False).after
    instance = move(definition, instance, "op-1", "annexed", SEC, utc(2024, 8, 3)).after
    opinion = instance.opinions["op-1"]
    assert opinion.stage is Stage.ANNEXED
    assert opinion.consensus is False
    assert [(c.stage, c.consensus) for c in opinion.history] == [
        (Stage.OUTLINE, True), (Stage.POSSIBLE, False), (Stage.ANNEXED, True)]
    with pytest.raises(Refused) as back:
        move(definition, instance, "op-1", "possible", SEC, utc(2024, 8, 4))
    assert back.value.rule is RuleId.OPINION_STAGE
    assert "Council Decision 641, Annex 2" in str(back.value)


@pytest.mark.parametrize(("opinion_id", "theme", "expected"), [
    ("op-1", "space", "already used"),
    ("op-2", "nope", "green (Green digital transformation"),
    ("op-2", None, "give --theme, one of"),
    ("Op 2", "space", "lower-case letters"),
])
def test_bad_opinion_input_is_an_input_error(opinion_id: str, theme: str | None,
                                             expected: str) -> None:
    """A reused id, an unknown or missing theme (the themes listed), a malformed id: exit 2."""
    definition = wtpf()
    instance = add(definition, new(definition), "op-1", "T", "space", SEC, utc(2024, 8, 1)).after
    with pytest.raises(InputError, match=expected.replace("(", r"\(")):
        add(definition, instance, opinion_id, "T", theme, SEC, utc(2024, 8, 2))


def test_no_new_opinion_once_the_final_report_is_posted() -> None:
    """Resolution 2, resolves 10, cited from the definition; another forum cites its source."""
    instance, definition = at_forum({})
    with pytest.raises(Refused) as refused:
        add(definition, instance, "op-9", "Late", "space", SEC, utc(2026, 6, 2, 9))
    assert refused.value.rule is RuleId.NEW_OPINION
    assert "Resolution 2 (Rev. Bucharest, 2022), resolves 10" in str(refused.value)
    rpd = other()  # no citations of its own: its source is cited
    state = new(rpd, utc(2026, 1, 1))
    posted = Happening(trigger="post_final", at=utc(2026, 9, 14, 14), by="ana", document="D")
    done = state.model_copy(update={"happened": {"post_final": posted}})
    with pytest.raises(Refused, match="test fixture: not a real process"):
        add(rpd, done, "op-1", "Late", None, "ana", utc(2026, 9, 20))


def test_outcomes_only_at_the_forum_while_its_opinions_are_considered() -> None:
    """Before item 8 refused (agenda), during it adopted; not before the forum (forum-not-open);
    withdrawn any time before an outcome; an outcome is final."""
    definition, before, _ = wtpf_at_final()
    before = add(definition, before, "op-1", "T", "space", SEC, utc(2026, 3, 2)).after
    with pytest.raises(Refused) as early:
        outcome(definition, before, "op-1", "adopted", SEC, utc(2026, 3, 3))
    assert early.value.rule is RuleId.OUTCOME_BEFORE_FORUM
    withdrawn = outcome(definition, before, "op-1", "withdrawn", SEC, utc(2026, 3, 3)).after
    assert withdrawn.opinions["op-1"].stage is Stage.WITHDRAWN
    instance, _ = at_forum({"op-1": "final", "op-2": "annexed"})
    with pytest.raises(Refused) as too_soon:
        outcome(definition, to_item(instance, 7), "op-1", "adopted", SEC, utc(2026, 6, 2, 9))
    assert too_soon.value.rule is RuleId.AGENDA
    considering = to_item(instance, 8)
    adopted = outcome(definition, considering, "op-1", "adopted", SEC, utc(2026, 6, 2, 9)).after
    assert adopted.opinions["op-1"].stage is Stage.ADOPTED
    with pytest.raises(Refused) as twice:
        outcome(definition, adopted, "op-1", "not-adopted", SEC, utc(2026, 6, 2, 10))
    assert twice.value.rule is RuleId.OPINION_STAGE
    with pytest.raises(Refused, match="not in the final report"):
        outcome(definition, adopted, "op-2", "adopted", SEC, utc(2026, 6, 2, 10))


def test_the_agenda_is_states_of_the_forum_and_the_process_closes_after_it() -> None:
    """Items in order, the chair named, the report adopted with every Opinion decided; the
    forum's end does not close the process until the agenda is done."""
    instance, definition = at_forum({"op-1": "final", "op-2": "final"})
    assert instance.regions[MAIN] == "forum"
    held = advance(definition, instance, utc(2026, 6, 5)).after
    assert held.regions[MAIN] == "forum"  # its end passed, its agenda not done
    electing = forum_next(definition, forum_next(definition, instance, SEC,
                                                 utc(2026, 6, 2, 7)).after, SEC,
                          utc(2026, 6, 2, 8)).after
    assert electing.regions[AGENDA] == "agenda.2-election-of-the-chair"
    with pytest.raises(InputError, match="--chair NAME"):
        forum_next(definition, electing, SEC, utc(2026, 6, 2, 9))
    at_adoption = to_item(instance, 9)
    assert at_adoption.forum.working_groups == ("op-1", "op-2")
    with pytest.raises(Refused, match="still without one: op-1, op-2"):
        forum_next(definition, at_adoption, SEC, utc(2026, 6, 3), document="WTPF-26/CR")
    for opinion, result in (("op-1", "adopted"), ("op-2", "not-adopted")):
        at_adoption = outcome(definition, at_adoption, opinion, result, SEC, utc(2026, 6, 3)).after
    with pytest.raises(InputError, match="--document"):
        forum_next(definition, at_adoption, SEC, utc(2026, 6, 3))
    done = walk_agenda(definition, at_adoption, utc(2026, 6, 3), report="WTPF-26/CR")
    forum_records = [r for r in done.records if r.kind == "forum"]
    assert ForumRecord.model_validate(forum_records[-1].inputs["forum"]) == done.after.forum
    assert (done.after.forum.chair, done.after.forum.report) == ("Ms Chair", "WTPF-26/CR")
    closed = advance(definition, done.after, utc(2026, 6, 5)).after
    assert closed.regions[MAIN] == "closed"


def test_a_document_stored_before_opinions_still_reads() -> None:
    """An instance saved without opinions, forum record or agenda region loads as not begun."""
    old = {"process_id": "wtpf-26", "regions": {"main": "draft1.drafting",
                                                 "consultation": "none"}}
    instance = Instance.from_doc(old)
    assert instance.regions[AGENDA] == "agenda.pending"
    assert instance.opinions == {}
    assert instance.forum == ForumRecord()


def test_themes_and_agenda_items_are_checked_in_the_definition() -> None:
    """Two themes with one id, or a chair item past the agenda's end, are definition errors."""
    data = raw(OTHER)
    data["themes"] = [{"id": "a", "name": "A"}, {"id": "a", "name": "B"}]
    with pytest.raises(InputError, match="theme ids must be unique"):
        parse_definition(data, "x")
    data = raw(OTHER)
    data["forum"]["agenda"] = ["Opening", "Closing"]
    with pytest.raises(InputError, match="opinions_item is item 8 but the agenda has 2 items"):
        parse_definition(data, "x")
    assert len(wtpf().forum.agenda) == 10
    assert len(wtpf().themes) == 5



def _actions(kinds: list[str], least: int) -> st.SearchStrategy[list[tuple[str, int, Stage]]]:
    return st.lists(st.tuples(st.sampled_from(kinds), st.integers(0, 3),
                              st.sampled_from(list(Stage))), min_size=least, max_size=40)


@settings(max_examples=40, deadline=None)
@given(before=_actions(["add", "move", "move", "outcome"], 16),
       during=_actions(["add", "move", "outcome", "outcome", "next", "next", "next", "next"],
                       24))
def test_random_opinion_changes_keep_the_invariants(
        before: list[tuple[str, int, Stage]], during: list[tuple[str, int, Stage]]) -> None:
    """Random adds, moves and outcomes while preparing, then at the forum with its agenda: no
    Opinion decided that was not presented before the final report and placed in it; each
    record rebuilds its Opinion; the process closes only after the agenda."""
    definition, instance, _ = wtpf_at_final()
    now = utc(2026, 3, 2)
    instance = amend(definition, instance, "forum", "2026-06-02", SEC, "Council", now).after
    records: list[Record] = []
    for phase, actions in ((utc(2026, 3, 2, 8), before), (utc(2026, 6, 2, 7), during)):
        if phase.month == 6:
            instance = post(definition, instance, "post_final", utc(2026, 4, 13, 8)).after
            instance = advance(definition, instance, utc(2026, 6, 2, 6)).after
        for step, (kind, number, stage) in enumerate(actions):
            now = phase + timedelta(minutes=30 * step)
            try:
                decision = _decide(instance, kind, number, stage, now)
            except (Refused, InputError):
                continue
            for record in decision.records:
                if record.kind == "opinion":
                    rebuilt = Opinion.model_validate(record.inputs["opinion"])
                    assert rebuilt == decision.after.opinions[rebuilt.id]
            records += decision.records
            instance = decision.after
    again = rebuild(definition, records)  # the log alone rebuilds the Opinions and the forum
    assert (again.opinions, again.forum) == (instance.opinions, instance.forum)
    closed = advance(definition, instance, utc(2026, 6, 5)).after.regions[MAIN]
    assert (closed == "closed") == (instance.regions[AGENDA] == "agenda.done")
    decided = [o for o in instance.opinions.values()
               if o.stage in (Stage.ADOPTED, Stage.NOT_ADOPTED)]
    event(f"agenda at item {instance.forum.item}; {len(decided)} decided")
    posted = instance.posted_at("final")
    for item in decided:
        assert posted is not None
        assert item.history[0].at < posted
        assert item.history[-2].stage is Stage.FINAL


def _decide(instance: Instance, kind: str, number: int, stage: Stage,
            now: datetime) -> Decision:
    """One random action on WTPF-26 (op-2's moves without IEG consensus)."""
    definition, opinion = wtpf(), f"op-{number}"
    if kind == "add":
        return add(definition, instance, opinion, "T", "space", SEC, now)
    if kind == "move":
        return move(definition, instance, opinion, stage, SEC, now, number != 2)
    if kind == "outcome":
        return outcome(definition, instance, opinion, stage, SEC, now)
    if kind == "next":
        item, forum = instance.forum.item, definition.forum
        return forum_next(definition, instance, SEC, now,
                          "Chair" if item == forum.chair_item else None,
                          "REPORT" if item == forum.adoption_item else None)
    return post(definition, instance, "post_final", now)
