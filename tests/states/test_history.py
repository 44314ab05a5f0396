"""The process as it really runs: every amendment kept, drafts in versions, rounds without a
comment window, and rule citations taken from the definition."""

from __future__ import annotations

import pickle
from datetime import timedelta
from functools import cache

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from states import (
    DefinitionError,
    InputError,
    Instance,
    Refused,
    RuleId,
    advance,
    amend,
    apply,
    check,
    effective_milestones,
)
from states.dates import start_instant, zone
from states.definition import ProcessDefinition, parse_definition
from states.machine import MAIN, build_table
from states.messages import DraftPosted, DraftRevised
from states.plan import milestone_keys
from states.queries import reminder_targets
from states.versions import draft_versions, post_version, stories
from tests.states.helpers import (
    ROOT,
    SEC,
    fix_meetings,
    hold_forum,
    new,
    other,
    raw,
    table_problems,
    utc,
    wtpf,
    wtpf_at_final,
)
from tests.states.test_invariants import definitions

WINDOWLESS = ROOT / "tests" / "definitions" / "windowless.yaml"


@cache
def windowless() -> ProcessDefinition:
    """tests/definitions/windowless.yaml: two draft rounds without a comment window."""
    return parse_definition(raw(WINDOWLESS), str(WINDOWLESS))


def three_slips() -> Instance:
    """WTPF-26's 2nd IEG meeting fixed, then moved twice more, each with its own reason."""
    definition, instance = wtpf(), new(wtpf())
    for span, reason, at in [("2025-02-10..2025-02-12", "CWG cluster dates", utc(2024, 9, 1)),
                             ("2025-02-17..2025-02-19", "room not free", utc(2024, 10, 1)),
                             ("2025-02-24", "one day only, virtual", utc(2024, 11, 1))]:
        instance = amend(definition, instance, "ieg2", span, SEC, reason, at).after
    return instance


# --- every amendment kept ----------------------------------------------------------------------


def test_three_slips_of_a_meeting_are_all_kept_in_order() -> None:
    """Each amendment joins the milestone's history; the latest is what the plan now says."""
    instance = three_slips()
    changes = instance.history["ieg2"]
    assert [c.reason for c in changes] == ["CWG cluster dates", "room not free",
                                           "one day only, virtual"]
    assert [str(c.start) for c in changes] == ["2025-02-10", "2025-02-17", "2025-02-24"]
    assert instance.amendments["ieg2"] == changes[-1]
    ieg2 = {m.key: m for m in effective_milestones(wtpf(), instance)}["ieg2"]
    assert ieg2.span_text() == "24 Feb 2025"


def test_history_survives_the_stored_document_and_an_old_doc_gets_one_item() -> None:
    """The JSON round trip keeps every change; a pre-history doc's amendment is a 1-item history."""
    instance = three_slips()
    assert Instance.from_doc(instance.to_doc()) == instance
    old = instance.to_doc()
    del old["history"], old["versions"]
    loaded = Instance.from_doc(old)
    assert loaded.history == {"ieg2": (instance.amendments["ieg2"],)}
    assert Instance.from_doc({"process_id": "p", "regions": {}}).history == {}


def test_each_amendment_record_carries_the_whole_amendment() -> None:
    """The audit log alone rebuilds the history: each record's inputs hold the amendment."""
    definition, instance = wtpf(), new(wtpf())
    rebuilt = []
    for span, at in [("2025-02-10", utc(2024, 9, 1)), ("2025-02-17", utc(2024, 10, 1))]:
        decision = amend(definition, instance, "ieg2", span, SEC, f"to {span}", at)
        (record,) = [r for r in decision.records if r.kind == "amendment"]
        rebuilt.append(record.inputs["amendment"])
        instance = decision.after
    assert rebuilt == [a.model_dump(mode="json") for a in instance.history["ieg2"]]


