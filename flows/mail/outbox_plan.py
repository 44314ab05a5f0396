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

from pydantic import ValidationError

from flows.addresses import get_logger
from flows.storage import Expert, OutboxDraft
from states.decision import Effect
from states.definition import ProcessDefinition
from states.messages import SKIPPED
from states.notices import message_payload

log = get_logger("prepflow.mail")

#: Events whose message also goes to the Member States' focal points.
FOCAL_EVENTS = {"draft_posted", "draft_revised", "final_posted", "forum_updated"}
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


def context(definition: ProcessDefinition, effect: Effect, now: datetime) -> dict[str, object]:
    """The row's context: the effect's typed payload as JSON (``effect.message``, attached by
    the core; for an effect made without one, states.notices.message_payload builds it).

    An effect the model refuses is still queued with its plain facts, as release 0.1 did: the
    deliverer then marks that one row failed with the renderer's account of what is missing,
    and the secretariat is told, instead of the whole tick failing on one message.
    """
    try:
        message = effect.message or message_payload(definition, effect, now)
        return message.model_dump(mode="json")
    except ValidationError as exc:
        log.error("%s: payload refused (%d problem(s)); queued as is, it will fail to render",
                  effect.key, exc.error_count())
        facts = {"process_id": effect.process_id, **effect.data}
        return {k: v for k, v in facts.items() if v is not None}


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
        if audience == "none" or effect.event in SKIPPED:
            continue
        shared = context(definition, effect, now)
        for person in recipients(definition, audience, effect.event, register):
            rows.append(OutboxDraft(
                key=f"{effect.key}:{person.ref}", process_id=effect.process_id,
                event=effect.event, recipient=person.ref, email=person.email, name=person.name,
                language=person.language, timezone=person.timezone, context=shared,
                created_at=now))
    return rows
