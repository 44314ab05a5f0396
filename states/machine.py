"""The state machine, built from a process definition: one table, in one place.

Three regions run in parallel: ``main`` (drafts, comment windows, expert meetings, the final
report and the forum), ``consultation`` (open public consultations, where a cycle asks for
one) and ``agenda`` (the forum's agenda items, taken in order while the forum is in session).
Each transition is either automatic (time-driven, applied by ``advance``) or manual
(document-driven, applied by a secretariat member). The ``transitions`` machines are built
once per definition and shared by every process instance: nothing is built per tick.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum

from transitions import Machine, State
from transitions.extensions import GraphMachine

from states.definition import CycleDef, MeetingDef, ProcessDefinition

MAIN = "main"
CONSULTATION = "consultation"
AGENDA = "agenda"
AGENDA_PENDING = "agenda.pending"
AGENDA_DONE = "agenda.done"


class Mode(StrEnum):
    """Who fires a transition."""

    AUTOMATIC = "automatic"
    MANUAL = "manual"


class Due(StrEnum):
    """Which instant of the milestone makes an automatic transition due."""

    START = "start"
    END = "end"
    POSTED = "posted"  # when the cycle's draft was actually posted


@dataclass(frozen=True)
class Spec:
    """One row of the table: a trigger moving one region from a state to the next."""

    trigger: str
    region: str
    source: str
    dest: str
    mode: Mode
    label: str
    event: str
    cycle: str | None
    milestone: str | None = None
    due: Due | None = None
    guards: tuple[str, ...] = ()
    needs_document: bool = True
    """A manual step posts a document and names it (--document); an agenda item need not."""
    while_main: str | None = None
    """Offered only while the main region is at this state (the agenda: 'forum')."""


@dataclass(frozen=True)
class Table:
    """States per region, their labels, and the transitions between them."""

    states: dict[str, list[str]]
    labels: dict[str, str]
    specs: tuple[Spec, ...]
    initial: dict[str, str]
    by_trigger: dict[str, Spec] = field(default_factory=dict)
    by_source: dict[tuple[str, str], tuple[Spec, ...]] = field(default_factory=dict)

    def cycle_of(self, state: str) -> str | None:
        """The cycle a state belongs to ('draft2.comment_window' → 'draft2'; 'forum' → None).

        The one place that knows states are named '<cycle>.<what>' (see ``build_table``).
        """
        cycle, dot, _ = state.partition(".")
        return cycle if dot else None

    def outgoing(self, region: str, state: str) -> tuple[Spec, ...]:
        """Transitions leaving a state, in table order (indexed: asked on every tick)."""
        return self.by_source.get((region, state), ())


def build_table(definition: ProcessDefinition) -> Table:
    """Derive the table from the definition: the only place transitions are declared."""
    main: list[str] = []
    labels: dict[str, str] = {}
    specs: list[Spec] = []

    def state(name: str, label: str) -> str:
        main.append(name)
        labels[name] = label
        return name

    cycles = definition.cycles
    current = state(f"{cycles[0].id}.drafting", f"{cycles[0].name}: in preparation")
    for index, cycle in enumerate(cycles):
        # Informal sessions are not states: they gate nothing (see MeetingDef).
        meetings = [m for m in cycle.meetings if not m.informal]
        if cycle.kind == "final":
            posted = state(f"{cycle.id}.posted", f"{cycle.name} posted; forum ahead")
            specs.append(Spec(f"post_{cycle.id}", MAIN, current, posted, Mode.MANUAL,
                              f"{cycle.name} posted", "final_posted", cycle.id,
                              f"{cycle.id}.posting", None, ("six_weeks",)))
            forum = state("forum", f"{definition.forum.name} in session")
            specs.append(Spec("open_forum", MAIN, posted, forum, Mode.AUTOMATIC,
                              f"{definition.forum.name} opened", "forum_opened", None,
                              "forum", Due.START, ("date_fixed", "due")))
            closed = state("closed", "Process closed")
            specs.append(Spec("close_forum", MAIN, forum, closed, Mode.AUTOMATIC,
                              f"{definition.forum.name} closed", "forum_closed", None,
                              "forum", Due.END, ("date_fixed", "due", "agenda_done")))
            break
        following = cycles[index + 1]
        after_cycle = f"{following.id}.drafting"
        current = _draft_posting(cycle, meetings, current, after_cycle, state, specs)
        for number, meeting in enumerate(meetings):
            in_session = state(f"{cycle.id}.{meeting.id}", f"{meeting.name} in session")
            specs.append(Spec(f"start_{meeting.id}", MAIN, current, in_session, Mode.AUTOMATIC,
                              f"{meeting.name} started", "meeting_started", cycle.id,
                              meeting.id, Due.START, ("date_fixed", "due")))
            last = number == len(meetings) - 1
            if last:
                after = after_cycle
            else:
                upcoming = meetings[number + 1].name
                after = state(f"{cycle.id}.after_{meeting.id}",
                              f"{meeting.name} done; awaiting {upcoming}")
            specs.append(Spec(f"end_{meeting.id}", MAIN, in_session, after, Mode.AUTOMATIC,
                              f"{meeting.name} ended", "meeting_ended", cycle.id, meeting.id,
                              Due.END, ("date_fixed", "due")))
            current = after
        if current == after_cycle:
            state(after_cycle, f"{following.name}: in preparation")

    consultation = _consultation_region(definition, labels, specs)
    agenda = _agenda_region(definition, labels, specs)
    regions = {MAIN: main, CONSULTATION: consultation, AGENDA: agenda}
    initial = {MAIN: main[0], CONSULTATION: "none", AGENDA: AGENDA_PENDING}
    by_source: dict[tuple[str, str], tuple[Spec, ...]] = {}
    for spec in specs:
        by_source[spec.region, spec.source] = (*by_source.get((spec.region, spec.source), ()),
                                               spec)
    return Table(regions, labels, tuple(specs), initial, {s.trigger: s for s in specs},
                 by_source)


def _draft_posting(cycle: CycleDef, meetings: list[MeetingDef], current: str, after_cycle: str,
                   state: Callable[[str, str], str], specs: list[Spec]) -> str:
    """Posting a draft: into its comment window, closed on the deadline; or, for a round
    without one (``comments: false``), straight to its first meeting or the next drafting.
    Returns the state the cycle's meetings start from."""
    post = f"post_{cycle.id}"
    if not cycle.comments:
        if meetings:
            target = state(f"{cycle.id}.posted", f"{cycle.name} posted (no comment window): "
                           f"awaiting {meetings[0].name}")
        else:
            target = after_cycle
        specs.append(Spec(post, MAIN, current, target, Mode.MANUAL, f"{cycle.name} posted",
                          "draft_posted", cycle.id, f"{cycle.id}.posting", None, ()))
        return target
    window = state(f"{cycle.id}.comment_window", f"{cycle.name} posted: comment window open")
    specs.append(Spec(post, MAIN, current, window, Mode.MANUAL, f"{cycle.name} posted",
                      "draft_posted", cycle.id, f"{cycle.id}.posting", None, ("window_ahead",)))
    if meetings:
        waiting = f"{cycle.name}: comments closed, awaiting {meetings[0].name}"
        closed_state = state(f"{cycle.id}.comments_closed", waiting)
    else:
        closed_state = after_cycle
    specs.append(Spec(f"close_comments_{cycle.id}", MAIN, window, closed_state,
                      Mode.AUTOMATIC, f"{cycle.name} comment window closed",
                      "comments_closed", cycle.id, f"{cycle.id}.comments", Due.END,
                      ("date_fixed", "due")))
    return closed_state


