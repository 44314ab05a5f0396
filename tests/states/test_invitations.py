"""Meeting invitations: which calendar message a change of days calls for, with RFC 5545's
SEQUENCE, and the stored form existing stores hold."""

from __future__ import annotations

import pytest

from states.dates import PlanDate
from states.instance import Instance
from states.invitations import Invitation, InvitationEvent, next_invitation

OCT21, OCT22, NOV4 = PlanDate(2024, 10, 21), PlanDate(2024, 10, 22), PlanDate(2024, 11, 4)
OCTOBER = PlanDate(2024, 10)
SENT = Invitation(sequence=0, start=OCT21, end=OCT22)
CANCELLED = Invitation(sequence=1)

CASES = [
    # previous, start, end, expected event, expected sequence
    (None, OCT21, OCT22, InvitationEvent.INVITATION, 0),
    (None, OCTOBER, OCTOBER, None, None),
    (None, None, None, None, None),
    (SENT, OCT21, OCT22, None, None),
    (SENT, NOV4, NOV4, InvitationEvent.UPDATED, 1),
    (SENT, OCT21, NOV4, InvitationEvent.UPDATED, 1),
    (SENT, OCTOBER, OCTOBER, InvitationEvent.CANCELLED, 1),
    (CANCELLED, OCTOBER, OCTOBER, None, None),
    (CANCELLED, NOV4, NOV4, InvitationEvent.UPDATED, 2),
]


@pytest.mark.parametrize(("previous", "start", "end", "event", "sequence"), CASES)
def test_next_invitation(previous: Invitation | None, start: PlanDate | None,
                         end: PlanDate | None, event: InvitationEvent | None,
                         sequence: int | None) -> None:
    """Each change of a meeting's days calls for one message, its SEQUENCE one higher."""
    change = next_invitation(previous, start, end)
    assert (change.event if change else None) == event
    assert (change.sent.sequence if change else None) == sequence


def test_a_cancellation_names_the_days_it_cancels() -> None:
    """A cancellation says which days no longer hold, and keeps no days on record."""
    change = next_invitation(SENT, OCTOBER, OCTOBER)
    assert change is not None
    assert (change.start, change.end) == (OCT21, OCT22)
    assert change.sent == CANCELLED


@pytest.mark.parametrize("stored", ["0|2024-10-21..2024-10-22", "3|",
                                    "1|2024-10-21 10:00..2024-10-21 10:00"])
def test_the_stored_form_reads_and_writes_back_unchanged(stored: str) -> None:
    """Stores written before the typed model keep 'sequence|start..end' and read it back."""
    doc = {"process_id": "p", "regions": {"main": "x"}, "invitations": {"ieg1": stored}}
    instance = Instance.from_doc(doc)
    assert isinstance(instance.invitations["ieg1"], Invitation)
    assert instance.to_doc()["invitations"] == {"ieg1": stored}
