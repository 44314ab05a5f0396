"""Draft Opinions in a rehearsal: one per theme of the definition (five for WTPF-26).

Annex 2's rhythm, stage by stage: the outlines are proposed with the comments on the first
draft (a rehearsal that starts later presents none), they are possible draft Opinions in the
second, annexed to the later drafts, and in the final report once the last expert meeting is
over. Each change is one audited store transaction through the shell (as ``prepflow opinions
add|move`` does), two hours after the step that calls for it; the forum's outcomes are
``ForumAgenda``'s (``flows.rehearsal.agenda``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial

from flows.orchestration.run_context import service_for
from flows.rehearsal.stepping import Rehearsal
from states import opinions
from states.decision import Decision
from states.definition import ProcessDefinition
from states.errors import Refused
from states.forum import PREPARATION, Stage
from states.instance import Instance
from states.machine import MAIN, table_for
from states.roles import Act


@dataclass
class DraftOpinions:
    """Present and move one draft Opinion per theme as the drafts are posted."""

    name: str = "draft opinions"
    refused: bool = False
    """A change was refused (audited, in the transcript): the action stops asking."""

    def next_at(self, r: Rehearsal, instance: Instance, now: datetime) -> datetime | None:
        """Two hours after the step that calls for the next change, while one is due."""
        due = _due(r.definition, instance)
        if self.refused or due is None:
            return None
        return max(now, due[1] + timedelta(hours=2))

    def perform(self, r: Rehearsal, now: datetime) -> None:
        """Bring every Opinion to the stage where the process stands (adding it if new)."""
        with service_for(r.database, r.caller) as service:
            _, definition, instance = service.load(r.pid)
            due = _due(definition, instance)
            if due is None:
                return
            stage = due[0]
            try:
                for number, theme in enumerate(_themes(definition), start=1):
                    opinion = f"op-{number}"
                    known = instance.opinions.get(opinion)
                    if known is None and stage is Stage.OUTLINE:
                        title = f"Draft Opinion {number} (rehearsal)"
                        service.change(r.pid, f"opinions add {opinion}", r.actor,
                                       {"opinion": opinion, "title": title, "theme": theme},
                                       partial(_add, opinion, title, theme, r.actor), now,
                                       act=Act.OPINION)
                    elif known is not None and known.stage in PREPARATION \
                            and PREPARATION.index(known.stage) < PREPARATION.index(stage):
                        service.change(r.pid, f"opinions move {opinion}", r.actor,
                                       {"opinion": opinion, "stage": stage.value},
                                       partial(_move, opinion, stage, r.actor), now,
                                       act=Act.OPINION)
            except Refused:
                self.refused = True


def _themes(definition: ProcessDefinition) -> list[str | None]:
    """One Opinion per theme; a definition without themes gets one Opinion without a theme."""
    return [t.id for t in definition.themes] or [None]


def _due(definition: ProcessDefinition, instance: Instance) -> tuple[Stage, datetime] | None:
    """The stage the Opinions should be at now, and since when, if one of them is not yet."""
    table = table_for(definition)
    drafts = [c.id for c in definition.cycles if c.kind == "draft"]
    posted = [(c, at) for c in drafts if (at := instance.posted_at(c)) is not None]
    final = f"post_{definition.cycles[-1].id}"
    if not posted or final in instance.happened:
        return None
    stages = (Stage.OUTLINE, Stage.POSSIBLE, Stage.ANNEXED)
    target, since = stages[min(len(posted), len(stages)) - 1], posted[-1][1]
    if len(posted) == len(drafts) and instance.regions[MAIN] == table.by_trigger[final].source:
        entered = [h.at for h in instance.happened.values()
                   if table.by_trigger.get(h.trigger) is not None
                   and table.by_trigger[h.trigger].dest == instance.regions[MAIN]]
        target, since = Stage.FINAL, max(entered, default=since)
    ids = [f"op-{n}" for n in range(1, len(_themes(definition)) + 1)]
    missing = [o for o in ids if o not in instance.opinions] if target is Stage.OUTLINE else []
    behind = missing + [o for o in ids if o in instance.opinions and (
        instance.opinions[o].stage in PREPARATION
        and PREPARATION.index(instance.opinions[o].stage) < PREPARATION.index(target))]
    return (target, since) if behind else None


def _add(opinion: str, title: str, theme: str | None, actor: str, definition: ProcessDefinition,
         instance: Instance, now: datetime) -> Decision:
    return opinions.add(definition, instance, opinion, title, theme, actor, now)


def _move(opinion: str, stage: Stage, actor: str, definition: ProcessDefinition,
          instance: Instance, now: datetime) -> Decision:
    return opinions.move(definition, instance, opinion, stage.value, actor, now)
