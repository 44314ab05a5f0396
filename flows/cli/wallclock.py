"""What the audit log's two times say: an entry made with ``--now`` far from the real clock.

Each entry keeps its effective time (``at``, which ``--now`` sets) and the real clock when it
was written (``recorded_at``, unknown for entries written before revision 0006). Where they
differ by more than a minute, ``audit`` and ``status`` say so, in the process's zone.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from flows.storage import AuditEntry

#: More than this between the effective time and the clock is an action "as of" another time.
TOLERANCE = timedelta(minutes=1)


def _shown(at: datetime, timezone: str) -> str:
    return at.astimezone(ZoneInfo(timezone)).strftime("%Y-%m-%d %H:%M %Z")


def backdated(entry: AuditEntry) -> bool:
    """True when the entry was made as of a time other than when it was really written."""
    return entry.recorded_at is not None and abs(entry.at - entry.recorded_at) > TOLERANCE


def mark(entry: AuditEntry, timezone: str | None) -> str:
    """The audit table's note for a backdated (or forward-dated) entry; "" otherwise."""
    if not backdated(entry) or entry.recorded_at is None:
        return ""
    zone = timezone or "UTC"
    return (f"(recorded {_shown(entry.recorded_at, zone)}, "
            f"acted as of {_shown(entry.at, zone)})")


def last_change_note(entries: Sequence[AuditEntry], timezone: str) -> str:
    """Status's line when the process's last change was made with ``--now``; "" otherwise."""
    last = entries[-1] if entries else None
    if last is None or last.recorded_at is None or not backdated(last):
        return ""
    return (f"last change made as of {_shown(last.at, timezone)} (--now), "
            f"recorded {_shown(last.recorded_at, timezone)}")
