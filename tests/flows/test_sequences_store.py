"""The random sequences of tests/states/test_sequences.py, through the shell and a real store,
mixed with contributions, draft Opinions and the forum's agenda (issue 8, "Bad input").

After each step: no Opinion is adopted or not adopted unless it was added before the final
report was posted (by the audit log's times); every stored contribution is counted once, in
its own window's summary, and each window's recorded summary counts exactly what was recorded
before it closed; the store's hash chains and state verify, and the stored state equals the
replay of the store's own audit log (``states.replay``); a refused step wrote one 'refusal'
entry and nothing else, a bad-input step wrote nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from typing import Any

from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from flows.cli.comments_cmds import _windows
from flows.contributions import draft, record
from flows.shell import Service
from flows.storage import SqlStore
from flows.storage.testing import throwaway_store
from states import opinions
from states.contributions import comment_deadline
from states.dates import zone
from states.definition import ProcessDefinition
from states.errors import InputError, Refused
from states.forum import Stage
from states.instance import Instance
from states.replay import rebuild
from states.roles import Act
from states.rules import effective_milestones
from tests.states.test_sequences import (
    BEGIN,
    DEFINITIONS,
    REASON,
    SEC,
    STEPS,
    Amend,
    Move,
    Post,
    Step,
    amending,
    moved,
    planned,
    posting_of,
    rebuilt_fields,
)


@dataclass(frozen=True)
class Submit:
    """A contribution on ``cycle`` from ``category``, received ``ago`` minutes before now
    (negative: in the future, bad input); an unknown cycle or category is bad input."""

    cycle: str
    category: str
    kind: str
    ago: int


@dataclass(frozen=True)
class Opine:
    """An Opinion added, moved to ``stage`` or given ``stage`` as its outcome."""

    action: str
    number: int
    stage: str


@dataclass(frozen=True)
class Agenda:
    """The forum's next agenda item (the chair and the report given where they are due)."""


@dataclass(frozen=True)
class ToForum:
    """The clock goes to 09:00 on the forum's (effective) first day, if it is dated and ahead."""


Action = Step | Submit | Opine | Agenda | ToForum


