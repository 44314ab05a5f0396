"""The experts register and the outbox behave alike on SQLite and PostgreSQL."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from flows.storage import (
    AuditDraft,
    DuplicateExpert,
    ExpertDraft,
    OutboxDraft,
    OutboxItem,
    SqlStore,
    Store,
    UnknownExpert,
    UnknownOutboxItem,
    UnknownProcess,
    VersionConflict,
)
from flows.storage.notify_model import ERASED_PENDING_ERROR, DeliveryRun

T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
PID = "wtpf-26"


def nominee(email: str = "j.doe@itu.int", **changes: Any) -> ExpertDraft:
    """An expert nomination with realistic fields."""
    fields: dict[str, Any] = {
        "email": email,
        "first_name": "Jane",
        "last_name": "Doe",
        "entity": "Ministry of ICT",
        "nominated_by": "Kenya",
        "country": "Kenya",
        "region": "AFR",
        "stakeholder_type": "government",
        "nominated_at": T0,
        "gender": "F",
        "language": "fr",
        "timezone": "Africa/Nairobi",
    }
    fields.update(changes)
    return ExpertDraft(**fields)


def message(key: str = "wtpf-26:post_draft1:expert:1", n: int = 0, **changes: Any) -> OutboxDraft:
    """An outbox draft created ``n`` minutes after T0."""
    fields: dict[str, Any] = {
        "key": key,
        "process_id": PID,
        "event": "draft_posted",
        "recipient": "expert:1",
        "email": "j.doe@itu.int",
        "name": "Jane Doe",
        "language": "fr",
        "timezone": "Africa/Nairobi",
        "context": {"document": "WTPF-26/1", "deadline": "2026-04-01T22:00:00Z"},
        "created_at": T0 + timedelta(minutes=n),
    }
    fields.update(changes)
    return OutboxDraft(**fields)


def messages(count: int, prefix: str = "m") -> list[OutboxDraft]:
    """``count`` drafts with distinct keys, one a second apart."""
    return [
        message(f"{prefix}:{i}", created_at=T0 + timedelta(seconds=i), recipient=f"expert:{i}")
        for i in range(count)
    ]


def init_entry() -> AuditDraft:
    return AuditDraft(at=T0, actor="system", kind="init")


def with_process(store: Store, process_id: str = PID) -> Store:
    """``store`` holding one process (experts belong to a process)."""
    store.create(process_id, {"name": "wtpf"}, "defhash", {"state": "draft"}, init_entry())
    return store


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def opener(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[[], Store]]:
    """Opens stores on one backend (each SqlStore with its own connections); closes them."""
    opened: list[Store] = []
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'prepflow.db'}"
    else:
        url = request.getfixturevalue("postgres_url")

    def open_one() -> Store:
        store: Store = SqlStore(url)
        opened.append(store)
        return store

    yield open_one
    for store in opened:
        store.close()


@pytest.fixture
def store(opener: Callable[[], Store]) -> Store:
    """A store on each backend in turn, holding the process wtpf-26."""
    return with_process(opener())


# --- the experts register ------------------------------------------------------------------


def test_add_experts_stores_normalised(store: Store) -> None:
    """Added experts come back with ids, the normalised email and aware UTC times."""
    geneva = timezone(timedelta(hours=1))
    added = store.add_experts(
        PID,
        [
            nominee("  Jane.Doe@ITU.int "),
            nominee("b@x.org", nominated_at=datetime(2026, 3, 2, 10, 0, tzinfo=geneva), late=True),
        ],
    )
    assert [e.email for e in added] == ["jane.doe@itu.int", "b@x.org"]
    assert len({e.id for e in added}) == 2
    assert all(e.process_id == PID and not e.erased for e in added)
    assert added[1].late
    assert not added[0].late
    assert added[1].nominated_at == T0 + timedelta(hours=1)
    assert added[1].nominated_at.tzinfo is UTC
    assert store.experts(PID) == added


def test_duplicate_in_batch_writes_nothing(store: Store) -> None:
    """An address repeated within one batch (ignoring case) refuses the whole batch."""
    batch = [nominee("a@x.org"), nominee("b@x.org"), nominee("A@X.org")]
    with pytest.raises(DuplicateExpert) as caught:
        store.add_experts(PID, batch, [message("ack:a"), message("ack:b")])
    assert (caught.value.email, caught.value.index) == ("a@x.org", 2)
    assert caught.value.duplicates == [(2, "a@x.org")]
    assert "a@x.org" not in str(caught.value)  # masked: the message may reach a log
    assert "a***@x.org" in str(caught.value)
    assert store.experts(PID) == []
    assert store.outbox() == []


def test_duplicate_against_stored_writes_nothing(store: Store) -> None:
    """An address already registered (ignoring case) refuses the batch; every repeat is named."""
    store.add_experts(PID, [nominee("a@x.org"), nominee("b@x.org")])
    batch = [nominee("new@x.org"), nominee("B@x.org"), nominee(" a@X.ORG")]
    with pytest.raises(DuplicateExpert) as caught:
        store.add_experts(PID, batch, [message("ack:new")])
    assert caught.value.duplicates == [(1, "b@x.org"), (2, "a@x.org")]
    assert [e.email for e in store.experts(PID)] == ["a@x.org", "b@x.org"]
    assert store.outbox() == []


def test_same_address_in_two_processes(store: Store) -> None:
    """Uniqueness is per process: one person may be nominated to two processes."""
    with_process(store, "wtdc-25")
    store.add_experts(PID, [nominee("a@x.org")])
    store.add_experts("wtdc-25", [nominee("a@x.org")])
    assert [e.process_id for e in store.experts("wtdc-25")] == ["wtdc-25"]


def test_add_experts_unknown_process(store: Store) -> None:
    """Experts for a process that is not stored are refused with the known ones listed."""
    with pytest.raises(UnknownProcess, match=r"'wtpf-62'.*wtpf-26"):
        store.add_experts("wtpf-62", [nominee()])
    with pytest.raises(UnknownProcess):
        store.experts("wtpf-62")


def test_add_experts_writes_outbox_with_them(store: Store) -> None:
    """Acknowledgements handed in with the nominations are in the outbox, pending."""
    store.add_experts(
        PID, [nominee("a@x.org")], [message("ack:a", event="nomination_acknowledged")]
    )
    [item] = store.outbox(PID)
    assert (item.key, item.event, item.status, item.attempts) == (
        "ack:a",
        "nomination_acknowledged",
        "pending",
        0,
    )


def test_expert_listing_and_status(store: Store) -> None:
    """Experts list in nomination order, filter by status, and change status by address."""
    store.add_experts(PID, [nominee("a@x.org"), nominee("b@x.org"), nominee("c@x.org")])
    changed = store.set_expert_status(PID, "B@X.org", "confirmed")
    assert (changed.email, changed.status) == ("b@x.org", "confirmed")
    store.set_expert_status(PID, "c@x.org", "withdrawn")
    assert [e.email for e in store.experts(PID)] == ["a@x.org", "b@x.org", "c@x.org"]
    assert [e.email for e in store.experts(PID, "confirmed")] == ["b@x.org"]
    assert [e.email for e in store.experts(PID, status="nominated")] == ["a@x.org"]
    with pytest.raises(ValueError, match="'elected' is not one of nominated, confirmed"):
        store.set_expert_status(PID, "a@x.org", "elected")
    with pytest.raises(ValueError, match="'elected'"):
        store.experts(PID, "elected")
    with pytest.raises(UnknownExpert, match=r"n\*\*\*@x.org"):
        store.set_expert_status(PID, "nobody@x.org", "confirmed")


def test_erase_scrubs_expert_and_outbox(store: Store) -> None:
    """Erasure scrubs the expert and messages to them, cancels unsent ones, keeps the chain."""
    jane, other = store.add_experts(PID, [nominee("jane@x.org"), nominee("o@x.org")])
    jane_ref = f"expert:{jane.id}"
    store.enqueue(
        [
            message("sent", recipient=jane_ref, email="jane@x.org"),
            message("pending", recipient=jane_ref, email="jane@x.org", n=1),
            message("by-address", recipient="member:9", email="JANE@x.org", n=2),
            message("other", recipient=f"expert:{other.id}", email="o@x.org", n=3),
        ]
    )
    [first] = store.claim(T0, 1)
    store.mark_sent(first.id, T0, "250 OK")
    store.commit(PID, 0, None, [AuditDraft(at=T0, actor="clerk", kind="note")])
    audit_before = store.audit(PID)

    assert store.erase_expert(PID, "Jane@X.org") == 4  # the expert and three messages
    erased = store.experts(PID)[0]
    assert (erased.email, erased.first_name, erased.last_name, erased.entity) == (
        f"erased-{jane.id}@invalid",
        "(erased)",
        "(erased)",
        "(erased)",
    )
    assert (erased.gender, erased.timezone, erased.erased) == (None, None, True)
    assert (erased.country, erased.region, erased.nominated_by) == ("Kenya", "AFR", "Kenya")
    items = {i.key: i for i in store.outbox(PID)}
    for key in ["sent", "pending", "by-address"]:
        item = items[key]
        assert (item.email, item.name, item.context) == (
            f"erased-{jane.id}@invalid",
            "(erased)",
            {"erased": True},
        )
    assert items["sent"].status == "sent"
    assert items["pending"].status == items["by-address"].status == "failed"
    assert "erased" in (items["pending"].last_error or "")
    untouched = items["other"]
    assert (untouched.email, untouched.name, untouched.status) == ("o@x.org", "Jane Doe", "pending")
    assert untouched.context == message().context
    assert store.experts(PID)[1] == other
    assert (store.audit(PID), store.verify()) == (audit_before, [])
    assert store.erase_expert(PID, "jane@x.org") == 0  # nothing left to erase
    with pytest.raises(UnknownExpert):
        store.set_expert_status(PID, "jane@x.org", "confirmed")


def test_erase_clears_server_replies_and_errors(store: Store) -> None:
    """Servers repeat the address in replies: erasure clears reply and last_error too."""
    [ana] = store.add_experts(PID, [nominee("ana.silva@example.br")])
    to_ana = {"recipient": f"expert:{ana.id}", "email": "ana.silva@example.br"}
    store.enqueue([message(key, n=n, **to_ana)
                   for n, key in enumerate(["sent", "failed", "uncertain", "retried"])])
    said = "<ana.silva@example.br>: Recipient address rejected"
    later = T0 + timedelta(hours=1)  # all four due
    ids = {i.key: i.id for i in store.claim(later, 10)}
    store.mark_sent(ids["sent"], T0, f"250 2.0.0 queued for <ana.silva@example.br> (Ana {said})")
    store.mark_failed(ids["failed"], f"550 5.1.1 {said}", T0)
    store.mark_retry(ids["uncertain"], f"451 4.1.1 {said}", later)
    store.mark_retry(ids["retried"], f"451 4.1.1 {said}", later + timedelta(days=1))
    assert [i.key for i in store.claim(later, 10)] == ["uncertain"]
    assert [i.key for i in store.recover(later, [], resend=False).held] == ["uncertain"]

    assert store.erase_expert(PID, "ana.silva@example.br") == 5
    items = {i.key: i for i in store.outbox(PID)}
    assert {k: (i.status, i.last_error, i.reply) for k, i in items.items()} == {
        "sent": ("sent", None, None),
        "failed": ("failed", None, None),
        "uncertain": ("uncertain", None, None),
        "retried": ("failed", ERASED_PENDING_ERROR, None),
    }
    assert not [i for i in items.values() if "ana" in repr(i).lower()]


def test_erased_expert_is_not_claimable(store: Store) -> None:
    """After erasure only the other experts' messages can be claimed."""
    [jane] = store.add_experts(PID, [nominee("jane@x.org")])
    store.enqueue(
        [
            message("j", recipient=f"expert:{jane.id}"),
            message("x", email="x@y.org", recipient="focal:Kenya"),
        ]
    )
    store.erase_expert(PID, "jane@x.org")
    assert [i.key for i in store.claim(T0, 10)] == ["x"]


