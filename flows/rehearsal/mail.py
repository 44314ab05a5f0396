"""The rehearsal's mail: synthetic experts, a local SMTP sink, and transcript lines.

With ``--experts N`` the rehearsal registers N made-up experts (deterministic names, languages,
regions and time zones); with ``--mail-sink DIR`` it starts an SMTP server on 127.0.0.1 that
writes each message it receives as one .eml file in DIR, and runs the real delivery flow after
every step, pointed at that server by a flow parameter (``MailLog.sink``), not by the
environment. The transcript lists the messages queued (by event, with their key pattern) and
delivered; it depends only on the inputs.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from flows.mail.sink import EmlHandler, SmtpServer
from flows.nominations import acknowledgements
from flows.orchestration.run_context import service_for
from flows.settings import SmtpTarget
from flows.storage import ExpertDraft
from states.definition import ProcessDefinition

_ZONES = (None, "America/New_York", "Asia/Tokyo", "Africa/Nairobi", None)
_TYPES = ("government", "private sector", "academia", "civil society")


def synthetic_experts(definition: ProcessDefinition, count: int,
                      now: datetime) -> list[ExpertDraft]:
    """N made-up nominations: the same N every time."""
    regions = [r.id for r in definition.notifications.regions] or ["-"]
    languages = definition.notifications.languages
    types = [t for t in _TYPES if t in definition.notifications.stakeholder_types] or \
        definition.notifications.stakeholder_types
    return [ExpertDraft(
        email=f"expert{n:04d}@example.org", first_name="Expert", last_name=f"{n:04d}",
        entity=f"Administration {n % 37}", nominated_by=f"Member State {n % 53}",
        country=f"C{n % 53:02d}", region=regions[n % len(regions)],
        stakeholder_type=types[n % len(types)], nominated_at=now,
        language=languages[n % len(languages)], timezone=_ZONES[n % len(_ZONES)])
        for n in range(1, count + 1)]


@dataclass
class MailLog:
    """What the transcript says about mail, read back from the outbox."""

    database: str
    process_id: str
    seen: int = 0
    delivered: int = 0
    lines: list[str] = field(default_factory=list)
    sink: SmtpTarget | None = None
    """Where the rehearsal's deliveries go (its local SMTP sink), if it has one."""

    def queued(self, day: str) -> list[str]:
        """Lines for messages queued since the last call, by event, with their keys."""
        with service_for(self.database) as service:
            fresh = [m for m in service.store.outbox(self.process_id) if m.id > self.seen]
        if not fresh:
            return []
        self.seen = max(m.id for m in fresh)
        groups: dict[str, list[str]] = {}
        for message in fresh:
            groups.setdefault(message.event, []).append(message.key)
        lines = []
        for event, keys in groups.items():
            pattern = keys[0] if len(keys) == 1 else _common(keys) + ":*"
            lines.append(f"{day} mail         {event}: {len(keys)} message(s) queued "
                         f"(keys {pattern})")
        return lines


def _common(keys: list[str]) -> str:
    """The ':'-separated segments every key shares, from the left."""
    shared = []
    for segments in zip(*(k.split(":") for k in keys), strict=False):
        if len(set(segments)) != 1:
            break
        shared.append(segments[0])
    return ":".join(shared)


@contextmanager
def mail_sink(directory: Path) -> Iterator[SmtpTarget]:
    """An SMTP sink writing .eml files in ``directory``; yields where to deliver to reach it."""
    directory.mkdir(parents=True, exist_ok=True)
    with SmtpServer(EmlHandler(directory)) as server:
        yield SmtpTarget(host=server.host, port=server.port)


def register(definition: ProcessDefinition, database: str, count: int, now: datetime,
             process_id: str | None = None) -> int:
    """Add the synthetic experts with their acknowledgements, in one transaction."""
    drafts = synthetic_experts(definition, count, now)
    pid = process_id or definition.id
    with service_for(database) as service:
        service.store.add_experts(pid, drafts, acknowledgements(definition, pid, drafts, now))
    return len(drafts)
