"""The contributions register's decisions: on time, late, refused; window summaries."""

from __future__ import annotations

from datetime import datetime
from functools import cache
from typing import Any

import pytest
from pydantic import ValidationError

from states import (
    Instance,
    ProcessDefinition,
    advance,
    amend,
    apply,
    parse_definition,
    start,
)
from states.contributions import (
    Contribution,
    ContributionDraft,
    ContributionKind,
    FieldError,
    SubmitterCategory,
    closing_cycles,
    comment_deadline,
    receive,
    receive_many,
    summarize,
    with_summaries,
)
from states.errors import InputError, Refused, RuleId
from states.opinions import add as add_opinion
from tests.states.helpers import SEC, fix_meetings, new, post, utc, wtpf


def draft(cycle: str = "draft1", received: datetime | None = None,
          **fields: Any) -> ContributionDraft:
    """A member State's comment on ``cycle`` received at ``received``."""
    values: dict[str, Any] = {
        "process_id": "wtpf-26", "cycle": cycle, "submitter": "Brazil",
        "category": "member-state", "kind": "draft-comment", "title": "Comments",
        "document": "C-1", "region": "A", "received_at": received or utc(2024, 8, 20, 8)}
    values.update(fields)
    return ContributionDraft(**values)


@cache
def first_posted() -> Instance:
    """WTPF-26 with the First Draft posted on 5 Aug 2024."""
    definition = wtpf()
    instance = fix_meetings(definition, new(definition))
    return post(definition, instance, "post_draft1", utc(2024, 8, 5, 8)).after


@cache
def second_posted() -> Instance:
    """WTPF-26 with the Second Draft (which has a public consultation) posted on 4 Nov 2024."""
    definition = wtpf()
    instance = first_posted()
    return post(definition, instance, "post_draft2", utc(2024, 11, 4, 8)).after


def test_received_before_the_deadline_is_on_time_and_audited() -> None:
    """23:59 Geneva time on the deadline day is on time; the record carries the contribution."""
    receipt = receive(wtpf(), first_posted(), draft(received=utc(2024, 8, 26, 21, 59)),
                      utc(2024, 8, 27, 9), by=SEC)
    assert not receipt.late
    assert receipt.deadline == utc(2024, 8, 26, 22)  # end of 26 Aug in Geneva (CEST)
    assert receipt.record.kind == "contribution"
    assert receipt.record.actor == SEC
    assert receipt.record.inputs["submitter"] == "Brazil"
    assert receipt.record.inputs["late"] is False
    assert receipt.record.inputs["received_at"] == "2024-08-26T21:59:00Z"


def test_received_after_the_deadline_is_accepted_as_late() -> None:
    """Midnight after the deadline day: accepted, flagged late, never dropped."""
    receipt = receive(wtpf(), first_posted(), draft(received=utc(2024, 8, 26, 22)),
                      utc(2024, 9, 30), by=SEC)
    assert receipt.late
    assert receipt.contribution.recorded_by == SEC
    assert receipt.record.inputs["late"] is True
    assert receipt.record.reason is not None
    assert receipt.record.reason.startswith("late ")


def test_an_amended_deadline_decides_lateness() -> None:
    """The effective (amended) deadline counts, not the definition's."""
    definition = wtpf()
    moved = post(definition, fix_meetings(definition, new(definition)), "post_draft1",
                 utc(2024, 8, 5, 8)).after
    moved = amend(definition, moved, "draft1.comments", "2024-09-02", SEC, "extended",
                  utc(2024, 8, 20)).after
    assert comment_deadline(definition, moved, "draft1") == utc(2024, 9, 2, 22)
    assert not receive(definition, moved, draft(received=utc(2024, 8, 30)), utc(2024, 8, 30),
                       by=SEC).late


def test_a_draft_whose_window_never_opened_refuses() -> None:
    """The Second Draft is not posted yet: refused with the rule and the planned posting."""
    with pytest.raises(Refused) as refused:
        receive(wtpf(), first_posted(), draft("draft2", utc(2024, 8, 20)), utc(2024, 8, 20))
    assert refused.value.rule is RuleId.CONTRIBUTION
    assert "never opened" in refused.value.message
    assert "4 Nov 2024" in refused.value.message
    assert "draft1" in refused.value.allowed


