"""Any forum's process runs from its own definition: RPD-27 end to end, and validation."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest

from states import (
    DefinitionError,
    InputError,
    Refused,
    advance,
    apply,
    build_table,
    parse_definition,
    report,
)
from states.machine import AGENDA, CONSULTATION, MAIN, Mode
from tests.states.helpers import OTHER, WTPF26, new, other, raw, utc, walk_agenda, wtpf

#: RPD-27 on plan: (when, what the secretariat posts, if anything) and the states after.
RPD_RUN = [
    (utc(2026, 1, 12, 15), "post_zero-draft", ("zero-draft.comment_window",
                                                "zero-draft.consultation_open")),
    (utc(2026, 3, 13, 15, 59, 59), None, ("zero-draft.comment_window",
                                           "zero-draft.consultation_open")),
    (utc(2026, 3, 13, 16), None, ("zero-draft.comments_closed", "zero-draft.consultation_open")),
    (utc(2026, 3, 28, 4), None, ("zero-draft.comments_closed", "zero-draft.consultation_closed")),
    (utc(2026, 4, 7, 4), None, ("zero-draft.vm1", "zero-draft.consultation_closed")),
    (utc(2026, 4, 8, 4), None, ("zero-draft.after_vm1", "zero-draft.consultation_closed")),
    (utc(2026, 4, 21, 12), None, ("zero-draft.ip1", "zero-draft.consultation_closed")),
    (utc(2026, 4, 23, 4), None, ("revised.drafting", "zero-draft.consultation_closed")),
    (utc(2026, 5, 11, 14), "post_revised", ("revised.comment_window",
                                             "zero-draft.consultation_closed")),
    (utc(2026, 6, 13, 4), None, ("final.drafting", "zero-draft.consultation_closed")),
    (utc(2026, 9, 14, 14), "post_final", ("final.posted", "zero-draft.consultation_closed")),
    (utc(2026, 11, 16, 5), None, ("forum", "zero-draft.consultation_closed")),
    (utc(2026, 11, 18, 4, 59), "agenda", ("forum", "zero-draft.consultation_closed")),
    (utc(2026, 11, 18, 5), None, ("closed", "zero-draft.consultation_closed")),
]


def test_rpd27_runs_end_to_end_through_the_engine() -> None:
    """Posts by two members and ticks at successive instants take RPD-27 to 'closed'."""
    definition = other()
    instance = new(definition, utc(2026, 1, 1))
    actors = iter(["ana", "ben", "ana"])
    fired: list[str] = []
    for now, trigger, expected in RPD_RUN:
        if trigger == "agenda":
            decision = walk_agenda(definition, instance, now)
        elif trigger:
            decision = apply(definition, instance, trigger, next(actors), now,
                             document=f"RPD-27/{trigger}")
        else:
            decision = advance(definition, instance, now)
        instance = decision.after
        fired += [r.trigger for r in decision.records if r.kind == "transition" and r.trigger]
        assert (instance.regions[MAIN], instance.regions[CONSULTATION]) == expected, now
    assert fired == [
        "post_zero-draft", "open_consultation_zero-draft", "close_comments_zero-draft",
        "close_consultation_zero-draft", "start_vm1", "end_vm1", "start_ip1", "end_ip1",
        "post_revised", "close_comments_revised", "post_final", "open_forum",
        *(s.trigger for s in build_table(definition).specs if s.region == AGENDA), "close_forum",
    ]
    assert set(fired) == {s.trigger for s in build_table(definition).specs}
    assert instance.happened["post_revised"].by == "ben"
    assert instance.happened["post_final"].by == "ana"
    assert instance.overrides == ()


def test_rpd27_each_automatic_step_fires_at_its_instant_not_a_second_before() -> None:
    """For every tick of the RPD-27 run, one second before its first due instant nothing happens."""
    definition = other()
    instance = new(definition, utc(2026, 1, 1))
    checked = 0
    for now, trigger, _ in RPD_RUN:
        if trigger == "agenda":
            instance = walk_agenda(definition, instance, now).after
            continue
        if trigger:
            instance = apply(definition, instance, trigger, "ana", now, document="D").after
            continue
        decision = advance(definition, instance, now)
        if decision.transitions:
            first = decision.records[0]
            due = datetime.fromisoformat(first.inputs["due"])
            assert not advance(definition, instance, due - timedelta(seconds=1)).transitions
            assert advance(definition, instance, due).records[0].trigger == first.trigger
            checked += 1
        instance = decision.after
    assert checked == 9


def test_rpd27_consultation_closes_at_its_own_deadline_not_the_comment_deadline() -> None:
    """The consultation stays open after comments close at noon and closes at its own day's end."""
    definition = other()
    instance = apply(definition, new(definition), "post_zero-draft", "ana",
                     utc(2026, 1, 12, 15), document="D").after
    after_comments = advance(definition, instance, utc(2026, 3, 20))
    assert [r.trigger for r in after_comments.records] == ["close_comments_zero-draft"]
    assert after_comments.records[0].inputs["due"] == "2026-03-13T16:00:00+00:00"
    assert after_comments.after.regions[CONSULTATION] == "zero-draft.consultation_open"
    closed = advance(definition, after_comments.after, utc(2026, 3, 28, 4))
    assert [r.trigger for r in closed.records] == ["close_consultation_zero-draft"]
    assert closed.records[0].inputs["due"] == "2026-03-28T04:00:00+00:00"


