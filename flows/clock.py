"""The clock seam: the only place the edge reads the time; tests and rehearsals move it."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Protocol

from states.dates import require_aware


class Clock(Protocol):
    """Something that says what time it is (aware, UTC)."""

    def now(self) -> datetime: ...


class SystemClock:
    """The real clock."""

    def now(self) -> datetime:
        """The current instant, UTC."""
        return datetime.now(UTC)


class FixedClock:
    """A test double and the rehearsal's simulated clock: time moves only when told."""

    def __init__(self, start: datetime) -> None:
        self._now = require_aware(start, "FixedClock start")

    def now(self) -> datetime:
        """The simulated instant."""
        return self._now

    def set(self, instant: datetime) -> None:
        """Jump to an instant (aware)."""
        self._now = require_aware(instant, "FixedClock instant")
