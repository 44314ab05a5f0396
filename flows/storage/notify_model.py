"""The store's vocabulary for notifications: the experts register and the outbox (issue 4).

Expert names and addresses are personal data: messages of the errors here mask addresses
(``j***@itu.int``) so that they can reach a log safely; the full address stays on the exception
for the command line, which shows it to the secretariat that typed it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from flows.addresses import mask_email, normalise_email
from flows.storage.errors import DuplicateExpert
from states.dates import require_aware

EXPERT_STATUSES = ("nominated", "confirmed", "withdrawn")
#: pending → sending (claimed by a run) → sent | pending (retry) | failed; a row a stopped run
#: held goes back to pending (resent, same Message-ID) or to uncertain (held for a person).
OUTBOX_STATUSES = ("pending", "sending", "sent", "failed", "uncertain")
#: What erasure writes into a personal text field.
ERASED = "(erased)"
#: Expert fields erasure replaces with ERASED. Member State, country, region, stakeholder type
#: and language stay: they describe the nomination, not the person, and keep the balance
#: statistics right. Gender and time zone become None; the email becomes erased_email(id).
ERASED_TEXT_FIELDS = ("first_name", "last_name", "entity")
#: The outbox error of a pending message whose recipient was erased before it went out.
ERASED_PENDING_ERROR = "recipient erased on request before this message was sent; not sent"


def erased_email(expert_id: int | None) -> str:
    """The address an erased expert (or an outbox row to an erased address) is left with."""
    return "erased@invalid" if expert_id is None else f"erased-{expert_id}@invalid"


def _aware(at: datetime, what: str) -> None:
    require_aware(at, what)


def check_choice(value: str, valid: Sequence[str], what: str) -> None:
    """ValueError naming the bad value and the valid ones."""
    if value not in valid:
        raise ValueError(f"{what} {value!r} is not one of {', '.join(valid)}")


@dataclass(frozen=True)
class ExpertDraft:
    """A nomination as the edge hands it in (validated and normalised there)."""

    email: str
    first_name: str
    last_name: str
    entity: str
    nominated_by: str
    country: str
    region: str
    stakeholder_type: str
    nominated_at: datetime
    gender: str | None = None
    language: str = "en"
    timezone: str | None = None
    status: str = "nominated"
    late: bool = False

    def __post_init__(self) -> None:
        _aware(self.nominated_at, "nomination time")
        check_choice(self.status, EXPERT_STATUSES, "expert status")
        if "@" not in self.email:
            raise ValueError(f"{mask_email(self.email)!r} is not an email address (no '@')")


@dataclass(frozen=True, kw_only=True)
class Expert(ExpertDraft):
    """A nomination as stored."""

    id: int
    process_id: str
    erased: bool


@dataclass(frozen=True)
class OutboxDraft:
    """One message to send, as the edge describes it; ``key`` makes writing it idempotent."""

    key: str
    process_id: str
    event: str
    recipient: str
    email: str
    name: str
    language: str
    timezone: str | None
    context: Mapping[str, Any]
    created_at: datetime

    def __post_init__(self) -> None:
        _aware(self.created_at, "outbox creation time")


@dataclass(frozen=True, kw_only=True)
class OutboxItem(OutboxDraft):
    """A message in the outbox with its delivery bookkeeping.

    ``attempts`` counts finished attempts (each mark_sent, mark_retry and mark_failed adds
    one); ``failed_at`` is the time given to mark_failed, cleared by requeue. ``claimed_by``
    names the delivery run holding a 'sending' row; ``sends`` counts the times the message
    may have reached a server (accepted, or handed over and its fate unknown): above one, a
    receiver may hold a copy twice, under the same Message-ID.
    """

    id: int
    status: str
    attempts: int
    next_attempt_at: datetime
    last_error: str | None
    claimed_at: datetime | None
    sent_at: datetime | None
    reply: str | None
    failed_at: datetime | None = None
    claimed_by: str | None = None
    sends: int = 0


@dataclass(frozen=True)
class DeliveryRun:
    """A delivery run alive (or that was): its lease, renewed while it runs, and where its
    process runs, so a run on this host whose process is gone is known dead at once."""

    run_id: str
    host: str
    pid: int
    started_at: datetime
    lease_until: datetime


@dataclass(frozen=True)
class Recovered:
    """Rows a stopped run held, taken back: resent (back to pending, same Message-ID) or held
    ('uncertain', for a person), by policy."""

    resent: list[OutboxItem]
    held: list[OutboxItem]


def refuse_duplicates(process_id: str, emails: Sequence[str], stored: set[str]) -> None:
    """DuplicateExpert naming every repeated address (against the batch or the register)."""
    seen = set(stored)
    duplicates = []
    for index, email in enumerate(emails):
        if email in seen:
            duplicates.append((index, email))
        seen.add(email)
    if duplicates:
        index, email = duplicates[0]
        raise DuplicateExpert(email, process_id, index, duplicates)


def addressed_to(email: str, recipient: str, norm: str, expert_id: int | None) -> bool:
    """Whether an outbox row goes to the address or expert being erased."""
    return normalise_email(email) == norm or (
        expert_id is not None and recipient == f"expert:{expert_id}"
    )


def not_requeueable(item: OutboxItem) -> ValueError:
    """Why ``item`` cannot go back to pending (only failed and uncertain ones can)."""
    why = {
        "sent": "it was sent already",
        "sending": "a deliverer is sending it right now",
    }.get(item.status, f"it is {item.status}")
    return ValueError(
        f"outbox message {item.id} cannot be re-queued: {why}. Only failed or uncertain "
        "messages can be re-queued."
    )