def test_rpd27_final_report_uses_its_30_day_lead() -> None:
    """RPD-27's final may go out 30 days before its forum (16 Nov 2026), not 31 days short."""
    definition = other()
    instance = new(definition, utc(2026, 1, 1))
    for now, trigger, _ in RPD_RUN[:-4]:
        instance = (apply(definition, instance, trigger, "ana", now, document="D") if trigger
                    else advance(definition, instance, now)).after
    on_time = apply(definition, instance, "post_final", "ana", utc(2026, 10, 17, 14),
                    document="D")
    assert on_time.after.regions[MAIN] == "final.posted"
    with pytest.raises(Refused, match="requires 30") as caught:
        apply(definition, instance, "post_final", "ana", utc(2026, 10, 18, 14), document="D")
    assert "29 days" in caught.value.message
    assert "17 Oct 2026" in caught.value.message


def test_rpd27_status_has_no_warnings_on_plan() -> None:
    """A fully dated, consistent plan gives a status without warnings."""
    definition = other()
    status = report(definition, new(definition, utc(2026, 1, 1)), utc(2026, 1, 2))
    assert status.warnings == []
    assert status.regions[MAIN] == ("zero-draft.drafting", "Zero Draft: in preparation")
    assert [u.key for u in status.upcoming][:3] == [
        "zero-draft.posting", "zero-draft.comments", "zero-draft.consultation"]
    assert status.upcoming[1].text.startswith("13 Mar 2026 12:00 EDT")


def test_state_tables_differ_between_the_two_definitions() -> None:
    """RPD-27's table has shapes WTPF-26's lacks (two meetings, no meeting) and vice versa."""
    ours, theirs = build_table(other()), build_table(wtpf())
    assert set(ours.states[MAIN]).isdisjoint(set(theirs.states[MAIN]) - {
        "final.drafting", "final.posted", "forum", "closed"})
    # two meetings in one cycle: an 'after the first meeting' state
    assert "zero-draft.after_vm1" in ours.states[MAIN]
    assert not [s for s in theirs.states[MAIN] if ".after_" in s]
    # a draft with no meeting: comments close straight into preparing the next cycle
    assert ours.by_trigger["close_comments_revised"].dest == "final.drafting"
    assert all(s.dest.endswith(".comments_closed")
               for s in theirs.specs if s.trigger.startswith("close_comments_"))
    assert len(ours.states[CONSULTATION]) == 3
    assert len(theirs.states[CONSULTATION]) == 5
    manual = {s.trigger for s in ours.specs if s.mode is Mode.MANUAL and s.region == MAIN}
    assert manual == {"post_zero-draft", "post_revised", "post_final"}
    assert {s.trigger for s in ours.specs} != {s.trigger for s in theirs.specs}
    assert other().rules.final_min_lead_days == 30
    assert other().timezone == "America/New_York"
    assert len(other().secretariat) == 2


def _problems(data: dict[str, Any]) -> str:
    with pytest.raises(DefinitionError) as caught:
        parse_definition(data, "test.yaml")
    return str(caught.value)


def test_unknown_field_is_a_definition_problem() -> None:
    """A misspelt field is reported with its path, not silently ignored."""
    data = raw(WTPF26)
    data["cycles"][0]["comment_deadlin"] = "2024-08-26"
    text = _problems(data)
    assert "cycles[0].comment_deadlin" in text
    assert "unknown field" in text


def test_all_problems_are_reported_together() -> None:
    """A bad date and a bad email are both listed, each with its value and what is valid."""
    data = raw(OTHER)
    data["cycles"][1]["posting"] = "2026-02-30"
    data["secretariat"][1]["email"] = "ben"
    text = _problems(data)
    assert "2 problems" in text
    assert "February 2026 has days 1 to 28" in text
    assert "'ben' is not an email address" in text


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        (lambda d: d.update(timezone="Europe/Geneva"), "unknown time zone 'Europe/Geneva'"),
        (lambda d: d["cycles"].reverse(), "exactly one cycle must be kind: final"),
        (lambda d: d["cycles"][1].update(meetings=[{"id": "vm1", "name": "again",
                                                    "start": "2026-06-01"}]),
         "'vm1' is used twice"),
        (lambda d: d["cycles"][1].update(meetings=[{"id": "drafting", "name": "x",
                                                    "start": "2026-06-20"}]),
         "meeting id 'drafting' is reserved"),
        (lambda d: d["cycles"][1].update(consultation_deadline="2026-06-20"),
         "public_consultation is false"),
        (lambda d: d["cycles"][1].pop("comment_deadline"), "needs a comment_deadline"),
        (lambda d: d["secretariat"].append(dict(d["secretariat"][0])), "must be unique"),
        (lambda d: d["cycles"][0]["meetings"][1].update(end="2026-04-19"), "ends"),
    ],
)
def test_invalid_definitions_are_refused(change: Any, fragment: str) -> None:
    """Structural mistakes in a definition are refused with a message naming the problem."""
    data = raw(OTHER)
    change(data)
    assert fragment in _problems(data)


def test_definition_must_be_a_mapping() -> None:
    """A file that is not a mapping (e.g. a list) is refused as a definition error."""
    with pytest.raises(InputError, match="expected a mapping"):
        parse_definition(["not", "a", "mapping"], "test.yaml")


def test_fingerprint_changes_with_content_only() -> None:
    """The same content gives the same fingerprint; a changed date gives another."""
    assert parse_definition(raw(OTHER), "a").fingerprint() == other().fingerprint()
    data = raw(OTHER)
    data["forum"]["opens"] = "2026-11-17"
    assert parse_definition(data, "a").fingerprint() != other().fingerprint()


def test_member_addresses_are_checked_as_every_other_address() -> None:
    """A secretariat address the mail validator would refuse at sending time (a dot before the
    @) is refused in the definition already, with the validator's reason."""
    from states.definition import _check_email

    assert _check_email("wtpf@itu.int") == "wtpf@itu.int"
    with pytest.raises(ValueError, match="period immediately before the @-sign"):
        _check_email("wtpf.@itu.int")