def weighted(*choices: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """One of ``choices``, each as likely (st.one_of flattens nested unions: STEPS would
    count as its eight branches)."""
    return st.sampled_from(choices).flatmap(lambda chosen: chosen)


SUBMITS = st.builds(Submit, st.sampled_from(["d1"] * 4 + ["d2"] * 4 + ["final", "nowhere"]),
                    st.sampled_from(["member-state"] * 6 + ["academia", "public", "public",
                                                             "citizen"]),
                    st.sampled_from(["draft-comment"] * 6 + ["opinion-outline", "nonsense"]),
                    st.integers(0, 60 * 4) | st.integers(-60, 60 * 24 * 60))
STAGES = st.sampled_from(["possible", "annexed", "final", "final", "final", "adopted",
                          "withdrawn", "bogus"])
OPINES = st.builds(Opine, st.sampled_from(["add", "add", "move", "move", "move", "outcome"]),
                   st.integers(0, 1) | st.integers(0, 3), STAGES)
ON_PLAN = st.builds(Post, st.none(), st.booleans(), st.just(True))
OUTCOMES = st.builds(Opine, st.just("outcome"), st.integers(0, 2),
                     st.sampled_from(["adopted", "not-adopted", "withdrawn"]))
#: Before the final report: time, postings, amendments, contributions and Opinions ...
PREPARING = weighted(STEPS, STEPS, ON_PLAN, SUBMITS, SUBMITS, SUBMITS, OPINES, OPINES)
#: ... then mostly the forum: its agenda and the Opinions' outcomes (and late comers).
AT_FORUM = weighted(STEPS, SUBMITS, OPINES, OUTCOMES, OUTCOMES, st.just(ToForum()),
                    *[st.just(Agenda())] * 5)


@st.composite
def sequences(draw: st.DrawFn) -> list[Action]:
    """A preparation; an Opinion placed in the final report, the month-only meeting fixed to a
    day, the next postings tried on plan, the forum moved (an undated one dated); then
    the forum's days, its agenda moved on a few items first."""
    number = draw(st.integers(0, 3))  # an Opinion placed in the final report (maybe reused)
    middle: list[Action] = [Opine("add", number, "outline"), Opine("move", number, "final"),
                            Amend("m2", draw(st.integers(0, 27)), "fix", False),
                            *[Post(None, True, True)] * 3]
    middle.append(Amend("forum", draw(st.integers(20, 90)), "day", draw(st.booleans())))
    agenda = [Agenda()] * draw(st.integers(0, 9))  # often up to the Opinions' items
    return [*draw(st.lists(PREPARING, min_size=8, max_size=20)), *middle, ToForum(), *agenda,
            *draw(st.lists(AT_FORUM, min_size=5, max_size=20))]


def act(service: Service, d: ProcessDefinition, now: datetime, action: Action) -> datetime:
    """Run one action through the shell (refusals and bad input raise); the new now."""
    instance = service.load(d.id)[2]
    if isinstance(action, Move):
        now = moved(now, action)
        service.advance(now)
    elif isinstance(action, ToForum):
        forum = {m.key: m for m in effective_milestones(d, instance)}["forum"].start
        if forum is not None and forum.exact:
            opening = datetime.combine(forum.first_day(), time(9), zone(d.timezone))
            now = max(now, opening.astimezone(UTC))
        service.advance(now)
    elif isinstance(action, Post):
        if action.on_plan:
            now = max(now, planned(d, instance))
        service.transition(d.id, posting_of(d, instance, action), SEC, "DOC",
                           REASON if action.override else None, action.override, now)
    elif isinstance(action, Submit):
        submit(service, d, instance, now, action)
    elif isinstance(action, Opine):
        opine(service, d, now, action)
    elif isinstance(action, Agenda):
        item, forum = instance.forum.item, d.forum
        chair = "Chair" if item == forum.chair_item else None
        report = "CR" if item == forum.adoption_item else None
        service.change(d.id, "forum next", SEC, {"chair": chair, "document": report},
                       lambda df, i, at: opinions.forum_next(df, i, SEC, at, chair, report),
                       now, act=Act.FORUM)
    else:
        key, value = amending(d, instance, action, now)
        service.amend(d.id, key, value, SEC, REASON, action.override, now)
    return now


def submit(service: Service, d: ProcessDefinition, instance: Instance, now: datetime,
           action: Submit) -> None:
    """`prepflow comments add`: the edge's draft (a bad field is bad input), then record."""
    values = {"cycle": action.cycle, "from": "Someone", "category": action.category,
              "kind": action.kind, "title": "T", "document": "DOC/1",
              "received": (now - timedelta(minutes=action.ago)).isoformat()}
    try:
        one = draft(values, d.id, zone(d.timezone), now, "--")
    except ValueError as exc:
        raise InputError(str(exc)) from None
    added = record(service, d.id, [("the contribution", one)], SEC, now)
    assert len(added) == 1
    deadline = comment_deadline(d, instance, action.cycle)
    if one.category.value != "public":  # late exactly when received after the deadline
        assert added[0].late == (one.received_at >= deadline)


def opine(service: Service, d: ProcessDefinition, now: datetime, action: Opine) -> None:
    """`prepflow opinions add|move|outcome` (op-2's moves without IEG consensus)."""
    op = f"op-{action.number}"
    if action.action == "add":
        service.change(d.id, f"opinions add {op}", SEC, {"opinion": op, "title": "T"},
                       lambda df, i, at: opinions.add(df, i, op, "T", None, SEC, at), now,
                       act=Act.OPINION)
    elif action.action == "move":
        consensus = action.number != 2
        service.change(d.id, f"opinions move {op}", SEC,
                       {"opinion": op, "stage": action.stage, "consensus": consensus},
                       lambda df, i, at: opinions.move(df, i, op, action.stage, SEC, at,
                                                       consensus), now, act=Act.OPINION)
    else:
        service.change(d.id, f"opinions outcome {op}", SEC,
                       {"opinion": op, "outcome": action.stage},
                       lambda df, i, at: opinions.outcome(df, i, op, action.stage, SEC, at),
                       now, act=Act.FORUM)


@dataclass(frozen=True)
class Snapshot:
    """What a step may change: the state document, the register, the outbox, the log."""

    state: dict[str, Any]
    contributions: int
    outbox: int
    audit: int


def snapshot(store: SqlStore, process_id: str) -> Snapshot:
    return Snapshot(store.get(process_id).state, len(store.contributions(process_id)),
                    len(store.outbox(process_id)), len(store.audit(process_id)))


def check(service: Service, store: SqlStore, d: ProcessDefinition,
          at_close: dict[str, int]) -> None:
    """The invariants (1)–(3) on the store as it stands."""
    instance = service.load(d.id)[2]
    log = store.audit(d.id)
    register = store.contributions(d.id)
    # (1) adopted / not adopted only if added before the final report was posted (the log's
    # order and times: an add and the posting may share an instant, the add coming first)
    final = next(((n, e.at) for n, e in enumerate(log) if e.kind == "transition"
                  and e.trigger == f"post_{d.cycles[-1].id}"), None)
    added = {e.inputs["opinion"]["id"]: (n, e.at) for n, e in enumerate(log)
             if e.kind == "opinion" and e.inputs.get("action") == "add"}
    for o in instance.opinions.values():
        if o.stage in (Stage.ADOPTED, Stage.NOT_ADOPTED):
            event("an Opinion decided at the forum")
            assert final is not None, o
            assert added[o.id][0] < final[0], o
            assert added[o.id][1] <= final[1] == instance.posted_at(d.cycles[-1].id)
    # (2) each recorded summary counts what was recorded before its close; cycles distinct
    closed = [e.inputs["cycle"] for e in log if e.kind == "window-summary"]
    assert len(closed) == len(set(closed)) == len(instance.summaries)
    for cycle, summary in instance.summaries.items():
        assert summary.cycle == cycle
        assert summary.total == at_close[cycle] == summary.on_time + summary.late
    windows = _windows(service, d, instance, d.id, None)
    assert sum(w.summary.total for w in windows) == len(register)  # each once, in its own
    for w in windows:
        mine = [c for c in register if c.cycle == w.summary.cycle]
        assert (w.summary.total, w.summary.late) == (len(mine), sum(c.late for c in mine))
        assert w.at_close == instance.summaries.get(w.summary.cycle)
    # (3) the log rebuilds the stored state, and the store verifies
    assert rebuilt_fields(rebuild(d, log, d.id)) == rebuilt_fields(instance)
    assert service.verify() == []


#: The path to an adopted Opinion, with a late comment and a refused Opinion on the way.
ADOPTED = [Opine("add", 0, "outline"), Submit("d1", "public", "draft-comment", 0),
           Opine("move", 0, "final"), Amend("m2", 5, "fix", False),
           Post(None, True, True), Move(60 * 24 * 3),
           Submit("d1", "member-state", "draft-comment", 60),
           Submit("d1", "public", "draft-comment", 30), Post(None, True, True),
           Submit("d1", "member-state", "draft-comment", 30), Post(None, True, True),
           Opine("add", 1, "outline"), Amend("forum", 50, "day", False), ToForum(),
           Opine("outcome", 0, "adopted"), *[Agenda()] * 8, Opine("outcome", 0, "adopted"),
           Opine("outcome", 0, "adopted"), Submit("d2", "member-state", "draft-comment", 10),
           Agenda(), Agenda(), Agenda()]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@example(gap=42, actions=ADOPTED)
@given(gap=st.sampled_from(list(DEFINITIONS)),
       actions=sequences())
def test_stored_sequences_keep_the_invariants(gap: int | None, actions: list[Action]) -> None:
    """Random moves, postings, amendments, contributions, Opinion changes and agenda steps
    through Service on SQLite: after each, invariants (1)-(3) hold, and a refused or bad step
    changed nothing but (if refused) one audited refusal."""
    d = DEFINITIONS[gap]
    with throwaway_store() as store:
        service = Service(store)
        service.init(d, BEGIN)
        now = BEGIN
        at_close: dict[str, int] = {}
        for action in actions:
            before = snapshot(store, d.id)
            open_before = set(service.load(d.id)[2].summaries)
            try:
                now = act(service, d, now, action)
            except Refused as refused:
                event(f"{type(action).__name__}: refused by {refused.rule}")
                after = snapshot(store, d.id)
                assert after == Snapshot(before.state, before.contributions, before.outbox,
                                         before.audit + 1)
                assert store.audit(d.id)[-1].kind == "refusal"
            except InputError:
                event(f"{type(action).__name__}: bad input")
                assert snapshot(store, d.id) == before
            else:
                event(f"{type(action).__name__}: accepted")
            for cycle in set(service.load(d.id)[2].summaries) - open_before:
                at_close[cycle] = sum(c.cycle == cycle for c in store.contributions(d.id))
            check(service, store, d, at_close)
