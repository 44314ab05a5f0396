"""STYLE habit 1: the machine's table, built from each definition, is sound."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import pytest

import states.machine as machine
from states import ProcessDefinition, build_table, mermaid
from states.engine import engine_for
from states.machine import AGENDA, AGENDA_DONE, CONSULTATION, MAIN, Mode
from tests.states.helpers import other, table_problems, wtpf

DEFINITIONS = pytest.mark.parametrize("load", [wtpf, other], ids=["wtpf-26", "rpd-27"])


@DEFINITIONS
def test_table_is_sound(load: Callable[[], ProcessDefinition]) -> None:
    """One initial state per region, all reachable, no dead ends, guards and milestones resolve."""
    assert table_problems(load()) == []


@DEFINITIONS
def test_exactly_one_initial_state_per_region(load: Callable[[], ProcessDefinition]) -> None:
    """Each region has one initial state, the first declared, which nothing leads back to."""
    table = build_table(load())
    assert set(table.initial) == {MAIN, CONSULTATION, AGENDA}
    for region, names in table.states.items():
        assert table.initial[region] == names[0]
        entered = {s.dest for s in table.specs if s.region == region}
        assert [n for n in names if n not in entered] == [names[0]]


@DEFINITIONS
def test_only_terminal_states_are_dead_ends(load: Callable[[], ProcessDefinition]) -> None:
    """Only 'closed' (main), the last consultation state and the agenda's end have no way
    out."""
    table = build_table(load())
    dead = [(r, n) for r, names in table.states.items() for n in names
            if not table.outgoing(r, n)]
    assert dead == [(MAIN, "closed"), (CONSULTATION, table.states[CONSULTATION][-1]),
                    (AGENDA, AGENDA_DONE)]


@DEFINITIONS
def test_manual_triggers_are_exactly_the_postings(load: Callable[[], ProcessDefinition]) -> None:
    """Each cycle has one manual trigger, its posting; the forum's agenda items are manual
    steps of their own region, one per item and one to end it; everything else is automatic."""
    definition = load()
    table = build_table(definition)
    manual = [(s.trigger, s.milestone) for s in table.specs if s.mode is Mode.MANUAL
              and s.region != AGENDA]
    assert manual == [(f"post_{c.id}", f"{c.id}.posting") for c in definition.cycles]
    agenda = [s.trigger for s in table.specs if s.region == AGENDA]
    assert all(s.mode is Mode.MANUAL for s in table.specs if s.region == AGENDA)
    count = len(definition.forum.agenda)
    assert agenda == [*(f"agenda_{n}" for n in range(1, count + 1)), "end_agenda"]


@DEFINITIONS
def test_shared_machine_matches_the_table(load: Callable[[], ProcessDefinition]) -> None:
    """The transitions machines hold exactly the table's states and triggers, built once."""
    definition = load()
    engine = engine_for(definition)
    assert engine_for(definition) is engine
    for region, shared in engine.machines.items():
        assert list(shared.states) == engine.table.states[region]
        expected = {s.trigger for s in engine.table.specs if s.region == region}
        assert set(shared.events) == expected


def test_table_checker_catches_a_broken_table(monkeypatch: pytest.MonkeyPatch) -> None:
    """The checker itself can fail: a table with an orphan state and a bad guard is reported."""
    real = build_table(wtpf())
    broken_spec = replace(real.specs[0], guards=("no_such_guard",))
    broken = replace(real, states={**real.states, MAIN: [*real.states[MAIN], "orphan"]},
                     specs=(broken_spec, *real.specs[1:]))
    monkeypatch.setattr(machine, "build_table", lambda _definition: broken)
    problems = table_problems(wtpf())
    assert "main: orphan is unreachable" in problems
    assert "main: orphan is a dead end" in problems
    assert "post_draft1: guard 'no_such_guard' is not in GUARDS" in problems


@DEFINITIONS
def test_mermaid_draws_every_state_and_trigger(load: Callable[[], ProcessDefinition]) -> None:
    """The diagram has one block per used region, naming every state label and trigger."""
    definition = load()
    table = build_table(definition)
    text = "\n".join(mermaid(definition))
    assert len(mermaid(definition)) == 3
    for label in table.labels.values():
        assert label in text
    for spec in table.specs:
        assert f": {spec.trigger}" in text


@DEFINITIONS
def test_every_state_knows_its_cycle(load: Callable[[], ProcessDefinition]) -> None:
    """A state belongs to the cycle whose transitions leave or enter it; the forum to none."""
    definition = load()
    table = build_table(definition)
    cycles = {c.id for c in definition.cycles}
    for state in table.states[MAIN]:
        cycle = table.cycle_of(state)
        assert cycle in cycles or (cycle is None and state in ("forum", "closed")), state
        leaving = {s.cycle for s in table.outgoing(MAIN, state)}
        entering = {s.cycle for s in table.specs if s.region == MAIN and s.dest == state}
        assert cycle is None or cycle in leaving | entering, state