# --- the outbox ----------------------------------------------------------------------------


def test_commit_writes_outbox_atomically(store: Store) -> None:
    """A commit writes its outbox rows; a VersionConflict writes neither state nor rows."""
    after = store.commit(PID, 1, {"state": "comments"}, [], [message("a"), message("b", n=1)])
    assert after.version == 2
    assert [i.key for i in store.outbox(PID)] == ["a", "b"]
    with pytest.raises(VersionConflict):
        store.commit(PID, 1, {"state": "lost"}, [init_entry()], [message("c")])
    assert [i.key for i in store.outbox()] == ["a", "b"]
    assert store.get(PID).state == {"state": "comments"}
    with pytest.raises(ValueError, match="context of outbox message 'd'"):
        store.commit(PID, 2, {"state": "x"}, [], [message("d", context={"x": object()})])
    assert store.get(PID).version == 2
    with pytest.raises(UnknownProcess):
        store.commit("nope", 1, {"s": 1}, [], [message("e")])
    assert [i.key for i in store.outbox()] == ["a", "b"]


def test_outbox_only_commit(store: Store) -> None:
    """A commit with no state and no entries still writes its outbox rows."""
    after = store.commit(PID, 0, None, [], [message("only")])
    assert (after.version, after.audit_seq) == (1, 1)
    assert [i.key for i in store.outbox()] == ["only"]


