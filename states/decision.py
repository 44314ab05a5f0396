"""What a decision returns: the new instance, audit records to append, effects to perform."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from states.instance import Instance
from states.messages import Message

SYSTEM = "system"


@dataclass(frozen=True)
class Record:
    """One audit entry to append: who did what, when, from which state to which."""

    at: datetime
    actor: str
    kind: str
    trigger: str | None = None
    from_state: str | None = None
    to_state: str | None = None
    reason: str | None = None
    inputs: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Effect:
    """Something the shell must do after recording, with a key that makes it happen once."""

    kind: str
    event: str
    key: str
    process_id: str
    cycle: str | None
    trigger: str | None
    at: datetime
    data: dict[str, Any] = field(default_factory=dict)
    message: Message | None = None
    """A notify effect's typed payload (states/messages.py), when the core built it."""


@dataclass(frozen=True)
class Decision:
    """The outcome of one decision: record ``records`` and ``after`` together, then effects."""

    before: Instance
    after: Instance
    records: tuple[Record, ...] = ()
    effects: tuple[Effect, ...] = ()

    @property
    def transitions(self) -> list[Record]:
        """The transition records alone (not notices, amendments or overrides)."""
        return [r for r in self.records if r.kind == "transition"]

    @property
    def changed(self) -> bool:
        """True when there is anything to record."""
        return bool(self.records)

    def then(self, other: Decision) -> Decision:
        """This decision followed by another taken on its result."""
        return Decision(self.before, other.after, self.records + other.records,
                        self.effects + other.effects)
