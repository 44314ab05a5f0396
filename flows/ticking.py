"""One tick over many processes: each decided, claimed and written on its own.

A tick reads every process once, unlocked, and decides on that read; only a process with
something due opens a write transaction. There the row is claimed without waiting (FOR UPDATE
SKIP LOCKED on PostgreSQL; SQLite's write transaction holds the whole database already): a row
another worker holds is passed over and come back to once at the end of the tick, waiting for
it then; a row that moved since the read is decided again under the lock. So of two workers
ticking at once, the second moves on to other processes instead of queueing behind the first,
finds the first one's work done when it gets to a process, and writes nothing twice.

Each process stands alone: a damaged row, a definition that no longer reads, or a store error
confined to one process fails that process (its transaction rolled back, nothing written for
it) and the tick goes on with the others; the result says, per process, what happened.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from flows.clock import Clock
from flows.mail.outbox_plan import plan
from flows.storage import AuditDraft, ProcessTransaction, Store, StoredProcess
from flows.storage.errors import DamagedState as DamagedState  # re-exported
from states import engine
from states.contributions import closing_cycles, with_summaries
from states.definition import ProcessDefinition
from states.engine import Decision, Record
from states.instance import Instance
from states.roles import Via

#: The definition and instance of a stored row (Service.decode: DamagedState if they no
#: longer read).
Decode = Callable[[StoredProcess], tuple[ProcessDefinition, Instance]]


@dataclass(frozen=True)
class Outcome:
    """What a command did: the decision taken and the version now stored."""

    process_id: str
    decision: Decision
    version: int


class Status(StrEnum):
    """What a tick did with one process."""

    ADVANCED = "advanced"
    IDLE = "nothing due"
    FAILED = "failed"


@dataclass(frozen=True)
class ProcessResult:
    """One process's part of a tick; ``error`` says why it failed."""

    process_id: str
    status: Status
    outcome: Outcome | None = None
    error: Exception | None = field(default=None, compare=False)

    @property
    def reason(self) -> str:
        """Why the process failed, in one paragraph ('' unless it did)."""
        if self.error is None:
            return ""
        text = " ".join(str(self.error).split())
        return text or type(self.error).__name__


@dataclass(frozen=True)
class Tick:
    """A tick's result, one entry per process it looked at, in process order."""

    at: datetime
    results: tuple[ProcessResult, ...]

    @property
    def outcomes(self) -> list[Outcome]:
        """What was written: one outcome per process that moved or had messages decided."""
        return [r.outcome for r in self.results if r.outcome is not None]

    @property
    def failed(self) -> list[ProcessResult]:
        """The processes this tick could not advance (the next tick tries again)."""
        return [r for r in self.results if r.status is Status.FAILED]


class _Busy(Exception):
    """Another transaction holds the row: come back to it at the end of the tick."""


class Ticker:
    """Advances the processes of one store at one instant, each on its own."""

    def __init__(self, store: Store, clock: Clock, decode: Decode) -> None:
        self._store = store
        self._clock = clock
        self._decode = decode

    def run(self, rows: Sequence[StoredProcess], at: datetime) -> Tick:
        """Advance each of ``rows`` (read unlocked, just now) to ``at``."""
        results: dict[str, ProcessResult] = {}
        busy: list[StoredProcess] = []
        for stored in rows:
            try:
                results[stored.process_id] = self._one(stored, at, wait=False)
            except _Busy:
                busy.append(stored)
        for stored in busy:  # held by another worker a moment ago: wait for it this time
            results[stored.process_id] = self._one(stored, at, wait=True)
        return Tick(at, tuple(results[r.process_id] for r in rows))

    def _one(self, stored: StoredProcess, at: datetime, *, wait: bool) -> ProcessResult:
        pid = stored.process_id
        try:
            outcome = self._advance(stored, at, wait)
        except _Busy:
            raise
        except Exception as exc:  # noqa: BLE001 - one process's failure must not stop the rest
            return ProcessResult(pid, Status.FAILED, error=exc)
        if outcome is None:
            return ProcessResult(pid, Status.IDLE)
        return ProcessResult(pid, Status.ADVANCED, outcome)

    def _advance(self, stored: StoredProcess, at: datetime, wait: bool) -> Outcome | None:
        definition, instance = self._decode(stored)
        decision = engine.advance(definition, instance, at)
        if not decision.changed:
            return None
        with self._store.transaction(stored.process_id) as tx:
            current = tx.claim(stored, wait=wait)
            if current is None:
                raise _Busy
            if current is not stored:  # another worker or a member moved it: decide again
                definition, instance = self._decode(current)
                decision = engine.advance(definition, instance, at)
                if not decision.changed:
                    return None  # the other worker did it already
            decision = summaries(definition, decision, tx)
            saved = tx.commit(decision.after.to_doc(),
                              [draft(r, self._clock.now()) for r in decision.records],
                              plan(definition, decision.effects, tx.experts, at),
                              expected_version=current.version)
        return Outcome(stored.process_id, decision, saved.version)


def summaries(definition: ProcessDefinition, decision: Decision,
              tx: ProcessTransaction) -> Decision:
    """The decision with the summary of each comment window it closes, from the register
    read in the transaction that records the close (issue 8)."""
    cycles = closing_cycles(definition, decision)
    if not cycles:
        return decision
    return with_summaries(definition, decision, tx.contributions(cycles))


def draft(record: Record, recorded_at: datetime | None = None,
          via: Via | None = None) -> AuditDraft:
    """The audit entry a core record becomes (``recorded_at``: the real clock's time); the
    acting member's entries say how they acted (``via``, issue 10), the system's do not."""
    inputs = {**record.inputs, "via": via.doc()} if via and record.actor == via.member \
        else record.inputs
    return AuditDraft(at=record.at, actor=record.actor, kind=record.kind,
                      trigger=record.trigger, from_state=record.from_state,
                      to_state=record.to_state, reason=record.reason, inputs=inputs,
                      recorded_at=recorded_at)