def test_outbox_is_idempotent_on_key(store: Store) -> None:
    """A key already written is skipped by commit and enqueue alike, never an error."""
    store.commit(PID, 1, {"state": "comments"}, [], [message("k1")])
    again = store.commit(PID, 2, {"state": "c2"}, [], [message("k1", event="other"), message("k2")])
    assert again.version == 3
    assert store.enqueue([message("k2"), message("k3"), message("k3")]) == 1
    assert store.enqueue([]) == 0
    items = store.outbox()
    assert [(i.key, i.event) for i in items] == [
        ("k1", "draft_posted"),
        ("k2", "draft_posted"),
        ("k3", "draft_posted"),
    ]


def test_item_fields_round_trip(store: Store) -> None:
    """An outbox item keeps every draft field; times come back aware UTC; context is a copy."""
    geneva = timezone(timedelta(hours=2))
    draft = message("rt", created_at=datetime(2026, 6, 1, 10, 0, 0, 123456, tzinfo=geneva))
    store.enqueue([draft])
    [item] = store.outbox()
    assert {f.name: getattr(item, f.name) for f in dataclasses.fields(OutboxDraft)} == {
        f.name: getattr(draft, f.name) for f in dataclasses.fields(OutboxDraft)
    }
    assert item.created_at.tzinfo is UTC
    assert item.next_attempt_at == item.created_at
    assert (item.status, item.attempts, item.last_error, item.claimed_at) == (
        "pending",
        0,
        None,
        None,
    )
    assert (item.sent_at, item.reply, item.failed_at) == (None, None, None)
    item.context["document"] = "forged"  # type: ignore[index]
    assert store.outbox()[0].context == draft.context


