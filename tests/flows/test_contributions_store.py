"""The contributions register on a real store (SQLite and PostgreSQL): additions with their
audit entries in one transaction, audited refusals, and the window summary at the close."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from flows.clock import FixedClock
from flows.contributions import record
from flows.definition_file import load_definition
from flows.orchestration.artifacts import views
from flows.shell import Service
from flows.storage import AuditDraft, SqlStore, UnknownProcess
from states.contributions import Contribution, ContributionDraft
from states.errors import InputError, Refused

ROOT = Path(__file__).resolve().parents[2]
BY = "wtpf-secretariat"
PID = "wtpf-26"


def utc(*args: int) -> datetime:
    """An aware UTC instant."""
    return datetime(*args, tzinfo=UTC)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def svc(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Service]:
    """WTPF-26 created on 10 Jul 2024, the 1st IEG meeting fixed, the First Draft posted on
    5 Aug 2024, on a fresh SQLite file or PostgreSQL database."""
    url = (f"sqlite:///{tmp_path / 'store.db'}" if request.param == "sqlite"
           else str(request.getfixturevalue("postgres_url")))
    store = SqlStore(url)
    service = Service(store, FixedClock(utc(2024, 7, 10, 8)))
    service.init(load_definition(ROOT / "config" / "wtpf26.yaml"))
    service.amend(PID, "ieg1", "2024-10-07..2024-10-08", BY, "CL-24/44", now=utc(2024, 7, 11))
    service.transition(PID, "post_draft1", BY, "WTPF-26/1", now=utc(2024, 8, 5, 8))
    try:
        yield service
    finally:
        store.close()


def draft(cycle: str = "draft1", received: datetime | None = None,
          **fields: Any) -> ContributionDraft:
    """Brazil's comment on ``cycle``."""
    values: dict[str, Any] = {
        "process_id": PID, "cycle": cycle, "submitter": "Brazil", "category": "member-state",
        "kind": "draft-comment", "title": "Comments", "document": "C-1", "region": "A",
        "language": "es", "received_at": received or utc(2024, 8, 20, 8)}
    values.update(fields)
    return ContributionDraft(**values)


def test_contributions_are_stored_with_their_audit_entries(svc: Service) -> None:
    """On time and late ones are stored (UTC, flags, ids) and audited in the same chain."""
    before = svc.store.get(PID)
    added = record(svc, PID, [("line 2", draft()),
                              ("line 3", draft(received=utc(2024, 8, 27), kind="opinion-outline",
                                               submitter="Ghana", region=None,
                                               document="C-2"))],
                   BY, utc(2024, 8, 28))
    assert [c.late for c in added] == [False, True]
    stored = svc.store.contributions(PID)
    assert stored == added
    assert stored[0].id is not None
    assert stored[1].id == stored[0].id + 1
    assert stored[0].received_at == utc(2024, 8, 20, 8)
    assert stored[0].received_at.tzinfo is not None
    entries = svc.store.audit(PID)[before.audit_seq:]
    assert [e.kind for e in entries] == ["contribution", "contribution"]
    assert entries[1].inputs["submitter"] == "Ghana"
    assert entries[1].inputs["late"] is True
    assert entries[1].inputs["via"]["role"] == "register"  # who recorded it (issue 10)
    recorded = {k: v for k, v in entries[1].inputs.items() if k != "via"}
    rebuilt = Contribution.model_validate({**recorded, "id": stored[1].id})
    assert rebuilt == stored[1]
    assert svc.store.get(PID).version == before.version  # the process state is untouched
    assert svc.verify(PID) == []


def test_a_refusal_is_audited_and_nothing_else_is_written(svc: Service) -> None:
    """A batch with one row on an unposted draft: the refusal alone is recorded."""
    before = svc.store.get(PID)
    with pytest.raises(Refused, match="line 3: the Second Draft"):
        record(svc, PID, [("line 2", draft()), ("line 3", draft("draft2"))], BY,
               utc(2024, 8, 28), action="comments import c.csv")
    assert svc.store.contributions(PID) == []
    after = svc.store.get(PID)
    assert (after.version, after.audit_seq) == (before.version, before.audit_seq + 1)
    refusal = svc.store.audit(PID)[-1]
    assert (refusal.kind, refusal.trigger) == ("refusal", "comments import c.csv")
    assert refusal.inputs["rule"] == "contribution"
    assert len(refusal.inputs["contributions"]) == 2


