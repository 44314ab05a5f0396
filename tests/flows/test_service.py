"""The shell (load → decide → record) on a real database: concurrency, idempotency, no lost update.

Every test runs on SQLite (a temp file) and on PostgreSQL (a database of its own).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from flows.clock import FixedClock
from flows.definition_file import definition_from_text, load_definition
from flows.shell import DamagedState, Outcome, Service
from flows.storage import SqlStore, Store
from states.definition import ProcessDefinition
from states.errors import Refused

ROOT = Path(__file__).resolve().parents[2]
WTPF_TEXT = (ROOT / "config" / "wtpf26.yaml").read_text(encoding="utf-8")
BY = "wtpf-secretariat"
DEPUTY = "wtpf-deputy"


def utc(*args: int) -> datetime:
    """An aware UTC instant."""
    return datetime(*args, tzinfo=UTC)


#: When the tests' processes are created (the day after CL-24/44 went out).
START = utc(2024, 7, 10, 8)

#: WTPF-26 with a second secretariat member, so two people can act at once.
TWO_MEMBERS: ProcessDefinition = definition_from_text(
    WTPF_TEXT.replace(
        "    email: wtpf@itu.int\n",
        "    email: wtpf@itu.int\n  - id: wtpf-deputy\n    name: WTPF Deputy\n"
        "    email: wtpf-deputy@itu.int\n",
    ),
    "wtpf26 with two members",
)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh store: a SQLite file, or a PostgreSQL database of the test's own."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'prepflow.db'}"
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture
def services(url: str) -> Iterator[Callable[..., Service]]:
    """Make Services, each with its own SqlStore on ``url`` (as separate workers have)."""
    stores: list[SqlStore] = []

    def make(now: datetime = START, wrap: Callable[[Store], Store] | None = None) -> Service:
        store = SqlStore(url)
        stores.append(store)
        return Service(wrap(store) if wrap else store, FixedClock(now))

    yield make
    for store in stores:
        store.close()


class CommitHook:
    """A store that runs ``before`` just ahead of its first write (a commit, or the write
    transaction a change runs in): a deterministic race."""

    def __init__(self, store: Store, before: Callable[[], object]) -> None:
        self._store = store
        self._before: Callable[[], object] | None = before

    def _let_the_other_in(self) -> None:
        if self._before is not None:
            before, self._before = self._before, None
            before()

    def commit(self, *args: Any, **kwargs: Any) -> Any:
        """Let the other writer in first (once), then commit on what we read earlier."""
        self._let_the_other_in()
        return self._store.commit(*args, **kwargs)

    def transaction(self, process_id: str) -> Any:
        """Let the other writer in first (once), then open our write transaction."""
        self._let_the_other_in()
        return self._store.transaction(process_id)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)


def kinds(svc: Service, process_id: str = "wtpf-26") -> list[tuple[str, str | None]]:
    """The audit log as (kind, trigger) pairs, leaving out notices (messages decided) and
    comment windows' summaries (recorded with each close)."""
    return [(e.kind, e.trigger) for e in svc.store.audit(process_id)
            if e.kind not in ("notice", "window-summary")]


def moved(outcomes: list[Outcome]) -> list[str]:
    """Processes an advance moved (not those it only decided messages for)."""
    return [o.process_id for o in outcomes if o.decision.transitions]


def at_ieg1_end(svc: Service) -> None:
    """WTPF-26 with the 1st IEG meeting on 7-8 Oct 2024, running until it is under way."""
    svc.init(TWO_MEMBERS, utc(2024, 7, 10, 8))
    svc.amend("wtpf-26", "ieg1", "2024-10-07..2024-10-08", BY, "CL-24/44",
              now=utc(2024, 7, 15, 8))
    svc.transition("wtpf-26", "post_draft1", BY, "WTPF-26/1", now=utc(2024, 8, 5, 7))
    svc.advance(utc(2024, 10, 7, 8))  # comments closed, meeting started