def test_claim_and_mark_sent(store: Store) -> None:
    """claim takes due rows oldest first up to the limit; sent rows are never claimed again."""
    store.enqueue(list(reversed(messages(5))))
    now = T0 + timedelta(minutes=1)
    first = store.claim(now, 2)
    assert [i.key for i in first] == ["m:0", "m:1"]
    assert all(i.status == "sending" and i.claimed_at == now for i in first)
    store.mark_sent(first[0].id, now, "250 2.0.0 Ok: queued as A1")
    sent = store.outbox(status="sent")
    assert [(i.key, i.attempts, i.reply, i.sent_at) for i in sent] == [
        ("m:0", 1, "250 2.0.0 Ok: queued as A1", now)
    ]
    rest = store.claim(now, 10)
    assert [i.key for i in rest] == ["m:2", "m:3", "m:4"]
    assert store.claim(now, 10) == []
    ids = [first[1].id] + [i.id for i in rest]
    assert store.mark_sent_many(ids, now, ["250 a", "250 b", "250 c", "250 d"]) == 4
    assert store.mark_sent_many([*ids[:1], 10**9], now, ["again", "unknown"]) == 0
    assert store.outbox(status="sending") == []
    replies = {i.key: i.reply for i in store.outbox(status="sent")}
    assert replies == {
        "m:0": "250 2.0.0 Ok: queued as A1",
        "m:1": "250 a",
        "m:2": "250 b",
        "m:3": "250 c",
        "m:4": "250 d",
    }
    with pytest.raises(ValueError, match="2 ids but 1 replies"):
        store.mark_sent_many(ids[:2], now, ["x"])
    with pytest.raises(UnknownOutboxItem, match="no outbox message with id 1000000000"):
        store.mark_sent(10**9, now, "250")
    with pytest.raises(ValueError, match="at least 1"):
        store.claim(now, 0)


