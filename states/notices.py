"""Which messages are due: reminders before deadlines, meeting invitations and their updates,
and alerts to the secretariat. Each is decided once: its key joins ``Instance.notices``.

Messages that follow a transition (a draft posted, a window closed) are effects of that
transition (see engine); this module covers messages that time or an amendment makes due.
The audience is a group ("experts", "secretariat"); the shell resolves it to addresses.
Every message effect becomes its typed payload (states/messages.py) through
``message_payload``: the one place that says what each event's mail is told.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import ValidationError

from states.dates import PlanDate, zone
from states.decision import SYSTEM, Decision, Effect, Record
from states.definition import ProcessDefinition
from states.instance import Instance
from states.invitations import Invitation, InvitationEvent, Where, next_invitation
from states.machine import Table
from states.messages import MODELS, SKIPPED, Message, parse_message
from states.plan import Milestone
from states.queries import days_before, overdue_steps, reminder_targets
from states.rules import Status, six_weeks

#: What each transition's event tells whom ("none": no message).
AUDIENCE = {
    "draft_posted": "experts", "draft_revised": "experts", "comments_closed": "experts",
    "consultation_opened": "experts", "consultation_closed": "experts",
    "final_posted": "experts", "meeting_started": "none", "meeting_ended": "none",
    "forum_opened": "none", "forum_closed": "none", "forum_updated": "experts",
}


class _Batch:
    """Notices decided in one call, skipping keys already decided before."""

    def __init__(self, definition: ProcessDefinition, instance: Instance,
                 now: datetime) -> None:
        self.definition, self.instance, self.now = definition, instance, now
        self.seen = set(instance.notices)
        self.effects: list[Effect] = []
        self.records: list[Record] = []

    def quiet(self, key: str) -> None:
        """Mark a notice as decided without sending it (superseded by a more urgent one)."""
        self.seen.add(f"{self.instance.process_id}:{key}")

    def emit(self, key: str, event: str, audience: str, cycle: str | None,
             data: dict[str, Any]) -> None:
        """A notify effect with its facts and its typed payload."""
        full = f"{self.instance.process_id}:{key}"
        if full in self.seen:
            return
        self.seen.add(full)
        effect = Effect("notify", event, full, self.instance.process_id, cycle, None, self.now,
                        {"audience": audience, **data})
        self.effects.append(with_message(self.definition, effect))
        self.records.append(Record(self.now, SYSTEM, "notice", None, None, None, None,
                                   {"event": event, "key": full, "audience": audience}))


def notices(definition: ProcessDefinition, instance: Instance, table: Table,
            milestones: dict[str, Milestone], now: datetime) -> Decision:
    """Every message due at ``now`` that no earlier decision announced."""
    batch = _Batch(definition, instance, now)
    invitations = dict(instance.invitations)
    _reminders(definition, instance, milestones, batch)
    _invitations(definition, instance, milestones, batch, invitations)
    _alerts(definition, instance, table, milestones, batch)
    if not batch.records and invitations == instance.invitations:
        return Decision(instance, instance)
    after = instance.model_copy(update={"notices": tuple(sorted(batch.seen)),
                                        "invitations": invitations})
    return Decision(instance, after, tuple(batch.records), tuple(batch.effects))


def _due_offsets(at: datetime, offsets: tuple[int, ...], now: datetime,
                 tz: ZoneInfo) -> list[int]:
    return sorted(d for d in offsets if days_before(at, d, tz) <= now < at)


def _days_left(at: datetime, offset: int, now: datetime) -> int:
    """Whole days left, rounded up, and never more than the reminder's offset: a tick on time
    says the offset ("7 days"); a late one, or a deadline moved nearer, the days really left."""
    return min(offset, -((now - at) // timedelta(days=1)))


def _reminders(definition: ProcessDefinition, instance: Instance,
               milestones: dict[str, Milestone], batch: _Batch) -> None:
    """Before each comment deadline and before the forum; a late tick sends only the most
    urgent reminder, not a burst of stale ones, saying the days really left. Offsets longer
    than the window are not in ``target.days`` (see ``ReminderTarget``)."""
    tz = zone(definition.timezone)
    for target in reminder_targets(definition, instance, milestones):
        start = target.milestone.start
        due = _due_offsets(target.at, target.days, batch.now, tz)
        if target.cycle is not None:
            # Keyed by the deadline: a moved deadline is reminded again.
            prefix = f"reminder:{target.cycle}:{start}"
        else:
            prefix = f"forum-reminder:{start}"
        for days in due[1:]:
            batch.quiet(f"{prefix}:{days}d")
        if not due:
            continue
        left = _days_left(target.at, due[0], batch.now)
        if target.cycle is not None:
            cycle = definition.cycle(target.cycle)
            posted = instance.happened.get(f"post_{cycle.id}")
            batch.emit(f"{prefix}:{due[0]}d", "comment_reminder", "experts",
                       cycle.id, {"cycle_name": cycle.name, "days": left,
                                  "document": posted.document if posted else None,
                                  "deadline": target.at.isoformat(),
                                  "deadline_day": start.first_day().isoformat()
                                  if start else None})
        else:
            batch.emit(f"{prefix}:{due[0]}d", "forum_reminder", "experts", None,
                       {"forum": definition.forum.name, "days": left,
                        "opens_day": start.first_day().isoformat() if start else None,
                        "place": definition.forum.place})


def _invitations(definition: ProcessDefinition, instance: Instance,
                 milestones: dict[str, Milestone], batch: _Batch,
                 invitations: dict[str, Invitation]) -> None:
    """Invite once a cycle is posted and its meeting's days are fixed; update when it moves;
    cancel when its day is unfixed again (``next_invitation`` decides, with RFC 5545's
    SEQUENCE)."""
    for cycle in definition.cycles:
        if f"post_{cycle.id}" not in instance.happened:
            continue
        for meeting in cycle.meetings:
            if f"end_{meeting.id}" in instance.happened:
                continue
            item = milestones[meeting.id]
            previous = invitations.get(meeting.id)
            where = Where(item.place, item.mode, item.days, meeting.join_url)
            change = next_invitation(previous, item.start, item.last, where)
            if change is None:
                continue
            invitations[meeting.id] = change.sent
            event, sequence = change.event.value, change.sent.sequence
            first, final = str(change.start), str(change.end)  # a cancellation: days cancelled
            batch.emit(f"invite:{meeting.id}:{sequence}", event, "experts", cycle.id, {
                "cycle_name": cycle.name, "meeting": meeting.id, "meeting_name": meeting.name,
                "start_day": first or None, "end_day": final or None,
                "place": item.place, "mode": item.mode, "sequence": sequence,
                "days": [str(d) for d in item.days] if item.days else None,
                "informal": meeting.informal, "remote_participation": meeting.remote,
                "after_final": after_final(definition, milestones, item),
                "timezone": definition.timezone, **_moved_from(change.event, previous)})


def after_final(definition: ProcessDefinition, milestones: dict[str, Milestone],
                item: Milestone) -> bool:
    """An informal session that starts after the final report (as posted, or planned): it is
    recorded and invited to, and it does not change the report."""
    final = milestones[f"{definition.cycles[-1].id}.posting"]
    return bool(item.informal and item.start is not None and final.start is not None
                and item.start.first_day() > final.start.last_day())


def _moved_from(event: InvitationEvent, previous: Invitation | None) -> dict[str, object]:
    """An update's previous days (and place and mode, when on record), so its mail says what
    changed (old → new); none when the meeting was cancelled before (nothing to move from)."""
    if event is not InvitationEvent.UPDATED or previous is None or previous.start is None:
        return {}
    moved: dict[str, object] = {"previous_start_day": str(previous.start),
                                "previous_end_day": str(previous.end or previous.start)}
    if previous.details:
        moved.update(previous_place=previous.place, previous_mode=previous.mode,
                     previous_days=[str(d) for d in previous.days] if previous.days else None)
    return moved


def _alerts(definition: ProcessDefinition, instance: Instance, table: Table,
            milestones: dict[str, Milestone], batch: _Batch) -> None:
    """Tell the secretariat when a manual step is overdue or the six-week rule is at risk."""
    for step in overdue_steps(definition, instance, batch.now, milestones):
        batch.emit(f"overdue:{step.trigger}:{step.planned}", "step_overdue", "secretariat",
                   step.cycle, {"step": step.label, "trigger": step.trigger,
                                "planned_day": step.planned.first_day().isoformat(),
                                "due": step.overdue_from.isoformat()})
    if f"post_{definition.cycles[-1].id}" in instance.happened and \
            instance.regions["main"] != f"{definition.cycles[-1].id}.posted":
        return
    result = six_weeks(definition, milestones)
    if result.status is not Status.PASS:
        final = milestones[f"{definition.cycles[-1].id}.posting"].start
        forum = milestones["forum"].start
        head = f"rule:{result.rule}:{result.status.value}"
        key = f"{head}:{_dated(final)}:{_dated(forum)}"
        if f"{instance.process_id}:{head}:{final}:{forum}" in batch.seen:
            # Release 0.1 wrote an unset date as 'None' in this key; the same situation
            # noticed under that form is not told again under the new one.
            batch.quiet(key)
        batch.emit(key, "rule_at_risk",
                   "secretariat", None, {"rule": result.rule, "status": result.status.value,
                                         "message": result.message,
                                         "slack_days": result.slack_days})


def _dated(day: PlanDate | None) -> str:
    """A plan date as a key part: 'unset' while it has no date (never 'None')."""
    return "unset" if day is None else str(day)


# --- Message payloads: from an effect's facts to the typed payload its mail renders ---------

def _common(definition: ProcessDefinition, effect: Effect) -> dict[str, object]:
    data = effect.data
    base: dict[str, object] = {
        "process_id": effect.process_id, "process_name": definition.name,
        "forum": definition.forum.name, "timezone": definition.timezone,
        "contact": definition.secretariat[0].email}
    document = data.get("document")
    url = definition.notifications.document_url
    if document:
        base["document"] = document
        if url:
            base["document_url"] = url.format(document=document)
    if effect.cycle:
        base["cycle"] = effect.cycle
        base["cycle_name"] = data.get("cycle_name") or definition.cycle(effect.cycle).name
    return base


_Facts = dict[str, object]


def _draft(d: ProcessDefinition, e: Effect, now: datetime) -> _Facts:
    cycle = d.cycle(e.cycle or "")
    return {"deadline": e.data.get("deadline"), "comments": cycle.comments,
            "public_consultation": cycle.public_consultation}


def _revised(d: ProcessDefinition, e: Effect, now: datetime) -> _Facts:
    data = e.data
    return {"label": data.get("label"), "previous_document": data.get("previous_document"),
            "previous_label": data.get("previous_label"), "reason": data.get("reason"),
            "deadline": data.get("deadline")}


def _reminder(d: ProcessDefinition, e: Effect, now: datetime) -> _Facts:
    return {"days_before": e.data.get("days"), "deadline": e.data.get("deadline"),
            "forum_opens": e.data.get("opens_day"), "place": e.data.get("place")}


def _closed(d: ProcessDefinition, e: Effect, now: datetime) -> _Facts:
    return {"deadline": e.data.get("deadline")}


def _consultation(d: ProcessDefinition, e: Effect, now: datetime) -> _Facts:
    return {"deadline": e.data.get("consultation_deadline") or e.data.get("deadline")}


def _meeting(d: ProcessDefinition, e: Effect, now: datetime) -> _Facts:
    data = e.data
    return {"meeting": data.get("meeting"), "meeting_name": data.get("meeting_name"),
            "start": data.get("start_day"), "end": data.get("end_day"),
            "place": data.get("place"), "mode": data.get("mode"),
            "sequence": data.get("sequence"), "previous_start": data.get("previous_start_day"),
            "previous_end": data.get("previous_end_day"), "days": data.get("days"),
            "informal": data.get("informal"), "remote_participation":
            data.get("remote_participation"), "previous_place": data.get("previous_place"),
            "previous_mode": data.get("previous_mode"),
            "previous_days": data.get("previous_days"), "reason": data.get("reason"),
            "after_final": data.get("after_final"), "sessions": data.get("sessions"),
            "join_url": _join_url(d, data.get("meeting"))}


def _join_url(d: ProcessDefinition, meeting_id: object) -> str | None:
    """The meeting's join link in the definition in force (a revision's, when revised)."""
    meetings = (m for c in d.cycles for m in c.meetings if m.id == meeting_id)
    return next((m.join_url for m in meetings), None)


def _final(d: ProcessDefinition, e: Effect, now: datetime) -> _Facts:
    return {"forum_opens": e.data.get("opens_day")}


def _forum_updated(d: ProcessDefinition, e: Effect, now: datetime) -> _Facts:
    data = e.data
    return {"mode": data.get("mode"), "place": data.get("place"),
            "previous_mode": data.get("previous_mode"),
            "previous_place": data.get("previous_place"),
            "forum_opens": data.get("opens_day"), "reason": data.get("reason")}


def _overdue(d: ProcessDefinition, e: Effect, now: datetime) -> _Facts:
    data = e.data
    due = datetime.fromisoformat(str(data["due"]))
    return {"step": data.get("step"), "step_key": data.get("trigger"), "due": data["due"],
            "overdue_days": max(0, (now - due).days),
            "action": f"prepflow transition {e.process_id} {data.get('trigger')} "
                      "--by NAME --document REF"}


def _rule(d: ProcessDefinition, e: Effect, now: datetime) -> _Facts:
    return {"rule": e.data.get("rule"), "message": e.data.get("message"),
            "status": "FAIL" if e.data.get("status") == "fail" else "RISK",
            "slack_days": e.data.get("slack_days")}


#: Each event's own fields, from the facts the engine or a notice recorded in the effect.
_SPECIFIC = {
    "draft_posted": _draft, "draft_revised": _revised, "comment_reminder": _reminder,
    "forum_reminder": _reminder,
    "comments_closed": _closed, "consultation_opened": _consultation,
    "consultation_closed": _consultation, "meeting_invitation": _meeting,
    "meeting_updated": _meeting, "meeting_cancelled": _meeting, "final_posted": _final,
    "forum_updated": _forum_updated,
    "step_overdue": _overdue, "rule_at_risk": _rule,
}


def with_message(definition: ProcessDefinition, effect: Effect) -> Effect:
    """The effect with its typed payload attached (dated at the effect's own time).

    A payload the model refuses leaves ``message`` None rather than failing the decision: the
    edge then queues the plain facts and that one row fails visibly when rendered (see
    flows/mail/outbox_plan.py), while every other transition and message goes ahead.
    """
    if effect.kind != "notify" or effect.event in SKIPPED or effect.event not in MODELS:
        return effect
    try:
        message = message_payload(definition, effect, effect.at)
    except ValidationError:
        return effect
    return replace(effect, message=message)


def message_payload(definition: ProcessDefinition, effect: Effect, now: datetime) -> Message:
    """The typed payload of a message effect (``now`` only dates an overdue step's age).

    Raises pydantic's ValidationError if the effect lacks what its event's mail must say: a
    bug in the core, caught before a row is queued rather than when it is sent.
    """
    specific = _SPECIFIC.get(effect.event)
    fields = {**_common(definition, effect),
              **(specific(definition, effect, now) if specific else {})}
    return parse_message(effect.event, {k: v for k, v in fields.items() if v is not None})