def test_two_members_posting_the_same_draft_at_once_apply_once(
    services: Callable[..., Service],
) -> None:
    """Two members post the First Draft at the same instant: one applies, one is refused."""
    setup = services()
    setup.init(TWO_MEMBERS, utc(2024, 7, 10, 8))
    now = utc(2024, 8, 5, 7)
    barrier = threading.Barrier(2, timeout=30)
    results: dict[str, Outcome | Exception] = {}

    def post(actor: str) -> None:
        svc = services(now)  # a worker of its own: own store, own connections
        barrier.wait()
        try:
            results[actor] = svc.transition("wtpf-26", "post_draft1", actor,
                                            f"WTPF-26/1 ({actor})")
        except Exception as exc:  # noqa: BLE001 (any failure: the main thread reports it)
            results[actor] = exc

    threads = [threading.Thread(target=post, args=(a,)) for a in (BY, DEPUTY)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    applied = [r for r in results.values() if isinstance(r, Outcome)]
    refused = [r for r in results.values() if isinstance(r, Refused)]
    assert len(applied) == 1, results
    assert len(refused) == 1, results
    assert refused[0].rule in ("once", "concurrent")
    assert "already happened" in str(refused[0]) or "same moment" in str(refused[0])

    stored = setup.store.get("wtpf-26")
    assert stored.version == 2  # init, then exactly one posting
    assert stored.state["regions"]["main"] == "draft1.comment_window"
    log = kinds(setup)
    assert log.count(("transition", "post_draft1")) == 1
    assert log.count(("refusal", "post_draft1")) == (1 if refused[0].rule == "once" else 0)
    assert setup.store.verify() == []


def test_advance_moves_every_due_process_and_only_those_named(
    services: Callable[..., Service],
) -> None:
    """One tick advances every process with something due; --process limits it to the named."""
    svc = services()
    rehearsal = TWO_MEMBERS.model_copy(update={"id": "wtpf-26-rehearsal"})
    for definition in (TWO_MEMBERS, rehearsal):
        svc.init(definition, utc(2024, 7, 10, 8))
        svc.transition(definition.id, "post_draft1", BY, "WTPF-26/1", now=utc(2024, 8, 5, 7))
    svc.init(TWO_MEMBERS.model_copy(update={"id": "wtpf-26-idle"}), utc(2024, 7, 10, 8))

    only = svc.advance(utc(2024, 8, 26, 22), ["wtpf-26-rehearsal"])
    assert moved(only) == ["wtpf-26-rehearsal"]
    assert svc.store.get("wtpf-26").state["regions"]["main"] == "draft1.comment_window"

    outcomes = svc.advance(utc(2024, 8, 26, 22))
    assert moved(outcomes) == ["wtpf-26"]
    for process_id in ("wtpf-26", "wtpf-26-rehearsal"):
        assert svc.store.get(process_id).state["regions"]["main"] == "draft1.comments_closed"
    assert svc.store.get("wtpf-26-idle").state["regions"]["main"] == "draft1.drafting"
    assert svc.store.verify() == []


def test_advance_is_idempotent(services: Callable[..., Service]) -> None:
    """A late tick catches up in order in one commit; the next tick, even later, finds nothing."""
    svc = services()
    svc.init(TWO_MEMBERS, utc(2024, 7, 10, 8))
    svc.amend("wtpf-26", "ieg1", "2024-10-07..2024-10-08", BY, "CL-24/44",
              now=utc(2024, 7, 15, 8))
    svc.transition("wtpf-26", "post_draft1", BY, "WTPF-26/1", now=utc(2024, 8, 5, 7))
    before = svc.store.get("wtpf-26")

    first = svc.advance(utc(2024, 10, 9, 8))
    assert len(first) == 1
    assert [r.trigger for r in first[0].decision.transitions] == [
        "close_comments_draft1", "start_ieg1", "end_ieg1"]
    assert first[0].version == before.version + 1
    after = svc.store.get("wtpf-26")
    log = svc.store.audit("wtpf-26")

    assert svc.advance(utc(2024, 10, 9, 8)) == []
    assert svc.advance(utc(2024, 10, 20, 8)) == []  # nothing new is due before 4 Nov
    assert services().advance(utc(2024, 10, 9, 8)) == []  # another worker agrees
    assert svc.store.get("wtpf-26") == after
    assert svc.store.audit("wtpf-26") == log
    # Late, but each step is recorded as due at its own instant (end of day, Geneva).
    due = {e.trigger: e.inputs.get("due") for e in log if e.kind == "transition"}
    assert due["close_comments_draft1"] == "2024-08-26T22:00:00+00:00"
    assert due["end_ieg1"] == "2024-10-08T22:00:00+00:00"


def test_advance_on_a_stale_read_keeps_a_manual_change(services: Callable[..., Service]) -> None:
    """Advance read the process, then a member amended a date: advance retries, both stay."""
    svc = services()
    svc.init(TWO_MEMBERS, utc(2024, 7, 10, 8))
    svc.transition("wtpf-26", "post_draft1", BY, "WTPF-26/1", now=utc(2024, 8, 5, 7))
    member = services()

    def amend() -> None:
        member.amend("wtpf-26", "ieg1", "2024-10-07..2024-10-08", DEPUTY, "CL-24/44",
                     now=utc(2024, 8, 27, 8))

    ticker = services(wrap=lambda store: CommitHook(store, amend))
    outcomes = ticker.advance(utc(2024, 8, 27, 8))
    assert moved(outcomes) == ["wtpf-26"]

    stored = svc.store.get("wtpf-26")
    assert stored.state["regions"]["main"] == "draft1.comments_closed"
    assert "ieg1" in stored.state["amendments"], "the amendment was lost"
    assert stored.version == 4  # init, post, amend, advance
    assert kinds(svc)[-2:] == [("amendment", None), ("transition", "close_comments_draft1")]
    assert svc.store.verify() == []


def test_manual_transition_on_a_stale_read_keeps_the_tick(services: Callable[..., Service]
                                                           ) -> None:
    """A member posts on a stale read while a tick ends the meeting: one end, one posting."""
    svc = services()
    at_ieg1_end(svc)
    now = utc(2024, 11, 4, 8)
    ticker = services(now)
    member = services(now, wrap=lambda store: CommitHook(store, lambda: ticker.advance()))

    outcome = member.transition("wtpf-26", "post_draft2", DEPUTY, "WTPF-26/2")
    assert outcome.version == svc.store.get("wtpf-26").version
    stored = svc.store.get("wtpf-26")
    assert stored.state["regions"] == {"main": "draft2.comment_window",
                                       "consultation": "draft2.consultation_open",
                                       "agenda": "agenda.pending"}
    log = kinds(svc)
    assert log.count(("transition", "end_ieg1")) == 1
    assert log.count(("transition", "post_draft2")) == 1
    assert log.count(("transition", "open_consultation_draft2")) == 1
    assert not [k for k in log if k[0] == "refusal"]
    assert svc.store.verify() == []


def test_advance_racing_a_manual_transition_loses_nothing(services: Callable[..., Service]
                                                          ) -> None:
    """A tick and a posting in two threads at once: whoever wins, every step is there once."""
    svc = services()
    at_ieg1_end(svc)
    start_version = svc.store.get("wtpf-26").version
    now = utc(2024, 11, 4, 8)
    barrier = threading.Barrier(2, timeout=30)
    errors: list[Exception] = []

    def tick() -> None:
        worker = services(now)
        barrier.wait()
        try:
            worker.advance()
        except Exception as exc:  # noqa: BLE001 (any failure: the main thread reports it)
            errors.append(exc)

    def post() -> None:
        worker = services(now)
        barrier.wait()
        try:
            worker.transition("wtpf-26", "post_draft2", BY, "WTPF-26/2")
        except Exception as exc:  # noqa: BLE001 (any failure: the main thread reports it)
            errors.append(exc)

    threads = [threading.Thread(target=tick), threading.Thread(target=post)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []

    stored = svc.store.get("wtpf-26")
    assert stored.state["regions"] == {"main": "draft2.comment_window",
                                       "consultation": "draft2.consultation_open",
                                       "agenda": "agenda.pending"}
    log = kinds(svc)
    for trigger in ("end_ieg1", "post_draft2", "open_consultation_draft2"):
        assert log.count(("transition", trigger)) == 1, (trigger, log)
    # One commit if the posting caught up the tick itself, two if the tick came first.
    assert stored.version - start_version in (1, 2)
    assert svc.store.verify() == []


def test_refused_change_keeps_state_and_records_why(services: Callable[..., Service]) -> None:
    """A refusal is audited with its rule; state and version stay as they were."""
    svc = services()
    svc.init(load_definition(ROOT / "config" / "wtpf26.yaml"), utc(2024, 7, 10, 8))
    before = svc.store.get("wtpf-26")
    with pytest.raises(Refused, match="rule 'order'"):
        svc.transition("wtpf-26", "post_draft3", BY, "WTPF-26/3", now=utc(2024, 8, 5, 7))
    after = svc.store.get("wtpf-26")
    assert (after.state, after.version) == (before.state, before.version)
    last = svc.store.audit("wtpf-26")[-1]
    assert (last.kind, last.trigger, last.inputs["rule"]) == ("refusal", "post_draft3", "order")
    assert last.at == utc(2024, 8, 5, 7)


def test_service_uses_its_clock_when_no_time_is_given(services: Callable[..., Service]) -> None:
    """Without ``now`` the service asks its clock: moving the FixedClock moves the process."""
    svc = services(utc(2024, 7, 10, 8))
    svc.init(TWO_MEMBERS)
    assert isinstance(svc.clock, FixedClock)
    svc.clock.set(utc(2024, 8, 5, 7))
    svc.transition("wtpf-26", "post_draft1", BY, "WTPF-26/1")
    svc.clock.set(utc(2024, 8, 26, 21, 59))
    assert moved(svc.advance()) == []
    svc.clock.set(utc(2024, 8, 26, 22))
    assert moved(svc.advance()) == ["wtpf-26"]
    assert [e.at for e in svc.store.audit("wtpf-26")
            if e.kind not in ("notice", "window-summary")] == [
        utc(2024, 7, 10, 8), utc(2024, 8, 5, 7), utc(2024, 8, 26, 22)]


def test_a_damaged_state_row_is_reported_and_does_not_stop_other_deadlines(
        services: Callable[..., Service]) -> None:
    """A row whose state no longer validates: load says which process; advance moves the rest."""
    svc = services()
    svc.init(TWO_MEMBERS, utc(2024, 7, 10, 8))
    svc.init(TWO_MEMBERS, utc(2024, 7, 10, 8), process_id="wtpf-26-other")
    for process_id in ("wtpf-26", "wtpf-26-other"):
        svc.transition(process_id, "post_draft1", BY, "WTPF-26/1", now=utc(2024, 8, 5, 7))
    stored = svc.store.get("wtpf-26")
    svc.store.commit("wtpf-26", stored.version, {"bogus": 1}, [])
    with pytest.raises(DamagedState, match="'wtpf-26' is damaged"):
        svc.load("wtpf-26")
    outcomes = svc.advance(utc(2024, 8, 26, 22))
    assert moved(outcomes) == ["wtpf-26-other"]
    assert [d.process_id for d in svc.damaged] == ["wtpf-26"]
