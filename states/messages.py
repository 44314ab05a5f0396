"""What each message says: one pydantic model per event, the typed payload of a message effect.

The core decides that a message is due (states/notices.py turns the effect into one of these);
the edge stores ``model_dump(mode="json")`` as the outbox row's context and the renderer
validates it back with ``parse_message`` before any template sees it. Rows stored by release
0.1 (plain dicts with the same keys, no ``event``) validate too: the event comes from the
row, and unknown keys are ignored rather than refused, so an old row never becomes unsendable.

Instants are aware datetimes (UTC in practice); days are dates; meeting start/end are plan
dates as text in the process's zone ("YYYY-MM-DD" or "YYYY-MM-DD HH:MM").
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from typing import Annotated, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, TypeAdapter

#: Events the spec marks "no mail needed"; no row is queued for them.
SKIPPED = frozenset({"meeting_started", "meeting_ended", "forum_opened"})


class _Message(BaseModel):
    """What every message says: which process, and whom to answer."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    process_id: str
    process_name: str
    forum: str
    timezone: str | None = None
    """The definition's zone; when absent, the renderer's caller supplies it."""
    contact: str | None = None
    """The secretariat's address: the message's Reply-To."""


class _CycleMessage(_Message):
    cycle: str
    cycle_name: str


class NominationAcknowledged(_Message):
    """To a newly nominated expert."""

    event: Literal["nomination_acknowledged"] = "nomination_acknowledged"
    nominated_by: str
    entity: str
    late: bool = False
    nominations_deadline: AwareDatetime | None = None


class DraftPosted(_CycleMessage):
    """A draft is out for comments (to experts and focal points)."""

    event: Literal["draft_posted"] = "draft_posted"
    document: str
    document_url: str | None = None
    deadline: AwareDatetime | None = None
    comments: bool = True
    """False for a round without a comment window (the mail then asks for no comments)."""
    public_consultation: bool = False


class DraftRevised(_CycleMessage):
    """A further version of a posted draft (e.g. 'revised') replaces the one experts read."""

    event: Literal["draft_revised"] = "draft_revised"
    document: str
    label: str
    previous_document: str | None = None
    previous_label: str | None = None
    reason: str | None = None
    document_url: str | None = None
    deadline: AwareDatetime | None = None
    """The comment deadline, while the draft's comment window is open."""


class CommentReminder(_CycleMessage):
    """The comment deadline is ``days_before`` days away."""

    event: Literal["comment_reminder"] = "comment_reminder"
    document: str
    deadline: AwareDatetime
    days_before: int
    document_url: str | None = None


class CommentsClosed(_CycleMessage):
    """The comment window closed."""

    event: Literal["comments_closed"] = "comments_closed"
    deadline: AwareDatetime
    document: str | None = None
    document_url: str | None = None
    next_step: str | None = None


class ConsultationOpened(_CycleMessage):
    """An open public consultation started."""

    event: Literal["consultation_opened"] = "consultation_opened"
    document: str
    deadline: AwareDatetime
    document_url: str | None = None


class ConsultationClosed(_CycleMessage):
    """The public consultation closed."""

    event: Literal["consultation_closed"] = "consultation_closed"
    deadline: AwareDatetime


class MeetingSession(BaseModel):
    """One session of a split meeting, as its invitations list them all."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    meeting: str
    meeting_name: str
    start: str
    end: str | None = None
    mode: Literal["in-person", "virtual", "hybrid"] = "in-person"
    place: str | None = None
    informal: bool = False
    days: tuple[str, ...] | None = None


class _Meeting(_CycleMessage):
    """A meeting's invitation, update or cancellation (with an iTIP .ics)."""

    meeting: str
    meeting_name: str
    start: str
    sequence: int = Field(ge=0)
    """RFC 5545 SEQUENCE: 0 for the invitation, +1 on every change."""
    end: str | None = None
    place: str | None = None
    mode: Literal["in-person", "virtual", "hybrid"] = "in-person"
    join_url: str | None = None
    """The meeting's https join link (checked in the definition: states.meeting_link)."""
    changes: str | None = None
    reason: str | None = None
    days: tuple[str, ...] | None = None
    """The exact days of a meeting held on non-contiguous days (plan dates as text)."""
    informal: bool = False
    """An informal session (not a step of the process: see states.definition.MeetingDef)."""
    after_final: bool = False
    """Held after the final report was posted: it does not change the report."""
    remote_participation: bool | None = None
    sessions: tuple[MeetingSession, ...] = ()
    """A split meeting's sessions in order (empty unless a split sent this message)."""


