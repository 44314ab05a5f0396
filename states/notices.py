"""Which messages are due: reminders before deadlines, meeting invitations and their updates,
and alerts to the secretariat. Each is decided once: its key joins ``Instance.notices``.

Messages that follow a transition (a draft posted, a window closed) are effects of that
transition (see engine); this module covers messages that time or an amendment makes due.
The audience is a group ("experts", "secretariat"); the shell resolves it to addresses.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from states.dates import end_instant, start_instant, zone
from states.decision import SYSTEM, Decision, Effect, Record
from states.definition import ProcessDefinition
from states.instance import Instance
from states.invitations import Invitation, next_invitation
from states.machine import Table
from states.plan import Milestone
from states.queries import overdue_steps
from states.rules import Status, six_weeks

#: What each transition's event tells whom ("none": no message).
AUDIENCE = {
    "draft_posted": "experts", "comments_closed": "experts",
    "consultation_opened": "experts", "consultation_closed": "experts",
    "final_posted": "experts", "meeting_started": "none", "meeting_ended": "none",
    "forum_opened": "none", "forum_closed": "none",
}


class _Batch:
    """Notices decided in one call, skipping keys already decided before."""

    def __init__(self, instance: Instance, now: datetime) -> None:
        self.instance, self.now = instance, now
        self.seen = set(instance.notices)
        self.effects: list[Effect] = []
        self.records: list[Record] = []

    def quiet(self, key: str) -> None:
        """Mark a notice as decided without sending it (superseded by a more urgent one)."""
        self.seen.add(f"{self.instance.process_id}:{key}")

    def emit(self, key: str, event: str, audience: str, cycle: str | None,
             data: dict[str, Any]) -> None:
        full = f"{self.instance.process_id}:{key}"
        if full in self.seen:
            return
        self.seen.add(full)
        self.effects.append(Effect("notify", event, full, self.instance.process_id, cycle, None,
                                   self.now, {"audience": audience, **data}))
        self.records.append(Record(self.now, SYSTEM, "notice", None, None, None, None,
                                   {"event": event, "key": full, "audience": audience}))


def notices(definition: ProcessDefinition, instance: Instance, table: Table,
            milestones: dict[str, Milestone], now: datetime) -> Decision:
    """Every message due at ``now`` that no earlier decision announced."""
    batch = _Batch(instance, now)
    invitations = dict(instance.invitations)
    _reminders(definition, instance, milestones, batch)
    _invitations(definition, instance, milestones, batch, invitations)
    _alerts(definition, instance, table, milestones, batch)
    if not batch.records and invitations == instance.invitations:
        return Decision(instance, instance)
    after = instance.model_copy(update={"notices": tuple(sorted(batch.seen)),
                                        "invitations": invitations})
    return Decision(instance, after, tuple(batch.records), tuple(batch.effects))


def _before(at: datetime, days: int, tz: ZoneInfo) -> datetime:
    """``days`` calendar days before an instant, on the local clock (same Geneva time of day,
    also across a summer-time change)."""
    return (at.astimezone(tz) - timedelta(days=days)).astimezone(UTC)


def _due_offsets(at: datetime, offsets: list[int], now: datetime, tz: ZoneInfo) -> list[int]:
    return sorted(d for d in offsets if _before(at, d, tz) <= now < at)


def _reminders(definition: ProcessDefinition, instance: Instance,
               milestones: dict[str, Milestone], batch: _Batch) -> None:
    """Before each comment deadline and before the forum; a late tick sends only the most
    urgent reminder, not a burst of stale ones."""
    tz = zone(definition.timezone)
    main = instance.regions["main"]
    for cycle in definition.cycles:
        item = milestones.get(f"{cycle.id}.comments")
        if main != f"{cycle.id}.comment_window" or item is None or item.start is None \
                or not item.start.exact:
            continue
        closes = end_instant(item.start, tz)
        due = _due_offsets(closes, definition.rules.reminder_days, batch.now, tz)
        for days in due[1:]:  # keyed by the deadline: a moved deadline is reminded again
            batch.quiet(f"reminder:{cycle.id}:{item.start}:{days}d")
        if due:
            posted = instance.happened.get(f"post_{cycle.id}")
            batch.emit(f"reminder:{cycle.id}:{item.start}:{due[0]}d", "comment_reminder",
                       "experts",
                       cycle.id, {"cycle_name": cycle.name, "days": due[0],
                                  "document": posted.document if posted else None,
                                  "deadline": closes.isoformat(),
                                  "deadline_day": item.start.first_day().isoformat()})
    forum = milestones["forum"]
    if main == f"{definition.cycles[-1].id}.posted" and forum.start and forum.start.exact:
        opens = start_instant(forum.start, tz)
        due = _due_offsets(opens, definition.notifications.forum_reminder_days, batch.now, tz)
        for days in due[1:]:
            batch.quiet(f"forum-reminder:{forum.start}:{days}d")
        if due:
            batch.emit(f"forum-reminder:{forum.start}:{due[0]}d", "forum_reminder", "experts", None,
                       {"forum": definition.forum.name, "days": due[0],
                        "opens_day": forum.start.first_day().isoformat(),
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
            change = next_invitation(invitations.get(meeting.id), item.start, item.last)
            if change is None:
                continue
            invitations[meeting.id] = change.sent
            event, sequence = change.event.value, change.sent.sequence
            first, final = str(change.start), str(change.end)  # a cancellation: days cancelled
            batch.emit(f"invite:{meeting.id}:{sequence}", event, "experts", cycle.id, {
                "cycle_name": cycle.name, "meeting": meeting.id, "meeting_name": meeting.name,
                "start_day": first or None, "end_day": final or None,
                "place": meeting.place, "mode": meeting.mode.value, "sequence": sequence,
                "timezone": definition.timezone})


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
        batch.emit(f"rule:{result.rule}:{result.status.value}:{final}:{forum}", "rule_at_risk",
                   "secretariat", None, {"rule": result.rule, "status": result.status.value,
                                         "message": result.message,
                                         "slack_days": result.slack_days})