def test_claim_skips_future_rows(store: Store) -> None:
    """A row created after ``now`` is not yet due."""
    store.enqueue([message("later", n=10), message("now", n=0)])
    assert [i.key for i in store.claim(T0 + timedelta(minutes=5), 10)] == ["now"]
    assert [i.key for i in store.claim(T0 + timedelta(minutes=10), 10)] == ["later"]


def test_claim_respects_limit_when_times_tie(store: Store) -> None:
    """Rows due at the same instant are handed out at most ``limit`` at a time, by id."""
    store.enqueue([message(f"tie:{i}", recipient=f"expert:{i}") for i in range(5)])
    batches = [store.claim(T0, 2) for _ in range(4)]
    assert [len(b) for b in batches] == [2, 2, 1, 0]
    ids = [i.id for b in batches for i in b]
    assert ids == sorted(ids)


def test_retry_waits_for_next_attempt(store: Store) -> None:
    """A retried row is pending again but not claimable before its next attempt time."""
    store.enqueue([message("r")])
    [item] = store.claim(T0, 1)
    due = T0 + timedelta(minutes=2)
    assert store.mark_retry(item.id, "451 4.3.0 try again later", due)
    [waiting] = store.outbox()
    assert (waiting.status, waiting.attempts, waiting.last_error, waiting.next_attempt_at) == (
        "pending",
        1,
        "451 4.3.0 try again later",
        due,
    )
    assert store.claim(due - timedelta(microseconds=1), 10) == []
    [again] = store.claim(due, 10)
    assert (again.id, again.attempts, again.claimed_at) == (item.id, 1, due)


def test_failed_is_not_retried_until_requeued(store: Store) -> None:
    """A permanent failure stays failed; requeue puts it back in line, attempts kept."""
    store.enqueue([message("f")])
    [item] = store.claim(T0, 1)
    at = T0 + timedelta(seconds=3)
    assert store.mark_failed(item.id, "550 5.1.1 no such user", at)
    [failed] = store.outbox(status="failed")
    assert (failed.attempts, failed.last_error, failed.failed_at) == (
        1,
        "550 5.1.1 no such user",
        at,
    )
    assert store.claim(T0 + timedelta(days=1), 10) == []
    later = T0 + timedelta(hours=1)
    back = store.requeue(item.id, later)
    assert (back.status, back.attempts, back.next_attempt_at, back.failed_at) == (
        "pending",
        1,
        later,
        None,
    )
    assert store.requeue(item.id, later) == back  # pending already: unchanged
    [again] = store.claim(later, 10)
    store.mark_sent(again.id, later, "250")
    with pytest.raises(ValueError, match="cannot be re-queued: it was sent already"):
        store.requeue(item.id, later)
    with pytest.raises(UnknownOutboxItem):
        store.requeue(10**9, later)