class MeetingInvitation(_Meeting):
    """A meeting's days are fixed: invite (METHOD:REQUEST)."""

    event: Literal["meeting_invitation"] = "meeting_invitation"


class MeetingUpdated(_Meeting):
    """A meeting moved (METHOD:REQUEST, higher sequence), from its previous days."""

    event: Literal["meeting_updated"] = "meeting_updated"
    previous_start: str | None = None
    """The days the last invitation named; None in rows queued before they were carried
    (the mail then says only that the meeting changed, and its new days)."""
    previous_end: str | None = None
    previous_place: str | None = None
    """The place and mode the last invitation named, when on record (else None)."""
    previous_mode: str | None = None
    previous_days: tuple[str, ...] | None = None


class MeetingCancelled(_Meeting):
    """A meeting's days are no longer fixed (METHOD:CANCEL)."""

    event: Literal["meeting_cancelled"] = "meeting_cancelled"


class FinalPosted(_CycleMessage):
    """The final report is out."""

    event: Literal["final_posted"] = "final_posted"
    document: str
    document_url: str | None = None
    forum_opens: date | None = None


class ForumReminder(_Message):
    """The forum opens in ``days_before`` days."""

    event: Literal["forum_reminder"] = "forum_reminder"
    forum_opens: date
    days_before: int
    place: str | None = None


class ForumUpdated(_Message):
    """The forum is held in another mode or place (a revision's): old → new, and why."""

    event: Literal["forum_updated"] = "forum_updated"
    mode: Literal["in-person", "virtual", "hybrid"] | None = None
    place: str | None = None
    previous_mode: Literal["in-person", "virtual", "hybrid"] | None = None
    previous_place: str | None = None
    forum_opens: date | None = None
    reason: str | None = None


class StepOverdue(_Message):
    """To the secretariat: a manual step is past its planned day."""

    event: Literal["step_overdue"] = "step_overdue"
    step: str
    step_key: str
    due: AwareDatetime
    overdue_days: float = Field(ge=0)
    action: str | None = None


class RuleAtRisk(_Message):
    """To the secretariat: a rule fails or is at risk."""

    event: Literal["rule_at_risk"] = "rule_at_risk"
    rule: str
    status: Literal["FAIL", "RISK"]
    message: str
    slack_days: int | None = None


class FailedItem(BaseModel):
    """One message that did not go out (the address already masked)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    id: int
    event: str
    recipient: str
    error: str


class DeliveryFailures(_Message):
    """To the secretariat: messages failed for good or may not have gone out."""

    event: Literal["delivery_failures"] = "delivery_failures"
    failed: int
    uncertain: int
    items: tuple[FailedItem, ...]
    command: str = "prepflow outbox --status failed"


Message = Annotated[
    NominationAcknowledged | DraftPosted | DraftRevised | CommentReminder | CommentsClosed
    | ConsultationOpened | ConsultationClosed | MeetingInvitation | MeetingUpdated
    | MeetingCancelled | FinalPosted | ForumReminder | ForumUpdated | StepOverdue | RuleAtRisk
    | DeliveryFailures,
    Field(discriminator="event"),
]
MESSAGE: TypeAdapter[Message] = TypeAdapter(Message)
#: event name → its model.
MODELS: dict[str, type[_Message]] = {
    model.model_fields["event"].default: model
    for model in (NominationAcknowledged, DraftPosted, DraftRevised, CommentReminder,
                  CommentsClosed,
                  ConsultationOpened, ConsultationClosed, MeetingInvitation, MeetingUpdated,
                  MeetingCancelled, FinalPosted, ForumReminder, ForumUpdated, StepOverdue,
                  RuleAtRisk, DeliveryFailures)
}
#: Events whose message carries an iTIP calendar, and its method.
CALENDAR = {"meeting_invitation": "REQUEST", "meeting_updated": "REQUEST",
            "meeting_cancelled": "CANCEL"}


def parse_message(event: str, context: Mapping[str, object]) -> Message:
    """The stored context of an outbox row as its event's model (pydantic ValidationError
    names each missing or malformed key)."""
    return MESSAGE.validate_python({**context, "event": event})