def test_received_before_the_posting_refuses() -> None:
    """A receipt time before the draft went up is outside its window."""
    with pytest.raises(Refused, match="before the First Draft was posted"):
        receive(wtpf(), first_posted(), draft(received=utc(2024, 8, 1)), utc(2024, 8, 20))


def test_public_input_without_a_consultation_refuses() -> None:
    """No public consultation is held on the First Draft: the public is refused."""
    with pytest.raises(Refused) as refused:
        receive(wtpf(), first_posted(), draft(category="public"), utc(2024, 8, 20, 9))
    assert refused.value.rule is RuleId.CONTRIBUTION
    assert "no public consultation" in refused.value.message
    assert "draft2, draft3" in refused.value.allowed


def test_public_input_while_the_consultation_is_open_is_accepted() -> None:
    """The Second Draft's consultation is open: the public's input is taken, on time."""
    instance = second_posted()
    assert instance.regions["consultation"] == "draft2.consultation_open"
    receipt = receive(wtpf(), instance, draft("draft2", utc(2024, 12, 20, 22, 59),
                                              category="public", region=None),
                      utc(2024, 12, 21))
    assert not receipt.late
    assert receipt.deadline == utc(2024, 12, 20, 23)  # end of 20 Dec in Geneva (CET)


def test_public_input_after_the_consultation_closed_refuses_with_its_dates() -> None:
    """After the consultation's close the public is refused (not taken as late)."""
    with pytest.raises(Refused) as refused:
        receive(wtpf(), second_posted(), draft("draft2", utc(2024, 12, 20, 23),
                                               category="public"), utc(2024, 12, 22))
    assert "21 Dec 2024 00:00 CET" in refused.value.message
    assert "not accepted after it closed" in refused.value.message
    assert len(refused.value.dates) == 2


@pytest.mark.parametrize(("fields", "field"), [
    ({"cycle": "draft9"}, "cycle"),
    ({"cycle": "final"}, "cycle"),
    ({"region": "Q"}, "region"),
    ({"opinion": "op-1"}, "opinion"),
    ({"received_at": utc(2024, 9, 1)}, "received"),
])
def test_bad_input_names_the_field(fields: dict[str, Any], field: str) -> None:
    """An unknown draft or region, an opinion on a draft comment, a future receipt: exit 2."""
    with pytest.raises(InputError, match=f"^{field}"):
        receive(wtpf(), first_posted(), draft(**fields), utc(2024, 8, 20, 9))


def test_the_model_refuses_unknown_categories_and_languages() -> None:
    """Categories, kinds and languages are closed lists; blank text fields are refused."""
    for bad, field in (({"category": "ngo"}, "category"), ({"kind": "letter"}, "kind"),
                       ({"language": "de"}, "language"), ({"title": "  "}, "title"),
                       ({"received_at": datetime(2024, 8, 20)}, "received_at")):
        with pytest.raises(ValidationError, match=field):
            draft(**bad)


@cache
def dst_forum() -> ProcessDefinition:
    """One draft whose comments are due on 26 Oct 2025, the night Geneva leaves summer time."""
    data = {
        "id": "dst-forum", "name": "A forum across the DST change", "forum": {"name": "F"},
        "secretariat": [{"id": "sec", "name": "Sec", "email": "sec@example.org"}],
        "cycles": [
            {"id": "draft1", "name": "First Draft", "posting": "2025-10-01",
             "comment_deadline": "2025-10-26"},
            {"id": "final", "name": "Final report", "kind": "final", "posting": "2026-01-15"},
        ],
    }
    return parse_definition(data, "dst-forum")


