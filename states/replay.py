"""Rebuild a process instance from its decision records: the audit log is the history.

Pure: the records are the core's ``Record`` list or the store's audit entries (anything with
their fields). What the records carry is rebuilt — where each region stands, what happened
(when, due when, by whom, with which document), the amendments, the overrides and the notices
decided, every amendment in turn, later versions of drafts, the comment windows' summaries, the
draft Opinions and the forum's record — so a test, or ``verify``, can compare it with the
stored state. Invitations are not rebuilt (their records are the notices; the sequence lives
in the state alone), nor are notices a release-0.1 log marked under an older key form. Other
record kinds are skipped: extend
``rebuild`` as new kinds of change get records of their own.
"""

from __future__ import annotations

import calendar
import hashlib
import json
from collections.abc import Iterable, Mapping
from datetime import datetime, time
from typing import Any, Protocol

from pydantic import BaseModel

from states.contribution_types import WindowSummary
from states.dates import PlanDate, end_instant, start_instant, zone
from states.definition import ProcessDefinition
from states.forum import ForumRecord, Opinion
from states.instance import (
    Amendment,
    DraftVersion,
    Happening,
    Instance,
    Override,
    Relocation,
)
from states.machine import table_for
from states.queries import days_before


class Entry(Protocol):
    """One record of the log: ``states.decision.Record`` and the store's ``AuditEntry`` both."""

    @property
    def at(self) -> datetime: ...
    @property
    def actor(self) -> str: ...
    @property
    def kind(self) -> str: ...
    @property
    def trigger(self) -> str | None: ...
    @property
    def to_state(self) -> str | None: ...
    @property
    def reason(self) -> str | None: ...
    @property
    def inputs(self) -> Mapping[str, Any]: ...


def rebuild(definition: ProcessDefinition, records: Iterable[Entry],
            process_id: str | None = None) -> Instance:
    """The instance the records describe, from the definition's initial states."""
    table = table_for(definition)
    regions = dict(table.initial)
    happened: dict[str, Happening] = {}
    amendments: dict[str, Amendment] = {}
    history: dict[str, tuple[Amendment, ...]] = {}
    relocations: dict[str, tuple[Relocation, ...]] = {}
    versions: dict[str, tuple[DraftVersion, ...]] = {}
    summaries: dict[str, WindowSummary] = {}
    overrides: list[Override] = []
    notices: set[str] = set()
    opinions: dict[str, Opinion] = {}
    forum = ForumRecord()
    for e in records:
        if e.kind == "transition" and e.trigger in table.by_trigger:
            regions[table.by_trigger[e.trigger].region] = str(e.to_state)
            due = e.inputs.get("due")
            happened[e.trigger] = Happening(
                trigger=e.trigger, at=e.at, by=e.actor, document=e.inputs.get("document"),
                due=datetime.fromisoformat(str(due)) if due else None)
        elif e.kind in ("amendment", "revision"):
            _plan_changed(e, amendments, history, relocations)
        elif e.kind == "draft_version":
            cycle = str(e.inputs["cycle"])
            versions[cycle] = (*versions.get(cycle, ()),
                               DraftVersion.model_validate(e.inputs["version"]))
        elif e.kind == "window-summary":
            summary = WindowSummary.model_validate(e.inputs)
            summaries[summary.cycle] = summary
        elif e.kind == "override":
            overrides.append(Override(
                rule=str(e.inputs["rule"]), what=str(e.inputs.get("what") or e.trigger),
                message=str(e.inputs["message"]), at=e.at, by=e.actor, reason=e.reason or ""))
        elif e.kind == "notice":
            key = str(e.inputs["key"])
            notices.add(key)
            notices.update(superseded(definition, key, happened))
        elif e.kind == "opinion" and "opinion" in e.inputs:
            opinion = Opinion.model_validate(e.inputs["opinion"])
            opinions[opinion.id] = opinion
        elif e.kind == "forum" and "forum" in e.inputs:
            forum = ForumRecord.model_validate(e.inputs["forum"])
    return Instance(process_id=process_id or definition.id, regions=regions, happened=happened,
                    amendments=amendments, history=history, relocations=relocations,
                    versions=versions,
                    summaries=summaries, overrides=tuple(overrides),
                    notices=tuple(sorted(notices)), opinions=opinions, forum=forum)


def _plan_changed(e: Entry, amendments: dict[str, Amendment],
                  history: dict[str, tuple[Amendment, ...]],
                  relocations: dict[str, tuple[Relocation, ...]]) -> None:
    """An amendment; or a revision's dropped amendments and the changes of plan it made (new
    days of a meeting, a new mode or place: states.reshape_plan)."""
    if e.kind == "amendment":
        key = str(e.inputs["milestone"])
        amendments[key] = _amendment(e)
        history[key] = (*history.get(key, ()), amendments[key])
        return
    for key in e.inputs.get("dropped_amendments", ()):
        amendments.pop(str(key), None)
    for key, value in (e.inputs.get("amendments") or {}).items():
        amendments[key] = Amendment.model_validate(value)
        history[key] = (*history.get(key, ()), amendments[key])
    for key, value in (e.inputs.get("relocations") or {}).items():
        relocations[key] = (*relocations.get(key, ()), Relocation.model_validate(value))