def _consultation_region(definition: ProcessDefinition, labels: dict[str, str],
                         specs: list[Spec]) -> list[str]:
    """The consultation region's states (adding their labels and transitions): a public
    consultation opens when its draft is posted and closes on its own deadline."""
    consultation = ["none"]
    labels["none"] = "no public consultation open"
    previous = "none"
    for cycle in definition.cycles:
        if not cycle.public_consultation:
            continue
        opened, closed_name = f"{cycle.id}.consultation_open", f"{cycle.id}.consultation_closed"
        consultation += [opened, closed_name]
        labels[opened] = f"Public consultation on the {cycle.name} open"
        labels[closed_name] = f"Public consultation on the {cycle.name} closed"
        specs.append(Spec(f"open_consultation_{cycle.id}", CONSULTATION, previous, opened,
                          Mode.AUTOMATIC, f"Public consultation on the {cycle.name} opened",
                          "consultation_opened", cycle.id, f"{cycle.id}.posting", Due.POSTED,
                          ("posted", "due")))
        specs.append(Spec(f"close_consultation_{cycle.id}", CONSULTATION, opened, closed_name,
                          Mode.AUTOMATIC, f"Public consultation on the {cycle.name} closed",
                          "consultation_closed", cycle.id, f"{cycle.id}.consultation", Due.END,
                          ("date_fixed", "due")))
        previous = closed_name
    return consultation


def agenda_state(number: int, item: str) -> str:
    """The state of agenda item ``number`` ('agenda.2-election-of-the-chair')."""
    words = re.findall(r"[a-z0-9]+", item.lower())
    slug = ""
    for word in words:
        if len(slug) + len(word) > 32:
            break
        slug = f"{slug}-{word}" if slug else word
    return f"{AGENDA}.{number}-{slug or 'item'}"