def test_stories_give_plan_each_change_and_the_actual() -> None:
    """The 1st IEG meeting: planned October 2024, fixed twice, then held (two occurrences)."""
    definition = wtpf()
    instance = amend(definition, new(definition), "ieg1", "2024-10-14..2024-10-15", SEC,
                     "first guess", utc(2024, 7, 15)).after
    instance = amend(definition, instance, "ieg1", "2024-10-07..2024-10-08", SEC, "CL-24/44",
                     utc(2024, 7, 16)).after
    instance = apply(definition, instance, "post_draft1", SEC, utc(2024, 8, 5, 8),
                     document="WTPF-26/1").after
    instance = advance(definition, instance, utc(2024, 10, 9)).after
    story = {s.current.key: s for s in stories(definition, instance)}["ieg1"]
    assert story.planned.span_text() == "October 2024"
    assert [c.reason for c in story.changes] == ["first guess", "CL-24/44"]
    assert [o.trigger for o in story.actual] == ["start_ieg1", "end_ieg1"]
    assert not {s.current.key: s for s in stories(definition, instance)}["ieg2"].changes


# --- rule citations from the definition ------------------------------------------------------


def test_wtpf_six_weeks_refusal_cites_decision_641_from_its_definition() -> None:
    """WTPF-26's definition cites Council Decision 641, decides 6 d, for the six-week rule."""
    definition, instance, _ = wtpf_at_final()
    instance = amend(definition, instance, "forum", "2026-05-10", SEC, "Council",
                     utc(2026, 3, 2), override=True).after
    with pytest.raises(Refused) as caught:
        apply(definition, instance, "post_final", SEC, utc(2026, 4, 13, 7), document="F")
    assert caught.value.citation == "Council Decision 641, decides 6 d"
    assert str(caught.value).startswith("Refused by rule 'six-weeks': posting the final")
    assert str(caught.value).endswith("(source: Council Decision 641, decides 6 d)")
    assert "27 days before the forum opens (10 May 2026); the rule requires 42 days" \
        in str(caught.value)


def test_another_forum_never_cites_decision_641() -> None:
    """RPD-27 cites its own source in refusals and rule titles, never WTPF-26's decision."""
    definition = other()
    instance = new(definition, utc(2026, 1, 1))
    texts = [r.title + r.message for r in check(definition, effective_milestones(definition))]
    refusals: list[Refused] = []
    for action in (
        lambda: amend(definition, instance, "final.posting", "2026-11-01", "ana", "late",
                      utc(2026, 1, 2)),
        lambda: apply(definition, instance, "post_revised", "ana", utc(2026, 1, 2),
                      document="R"),
    ):
        with pytest.raises(Refused) as caught:
            action()
        refusals.append(caught.value)
    posted = apply(definition, instance, "post_zero-draft", "ana", utc(2026, 1, 12, 15),
                   document="Z").after
    with pytest.raises(Refused) as caught:
        apply(definition, posted, "post_zero-draft", "ana", utc(2026, 1, 13), document="Z")
    refusals.append(caught.value)
    assert [r.rule for r in refusals] == [RuleId.SIX_WEEKS, RuleId.ORDER, RuleId.ONCE]
    texts += [str(r) for r in refusals]
    assert all("Decision 641" not in text for text in texts), texts
    assert all(r.citation == "test fixture: not a real process" for r in refusals)


def test_citation_falls_back_to_the_definition_and_refused_pickles_with_it() -> None:
    """No citation and no source: 'the process definition'; a pickled refusal keeps its source."""
    data = raw(WINDOWLESS)
    data.pop("source")
    data["rules"] = {"final_min_lead_days": 28}
    bare = parse_definition(data, "bare")
    assert bare.citation(RuleId.SIX_WEEKS) == "the process definition"
    assert windowless().citation(RuleId.SIX_WEEKS) == "Terms of reference, section 4"
    refused = Refused(RuleId.ONCE, "twice", "nothing", citation="ToR 4")
    copy = pickle.loads(pickle.dumps(refused))
    assert (copy.citation, str(copy)) == ("ToR 4", str(refused))


def test_a_citation_for_an_unknown_rule_is_a_definition_error() -> None:
    """A misspelt rule id under rules.citations is reported, not silently ignored."""
    data = raw(WINDOWLESS)
    data["rules"]["citations"] = {"six-week": "ToR"}
    with pytest.raises(DefinitionError, match=r"rules\.citations.*unknown rules six-week"):
        parse_definition(data, "typo")


