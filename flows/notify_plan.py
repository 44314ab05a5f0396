"""From the core's message effects to outbox rows: who receives what, in which language.

The core decides *that* a message is due and for which group ("experts", "secretariat");
this module resolves the group to addresses (the register in the store, the definition's
secretariat and focal points) and gives each message an idempotency key
``<effect key>:<recipient>``, unique in the outbox, so a retried decision never queues twice.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from flows.storage import Expert, OutboxDraft
from states.decision import Effect
from states.definition import ProcessDefinition

#: Events whose message also goes to the Member States' focal points.
FOCAL_EVENTS = {"draft_posted", "final_posted"}
#: Expert statuses that receive messages (a withdrawn nomination does not).
ACTIVE = {"nominated", "confirmed"}


@dataclass(frozen=True)
class Recipient:
    """Someone a message goes to."""

    ref: str
    email: str
    name: str
    language: str
    timezone: str | None


def recipients(definition: ProcessDefinition, audience: str, event: str,
               experts: Callable[[], Sequence[Expert]]) -> list[Recipient]:
    """The people in a group, in a stable order."""
    if audience == "secretariat":
        return [Recipient(f"member:{m.id}", m.email, m.name, "en", definition.timezone)
                for m in definition.secretariat]
    if audience != "experts":
        return []
    found = [Recipient(f"expert:{e.id}", e.email, f"{e.first_name} {e.last_name}", e.language,
                       e.timezone) for e in experts() if e.status in ACTIVE and not e.erased]
    if event in FOCAL_EVENTS:
        found += [Recipient(f"focal:{f.member_state}", f.email, f.name, f.language, None)
                  for f in definition.notifications.focal_points]
    return found


def context(definition: ProcessDefinition, effect: Effect) -> dict[str, Any]:
    """What every template may use, on top of the effect's own data."""
    data = dict(effect.data)
    document = data.get("document")
    url = definition.notifications.document_url
    return {
        "process_id": effect.process_id, "process_name": definition.name,
        "forum_name": definition.forum.name, "timezone": definition.timezone,
        "event": effect.event, "key": effect.key,
        "document_link": url.format(document=document) if url and document else None,
        **data,
    }


def plan(definition: ProcessDefinition, effects: Iterable[Effect],
         experts: Callable[[], Sequence[Expert]], now: datetime) -> list[OutboxDraft]:
    """Outbox rows for every message effect; the register is read only if a message needs it."""
    cache: list[Sequence[Expert]] = []

    def register() -> Sequence[Expert]:
        if not cache:
            cache.append(experts())
        return cache[0]

    rows = []
    for effect in effects:
        if effect.kind != "notify":
            continue
        audience = str(effect.data.get("audience", "none"))
        shared = context(definition, effect)
        for person in recipients(definition, audience, effect.event, register):
            rows.append(OutboxDraft(
                key=f"{effect.key}:{person.ref}", process_id=effect.process_id,
                event=effect.event, recipient=person.ref, email=person.email, name=person.name,
                language=person.language, timezone=person.timezone, context=shared,
                created_at=now))
    return rows
