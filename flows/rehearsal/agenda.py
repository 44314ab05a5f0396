"""The forum's agenda in a rehearsal: the scripted secretariat takes it item by item.

The process closes at the forum's end only once its agenda is done (Decision 641, Annex 1),
so once the forum is in session this stage action moves it to its next item, one an hour from
about 09:00 on the forum's first day: the chair named at the election, every draft Opinion in
the final report adopted before the chair's report is adopted (its reference given). Each step
is one audited store transaction through the shell (``Service.change``), as
``prepflow forum next`` and ``prepflow opinions outcome`` do.
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
from states.forum import Stage
from states.instance import Instance
from states.machine import AGENDA, MAIN, table_for
from states.roles import Act


@dataclass
class ForumAgenda:
    """Take the forum's next agenda item while it is in session and its agenda is not done."""

    name: str = "forum agenda"
    refused: bool = False
    """A step was refused (audited, in the transcript): the action stops asking."""

    def next_at(self, r: Rehearsal, instance: Instance, now: datetime) -> datetime | None:
        """An hour per item from about 09:00 on the forum's first day (it opens at midnight)."""
        opened = instance.happened.get("open_forum")
        if self.refused or opened is None or instance.regions[MAIN] != "forum" \
                or not table_for(r.definition).outgoing(AGENDA, instance.regions[AGENDA]):
            return None
        item = opinions.agenda_item(r.definition, instance.regions[AGENDA])
        return max(now, opened.at + timedelta(hours=9 + item))

    def perform(self, r: Rehearsal, now: datetime) -> None:
        """The next item; at the adoption, first each Opinion before the forum is adopted."""
        forum = r.definition.forum
        with service_for(r.database, r.caller) as service:
            _, _, instance = service.load(r.pid)
            item = opinions.agenda_item(r.definition, instance.regions[AGENDA])
            chair = "Chair of the forum (rehearsal)" if item == forum.chair_item else None
            report = f"{forum.name}/CHAIR-REPORT" if item == forum.adoption_item else None
            before = sorted(o.id for o in instance.opinions.values() if o.stage is Stage.FINAL)
            try:
                for opinion in before if item == forum.adoption_item else []:
                    service.change(r.pid, f"opinions outcome {opinion}", r.actor,
                                   {"opinion": opinion, "outcome": "adopted"},
                                   partial(_adopt, opinion, r.actor), now, act=Act.FORUM)
                service.change(r.pid, "forum next", r.actor,
                               {"chair": chair, "document": report},
                               partial(_next, r.actor, chair, report), now, act=Act.FORUM)
            except Refused:
                self.refused = True

def _adopt(opinion: str, actor: str, definition: ProcessDefinition, instance: Instance,
           now: datetime) -> Decision:
    return opinions.outcome(definition, instance, opinion, "adopted", actor, now)


def _next(actor: str, chair: str | None, report: str | None, definition: ProcessDefinition,
          instance: Instance, now: datetime) -> Decision:
    return opinions.forum_next(definition, instance, actor, now, chair, report)