def _amendment(e: Entry) -> Amendment:
    """The amendment a record made: from its JSON, or (a log written before the records
    carried it) from its actor, time, reason and the new dates as shown ('to')."""
    if "amendment" in e.inputs:
        return Amendment.model_validate(e.inputs["amendment"])
    first, _, last = str(e.inputs["to"]).partition(" – ")
    return Amendment(start=_shown(first), end=_shown(last) if last else None, at=e.at,
                     by=e.actor, reason=e.reason or "")


def _shown(text: str) -> PlanDate:
    """A date as ``PlanDate.human`` shows it: '7 Oct 2024', '7 Oct 2024 14:00', 'October 2024'."""
    words = text.split()
    if len(words) == 2:
        return PlanDate(int(words[1]), list(calendar.month_name).index(words[0]))
    at = time.fromisoformat(words[3]) if len(words) == 4 else None
    return PlanDate(int(words[2]), list(calendar.month_abbr).index(words[1]), int(words[0]), at)


def superseded(definition: ProcessDefinition, key: str,
               happened: Mapping[str, Happening]) -> set[str]:
    """The reminders a reminder's notice marked as decided without a message of their own.

    A late tick sends only the most urgent reminder due ('1 day left', not also '7 days
    left'): the longer offsets are marked decided then, each one the experts' posting came
    before (``states.queries.ReminderTarget``). ``happened``: as it stood at the notice.
    """
    head, _, offset = key.rpartition(":")
    _, _, rest = head.partition(":")
    kind, _, rest = rest.partition(":")
    if not offset.endswith("d") or not offset[:-1].isdigit():
        return set()
    tz = zone(definition.timezone)
    if kind == "reminder":
        cycle, _, day = rest.partition(":")
        offsets, posted = definition.rules.reminder_days, happened.get(f"post_{cycle}")
        at = end_instant(PlanDate.parse(day), tz)
    elif kind == "forum-reminder":
        cycle = definition.cycles[-1].id
        offsets, posted = definition.notifications.forum_reminder_days, happened.get(
            f"post_{cycle}")
        at = start_instant(PlanDate.parse(rest), tz)
    else:
        return set()
    sent = int(offset[:-1])
    return {f"{head}:{d}d" for d in offsets if d > sent
            and (posted is None or days_before(at, d, tz) >= posted.at)}


def fingerprint_of(body: Mapping[str, Any]) -> str:
    """The hash of a definition's JSON body, spelt as ``ProcessDefinition.fingerprint`` spells
    it: a stored body can be checked against the hash its process was created with."""
    text = json.dumps(body, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def differences(stored: Instance, rebuilt: Instance, limit: int = 3) -> list[str]:
    """Where the stored state and the one its log rebuilds differ: the first ``limit`` places
    named, then how many more. Invitations are not rebuilt, so not compared."""
    found: list[str] = []
    left, right = stored.model_dump(mode="json"), rebuilt.model_dump(mode="json")
    for name in Instance.model_fields:
        if name in ("invitations", "process_id") or left[name] == right[name]:
            continue
        if name == "notices":
            only = sorted(set(left[name]) - set(right[name]))
            found += [f"notice {k!r} is stored but not in the log" for k in only]
            found += [f"notice {k!r} is in the log but not stored"
                      for k in sorted(set(right[name]) - set(left[name]))]
        else:
            keyed = not isinstance(getattr(stored, name), BaseModel)
            _diff(name, left[name], right[name], found, keyed)
    if len(found) > limit:
        return [*found[:limit], f"and {len(found) - limit} more"]
    return found


def _diff(path: str, stored: object, log: object, found: list[str], keyed: bool) -> None:
    """Append the places below ``path`` where the two JSON values differ."""
    if stored == log:
        return
    if isinstance(stored, dict) and isinstance(log, dict):
        for key in sorted(set(stored) | set(log)):
            place = f"{path}[{key!r}]" if keyed else f"{path}.{key}"
            if key not in log:
                found.append(f"{place} is stored but not in the log")
            elif key not in stored:
                found.append(f"{place} is in the log but not stored")
            else:
                _diff(place, stored[key], log[key], found, False)
    elif isinstance(stored, list) and isinstance(log, list) and len(stored) == len(log):
        for i, (a, b) in enumerate(zip(stored, log, strict=True)):
            _diff(f"{path}[{i}]", a, b, found, False)
    elif isinstance(stored, list) and isinstance(log, list):
        found.append(f"{path}: {len(stored)} stored, {len(log)} in the log")
    else:
        found.append(f"{path} differs: stored {_short(stored)}, log {_short(log)}")


def _short(value: object) -> str:
    """A JSON value as a person reads it, cut to a line."""
    text = value if isinstance(value, str) else json.dumps(value)
    return text if len(text) <= 40 else text[:39] + "…"