def test_late_failure_does_not_undo_sent(store: Store) -> None:
    """mark_retry / mark_failed on a row already sent change nothing and say so."""
    store.enqueue([message("s")])
    [item] = store.claim(T0, 1)
    store.mark_sent(item.id, T0, "250")
    assert not store.mark_retry(item.id, "timeout", T0)
    assert not store.mark_failed(item.id, "550", T0)
    assert store.outbox()[0].status == "sent"
    with pytest.raises(UnknownOutboxItem):
        store.mark_retry(10**9, "x", T0)


def run_of(run_id: str, lease_until: datetime, pid: int = 1) -> DeliveryRun:
    """A delivery run's lease row."""
    return DeliveryRun(run_id, "host-a", pid, T0, lease_until)


def test_recover_takes_back_a_dead_runs_rows_only(store: Store) -> None:
    """Rows a dead run (or no run) held go back to pending with one more possible send; a
    live run's rows are left alone; sent stays the truth if the slow run finishes."""
    store.enqueue([*messages(3), message("live", n=4)])
    store.start_run(run_of("dead", T0 + timedelta(minutes=1)))
    store.start_run(run_of("alive", T0 + timedelta(hours=1)))
    stuck = store.claim(T0 + timedelta(seconds=1), 2, run="dead")
    [orphan] = store.claim(T0 + timedelta(seconds=2), 1)  # no run at all
    [live] = store.claim(T0 + timedelta(minutes=4), 10, run="alive")
    assert [(i.key, i.claimed_by) for i in stuck] == [("m:0", "dead"), ("m:1", "dead")]
    back = store.recover(T0 + timedelta(minutes=5), ["dead"], resend=True)
    assert back.held == []
    assert [i.id for i in back.resent] == [*(i.id for i in stuck), orphan.id]
    assert {(i.status, i.sends, i.next_attempt_at) for i in back.resent} == {
        ("pending", 1, T0 + timedelta(minutes=5))}
    assert all("same Message-ID" in (i.last_error or "") for i in back.resent)
    assert [i.id for i in store.outbox(status="sending")] == [live.id]
    assert [r.run_id for r in store.delivery_runs()] == ["alive"]
    assert store.renew_run("dead", T0 + timedelta(hours=2)) is False
    assert store.renew_run("alive", T0 + timedelta(hours=2)) is True
    # The dead run was only slow and does record its 250: sent wins, and counts a second send.
    store.mark_sent(stuck[0].id, T0 + timedelta(minutes=6), "250")
    assert [(i.id, i.sends) for i in store.outbox(status="sent")] == [(stuck[0].id, 2)]
    again = store.claim(T0 + timedelta(minutes=7), 10, run="alive")
    assert [i.id for i in again] == [stuck[1].id, orphan.id]


def test_recover_with_hold_leaves_rows_uncertain_for_a_person(store: Store) -> None:
    """With the hold policy a dead run's rows become 'uncertain': not claimable, requeueable."""
    store.enqueue(messages(2))
    store.start_run(run_of("dead", T0))
    stuck = store.claim(T0 + timedelta(seconds=1), 10, run="dead")
    back = store.recover(T0 + timedelta(minutes=1), ["dead"], resend=False)
    assert back.resent == []
    assert [(i.id, i.status, i.sends) for i in back.held] == [
        (i.id, "uncertain", 1) for i in stuck]
    assert store.claim(T0 + timedelta(days=1), 10) == []
    assert store.requeue(stuck[1].id, T0 + timedelta(minutes=8)).status == "pending"
    assert [i.id for i in store.claim(T0 + timedelta(minutes=8), 10)] == [stuck[1].id]