def test_the_store_adds_with_audit_in_one_transaction_and_reads_by_cycle(svc: Service) -> None:
    """add_contributions writes rows and entries together; an unknown process writes none."""
    item = Contribution(**draft().model_dump(), late=False, recorded_at=utc(2024, 8, 28),
                        recorded_by=BY)
    other = Contribution(**draft("draft2").model_dump(), late=True,
                         recorded_at=utc(2024, 8, 28), recorded_by=BY)
    entry = AuditDraft(at=utc(2024, 8, 28), actor=BY, kind="contribution",
                       inputs=item.model_dump(mode="json", exclude={"id"}))
    added = svc.store.add_contributions(PID, [item, other], audit=[entry, entry])
    assert [c.cycle for c in added] == ["draft1", "draft2"]
    assert [c.cycle for c in svc.store.contributions(PID, "draft2")] == ["draft2"]
    assert svc.store.contributions(PID, "draft3") == []
    assert [e.kind for e in svc.store.audit(PID)[-2:]] == ["contribution"] * 2
    with pytest.raises(UnknownProcess):
        svc.store.add_contributions("nope", [item], audit=[entry])
    with pytest.raises(UnknownProcess):
        svc.store.contributions("nope")
    assert len(svc.store.contributions(PID)) == 2
    assert svc.verify(PID) == []


def test_the_tick_that_closes_a_window_records_its_summary(svc: Service) -> None:
    """advance past the deadline: the summary is in the state and in the log, after the close."""
    late = draft(received=utc(2024, 8, 26, 22), document="C-2")
    record(svc, PID, [("a", draft()), ("b", late)], BY,
           utc(2024, 8, 27, 6))
    (outcome,) = svc.advance(utc(2024, 8, 27, 9))
    _, _, instance = svc.load(PID)
    summary = instance.summaries["draft1"]
    assert (summary.total, summary.on_time, summary.late) == (2, 1, 1)
    assert outcome.decision.after.summaries["draft1"] == summary
    kinds = [(e.kind, e.trigger) for e in svc.store.audit(PID)[-2:]]
    assert kinds == [("transition", "close_comments_draft1"), ("window-summary", None)]
    assert svc.store.audit(PID)[-1].inputs == summary.model_dump(mode="json")
    assert svc.advance(utc(2024, 8, 27, 10)) == []  # idempotent: nothing recorded twice
    artifacts = {a.key: a for a in views(*svc.load(PID)[1:], utc(2024, 8, 27, 10))}
    shown = artifacts["wtpf-26-comments"].markdown
    assert "| First Draft | 2 | 1 | 1 |" in shown


def test_a_manual_step_that_catches_up_over_a_close_records_the_summary(svc: Service) -> None:
    """Posting the Second Draft with no tick since the First's window: the catch-up closes
    it, and the summary is recorded in that same change."""
    record(svc, PID, [("a", draft())], BY, utc(2024, 8, 21))
    svc.transition(PID, "post_draft2", BY, "WTPF-26/2", now=utc(2024, 11, 4, 8))
    _, _, instance = svc.load(PID)
    assert instance.summaries["draft1"].total == 1
    assert "window-summary" in [e.kind for e in svc.store.audit(PID)]


def test_a_document_already_recorded_is_bad_input_and_writes_nothing(svc: Service) -> None:
    """The register read in the write's transaction decides: a second import of the same
    references is refused whole, naming the line and the earlier record."""
    (first,) = record(svc, PID, [("contribution", draft())], BY, utc(2024, 8, 21))
    before = svc.store.get(PID)
    with pytest.raises(InputError, match=f"line 3: document: 'C-1' on draft1 is already in "
                       f"the register as #{first.id}"):
        record(svc, PID, [("line 2", draft(document="C-9")), ("line 3", draft())], BY,
               utc(2024, 8, 22), action="comments import c.csv")
    assert svc.store.contributions(PID) == [first]
    assert svc.store.get(PID).audit_seq == before.audit_seq


def test_a_public_submitter_never_reaches_the_audit_log(svc: Service) -> None:
    """Refused public input is audited with the name masked and the rule's source cited."""
    with pytest.raises(Refused, match=r"\(source: "):
        record(svc, PID, [("contribution", draft(category="public", submitter="Jane Doe"))],
               BY, utc(2024, 8, 22))
    refusal = svc.store.audit(PID)[-1]
    assert refusal.kind == "refusal"
    assert refusal.inputs["contributions"][0]["submitter"] == "J***"
    assert "Jane" not in f"{refusal.reason} {refusal.inputs}"
    assert "(source: " in (refusal.reason or "")
