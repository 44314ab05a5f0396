"""The imperative shell: load → decide (core) → record. CLI and Prefect flows both call this.

Every change is one store transaction (``store.transaction``): the process is read under its
row lock, decided on, and its state, audit records and outbox messages land together or not at
all. A tick (flows.ticking) reads every process once, unlocked, and claims only the ones with
something due, each on its own.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from flows.clock import Clock, SystemClock
from flows.identity.gate import Caller, Gate, admit_audited
from flows.mail.outbox_plan import plan
from flows.storage import (
    AuditEntry,
    Expert,
    OutboxDraft,
    Store,
    StoredProcess,
    StoreError,
    UnknownProcess,
    anchor,
)
from flows.ticking import DamagedState as DamagedState
from flows.ticking import Outcome as Outcome
from flows.ticking import Tick, Ticker, draft, summaries
from states import engine, revision, versions
from states.dates import require_aware
from states.definition import ProcessDefinition
from states.engine import Decision
from states.errors import InputError, Refused
from states.instance import Instance
from states.replay import differences, fingerprint_of, rebuild
from states.roles import Act, Via, needed
from states.status import Report, report

#: A decision taken on a process's definition and current instance (may raise Refused).
Decide = Callable[[ProcessDefinition, Instance], Decision]
#: The next version of a process's definition, built from the one in force (InputError if not).
Reshape = Callable[[ProcessDefinition], ProcessDefinition]


class Service:
    """Runs decisions against a store, with time from a clock."""

    def __init__(self, store: Store, clock: Clock | None = None,
                 caller: Caller | None = None) -> None:
        self.store = store
        self.clock = clock or SystemClock()
        self.gate = Gate(getattr(store, "tokens", None), caller)  # who acts (issue 10)
        self._definitions: dict[str, ProcessDefinition] = {}
        self.damaged: list[DamagedState] = []
        """Processes the last advance could not read, with why."""

    def now(self, now: datetime | None = None) -> datetime:
        """The given instant (rehearsals, tests) or the clock's."""
        if now is None:
            return self.clock.now()
        try:
            require_aware(now)
        except ValueError as exc:
            raise InputError(str(exc)) from None
        return now

    def definition(self, stored: StoredProcess) -> ProcessDefinition:
        """The definition a process was created with, validated once per content hash."""
        cached = self._definitions.get(stored.definition_hash)
        if cached is None:
            cached = ProcessDefinition.model_validate(stored.definition)
            self._definitions[stored.definition_hash] = cached
        return cached

    def init(self, definition: ProcessDefinition, now: datetime | None = None,
             process_id: str | None = None) -> bool:
        """Create the process instance; False (and nothing written) when it exists already."""
        at = self.now(now)
        fingerprint = definition.fingerprint()
        process_id = process_id or definition.id
        try:
            existing: StoredProcess | None = self.store.get(process_id)
        except UnknownProcess:
            existing = None
        if existing is not None:
            if existing.definition_hash != fingerprint and not self._same(existing, definition):
                raise InputError(
                    f"process '{process_id}' already exists and runs on a different version "
                    "of its definition. To move it to this file's version: 'prepflow revise "
                    f"{process_id} FILE.yaml --by NAME --reason WHY'; dates alone change with "
                    "'prepflow amend'; a different process needs a different id."
                )
            return False
        decision = engine.start(definition, at, process_id)
        return self.store.create(process_id, definition.model_dump(mode="json"), fingerprint,
                                 decision.after.to_doc(),
                                 draft(decision.records[0], self.clock.now()))

    def _same(self, stored: StoredProcess, definition: ProcessDefinition) -> bool:
        """The stored definition, read by this release, says what the file says (a field
        added with a default since it was stored changes its hash, not its meaning)."""
        try:
            return self.definition(stored) == definition
        except (ValidationError, ValueError, TypeError):
            return False

    def load(self, process_id: str) -> tuple[StoredProcess, ProcessDefinition, Instance]:
        """A stored process with its definition and core instance."""
        stored = self._read(lambda: self.store.get(process_id), process_id)
        definition, instance = self.decode(stored)
        return stored, definition, instance

    @staticmethod
    def _read(read: Callable[[], StoredProcess], process_id: str) -> StoredProcess:
        """The process ``read`` gives, or DamagedState when its row no longer parses."""
        try:
            return read()
        except ValueError as exc:  # a row whose JSON no longer parses
            raise DamagedState(process_id, exc) from None

    def decode(self, stored: StoredProcess) -> tuple[ProcessDefinition, Instance]:
        """The definition and instance of a stored row, or DamagedState naming the process."""
        try:
            return self.definition(stored), Instance.from_doc(stored.state)
        except (ValidationError, ValueError, TypeError) as exc:
            raise DamagedState(stored.process_id, exc) from None

    def transition(self, process_id: str, trigger: str, actor: str, document: str | None = None,
                   reason: str | None = None, override: bool = False,
                   now: datetime | None = None) -> Outcome:
        """A manual transition by a secretariat member; refusals are audited, then raised."""
        at = self.now(now)
        inputs = {"document": document, "override": override}

        def decide(definition: ProcessDefinition, instance: Instance) -> Decision:
            return engine.apply(definition, instance, trigger, actor, at, document, reason,
                                override)

        return self._change(process_id, trigger, actor, at, inputs, decide, Act.POST)

    def admit(self, process_id: str, actor: str, act: Act, action: str,
              now: datetime | None = None, override: bool = False) -> Via:
        """Who may do ``act`` (identity.gate.admit_audited): for changes not decided here."""
        return admit_audited(self.store, self.gate, self.decode, process_id, actor, act,
                             action, self.now(now), self.clock.now(), override)

    def amend(self, process_id: str, milestone: str, value: str, actor: str, reason: str,
              override: bool = False, now: datetime | None = None) -> Outcome:
        """Move a milestone (or the forum); every rule is re-checked first."""
        at = self.now(now)
        inputs = {"milestone": milestone, "to": value, "override": override}

        def decide(definition: ProcessDefinition, instance: Instance) -> Decision:
            return engine.amend(definition, instance, milestone, value, actor, reason, at,
                                override)

        return self._change(process_id, f"amend {milestone}", actor, at, inputs, decide,
                            Act.AMEND)

    def change(self, process_id: str, action: str, actor: str, inputs: dict[str, Any],
               decide: Callable[[ProcessDefinition, Instance, datetime], Decision],
               now: datetime | None = None, *, act: Act) -> Outcome:
        """Any core decision taken at ``now`` (e.g. on Opinions or the forum's agenda), in one
        transaction; a refusal is audited with ``inputs``, then raised."""
        at = self.now(now)
        return self._change(process_id, action, actor, at, inputs,
                            lambda definition, instance: decide(definition, instance, at), act)

    def revise(self, process_id: str, reshape: Reshape, actor: str, reason: str,
               override: bool = False, now: datetime | None = None,
               action: str = "revise", inputs: dict[str, Any] | None = None,
               sessions: Sequence[str] = ()) -> Outcome:
        """Move a running process to the next version of its definition (``reshape`` builds it
        from the one in force): history kept, rules re-checked, experts told; the new
        definition (meetings' planned days kept, see states.reshape_plan) is stored in the
        same transaction as the decision. ``sessions``: a split's meetings, in order."""
        at = self.now(now)

        def decide(definition: ProcessDefinition,
                   instance: Instance) -> tuple[Decision, ProcessDefinition]:
            return revision.revised(definition, reshape(definition), instance, actor, reason,
                                    at, override, sessions)

        return self._change_to(process_id, action, actor, at,
                               {**(inputs or {}), "override": override}, decide, Act.RESHAPE)

    def post_version(self, process_id: str, cycle: str, document: str, label: str,
                     actor: str, reason: str | None = None,
                     now: datetime | None = None) -> Outcome:
        """A further version of a posted draft (e.g. 'revised'); the experts are told."""
        at = self.now(now)
        inputs = {"cycle": cycle, "document": document, "label": label}

        def decide(definition: ProcessDefinition, instance: Instance) -> Decision:
            return versions.post_version(definition, instance, cycle, document, label, actor,
                                         reason, at)

        return self._change(process_id, f"version {cycle}", actor, at, inputs, decide,
                            Act.DRAFT_VERSION)

    def _change(self, process_id: str, action: str, actor: str, at: datetime,
                inputs: dict[str, Any], decide: Decide, act: Act) -> Outcome:
        return self._change_to(process_id, action, actor, at, inputs,
                               lambda d, i: (decide(d, i), d), act)

    def _change_to(self, process_id: str, action: str, actor: str, at: datetime,
                   inputs: dict[str, Any],
                   decide: Callable[[ProcessDefinition, Instance],
                                    tuple[Decision, ProcessDefinition]], act: Act) -> Outcome:
        # One transaction: the read locks the process (BEGIN IMMEDIATE on SQLite, FOR UPDATE
        # on PostgreSQL), so no other change can land between our read and our write. The
        # gate (member, token, roles; issue 10) decides inside it; tokens are read before.
        refused: Refused | None = None
        needs, presented = needed(act, inputs.get("override") is True), self.gate.present(
            process_id)
        with self.store.transaction(process_id) as tx:
            stored = self._read(tx.get, process_id)
            definition, instance = self.decode(stored)
            via = self.gate.via(actor, needs)
            try:
                via = self.gate.admit(presented, definition, process_id, actor, act, needs)
                decision, in_force = decide(definition, instance)
            except Refused as exc:
                record = engine.refusal_record(definition, instance, action, actor, at, exc,
                                               {**inputs, "via": via.doc()})
                # the refusal is audited, then raised
                tx.commit(None, [draft(record, self.clock.now())])
                refused = exc
            else:
                revised = None if in_force is definition else (
                    in_force.model_dump(mode="json"), in_force.fingerprint())
                decision = summaries(in_force, decision, tx)
                drafts = [draft(r, self.clock.now(), via) for r in decision.records]
                saved = tx.commit(decision.after.to_doc(), drafts,
                                  self._outbox(in_force, decision, at, tx.experts),
                                  definition=revised)
        if refused is not None:
            raise refused
        return Outcome(process_id, decision, saved.version)

    def advance(self, now: datetime | None = None,
                processes: Sequence[str] | None = None) -> list[Outcome]:
        """Apply what is due in every process (or the named ones); idempotent. A damaged
        process is left in ``damaged``; any other failure is raised once the others advanced
        (``tick`` reports every failure instead)."""
        tick = self.tick(now, processes)
        for result in tick.failed:
            if not isinstance(result.error, DamagedState) and result.error is not None:
                raise result.error
        return tick.outcomes

    def tick(self, now: datetime | None = None,
             processes: Sequence[str] | None = None) -> Tick:
        """Advance every process (or the named ones), each on its own: one that fails (see
        flows.ticking) is reported in the result, and the others advance."""
        at = self.now(now)
        wanted = set(processes) if processes else None
        try:
            rows = self.store.list()
        except ValueError as exc:
            raise StoreError(f"a stored process can no longer be read ({exc}); run "
                             "'prepflow audit --verify' and restore it from a backup.") from None
        unknown = sorted((wanted or set()) - {p.process_id for p in rows})
        if unknown:  # a misspelt --process must not read as "nothing due"
            raise UnknownProcess(unknown[0], [p.process_id for p in rows])
        chosen = [p for p in rows if wanted is None or p.process_id in wanted]
        tick = Ticker(self.store, self.clock, self.decode).run(chosen, at)
        self.damaged = [r.error for r in tick.failed if isinstance(r.error, DamagedState)]
        return tick

    def _outbox(self, definition: ProcessDefinition, decision: Decision, at: datetime,
                experts: Callable[[], list[Expert]]) -> list[OutboxDraft]:
        """The messages a decision queues, written in the same transaction as the decision
        (``experts`` reads the register in that transaction, only if a message needs it)."""
        return plan(definition, decision.effects, experts, at)

    def anchor(self, witness: Path | None, processes: Sequence[str] | None = None) -> list[str]:
        """Append the chain heads that moved to the ``witness`` file (none: off); the processes
        witnessed. The CLI's advance and the Prefect tick both call this after advancing."""
        if witness is None:
            return []
        rows = [r for r in self.store.list() if not processes or r.process_id in processes]
        return [h.process for h in anchor.witness(witness, self.store, rows, self.clock.now())]

    def verify(self, process_id: str | None = None, witness: Path | None = None) -> list[str]:
        """The hash chains, and each process's definition and state against its audit log.

        The chain shows an edited, deleted, inserted or reordered entry; the definition's hash,
        an edited definition body; the whole state rebuilt from the log (states.replay), a state
        document edited behind the log's back; the ``witness`` file (storage.anchor), a tail
        cut off or a chain recomputed by the database's owner; the store's audit key (chain.py),
        a keyed chain recomputed without it or with another key."""
        problems = self.store.verify(process_id)
        rows = [self.store.get(process_id)] if process_id else self.store.list()
        heads, found = anchor.verify(witness, [r.process_id for r in rows],
                                     process_id is None) if witness else ({}, [])
        problems += found
        for stored in rows:
            log = self.store.audit(stored.process_id)
            problems += anchor.check(heads.get(stored.process_id), log)
            try:
                definition, instance = self.decode(stored)
            except DamagedState as exc:
                problems.append(str(exc))
                continue
            problems += _checked(stored, definition, instance, log)
        return problems

    def status(self, process_id: str, now: datetime | None = None) -> Report:
        """The operator's view of one process at ``now``."""
        _, definition, instance = self.load(process_id)
        return report(definition, instance, self.now(now))

    def process_ids(self) -> list[str]:
        """Every stored process, by id."""
        return [p.process_id for p in self.store.list()]


def _checked(stored: StoredProcess, definition: ProcessDefinition, instance: Instance,
             log: Sequence[AuditEntry]) -> list[str]:
    """What is wrong with one process: its definition against its hashes, its state against
    the state its log rebuilds (on the definition in force: a revision keeps the fired steps)."""
    pid, problems = stored.process_id, []
    body = fingerprint_of(stored.definition)
    if body != stored.definition_hash:
        problems.append(f"{pid}: the stored definition's content hashes to {body[:12]}…, not "
                        f"to {stored.definition_hash[:12]}… it was stored under: the definition "
                        "was edited outside prepflow")
    put = [str(e.inputs.get("definition" if e.kind == "init" else "to", "")) for e in log
           if e.kind in ("init", "revision")]
    if put and put[-1] and put[-1] != stored.definition_hash:
        problems.append(f"{pid}: the process runs on definition {stored.definition_hash[:12]}…, "
                        f"but its audit log last put it on {put[-1][:12]}…: the definition was "
                        "changed outside prepflow")
    found = differences(instance, rebuild(definition, log, pid))
    if found:
        problems.append(f"{pid}: the stored state does not match its audit log: "
                        f"{'; '.join(found)}. The state was changed outside prepflow")
    return problems