def test_record_and_claim_marks_then_claims_in_one_go(store: Store) -> None:
    """The 250s are recorded (one send each) and the next rows claimed for the run; a
    possibly delivered retry and a held row count one send too."""
    store.enqueue(messages(5))
    store.start_run(run_of("r", T0 + timedelta(hours=1)))
    due = T0 + timedelta(minutes=1)
    first = store.record_and_claim([], T0, due, 2, run="r")
    nxt = store.record_and_claim([(first[0].id, "250 a"), (first[1].id, "250 b")], T0, due, 2,
                                 run="r")
    assert [i.key for i in nxt] == ["m:2", "m:3"]
    assert store.record_and_claim([], T0, T0, 0) == []
    assert store.mark_retry(nxt[0].id, "lost after the data", T0, maybe_sent=True)
    assert store.mark_held(nxt[1].id, "uncertain: lost after the data")
    rows = {i.key: (i.status, i.sends, i.claimed_by) for i in store.outbox()}
    assert rows == {"m:0": ("sent", 1, "r"), "m:1": ("sent", 1, "r"),
                    "m:2": ("pending", 1, "r"), "m:3": ("uncertain", 1, "r"),
                    "m:4": ("pending", 0, None)}
    with pytest.raises(ValueError, match="at least 0"):
        store.record_and_claim([], T0, T0, -1)


def test_outbox_listing_filters(store: Store) -> None:
    """outbox() filters by process and status and lists by id."""
    with_process(store, "wtdc-25")
    store.enqueue([message("a"), message("b", process_id="wtdc-25"), message("c", n=1)])
    [claimed] = store.claim(T0, 1)
    assert [i.key for i in store.outbox()] == ["a", "b", "c"]
    assert [i.key for i in store.outbox(PID)] == ["a", "c"]
    assert [i.key for i in store.outbox(status="pending")] == ["b", "c"]
    assert [i.key for i in store.outbox("wtdc-25", "pending")] == ["b"]
    assert claimed.key == "a"
    with pytest.raises(ValueError, match="'done' is not one of pending, sending"):
        store.outbox(status="done")


def test_naive_times_refused() -> None:
    """Drafts with naive times are refused: they are ambiguous between time zones."""
    with pytest.raises(ValueError, match="no time zone"):
        nominee(nominated_at=datetime(2026, 3, 2, 8, 0))
    with pytest.raises(ValueError, match="no time zone"):
        message(created_at=datetime(2026, 3, 2, 8, 0))
    with pytest.raises(ValueError, match="expert status 'elected'"):
        nominee(status="elected")


# --- concurrency ---------------------------------------------------------------------------