def test_a_deadline_on_the_dst_change_day_ends_at_midnight_winter_time() -> None:
    """26 Oct 2025 ends at 23:00 UTC (CET), not 22:00 (CEST): 22:30 UTC is still on time."""
    definition = dst_forum()
    instance = start(definition, utc(2025, 9, 1)).after
    instance = apply(definition, instance, "post_draft1", "sec", utc(2025, 10, 1, 8),
                     document="D-1").after
    make = dict(process_id="dst-forum", cycle="draft1", submitter="Japan",
                category="member-state", kind="draft-comment", title="T", document="C")
    on_time = receive(definition, instance,
                      ContributionDraft(**make, received_at=utc(2025, 10, 26, 22, 30)),
                      utc(2025, 10, 28))
    late = receive(definition, instance,
                   ContributionDraft(**make, received_at=utc(2025, 10, 26, 23)),
                   utc(2025, 10, 28))
    assert on_time.deadline == utc(2025, 10, 26, 23)
    assert (on_time.late, late.late) == (False, True)


def test_a_batch_is_all_or_nothing_and_names_every_bad_row() -> None:
    """One refused row refuses the batch, naming it; bad input wins over refusals."""
    rows = [("line 2", draft()), ("line 3", draft("draft2")), ("line 4", draft("draft3"))]
    with pytest.raises(Refused) as refused:
        receive_many(wtpf(), first_posted(), rows, utc(2024, 8, 20, 9))
    assert "2 row(s) refused" in refused.value.message
    assert "line 3:" in refused.value.message
    assert "line 4:" in refused.value.message
    with pytest.raises(InputError, match="line 5: region"):
        receive_many(wtpf(), first_posted(), [*rows, ("line 5", draft(region="Q", document="C-5"))],
                     utc(2024, 8, 20, 9))
    ok = receive_many(wtpf(), first_posted(), rows[:1], utc(2024, 8, 20, 9))
    assert [r.contribution.submitter for r in ok] == ["Brazil"]


def stored(cycle: str, late: bool, kind: str = "draft-comment", category: str = "member-state",
           region: str | None = "A") -> Contribution:
    """A contribution as the register keeps it."""
    return Contribution(**draft(cycle, kind=kind, category=category, region=region)
                        .model_dump(), late=late, recorded_at=utc(2024, 12, 1), recorded_by=SEC)


def test_summary_counts_each_contribution_once_in_its_own_window() -> None:
    """Counts by kind, source and region, on time and late; other cycles are not counted."""
    register = [stored("draft1", False), stored("draft1", True, "opinion-outline", region=None),
                stored("draft2", False, category="public", region="D"),
                stored("draft1", False, category="academia", region="D")]
    first = summarize(register, "draft1")
    assert (first.total, first.on_time, first.late) == (3, 2, 1)
    assert first.by_kind == {"draft-comment": 2, "opinion-outline": 1, "opinion-comment": 0}
    assert first.by_category["member-state"] == 2
    assert first.by_category["academia"] == 1
    assert first.by_region == {"A": 1, "D": 1, "none": 1}
    assert list(first.by_category) == [c.value for c in SubmitterCategory]
    totals = sum(summarize(register, c).total for c in ("draft1", "draft2", "draft3"))
    assert totals == len(register)
    assert summarize(list(reversed(register)), "draft1") == first
    assert summarize(register, "draft4").by_kind == dict.fromkeys(
        [k.value for k in ContributionKind], 0)


def test_closing_a_window_records_its_summary_in_the_instance_and_the_log() -> None:
    """The tick that closes the First Draft's window carries a window-summary record."""
    definition = wtpf()
    closing = advance(definition, first_posted(), utc(2024, 8, 27, 9))
    assert closing_cycles(definition, closing) == ["draft1"]
    register = [stored("draft1", False), stored("draft2", False)]
    decision = with_summaries(definition, closing, register)
    summary = decision.after.summaries["draft1"]
    assert summary.total == 1
    kinds = [(r.kind, r.trigger) for r in decision.records if r.kind != "notice"]
    assert kinds[:2] == [("transition", "close_comments_draft1"), ("window-summary", None)]
    record = next(r for r in decision.records if r.kind == "window-summary")
    assert record.inputs["cycle"] == "draft1"
    assert record.at == decision.transitions[0].at
    assert record.inputs == summary.model_dump(mode="json")
    assert Instance.from_doc(decision.after.to_doc()) == decision.after
    quiet = advance(definition, first_posted(), utc(2024, 8, 10))
    assert closing_cycles(definition, quiet) == []
    assert with_summaries(definition, quiet, register) is quiet


