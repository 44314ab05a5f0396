"""Helpers shared by the core's tests: the two definitions, instants, and WTPF-26 runs."""

from __future__ import annotations

from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from states import (
    Decision,
    Instance,
    ProcessDefinition,
    advance,
    amend,
    apply,
    parse_definition,
    start,
)
from states.machine import Spec, Table

ROOT = Path(__file__).resolve().parents[2]
WTPF26 = ROOT / "config" / "wtpf26.yaml"
OTHER = ROOT / "tests" / "definitions" / "other_forum.yaml"
SEC = "wtpf-secretariat"

#: Exact dates for WTPF-26's month-only meetings, so a whole run can go through automatically.
WTPF_MEETINGS = {
    "ieg1": "2024-10-07..2024-10-08",  # CL-24/44
    "ieg2": "2025-02-10..2025-02-12",
    "ieg3": "2025-09-15..2025-09-16",
    "ieg4": "2026-02-16",
}


def raw(path: Path) -> dict[str, Any]:
    """The definition file as data, as the edge's loader reads it."""
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


@cache
def wtpf() -> ProcessDefinition:
    """config/wtpf26.yaml, validated (one object, so the engine's cache is reused)."""
    return parse_definition(raw(WTPF26), str(WTPF26))


@cache
def other() -> ProcessDefinition:
    """tests/definitions/other_forum.yaml, validated."""
    return parse_definition(raw(OTHER), str(OTHER))


def utc(*args: int) -> datetime:
    """An aware UTC instant: utc(2024, 8, 26, 22) is 2024-08-26T22:00:00Z."""
    return datetime(*args, tzinfo=UTC)  # type: ignore[arg-type,misc]  # *args: year, month, …


def new(definition: ProcessDefinition, now: datetime | None = None) -> Instance:
    """A fresh instance at its initial states."""
    return start(definition, now or utc(2024, 7, 10)).after


def fix_meetings(definition: ProcessDefinition, instance: Instance,
                 now: datetime | None = None) -> Instance:
    """Amend every WTPF-26 meeting to exact days (before anything happened)."""
    for key, span in WTPF_MEETINGS.items():
        instance = amend(definition, instance, key, span, SEC, "dates fixed",
                         now or utc(2024, 7, 15)).after
    return instance


def post(definition: ProcessDefinition, instance: Instance, trigger: str, now: datetime,
         document: str = "DOC", **options: Any) -> Decision:
    """What the shell does on a schedule and then on a posting: a tick at ``now``, then apply."""
    tick = advance(definition, instance, now)
    return tick.then(apply(definition, tick.after, trigger, SEC if definition.id == "wtpf-26"
                           else definition.secretariat[0].id, now, document=document,
                           **options))


def wtpf_at_final() -> tuple[ProcessDefinition, Instance, list[Decision]]:
    """WTPF-26 run on plan up to 'Final report: in preparation' (after the 4th IEG meeting)."""
    definition = wtpf()
    instance = fix_meetings(definition, new(definition))
    decisions = []
    for cycle, posted in [("draft1", utc(2024, 8, 5, 8)), ("draft2", utc(2024, 11, 4, 8)),
                          ("draft3", utc(2025, 3, 31, 8)), ("draft4", utc(2025, 11, 3, 8))]:
        decision = post(definition, instance, f"post_{cycle}", posted,
                        document=f"WTPF-26/{cycle}")
        decisions.append(decision)
        instance = decision.after
    decision = advance(definition, instance, utc(2026, 3, 1))
    decisions.append(decision)
    assert decision.after.regions["main"] == "final.drafting"
    return definition, decision.after, decisions


def walk_agenda(definition: ProcessDefinition, instance: Instance, now: datetime,
                chair: str = "A. Chair", report: str = "CHAIR-REPORT") -> Decision:
    """The forum in session takes its whole agenda (the chair named, the report adopted)."""
    from states.machine import AGENDA, AGENDA_DONE
    from states.opinions import forum_next

    actor = definition.secretariat[0].id
    decision = Decision(instance, instance)
    while decision.after.regions[AGENDA] != AGENDA_DONE:
        item = decision.after.forum.item
        decision = decision.then(forum_next(
            definition, decision.after, actor, now,
            chair=chair if item == definition.forum.chair_item else None,
            document=report if item == definition.forum.adoption_item else None))
    return decision