# --- a draft round without a comment window --------------------------------------------------


def test_windowless_rounds_post_straight_to_their_meeting_or_the_next_draft() -> None:
    """No comment window, no close_comments, no comments milestone for comments: false."""
    definition = windowless()
    table = build_table(definition)
    assert table_problems(definition) == []
    assert table.by_trigger["post_draft2"].dest == "draft2.posted"
    assert table.by_trigger["post_draft3"].dest == "final.drafting"
    assert table.by_trigger["post_draft2"].guards == ()
    assert {"close_comments_draft2", "close_comments_draft3"}.isdisjoint(table.by_trigger)
    assert "close_comments_draft1" in table.by_trigger
    assert "draft2.comments" not in milestone_keys(definition)
    assert all(r.status.value == "pass" for r in check(definition,
                                                        effective_milestones(definition)))


def test_a_windowless_run_reaches_the_forum_with_no_reminder() -> None:
    """Posting the Second Draft goes to its meeting; no comment reminder is ever due for it."""
    definition = windowless()
    instance = new(definition, utc(2027, 8, 1))
    instance = apply(definition, instance, "post_draft1", "sam", utc(2027, 9, 6, 8),
                     document="D1").after
    instance = advance(definition, instance, utc(2027, 11, 12)).after
    assert instance.regions[MAIN] == "draft2.drafting"
    posted = apply(definition, instance, "post_draft2", "sam", utc(2028, 1, 10, 8),
                   document="D2")
    assert posted.after.regions[MAIN] == "draft2.posted"
    assert [e.event for e in posted.effects] == ["draft_posted", "meeting_invitation"]
    message = posted.effects[0].message
    assert isinstance(message, DraftPosted)
    assert (message.comments, message.deadline) == (False, None)
    milestones = {m.key: m for m in effective_milestones(definition, posted.after)}
    assert reminder_targets(definition, posted.after, milestones) == []
    instance = advance(definition, posted.after, utc(2028, 2, 16)).after
    assert instance.regions[MAIN] == "draft3.drafting"
    instance = apply(definition, instance, "post_draft3", "sam", utc(2028, 3, 13, 8),
                     document="D3").after
    assert instance.regions[MAIN] == "final.drafting"
    instance = apply(definition, instance, "post_final", "sam", utc(2028, 4, 24, 8),
                     document="F").after
    assert hold_forum(definition, instance, utc(2028, 6, 14)).regions[MAIN] == "closed"


@settings(max_examples=40, deadline=None)
@given(definition=definitions(), data=st.data())
def test_generated_rounds_without_a_window_build_sound_tables_and_run_on_plan(
    definition: ProcessDefinition, data: st.DataObject
) -> None:
    """Any draft round may go without its window: the table stays sound, the plan's order
    holds, and a run posting every cycle on its planned day closes once the forum is held."""
    raw_data = definition.model_dump(mode="json")
    for cycle in raw_data["cycles"][:-1]:
        if data.draw(st.booleans()):
            deadline = cycle.pop("comment_deadline")
            cycle["comments"] = False
            if cycle["public_consultation"] and cycle["consultation_deadline"] is None:
                cycle["consultation_deadline"] = deadline
    changed = parse_definition(raw_data, "windowless")
    assert table_problems(changed) == []
    table = build_table(changed)
    windowless_ids = {c.id for c in changed.cycles if c.kind == "draft" and not c.comments}
    assert not {f"close_comments_{c}" for c in windowless_ids} & set(table.by_trigger)
    broken = [r for r in check(changed, effective_milestones(changed)) if r.status.value ==
              "fail" and r.rule is not RuleId.SIX_WEEKS]
    assert broken == []  # the plan's order holds without the comment deadlines
    tz = zone(changed.timezone)
    first = start_instant(changed.cycles[0].posting, tz) - timedelta(days=1)
    instance = new(changed, first)
    for cycle in changed.cycles:
        at = start_instant(cycle.posting, tz) + timedelta(hours=12)
        instance = advance(changed, instance, at).after
        instance = apply(changed, instance, f"post_{cycle.id}", "sec-a", at, document="D",
                         reason="on plan", override=True).after
        if cycle.id in windowless_ids:
            assert instance.regions[MAIN] == table.by_trigger[f"post_{cycle.id}"].dest
    forum = changed.forum.opens
    if forum is not None:
        instance = hold_forum(changed, instance, start_instant(forum, tz)
                              + timedelta(days=changed.forum.days + 1))
        assert instance.regions[MAIN] == "closed"


