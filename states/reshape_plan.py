"""A revision keeps each meeting's plan: new dates, mode and place are changes of it.

Issue 8 wants every milestone as plan → each change → actual. A revision (split, change,
revise) that moves a meeting's days would otherwise overwrite the plan in the new definition;
instead the new definition keeps the meeting's planned days and the move is an Amendment (as
``amend`` records one), and a new mode or place is a Relocation. Both carry the revision's
time, actor and reason, and both go into the revision record's inputs so that the log alone
rebuilds them (states/replay.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from states.definition import ProcessDefinition, parse_definition
from states.instance import Amendment, Instance, Relocation, Shift


@dataclass(frozen=True)
class Kept:
    """The new definition with the old plans, and the changes of plan it stands for."""

    definition: ProcessDefinition
    amendments: dict[str, Amendment]
    relocations: dict[str, Relocation]

    def inputs(self) -> dict[str, Any]:
        """As the revision record carries them (rebuilt by states.replay)."""
        return {"amendments": {k: a.model_dump(mode="json") for k, a in self.amendments.items()},
                "relocations": {k: r.model_dump(mode="json")
                                for k, r in self.relocations.items()}}

    def applied(self, instance: Instance) -> Instance:
        """The instance with these changes appended to each milestone's history."""
        history = dict(instance.history)
        for key, amendment in self.amendments.items():
            history[key] = (*history.get(key, ()), amendment)
        moved = dict(instance.relocations)
        for key, relocation in self.relocations.items():
            moved[key] = (*moved.get(key, ()), relocation)
        return instance.model_copy(update={
            "amendments": {**instance.amendments, **self.amendments}, "history": history,
            "relocations": moved})


def _shift(before: str | None, after: str | None) -> Shift | None:
    return None if before == after else Shift(before=before, after=after)


def keep_plans(old: ProcessDefinition, new: ProcessDefinition, instance: Instance,
               actor: str, reason: str, now: datetime) -> Kept:
    """``new`` with the planned days of every meeting both versions have; each move of days
    an Amendment (unless the new days are non-contiguous: an amendment has no list of days,
    so the new definition states them), each new mode or place a Relocation. A started
    meeting's amendment stands as it is (states.revision keeps it)."""
    before = {m.id: m for c in old.cycles for m in c.meetings}
    after = {m.id: m for c in new.cycles for m in c.meetings}
    doc = new.model_dump(mode="json", exclude_none=True)
    amendments: dict[str, Amendment] = {}
    relocations: dict[str, Relocation] = {}
    for cycle in doc["cycles"]:
        for meeting in cycle.get("meetings", []):
            was = before.get(meeting["id"])
            if was is None:
                continue
            now_def = after[was.id]
            stands = f"start_{was.id}" in instance.happened and was.id in instance.amendments
            if (now_def.start, now_def.end, now_def.days) != (was.start, was.end, was.days) \
                    and not now_def.days and not stands:
                amendments[was.id] = Amendment(start=now_def.start, end=now_def.end, at=now,
                                               by=actor, reason=reason)
                meeting.pop("end", None)
                meeting.pop("days", None)
                meeting.update({"start": str(was.start)}
                               | ({"end": str(was.end)} if was.end else {})
                               | ({"days": [str(d) for d in was.days]} if was.days else {}))
            mode = _shift(was.mode.value, now_def.mode.value)
            place = _shift(was.place, now_def.place)
            if mode or place:
                relocations[was.id] = Relocation(mode=mode, place=place, at=now, by=actor,
                                                 reason=reason)
    forum_mode = _shift(old.forum.mode.value if old.forum.mode else None,
                        new.forum.mode.value if new.forum.mode else None)
    forum_place = _shift(old.forum.place, new.forum.place)
    if forum_mode or forum_place:
        relocations["forum"] = Relocation(mode=forum_mode, place=forum_place, at=now, by=actor,
                                          reason=reason)
    definition = parse_definition(doc, "the revised definition") if amendments else new
    return Kept(definition, amendments, relocations)
