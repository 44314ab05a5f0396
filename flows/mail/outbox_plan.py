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

from flows.mail.render import SKIPPED
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


def context(definition: ProcessDefinition, effect: Effect, now: datetime) -> dict[str, Any]:
    """The template context for one message (keys documented in flows/mail/render.py)."""
    data = dict(effect.data)
    base: dict[str, Any] = {
        "process_id": effect.process_id, "process_name": definition.name,
        "forum": definition.forum.name, "timezone": definition.timezone,
        "contact": definition.secretariat[0].email,
    }
    document = data.get("document")
    url = definition.notifications.document_url
    if document:
        base["document"] = document
        if url:
            base["document_url"] = url.format(document=document)
    if effect.cycle:
        base["cycle"] = effect.cycle
        base["cycle_name"] = data.get("cycle_name") or definition.cycle(effect.cycle).name
    event = effect.event
    if event == "draft_posted":
        base["deadline"] = data.get("deadline")
        base["public_consultation"] = definition.cycle(effect.cycle or "").public_consultation
    elif event in ("comment_reminder", "forum_reminder"):
        base["days_before"] = data.get("days")
        base["deadline"] = data.get("deadline")
        base["forum_opens"] = data.get("opens_day")
        base["place"] = data.get("place")
    elif event == "comments_closed":
        base["deadline"] = data.get("deadline")
    elif event in ("consultation_opened", "consultation_closed"):
        base["deadline"] = data.get("consultation_deadline") or data.get("deadline")
    elif event.startswith("meeting_"):
        base.update(meeting=data.get("meeting"), meeting_name=data.get("meeting_name"),
                    start=data.get("start_day"), end=data.get("end_day"),
                    place=data.get("place"), mode=data.get("mode"),
                    sequence=data.get("sequence"))
    elif event == "final_posted":
        base["forum_opens"] = data.get("opens_day")
    elif event == "step_overdue":
        due = datetime.fromisoformat(str(data["due"]))
        base.update(step=data.get("step"), step_key=data.get("trigger"), due=data["due"],
                    overdue_days=max(0, (now - due).days),
                    action=f"prepflow transition {effect.process_id} {data.get('trigger')} "
                           "--by NAME --document REF")
    elif event == "rule_at_risk":
        base.update(rule=data.get("rule"), message=data.get("message"),
                    status="FAIL" if data.get("status") == "fail" else "RISK",
                    slack_days=data.get("slack_days"))
    return {k: v for k, v in base.items() if v is not None}


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