def hold_forum(definition: ProcessDefinition, instance: Instance, after: datetime) -> Instance:
    """Advance to the forum's opening, take its whole agenda there, then advance to ``after``
    (the process closes at the forum's end only once its agenda is done)."""
    from states.dates import start_instant, zone
    from states.rules import effective_milestones

    opens = {m.key: m for m in effective_milestones(definition, instance)}["forum"].start
    if opens is not None and opens.exact:
        at = start_instant(opens, zone(definition.timezone))
        instance = advance(definition, instance, at).after
        if instance.regions["main"] == "forum":
            instance = walk_agenda(definition, instance, at).after
    return advance(definition, instance, after).after


def table_problems(definition: ProcessDefinition) -> list[str]:
    """STYLE habit 1: what is wrong with the table built from a definition (empty when sound)."""
    from states.machine import build_table
    from states.plan import milestone_keys

    table = build_table(definition)
    keys = set(milestone_keys(definition))
    problems: list[str] = []
    if set(table.initial) != set(table.states):
        problems.append(f"regions {sorted(table.states)} vs initial states {table.initial}")
    for region, names in table.states.items():
        problems += _region_problems(table, region, names)
    triggers = [s.trigger for s in table.specs]
    if len(set(triggers)) != len(triggers):
        problems.append(f"a trigger is declared twice: {triggers}")
    for spec in table.specs:
        problems += _spec_problems(spec, keys)
    return problems


def _region_problems(table: Table, region: str, names: list[str]) -> list[str]:
    """One region: declared once, entered once, every state reached, forward one step at a
    time, and only its terminal state without a way out."""
    problems: list[str] = []
    if len(set(names)) != len(names):
        problems.append(f"{region}: a state is declared twice: {names}")
    initial = table.initial.get(region, "")
    if initial not in names:
        problems.append(f"{region}: initial state {initial} is not a state of the region")
    specs = [s for s in table.specs if s.region == region]
    problems += [f"{s.trigger}: {s.source} -> {s.dest} leaves {region}" for s in specs
                 if s.source not in names or s.dest not in names]
    if initial in {s.dest for s in specs}:
        problems.append(f"{region}: initial state {initial} is re-entered")
    reached = _reached(specs, initial)
    problems += [f"{region}: {n} is unreachable" for n in names if n not in reached]
    terminal = "closed" if region == "main" else names[-1]
    problems += [f"{region}: {n} is a dead end" for n in names
                 if n != terminal and not table.outgoing(region, n)]
    if table.outgoing(region, terminal):
        problems.append(f"{region}: terminal state {terminal} has a way out")
    # forward only, one step at a time in declaration order
    problems += [f"{s.trigger} does not move one step forward" for s in specs
                 if names.index(s.dest) != names.index(s.source) + 1]
    return problems


def _reached(specs: list[Spec], initial: str) -> set[str]:
    """States reachable from the initial one."""
    reached, frontier = {initial}, [initial]
    while frontier:
        here = frontier.pop()
        for spec in specs:
            if spec.source == here and spec.dest not in reached:
                reached.add(spec.dest)
                frontier.append(spec.dest)
    return reached


def _spec_problems(spec: Spec, keys: set[str]) -> list[str]:
    """One transition: its guards resolve; a manual one posts a cycle's document; an automatic
    one is dated by a milestone of the plan and guarded by its due instant."""
    from states.guards import GUARDS
    from states.machine import Mode

    problems = [f"{spec.trigger}: guard '{g}' is not in GUARDS"
                for g in spec.guards if g not in GUARDS]
    if spec.mode is Mode.MANUAL and spec.region == "agenda":  # the forum's items: no date
        if spec.milestone is not None or spec.while_main != "forum":
            problems.append(f"agenda step {spec.trigger} is dated or not kept to the forum")
        return problems
    if spec.mode is Mode.MANUAL:
        if spec.milestone != f"{spec.cycle}.posting" or spec.milestone not in keys:
            problems.append(f"manual {spec.trigger} has no posting milestone")
        if spec.due is not None:
            problems.append(f"manual {spec.trigger} has a due instant")
        return problems
    if spec.milestone not in keys:
        problems.append(f"automatic {spec.trigger}: milestone {spec.milestone} "
                        "is not in the plan")
    if spec.due is None or "due" not in spec.guards:
        problems.append(f"automatic {spec.trigger} is not guarded by its due instant")
    return problems
