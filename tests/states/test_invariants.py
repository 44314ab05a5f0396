"""STYLE habit 8: Hypothesis drives random definitions through random ticks, posts and amendments.

Invariants checked after every step: one comment window at most, states only move forward,
each trigger fires once, the final goes out ≥ final_min_lead_days before the forum unless the
six-week rule was overridden, a tick is idempotent, and every transition has its audit record.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from math import ceil
from typing import Any

from hypothesis import event, given, settings
from hypothesis import strategies as st

from states import (
    Decision,
    Instance,
    ProcessDefinition,
    Refused,
    Status,
    advance,
    amend,
    apply,
    build_table,
    check,
    effective_milestones,
    parse_definition,
    start,
)
from states.dates import local_day, start_instant, zone
from states.machine import MAIN, Mode, Table
from tests.states.helpers import table_problems, walk_agenda

ZONES = ["Europe/Zurich", "America/New_York", "UTC", "Asia/Tokyo", "Australia/Sydney"]


@st.composite
def definitions(draw: st.DrawFn) -> ProcessDefinition:
    """1–4 draft cycles with 0–3 meetings each, exact dates strictly increasing, a final."""
    day = date(2024, 1, 1) + timedelta(days=draw(st.integers(0, 700)))

    def later(low: int, high: int) -> date:
        nonlocal day
        day += timedelta(days=draw(st.integers(low, high)))
        return day

    cycles: list[dict[str, Any]] = []
    for number in range(1, draw(st.integers(1, 4)) + 1):
        posting = later(1, 20) if cycles else day
        comments = later(1, 40)
        cycle: dict[str, Any] = {"id": f"d{number}", "name": f"Draft {number}",
                                 "posting": posting.isoformat(),
                                 "comment_deadline": comments.isoformat()}
        consultation = draw(st.sampled_from(["none", "with comments", "own deadline"]))
        if consultation != "none":
            cycle["public_consultation"] = True
        if consultation == "own deadline":
            # its own day, after the comments; the next posting still comes after it
            cycle["consultation_deadline"] = later(1, 10).isoformat()
        meetings = []
        for index in range(1, draw(st.integers(0, 3)) + 1):
            first = later(1, 20)
            meetings.append({"id": f"m{number}-{index}", "name": f"Meeting {number}.{index}",
                             "start": first.isoformat(), "end": later(0, 3).isoformat(),
                             "mode": draw(st.sampled_from(["virtual", "in-person", "hybrid"]))})
        cycle["meetings"] = meetings
        cycles.append(cycle)
    final = later(1, 30)
    cycles.append({"id": "final", "name": "Final report", "kind": "final",
                   "posting": final.isoformat()})
    gap = draw(st.none() | st.integers(0, 90))
    forum: dict[str, Any] = {"name": "The Forum", "days": draw(st.integers(1, 4))}
    if gap is not None:
        forum["opens"] = (final + timedelta(days=gap)).isoformat()
    data = {
        "id": "generated", "name": "Generated process",
        "timezone": draw(st.sampled_from(ZONES)), "forum": forum,
        "secretariat": [{"id": "sec-a", "name": "A", "email": "a@example.org"},
                        {"id": "sec-b", "name": "B", "email": "b@example.org"}],
        "rules": {"final_min_lead_days": draw(st.sampled_from([0, 30, 42]))},
        "cycles": cycles,
    }
    return parse_definition(data, "generated")


HOURS = st.integers(0, 24 * 12)
ACTIONS = st.lists(
    st.one_of(
        st.tuples(st.just("advance"), HOURS),
        st.tuples(st.just("post"), HOURS, st.booleans()),
        st.tuples(st.just("post on plan"), HOURS, st.booleans()),
        st.tuples(st.just("forum"), HOURS, st.integers(-20, 120), st.booleans()),
        st.tuples(st.just("extend"), HOURS, st.integers(1, 30)),
    ),
    min_size=5,
    max_size=50,
)


class Run:
    """One generated process driven step by step, checking the invariants after each."""

    def __init__(self, definition: ProcessDefinition) -> None:
        self.definition = definition
        self.table: Table = build_table(definition)
        self.tz = zone(definition.timezone)
        first = definition.cycles[0].posting
        self.now = start_instant(first, self.tz) - timedelta(days=3)
        decision = start(definition, self.now)
        self.instance: Instance = decision.after
        self.replayed = dict(self.table.initial)
        self.fired: list[str] = []
        self.effect_keys: set[str] = set()
        self.lead = definition.rules.final_min_lead_days
        self.final = f"post_{definition.cycles[-1].id}"

    def next_posting(self) -> str | None:
        """The first posting (manual trigger of the main region) that has not happened yet."""
        return next((s.trigger for s in self.table.specs if s.mode is Mode.MANUAL
                     and s.region == MAIN and s.trigger not in self.instance.happened), None)

    def step(self, action: tuple[Any, ...]) -> None:
        """Move time forward, then do the action; a refusal must leave everything as it was."""
        self.now += timedelta(hours=action[1])
        plan_in_order = not [r for r in check(self.definition, self.plan())
                             if r.status is Status.FAIL and r.rule != "six-weeks"]
        try:
            decision = self.decide(action)
        except Refused as refused:
            event(f"refused: {refused.rule}")
            return
        if decision is not None:
            self.accept(decision, action[0], plan_in_order)

    def plan(self) -> list[Any]:
        return effective_milestones(self.definition, self.instance)

    def decide(self, action: tuple[Any, ...]) -> Decision | None:
        definition, instance, now = self.definition, self.instance, self.now
        kind = action[0]
        if kind == "advance":
            return advance(definition, instance, now)
        if kind == "agenda":
            return walk_agenda(definition, instance, now)
        if kind in ("post", "post on plan"):
            trigger = self.next_posting()
            if trigger is None:
                return None
            if kind == "post on plan":  # wait for the planned day, if it is still ahead
                planned = self.definition.cycle(trigger.removeprefix("post_")).posting
                now = self.now = max(now, start_instant(planned, self.tz) + timedelta(hours=10))
            return apply(definition, instance, trigger, "sec-b", now, document="DOC",
                         reason="generated" if action[2] else None, override=action[2])
        if kind == "forum":
            final_day = definition.cycles[-1].posting.first_day()
            opens = (final_day + timedelta(days=action[2])).isoformat()
            return amend(definition, instance, "forum", opens, "sec-a", "moved", now,
                         override=action[3])
        trigger = self.next_posting()  # "extend": a new comment deadline for the next draft
        if trigger is None or trigger == self.final:
            return None
        cycle = trigger.removeprefix("post_")
        deadline = local_day(now, self.tz) + timedelta(days=action[2])
        return amend(definition, instance, f"{cycle}.comments", deadline.isoformat(), "sec-a",
                     "late draft", now, override=True)

    def accept(self, decision: Decision, kind: str, plan_in_order: bool) -> None:
        before, after = decision.before, decision.after
        assert before == self.instance
        assert all(r.at == self.now for r in decision.records)
        # every transition has its audit record, chained from state to state; each fires once
        for record in decision.records:
            if record.kind != "transition":
                continue
            region = record.inputs["region"]
            assert record.from_state == self.replayed[region]
            self.replayed[region] = record.to_state
            assert record.trigger not in self.fired
            self.fired.append(record.trigger)
            if "due" in record.inputs:
                assert datetime.fromisoformat(record.inputs["due"]) <= self.now
        assert self.replayed == after.regions
        assert sorted(self.fired) == sorted(after.happened)
        # states only move forward, in table order
        for region, names in self.table.states.items():
            assert names.index(after.regions[region]) >= names.index(before.regions[region])
        # a tick applies what is due in due order (when the plan is in order) and is idempotent
        dues = [r.inputs["due"] for r in decision.records if "due" in r.inputs]
        if kind == "advance" and plan_in_order:
            assert [datetime.fromisoformat(d) for d in dues] == sorted(
                datetime.fromisoformat(d) for d in dues)
        if kind in ("advance", "post"):
            assert advance(self.definition, after, self.now).records == ()
        # effects are keyed once per trigger
        for effect in decision.effects:
            if effect.trigger is not None:
                assert effect.key not in self.effect_keys
                self.effect_keys.add(effect.key)
        self.instance = after
        self.check_state()

    def check_state(self) -> None:
        instance = self.instance
        assert instance.regions[MAIN] in self.table.states[MAIN]
        open_windows = [c.id for c in self.definition.cycles if c.kind == "draft"
                        and f"post_{c.id}" in instance.happened
                        and f"close_comments_{c.id}" not in instance.happened]
        assert len(open_windows) <= 1
        assert bool(open_windows) == instance.regions[MAIN].endswith(".comment_window")
        if self.final in instance.happened:
            overridden = any(o.rule == "six-weeks" for o in instance.overrides)
            forum = {m.key: m for m in self.plan()}["forum"].start
            posted = local_day(instance.happened[self.final].at, self.tz)
            kept = forum is not None and (forum.first_day() - posted).days >= self.lead
            assert overridden or kept, (forum, posted, instance.overrides)


@settings(max_examples=60, deadline=None)
@given(definition=definitions(), actions=ACTIONS)
def test_random_runs_keep_the_invariants(
    definition: ProcessDefinition, actions: list[tuple[Any, ...]]
) -> None:
    """Random ticks, posts and amendments never break the process invariants."""
    run = Run(definition)
    for action in actions:
        run.step(action)  # checks every invariant after each step
    assert run.replayed == run.instance.regions  # the records alone rebuild where it stands
    # seen with --hypothesis-show-statistics: how far the runs get
    event(f"ended at: {run.instance.regions[MAIN].split('.')[-1]}")
    event(f"final posted: {run.final in run.instance.happened}")


@settings(max_examples=60, deadline=None)
@given(definition=definitions())
def test_generated_tables_are_sound(definition: ProcessDefinition) -> None:
    """Every generated definition builds a sound table (habit 1 checks)."""
    assert table_problems(definition) == []


@settings(max_examples=30, deadline=None)
@given(definition=definitions(), hours=st.integers(12, 24 * 10))
def test_on_time_runs_end_where_the_six_week_rule_says(
    definition: ProcessDefinition, hours: int
) -> None:
    """Posting on plan with regular ticks: closed if the forum is far enough, else held back."""
    run = Run(definition)
    while run.instance.regions[MAIN] != "closed":
        trigger = run.next_posting()
        if trigger is None:
            if definition.forum.opens is None:
                break  # the forum never opens by itself while it has no date
            if run.instance.regions[MAIN] == "forum" and "end_agenda" not in run.instance.happened:
                run.step(("agenda", 0))  # the forum in session takes its agenda
                continue
            run.step(("advance", hours))
            continue
        cycle = definition.cycle(trigger.removeprefix("post_"))
        planned = start_instant(cycle.posting, run.tz) + timedelta(hours=12)
        if run.now < planned:
            run.step(("advance", min(hours, ceil((planned - run.now) / timedelta(hours=1)))))
            continue
        run.step(("post", 0, definition.forum.opens is None))
        if trigger not in run.instance.happened:
            break
    forum = definition.forum.opens
    final_day = definition.cycles[-1].posting.first_day()
    state = run.instance.regions[MAIN]
    if forum is None:
        assert state == "final.posted"
        assert [o.rule for o in run.instance.overrides] == ["six-weeks"]
    elif (forum.first_day() - final_day).days >= run.lead:
        assert state == "closed"
        assert set(run.instance.happened) == {s.trigger for s in run.table.specs}
        assert run.instance.overrides == ()
    else:
        assert state == "final.drafting"