@pytest.mark.parametrize(("change", "message"), [
    ({"comment_deadline": None}, "needs a comment_deadline (or comments: false"),
    ({"comments": False}, "comments: false, yet a comment_deadline is given"),
])
def test_a_forgotten_deadline_is_still_an_error(change: dict[str, object], message: str) -> None:
    """comments: false must be said; with a deadline as well it contradicts itself."""
    data = raw(WINDOWLESS)
    data["cycles"][0] = {k: v for k, v in {**data["cycles"][0], **change}.items()
                         if v is not None}
    with pytest.raises(DefinitionError, match=message.replace("(", r"\(")):
        parse_definition(data, "broken")


# --- a draft posted in versions --------------------------------------------------------------


def posted_draft2() -> tuple[ProcessDefinition, Instance]:
    """WTPF-26 with the Second Draft posted (comment window open)."""
    definition = wtpf()
    instance = fix_meetings(definition, new(definition))
    instance = apply(definition, instance, "post_draft1", SEC, utc(2024, 8, 5, 8),
                     document="WTPF-26/1").after
    instance = advance(definition, instance, utc(2024, 10, 9)).after
    instance = apply(definition, instance, "post_draft2", SEC, utc(2024, 11, 4, 8),
                     document="WTPF-26/2").after
    return definition, instance


def test_a_revised_version_is_recorded_audited_and_told_to_experts() -> None:
    """The revised Second Draft joins its versions; the record and the mail carry it."""
    definition, instance = posted_draft2()
    decision = post_version(definition, instance, "draft2", " WTPF-26/2(Rev.1) ", "revised",
                            "wtpf-secretariat", "annex corrected", utc(2024, 11, 20, 9))
    versions = draft_versions(decision.after, "draft2")
    assert [(v.label, v.document) for v in versions] == [
        ("posted", "WTPF-26/2"), ("revised", "WTPF-26/2(Rev.1)")]
    (record,) = decision.records
    assert record.kind == "draft_version"
    assert record.inputs["version"] == decision.after.versions["draft2"][0].model_dump(
        mode="json")
    (effect,) = decision.effects
    assert isinstance(effect.message, DraftRevised)
    assert (effect.message.document, effect.message.previous_document, effect.message.label) \
        == ("WTPF-26/2(Rev.1)", "WTPF-26/2", "revised")
    assert effect.message.deadline == utc(2024, 12, 20, 23)  # the window is still open
    assert effect.data["audience"] == "experts"
    assert decision.after.regions == instance.regions


def test_a_version_before_posting_or_after_the_next_draft_is_refused() -> None:
    """Only the current draft has versions: not before its posting, not once superseded."""
    definition, instance = posted_draft2()
    with pytest.raises(Refused) as early:
        post_version(definition, instance, "draft3", "D3", "revised", SEC, None,
                     utc(2024, 11, 20))
    assert early.value.rule is RuleId.DRAFT_VERSION
    assert "post it first" in early.value.allowed
    with pytest.raises(Refused) as late:
        post_version(definition, instance, "draft1", "D1r", "revised", SEC, None,
                     utc(2024, 11, 20))
    assert "Second Draft was posted on 4 Nov 2024 09:00 CET" in str(late.value)
    assert "no longer the current draft" in late.value.message


def test_a_version_label_used_twice_or_a_final_cycle_is_bad_input() -> None:
    """Labels name versions once per draft; the final report is not posted in versions."""
    definition, instance = posted_draft2()
    with pytest.raises(InputError, match="already has a version so named"):
        post_version(definition, instance, "draft2", "D", "posted", SEC, None,
                     utc(2024, 11, 20))
    with pytest.raises(InputError, match="not a draft cycle"):
        post_version(definition, instance, "final", "D", "revised", SEC, None,
                     utc(2024, 11, 20))