def _agenda_region(definition: ProcessDefinition, labels: dict[str, str],
                   specs: list[Spec]) -> list[str]:
    """The forum's agenda items as states, one manual step each, only while it is in session:
    leaving the chair's election needs the chair named, leaving the adoption the chair's
    report (its reference) and every Opinion's outcome."""
    forum = definition.forum
    labels[AGENDA_PENDING] = f"{forum.name} agenda not begun"
    labels[AGENDA_DONE] = f"{forum.name} agenda completed"
    names = [AGENDA_PENDING]
    previous = AGENDA_PENDING
    for number, item in enumerate([*forum.agenda, None], start=1):
        dest = AGENDA_DONE if item is None else agenda_state(number, item)
        if item is not None:
            labels[dest] = f"{forum.name} agenda item {number}: {item}"
        guards: tuple[str, ...] = ("forum_in_session",)
        if number - 1 == forum.chair_item:
            guards += ("chair_elected",)
        if number - 1 == forum.adoption_item:
            guards += ("outcomes_recorded",)
        trigger = "end_agenda" if item is None else f"agenda_{number}"
        label = labels[dest] if item is None else f"{forum.name} at agenda item {number}: {item}"
        specs.append(Spec(trigger, AGENDA, previous, dest, Mode.MANUAL, label, "forum_agenda",
                          None, None, None, guards, number - 1 == forum.adoption_item, "forum"))
        names.append(dest)
        previous = dest
    return names


class Cursor:
    """The object a shared machine moves: one region of one process instance."""

    __slots__ = ("state",)

    def __init__(self, state: str) -> None:
        self.state = state


Condition = Callable[..., bool]  # called by ``transitions`` with its EventData


@dataclass(frozen=True)
class Engine:
    """The table plus one shared ``transitions`` machine per region."""

    table: Table
    machines: dict[str, Machine]

    def fire(self, trigger: str, state: str, **context: object) -> str:
        """Run the machine for one trigger from a state; returns the new state.

        The machine re-checks the guards as conditions, so a transition the table does not
        allow can never happen, whoever calls this.
        """
        spec = self.table.by_trigger[trigger]
        cursor = Cursor(state)
        if not self.machines[spec.region].events[trigger].trigger(cursor, **context):
            raise RuntimeError(f"guard blocked {trigger} after the engine allowed it")
        return cursor.state


_TABLES: dict[int, tuple[ProcessDefinition, Table]] = {}


def table_for(definition: ProcessDefinition) -> Table:
    """The definition's table, built once (every tick of every instance asks for it)."""
    hit = _TABLES.get(id(definition))
    if hit is None or hit[0] is not definition:
        if len(_TABLES) > 64:
            _TABLES.clear()
        hit = (definition, build_table(definition))
        _TABLES[id(definition)] = hit
    return hit[1]


def build_engine(definition: ProcessDefinition, guard: Callable[[str], Condition]) -> Engine:
    """Build the machines for a definition; ``guard(name)`` resolves each guard name."""
    table = table_for(definition)
    machines: dict[str, Machine] = {}
    for region, names in table.states.items():
        rows = [
            {"trigger": s.trigger, "source": s.source, "dest": s.dest,
             "conditions": [guard(g) for g in s.guards]}
            for s in table.specs if s.region == region
        ]
        machines[region] = Machine(model=None, states=names, transitions=rows,
                                   initial=table.initial[region], auto_transitions=False,
                                   send_event=True)
    return Engine(table, machines)


class _LabelledState(State):
    """A state that carries a human label for the diagram."""

    def __init__(self, name: str, *, label: str | None = None,
                 ignore_invalid_triggers: bool | None = None, final: bool = False) -> None:
        # The diagram's states are declared by name and label; the machine adds these two.
        super().__init__(name, ignore_invalid_triggers=bool(ignore_invalid_triggers), final=final)
        self.label = label


class _Diagram(GraphMachine):
    state_cls = _LabelledState


def mermaid(definition: ProcessDefinition, current: dict[str, str] | None = None) -> list[str]:
    """The state diagram, one mermaid block per region, drawn by ``transitions``."""
    table = build_table(definition)
    blocks = []
    for region, names in table.states.items():
        if region == CONSULTATION and len(names) == 1:
            continue
        model = type("Diagram", (), {})()
        states = [{"name": _safe(n), "label": table.labels[n]} for n in names]
        rows = [[s.trigger, _safe(s.source), _safe(s.dest)]
                for s in table.specs if s.region == region]
        _Diagram(model=model, states=states, transitions=rows,
                     initial=_safe((current or table.initial)[region]), auto_transitions=False,
                     graph_engine="mermaid", title=f"{definition.id} — {region}")
        blocks.append(model.get_graph().draw(None).rstrip())
    return blocks


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9]", "_", name)