def test_concurrent_claims_never_overlap(opener: Callable[[], Store]) -> None:
    """Two deliverers (own connections) claiming 200 rows take each exactly once between them."""
    setup = with_process(opener())
    setup.enqueue(messages(200))
    stores = [opener(), opener()]
    barrier = threading.Barrier(2, timeout=30)
    taken: list[list[OutboxItem]] = [[], []]
    errors: list[BaseException] = []

    def deliver(i: int) -> None:
        try:
            barrier.wait()
            while batch := stores[i].claim(T0 + timedelta(hours=1), 7):
                taken[i] += batch
        except BaseException as exc:  # noqa: BLE001 (any failure is reported by the main thread)
            errors.append(exc)

    threads = [threading.Thread(target=deliver, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert errors == []
    ids = [item.id for batch in taken for item in batch]
    assert len(ids) == len(set(ids)) == 200
    assert set(ids) == {i.id for i in setup.outbox()}
    assert setup.outbox(status="pending") == []


# --- register changes audited in their own transaction -----------------------------------


def note(kind: str, **inputs: Any) -> AuditDraft:
    """A secretariat's audit entry for a register or outbox change."""
    return AuditDraft(at=T0, actor="wtpf-secretariat", kind=kind, reason="review", inputs=inputs)


def kinds(store: Store, process_id: str = PID) -> list[str]:
    return [e.kind for e in store.audit(process_id)]


def test_register_changes_carry_their_audit_entries(store: Store) -> None:
    """Each change writes its entries onto the process's chain with it; the state is kept."""
    before = store.get(PID)
    a, b = store.add_experts(
        PID, [nominee("a@x.org"), nominee("b@x.org")], [message("ack:a")],
        audit=[note("nominations", added=2)],
    )
    store.set_expert_status(PID, "b@x.org", "confirmed", audit=[note("nomination-status")])
    # A transition in between: the register's entries and commit()'s share one chain.
    store.commit(PID, before.version, {"state": "comments"}, [note("transition")])
    assert store.erase_expert(PID, "a@x.org", audit=[note("erasure", expert=a.id)]) == 2
    assert kinds(store) == [
        "init", "nominations", "nomination-status", "transition", "erasure",
    ]
    after = store.get(PID)
    assert (after.audit_seq, after.version, after.state) == (5, before.version + 1,
                                                             {"state": "comments"})
    assert [e.seq for e in store.audit(PID)] == [1, 2, 3, 4, 5]
    assert store.audit(PID)[1].inputs == {"added": 2}
    assert store.experts(PID, "confirmed") == [dataclasses.replace(b, status="confirmed")]
    assert store.verify() == []


def test_requeue_audits_on_the_message_process(store: Store) -> None:
    """A re-queued message's entry goes to its own process's chain, even if already pending."""
    with_process(store, "wtdc-25")
    store.enqueue([message("other", process_id="wtdc-25")])
    [item] = store.claim(T0, 1)
    store.mark_failed(item.id, "550", T0)
    back = store.requeue(item.id, T0, audit=[note("outbox-retry", was="failed")])
    assert back.status == "pending"
    store.requeue(item.id, T0, audit=[note("outbox-retry", was="pending")])
    assert kinds(store, "wtdc-25") == ["init", "outbox-retry", "outbox-retry"]
    assert kinds(store, PID) == ["init"]
    assert store.verify() == []


def test_refused_change_writes_no_audit_entry(store: Store) -> None:
    """A change that is refused leaves the chain as it was, and intact."""
    store.add_experts(PID, [nominee("a@x.org")], audit=[note("nominations")])
    with pytest.raises(DuplicateExpert):
        store.add_experts(PID, [nominee("A@x.org")], audit=[note("nominations")])
    with pytest.raises(UnknownExpert):
        store.set_expert_status(PID, "nobody@x.org", "confirmed", audit=[note("status")])
    with pytest.raises(ValueError, match="'elected'"):
        store.set_expert_status(PID, "a@x.org", "elected", audit=[note("status")])
    with pytest.raises(UnknownProcess):
        store.erase_expert("wtpf-62", "a@x.org", audit=[note("erasure")])
    store.enqueue([message("s")])
    [item] = store.claim(T0, 1)
    with pytest.raises(ValueError, match="cannot be re-queued"):  # out for sending
        store.requeue(item.id, T0, audit=[note("outbox-retry")])
    store.mark_sent(item.id, T0, "250")
    with pytest.raises(ValueError, match="cannot be re-queued: it was sent already"):
        store.requeue(item.id, T0, audit=[note("outbox-retry")])
    with pytest.raises(UnknownOutboxItem):
        store.requeue(10**9, T0, audit=[note("outbox-retry")])
    assert kinds(store) == ["init", "nominations"]
    assert store.get(PID).audit_seq == 2
    assert [e.status for e in store.experts(PID)] == ["nominated"]
    assert store.verify() == []


def test_unsealable_audit_entry_writes_no_change(store: Store) -> None:
    """The other way round: an entry that cannot be stored takes its change down with it."""
    [a] = store.add_experts(PID, [nominee("a@x.org")])
    bad = [note("nominations", when=object())]  # not JSON
    with pytest.raises(ValueError, match="cannot be stored as JSON"):
        store.add_experts(PID, [nominee("b@x.org")], [message("ack:b")], audit=bad)
    with pytest.raises(ValueError, match="cannot be stored as JSON"):
        store.set_expert_status(PID, "a@x.org", "confirmed", audit=bad)
    with pytest.raises(ValueError, match="cannot be stored as JSON"):
        store.erase_expert(PID, "a@x.org", audit=bad)
    assert store.experts(PID) == [a]
    assert store.outbox() == []
    assert kinds(store) == ["init"]
    assert store.verify() == []
