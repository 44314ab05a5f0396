"""Meeting invitations and their RFC 5545 SEQUENCE: decided here, once, for every edge.

A meeting is invited once its cycle is posted and its days are fixed; each later change of
its days is an update, and unfixing them a cancellation, each with the next SEQUENCE number
(RFC 5545 §3.8.7.4: a calendar keeps the message with the highest one). The store keeps the
last invitation per meeting in its historical form 'sequence|start..end' ('sequence|' once
cancelled), so existing stores read unchanged; an invitation that also named the meeting's
place, mode and exact days (when a revision can change them) is kept as an object with those
fields, and a change of any of them is an update too.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, PlainSerializer

from states.dates import PlanDate


class InvitationEvent(StrEnum):
    """Which calendar message a change of a meeting's days calls for (the message's event)."""

    INVITATION = "meeting_invitation"
    UPDATED = "meeting_updated"
    CANCELLED = "meeting_cancelled"


class Invitation(BaseModel):
    """The last calendar message sent for a meeting: its SEQUENCE and the days it named."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    sequence: int
    """RFC 5545 SEQUENCE: 0 for the invitation, +1 for each update or cancellation."""
    start: PlanDate | None = None
    """First day sent; None once the meeting was cancelled (its days unfixed)."""
    end: PlanDate | None = None
    details: bool = False
    """True when place, mode and days below are what was sent (not so in release 0.1 rows)."""
    place: str | None = None
    mode: str | None = None
    days: tuple[PlanDate, ...] | None = None
    join_url: str | None = None
    """The join link sent (issue 12); stored only when there is one, so older rows read same."""

    @classmethod
    def parse(cls, value: object) -> object:
        """Read the stored form 'sequence|start..end' (or a model, or its fields)."""
        if not isinstance(value, str):
            return value
        sequence, _, dates = value.partition("|")
        first, _, last = dates.partition("..")
        return {"sequence": int(sequence), "start": first or None, "end": last or None}

    def stored(self) -> str | dict[str, Any]:
        """The stored form, as release 0.1 wrote it; with its details, an object."""
        dates = f"{self.start}..{self.end}" if self.start is not None else ""
        if not self.details:
            return f"{self.sequence}|{dates}"
        return {"sequence": self.sequence, "start": _text(self.start), "end": _text(self.end),
                "details": True, "place": self.place, "mode": self.mode,
                "days": [str(d) for d in self.days] if self.days else None,
                **({"join_url": self.join_url} if self.join_url else {})}

    def with_details(self, place: str | None, mode: str | None,
                     days: tuple[PlanDate, ...] | None,
                     join_url: str | None = None) -> Invitation:
        """This invitation, saying which place, mode, days and join link it named."""
        return self.model_copy(update={"details": True, "place": place, "mode": mode,
                                       "days": days, "join_url": join_url})


def _text(day: PlanDate | None) -> str | None:
    return None if day is None else str(day)


#: An invitation as the instance document keeps it (see the module docstring).
StoredInvitation = Annotated[Invitation, BeforeValidator(Invitation.parse),
                             PlainSerializer(Invitation.stored, return_type=Any)]


@dataclass(frozen=True)
class Where:
    """A meeting's place, mode, exact days and join link: a change of any is an update."""

    place: str | None = None
    mode: str | None = None
    days: tuple[PlanDate, ...] | None = None
    join_url: str | None = None


@dataclass(frozen=True)
class InvitationChange:
    """A calendar message to send now, and the invitation it leaves on record."""

    event: InvitationEvent
    sent: Invitation
    """What is on record after it (for a cancellation: no days, the next SEQUENCE)."""
    start: PlanDate
    """The days the message names: the new ones, or for a cancellation the days cancelled."""
    end: PlanDate


def next_invitation(previous: Invitation | None, start: PlanDate | None,
                    end: PlanDate | None, where: Where | None = None) -> InvitationChange | None:
    """The message a meeting's current days call for, given the last one sent; None if none.

    Days count as fixed only when both the first and the last are known to the day. With
    ``where``, the invitation records the place, mode and days, and a change of them is an
    update; a previous invitation without those details is taken to have named them.
    """
    fixed = start is not None and end is not None and start.exact and end.exact
    if fixed and start is not None and end is not None:
        sent = Invitation(sequence=0, start=start, end=end)
        if where is not None:
            sent = sent.with_details(where.place, where.mode, where.days, where.join_url)
        if previous is None:
            return InvitationChange(InvitationEvent.INVITATION, sent, start, end)
        same_where = where is None or not previous.details or (
            (previous.place, previous.mode, previous.days, previous.join_url) == (
                where.place, where.mode, where.days, where.join_url))
        if (previous.start, previous.end) == (start, end) and same_where:
            return None
        return InvitationChange(InvitationEvent.UPDATED, sent.model_copy(update={
            "sequence": previous.sequence + 1}), start, end)
    if previous is None or previous.start is None or previous.end is None:
        return None  # never invited, or already cancelled: nothing to say
    return InvitationChange(InvitationEvent.CANCELLED,
                            Invitation(sequence=previous.sequence + 1),
                            previous.start, previous.end)