def test_an_instance_stored_before_summaries_still_loads() -> None:
    """A document without 'summaries' (written before issue 8) reads with none."""
    doc = first_posted().to_doc()
    del doc["summaries"]
    assert Instance.from_doc(doc).summaries == {}


def test_a_comment_on_an_opinion_that_does_not_exist_is_bad_input() -> None:
    """--opinion must name a draft Opinion of the process; the error lists the known ones."""
    definition = wtpf()
    instance = add_opinion(definition, first_posted(), "op-1", "Skills", "digital-divides",
                           SEC, utc(2024, 8, 10)).after
    comment = draft(kind="opinion-comment", opinion="op-99")
    with pytest.raises(FieldError) as bad:
        receive(definition, instance, comment, utc(2024, 8, 20, 9))
    assert bad.value.field == "opinion"
    assert "'op-99' is not a draft Opinion of wtpf-26; Opinions: op-1." in str(bad.value)
    with pytest.raises(InputError, match="line 2: opinion: 'op-99'"):
        receive_many(definition, instance, [("line 2", comment)], utc(2024, 8, 20, 9))
    ok = receive(definition, instance, draft(kind="opinion-comment", opinion="op-1"),
                 utc(2024, 8, 20, 9))
    assert ok.contribution.opinion == "op-1"


def test_a_document_reference_is_recorded_once_per_draft() -> None:
    """The same reference on the same draft, in the register or earlier in the batch, is bad
    input naming the earlier one; on another draft it is a different contribution."""
    earlier = Contribution(**draft().model_dump(), late=False, recorded_at=utc(2024, 8, 21),
                           recorded_by=SEC, id=7)
    with pytest.raises(FieldError) as bad:
        receive(wtpf(), first_posted(), draft(document=" c-1 "), utc(2024, 8, 22),
                register=[earlier])
    assert bad.value.field == "document"
    assert "already in the register as #7" in str(bad.value)
    rows = [("line 2", draft(document="C-2")), ("line 3", draft(document="C-2"))]
    with pytest.raises(InputError, match="line 3: document 'C-2' on draft1 is already on line 2"):
        receive_many(wtpf(), first_posted(), rows, utc(2024, 8, 22), register=[earlier])
    with pytest.raises(InputError, match="line 2: document: 'C-1'"):
        receive_many(wtpf(), first_posted(), [("line 2", draft())], utc(2024, 8, 22),
                     register=[earlier])
    other = earlier.model_copy(update={"cycle": "draft2"})
    assert receive(wtpf(), first_posted(), draft(), utc(2024, 8, 22), register=[other])


def test_a_public_submitter_is_masked_in_the_audit_record() -> None:
    """A private person's name stays in the register; the log shows 'J***' only."""
    receipt = receive(wtpf(), second_posted(),
                      draft("draft2", utc(2024, 12, 1), category="public",
                            submitter="Jane Doe", region=None), utc(2024, 12, 2))
    assert receipt.contribution.submitter == "Jane Doe"
    assert receipt.record.inputs["submitter"] == "J***"
    assert "Jane" not in repr(receipt.record)
    member = receive(wtpf(), first_posted(), draft(), utc(2024, 8, 22))
    assert member.record.inputs["submitter"] == "Brazil"


def test_a_contribution_refusal_cites_its_source() -> None:
    """Refused by rule 'contribution' says where the rule comes from, alone or in a batch."""
    definition = wtpf()
    with pytest.raises(Refused) as one:
        receive(definition, first_posted(), draft("draft2"), utc(2024, 8, 20, 9))
    assert one.value.citation == definition.citation(RuleId.CONTRIBUTION)
    assert "(source: " in str(one.value)
    with pytest.raises(Refused) as public:
        receive(definition, first_posted(), draft(category="public"), utc(2024, 8, 20, 9))
    assert public.value.citation
    with pytest.raises(Refused) as batch:
        receive_many(definition, first_posted(), [("line 2", draft("draft3"))],
                     utc(2024, 8, 20, 9))
    assert batch.value.citation == definition.citation(RuleId.CONTRIBUTION)
