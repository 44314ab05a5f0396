"""Load (issue 10): many processes rehearsed at once through one Prefect server and two workers,
every transition and message counted against the plan: nothing lost, nothing duplicated.

Sets up what docs/operations.md describes (its steps, as tests/flows/test_operations.py runs
them): a Prefect server on PostgreSQL with basic auth, a store database of its own, the
``prepflow`` work pool with the deployments of prefect.yaml and two ``prefect worker start``
workers, plus a local SMTP sink (aiosmtpd) the workers deliver to. Everything is dropped at the
end. Then it creates ``--processes`` processes (WTPF-26 and tests/definitions/other_forum.yaml
in turn, each under an id of its own) with ``--experts`` nominations each from
flows/rehearsal/register_gen.py, and drives simulated time through the whole of each process
with the rehearsal's stepping (flows/rehearsal/stepping.py): the scripted secretariat's steps
run in this driver through the real flows (flows/rehearsal/driver.py ``perform``), and every
tick is two ``advance`` deployment runs at the same ``now`` plus one ``deliver-notifications``
run, picked up by the two workers at once.

The plan comes from the core, not from what was written:

- before each tick, ``states.engine.advance`` decides every process on the state the store
  holds, so what the tick must apply is known before the workers run: its transitions, its
  notice records, and its message effects resolved to outbox keys by
  ``flows.mail.outbox_plan.plan`` over the register (one message per recipient);
- the scripted secretariat's own steps run one at a time in this driver, so what each
  recorded and queued (and the nominations' acknowledgements) is planned as it is.

Counted against it: the audit log's transitions and notices, the outbox's keys, and the
Message-IDs the SMTP sink received. Lost = planned but missing (or queued, never delivered);
duplicated = more than planned (a transition or notice recorded twice, a Message-ID received
twice). Prints the table; exits 1 when anything was lost, duplicated or unplanned.

Ticks are coalesced (see ``Driver``): the ticks due before the driver's next own step are one
tick at the last cron instant before it. ``--days`` stops each process after its first DAYS
simulated days (the test's small scale; a loaded machine's full scale).

Usage: python bench/load.py [--processes 50] [--experts 300] [--days N]
(admin URL: $PREPFLOW_TEST_POSTGRES_URL, else postgresql+psycopg://root@127.0.0.1:5432/test)
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from datetime import time as clock_time
from email.parser import BytesHeaderParser
from email.policy import SMTP as SMTP_POLICY
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import sqlalchemy as sa  # noqa: E402
from aiosmtpd.smtp import Envelope  # noqa: E402
from prefect.settings import (  # noqa: E402
    PREFECT_API_AUTH_STRING,
    PREFECT_API_URL,
    temporary_settings,
)
from sqlalchemy.pool import NullPool  # noqa: E402

from flows.definition_file import load_definition  # noqa: E402
from flows.identity.members import issue_token  # noqa: E402
from flows.mail.outbox_plan import plan  # noqa: E402
from flows.mail.sink import KEY_HEADER, SmtpServer  # noqa: E402
from flows.nominations import acknowledgements, check_row  # noqa: E402
from flows.orchestration.balance_view import load_countries  # noqa: E402
from flows.orchestration.run_context import service_for  # noqa: E402
from flows.orchestration.serve import stop  # noqa: E402
from flows.rehearsal.driver import perform  # noqa: E402
from flows.rehearsal.mail import synthetic_experts  # noqa: E402
from flows.rehearsal.register_gen import nomination_rows  # noqa: E402
from flows.rehearsal.runs import read_back  # noqa: E402
from flows.rehearsal.scenario import load_scenario, local  # noqa: E402
from flows.rehearsal.stages import stage_actions  # noqa: E402
from flows.rehearsal.stepping import (  # noqa: E402
    Rehearsal,
    Step,
    _step_for,
    ceil_tick,
    fall_back_nights,
    local_fold,
    more_ahead,
    next_step,
)
from flows.storage import Expert, ExpertDraft  # noqa: E402
from flows.storage.tables import outbox  # noqa: E402
from states import engine  # noqa: E402
from states.dates import zone  # noqa: E402
from states.definition import ProcessDefinition  # noqa: E402
from states.instance import Instance  # noqa: E402
from states.plan import by_key  # noqa: E402
from states.queries import DueKind, due_items  # noqa: E402
from states.roles import Role, granted  # noqa: E402
from states.rules import effective_milestones  # noqa: E402
from tests.flows.test_operations import (  # noqa: E402
    Setup,
    _drop,
    _healthy,
    _online,
    _wait,
    blocks,
    settings,
)

DEFINITIONS = (ROOT / "config" / "wtpf26.yaml", ROOT / "tests" / "definitions" / "other_forum.yaml")
ADMIN_URL = os.environ.get("PREPFLOW_TEST_POSTGRES_URL",
                           "postgresql+psycopg://root@127.0.0.1:5432/test")
BIN = Path(sys.executable).parent
#: Steps in a row at one instant that change nothing before a process is given up as stuck.
STUCK = 20
_HEADERS = BytesHeaderParser(policy=SMTP_POLICY)


class MessageIds:
    """An SMTP handler that counts each Message-ID it receives (and keeps its key)."""

    def __init__(self) -> None:
        self.ids: Counter[str] = Counter()
        self.keys: dict[str, str] = {}
        self._lock = threading.Lock()

    async def handle_DATA(self, server: object, session: object, envelope: Envelope) -> str:
        data = envelope.original_content or envelope.content
        head = _HEADERS.parsebytes(bytes(data).split(b"\r\n\r\n", 1)[0] + b"\r\n\r\n")
        message_id, key = str(head.get("Message-ID")), str(head.get(KEY_HEADER))
        with self._lock:
            self.ids[message_id] += 1
            self.keys[message_id] = key
        return "250 OK"


@contextlib.contextmanager
def service_setup(tmp: Path, smtp_port: int) -> Iterator[Setup]:
    """docs/operations.md's server, store schema, pool, deployments and two workers, as
    tests/flows/test_operations.py runs them (no process created); all dropped at the end."""
    tag = uuid.uuid4().hex[:10]
    admin = sa.make_url(ADMIN_URL)
    role, password = f"prepflow_l_{tag}", f"dbpw-{uuid.uuid4().hex}"
    prefect_db, store_db = f"prepflow_l_{tag}_prefect", f"prepflow_l_{tag}_store"
    api_password = f"apipw-{uuid.uuid4().hex}"
    from flows.mail.sink import free_port

    port = free_port()
    pg = f"{role}:{password}@{admin.host}:{admin.port or 5432}"
    store_url = f"postgresql+psycopg://{pg}/{store_db}"
    base = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "PREPFLOW_"))}
    base.update(PATH=f"{BIN}:{base.get('PATH', '')}", PREFECT_HOME=str(tmp / "prefect-home"),
                PREFECT_WORKER_QUERY_SECONDS="1", PREFECT_SERVER_ANALYTICS_ENABLED="false")
    made = Setup(
        base=base,
        db=settings("database", {
            "PGHOST": str(admin.host), "PGPORT": str(admin.port or 5432),
            "PGUSER": str(admin.username), "DB_ROLE": role, "DB_PASSWORD": password,
            "PREFECT_DB": prefect_db, "PREPFLOW_DB": store_db}),
        server=settings("server", {
            "PREFECT_API_DATABASE_CONNECTION_URL": f"postgresql+asyncpg://{pg}/{prefect_db}",
            "PREFECT_SERVER_API_AUTH_STRING": f"admin:{api_password}",
            "PREFECT_SERVER_API_HOST": "127.0.0.1", "PREFECT_SERVER_API_PORT": str(port),
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}),
        clients=settings("clients", {
            "PREFECT_API_URL": f"http://127.0.0.1:{port}/api",
            "PREFECT_API_AUTH_STRING": f"admin:{api_password}",
            "PREPFLOW_DATABASE_URL": store_url, "PREPFLOW_SMTP_HOST": "127.0.0.1",
            "PREPFLOW_SMTP_PORT": str(smtp_port)}),
        tmp=tmp, secrets=[password, api_password], smtp_port=smtp_port, store_url=store_url)
    try:
        done = made.run("databases", made.env(made.db))
        assert done.returncode == 0, done.stderr
        made.start("server", made.env(made.server))
        upgrade = blocks("step")["schema"].splitlines()[0]  # `prepflow db upgrade` alone
        done = _bash(made, upgrade)
        assert done.returncode == 0, f"schema: {done.stdout}\n{done.stderr}"
        _wait("the Prefect server", lambda: _healthy(made), made, timeout=180)
        done = made.run("deploy", timeout=300)
        assert done.returncode == 0, f"deploy: {done.stdout}\n{done.stderr}"
        for name in ("advance", "deliver-notifications"):  # simulated time only: no cron
            deployment = made.api(f"/deployments/name/{name}/{name}").json()["id"]
            assert made.api(f"/deployments/{deployment}/pause_deployment", {}).is_success
        made.start("worker-1", made.env(made.clients))
        made.start("worker-2", made.env(made.clients))
        _wait("two workers online", lambda: _online(made) == 2, made, timeout=180)
        yield made
    finally:
        for process in made.processes.values():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
        for process in made.processes.values():
            stop(process, grace=10)
        _drop(role, prefect_db, store_db)


def _bash(setup: Setup, line: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", "-euo", "pipefail", "-c", line], cwd=ROOT,
                          env=setup.env(setup.clients), capture_output=True, text=True,
                          timeout=300, check=False)


@dataclass
class Ledger:
    """What the plan says and what the driver saw, per process."""

    planned: dict[str, Counter[str]] = field(default_factory=dict)  # transitions, by trigger
    acks: dict[str, set[str]] = field(default_factory=dict)  # acknowledgement keys
    notices: dict[str, Counter[str]] = field(default_factory=dict)
    """Notice records the core decided, per process, by key."""
    messages: dict[str, Counter[str]] = field(default_factory=dict)
    """Outbox keys planned, per process: the core's message effects to the register."""
    registers: dict[str, list[Expert]] = field(default_factory=dict)
    outbox_seen: dict[str, int] = field(default_factory=dict)
    ticks: int = 0
    last: datetime = datetime(1970, 1, 1, tzinfo=UTC)
    runs: int = 0
    stuck: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Figures:
    """The run's counts against the plan."""

    processes: int
    closed: int
    transitions_expected: int
    transitions_applied: int
    transitions_lost: int
    transitions_duplicated: int
    messages_expected: int
    messages_queued: int
    messages_delivered: int
    messages_lost: int
    messages_unplanned: int
    duplicates: int
    ticks: int
    seconds: float
    to_the_end: bool = True

    @property
    def ok(self) -> bool:
        """Nothing lost, nothing duplicated, nothing unplanned, every process closed."""
        return (self.transitions_lost == self.transitions_duplicated == self.messages_lost
                == self.messages_unplanned == self.duplicates == 0
                and (self.closed == self.processes or not self.to_the_end)
                and self.transitions_expected == self.transitions_applied
                and self.messages_expected == self.messages_queued == self.messages_delivered)

    def table(self) -> str:
        """The printed table."""
        rate = self.ticks / self.seconds if self.seconds else 0.0
        mps = self.messages_delivered / self.seconds if self.seconds else 0.0
        rows = [
            ("processes (closed)", f"{self.processes} ({self.closed})"),
            ("transitions expected / applied",
             f"{self.transitions_expected} / {self.transitions_applied}"),
            ("transitions lost / duplicated",
             f"{self.transitions_lost} / {self.transitions_duplicated}"),
            ("messages expected / queued / delivered",
             f"{self.messages_expected} / {self.messages_queued} / {self.messages_delivered}"),
            ("messages lost / unplanned", f"{self.messages_lost} / {self.messages_unplanned}"),
            ("duplicates (Message-IDs twice, notices twice)", str(self.duplicates)),
            ("wall time", f"{self.seconds:.0f} s"),
            ("ticks (instants, 2 advance runs each)", f"{self.ticks}"),
            ("ticks/s", f"{rate:.3f}"),
            ("messages/s (delivered)", f"{mps:.1f}"),
        ]
        width = max(len(k) for k, _ in rows)
        return "\n".join(f"  {k:<{width}}  {v}" for k, v in rows)


class Runs:
    """Deployment runs through the server's API, waited for together."""

    def __init__(self, setup: Setup) -> None:
        self.setup = setup
        self.ids = {name: setup.api(f"/deployments/name/{name}/{name}").json()["id"]
                    for name in ("advance", "deliver-notifications")}

    def all(self, runs: list[tuple[str, dict[str, Any]]], timeout: float = 900) -> None:
        """Create every run at once (workers take them as they come), wait for them all."""
        made = []
        for name, parameters in runs:
            reply = self.setup.api(f"/deployments/{self.ids[name]}/create_flow_run",
                                   {"parameters": parameters})
            assert reply.is_success, reply.text
            made.append(reply.json()["id"])
        deadline = time.monotonic() + timeout
        pending = set(made)
        while pending:
            time.sleep(0.25)
            for run in list(pending):
                state = self.setup.api(f"/flow_runs/{run}").json()["state"]["type"]
                if state == "COMPLETED":
                    pending.discard(run)
                elif state in ("FAILED", "CRASHED", "CANCELLED"):
                    raise RuntimeError(f"flow run {run} {state}:\n{self.setup.logs()[-3000:]}")
            assert time.monotonic() < deadline, f"runs not done in {timeout} s"


def register_experts(definition: ProcessDefinition, pid: str, count: int, seed: int,
                     now: datetime) -> list[ExpertDraft]:
    """A realistic register (register_gen) where the definition has a country list, else the
    rehearsal's synthetic one."""
    try:
        rows = nomination_rows(seed, count, load_countries(definition),
                               definition.notifications.stakeholder_types,
                               definition.notifications.languages)
        return [check_row(definition, row, now) for row in rows]
    except Exception:  # noqa: BLE001 - no country list, or rows its choices refuse
        return synthetic_experts(definition, count, now)


def start_process(database: str, path: Path, number: int, experts: int,
                  ledger: Ledger) -> Rehearsal:
    """One process under an id of its own, its register filled, as ``rehearsal()`` starts."""
    base = load_definition(path)
    pid = f"{base.id}-load-{number:03d}"
    d = base.model_copy(update={"id": pid})
    tz = zone(d.timezone)
    items = effective_milestones(d)
    first = min(m.start.first_day() for m in items if m.start is not None)
    last = max((m.last or m.start).last_day() for m in items if m.start is not None)
    begin = local(first - timedelta(days=7), clock_time(0), tz)
    finish = local(last + timedelta(days=365), clock_time(0), tz)
    r = Rehearsal(d, load_scenario(None), database, begin.astimezone(UTC),
                  finish.astimezone(UTC), experts, 0)
    r.stages = stage_actions(r)
    with service_for(database) as service:
        service.init(d, r.start, pid)
        if d.require_tokens:
            issuer = next((m.id for m in d.secretariat if Role.REGISTER in granted(m.roles)),
                          r.actor)
            _, r.token = issue_token(service, pid, r.actor, issuer, r.start)
        drafts = register_experts(d, pid, experts, number, r.start)
        acks = acknowledgements(d, pid, drafts, r.start)
        service.store.add_experts(pid, drafts, acks)
    ledger.acks[pid] = {a.key for a in acks}
    ledger.planned[pid] = Counter()
    ledger.notices[pid] = Counter()
    ledger.messages[pid] = Counter(a.key for a in acks)
    with service_for(database) as service:
        ledger.registers[pid] = service.store.experts(pid)
    ledger.outbox_seen[pid] = max(_outbox_since(database, pid, 0).values(), default=0)
    for entry in read_back(r):  # what creating it recorded: the driver's own step
        if entry.kind == "transition":
            ledger.planned[pid][entry.trigger or ""] += 1
        elif entry.kind == "notice":
            ledger.notices[pid][str(entry.inputs["key"])] += 1
    return r


def _outbox_since(database: str, pid: str, after: int) -> dict[str, int]:
    """The outbox rows of a process queued after row ``after``: key to id."""
    engine_ = sa.create_engine(database, poolclass=NullPool)
    try:
        with engine_.connect() as conn:
            rows = conn.execute(sa.select(outbox.c.key, outbox.c.id).where(
                outbox.c.process_id == pid, outbox.c.id > after)).all()
    finally:
        engine_.dispose()
    return {str(key): int(number) for key, number in rows}


def _outbox_tops(database: str) -> dict[str, int]:
    """Each process's last outbox row id."""
    engine_ = sa.create_engine(database, poolclass=NullPool)
    try:
        with engine_.connect() as conn:
            rows = conn.execute(sa.select(outbox.c.process_id, sa.func.max(outbox.c.id))
                                .group_by(outbox.c.process_id)).all()
    finally:
        engine_.dispose()
    return {str(pid): int(top) for pid, top in rows}


def predict(database: str, rehearsals: dict[str, Rehearsal], at: datetime,
            ledger: Ledger) -> None:
    """What a tick at ``at`` must apply to each process: the core decides on the stored state."""
    with service_for(database) as service:
        for pid in rehearsals:
            _, definition, instance = service.load(pid)
            decision = engine.advance(definition, instance, at)
            ledger.planned[pid].update(r.trigger or "" for r in decision.records
                                       if r.kind == "transition")
            ledger.notices[pid].update(str(r.inputs["key"]) for r in decision.records
                                       if r.kind == "notice")
            register = ledger.registers[pid]
            ledger.messages[pid].update(row.key for row in plan(
                definition, decision.effects, lambda register=register: register, at))


def next_action(r: Rehearsal, instance: Instance, now: datetime) -> Step | None:
    """``next_step`` without the ticks: the earliest thing the driver itself does next."""
    tz = zone(r.definition.timezone)
    items = by_key(effective_milestones(r.definition, instance))
    steps = [step for due in due_items(r.definition, instance, now)
             if due.kind not in (DueKind.TRANSITION, DueKind.REMINDER)
             and (step := _step_for(r, due, items, now, tz)) is not None]
    for number, event in enumerate(r.scenario.events):
        if number not in r.done_events and event.kind != "post-late":
            steps.append(Step(max(now, local(event.on, event.on.at or clock_time(9), tz)), 0,
                              "event", (number, event)))
    steps += [Step(local_fold(night, tz, 0), 2, "dst", night)
              for night in fall_back_nights(tz, now, r.end) if night not in r.dst_done]
    for action in r.stages:
        at = action.next_at(r, instance, now)
        if at is not None:
            steps.append(Step(max(now, at), 1, "stage", action))
    return min(steps) if steps else None


class Driver:
    """Steps every process's simulated clock together; the ticks go to the workers.

    The rehearsal ticks at every instant something falls due; here the ticks due before the
    driver's next own step (a posting, a date fixed, a stage action, a summer-time night) are
    one tick at the last cron instant before it (applying all of them: deadlines are checks on
    a tick), as a worker that was down for a while catches up. A flow run on a process worker
    costs ~15 s on a loaded machine; one per cron instant would make the run hours long.
    """

    def __init__(self, setup: Setup, rehearsals: dict[str, Rehearsal], ledger: Ledger,
                 days: int | None, log: Callable[[str], None]) -> None:
        self.runs, self.database, self.ledger, self.log = Runs(setup), setup.store_url, ledger, log
        self.active = dict(rehearsals)
        self.until = {pid: r.start + timedelta(days=days) if days else r.end
                      for pid, r in rehearsals.items()}  # each one's end of simulated time
        self.clock = {pid: r.start for pid, r in rehearsals.items()}  # each one's simulated now
        self.idle: Counter[str] = Counter()
        self.cache: dict[str, tuple[Step, Step | None]] = {}
        self.every = 1 if len(rehearsals) > 10 else 5  # progress lines: every N ticks

    def tick(self, at: datetime) -> None:
        """Two advance runs at ``at`` and a delivery, all at once; the core's plan first."""
        predict(self.database, self.active, at, self.ledger)
        # only the processes still rehearsed: one past its --days stays where it stopped
        parameters = {"now": at.isoformat(), "processes": sorted(self.active),
                      "publish_artifacts": False, "ask_secretariat": False}
        self.runs.all([("advance", parameters), ("advance", parameters),
                       ("deliver-notifications", {"now": at.isoformat(), "limit": 100_000,
                                                  "publish_artifacts": False})])
        self.ledger.ticks += 1
        self.ledger.last = max(self.ledger.last, at)
        self.cache.clear()
        last_rows = _outbox_tops(self.database)
        for pid, r in self.active.items():
            read_back(r)
            self.ledger.outbox_seen[pid] = last_rows.get(pid, self.ledger.outbox_seen[pid])
            self.clock[pid] = max(self.clock[pid], at)
        if self.ledger.ticks % self.every == 0:
            self.log(f"  {self.ledger.ticks} ticks, at {at.date().isoformat()}, "
                     f"{len(self.active)} processes active")

    def next_steps(self) -> dict[str, tuple[Step, Step | None]]:
        """Each active process's next step and next own step; ends those with none."""
        found = self.cache
        with service_for(self.database) as service:
            for pid, r in list(self.active.items()):
                if pid in found:
                    continue  # unchanged since it was worked out
                _, _, instance = service.load(pid)
                now = self.clock[pid]
                step = next_step(r, instance, now)
                if (instance.regions["main"] == "closed" or step is None
                        or step.at > min(r.end, self.until[pid])
                        or (step.kind == "dst" and not more_ahead(r, instance, now))):
                    del self.active[pid]
                    continue
                found[pid] = (step, next_action(r, instance, now))
        return found

    def run(self) -> None:
        """Until every process closed (or stopped: nothing more to do, or ``until``)."""
        while self.active:
            steps = self.next_steps()
            if not steps:
                return
            pid, (step, _) = min(steps.items(), key=lambda item: item[1][0])
            if step.kind == "tick":
                own = [a for _, a in steps.values() if a is not None]
                horizon = min((a.at for a in own), default=step.at)
                # the last cron instant strictly before the driver's next step, if later
                last = ceil_tick(horizon) - timedelta(minutes=15)
                self.tick(max(step.at, min(last, self.until[pid])))
            elif step.kind == "dst":
                self.summer_time_ends(pid, step)
            else:
                self.perform(pid, step)

    def summer_time_ends(self, pid: str, step: Step) -> None:
        """The 02:30 cron tick twice (CEST, then CET) for every process in that zone."""
        night, tz = step.payload, zone(self.active[pid].definition.timezone)
        for fold in (0, 1):
            self.tick(local_fold(night, tz, fold))  # type: ignore[arg-type]
        for r in self.active.values():
            if zone(r.definition.timezone) == tz:
                r.dst_done.add(night)  # type: ignore[arg-type]

    def perform(self, pid: str, step: Step) -> None:
        """One scripted secretariat step, here through the real flows; what it recorded is
        planned as it is (it runs alone, one at a time)."""
        r = self.active[pid]
        self.cache.pop(pid, None)
        before, repeated = (r.seen, len(r.lines)), step.at == self.clock[pid]
        with service_for(self.database) as service:
            perform(r, step)
            entries = [e for e in service.store.audit(pid) if before[0] < e.seq]
        self.ledger.planned[pid].update(e.trigger or "" for e in entries
                                        if e.kind == "transition")
        self.ledger.notices[pid].update(str(e.inputs["key"]) for e in entries
                                        if e.kind == "notice")
        # what the step queued is planned as it is, as its transitions are
        fresh = _outbox_since(self.database, pid, self.ledger.outbox_seen[pid])
        self.ledger.messages[pid].update(fresh.keys())  # keys, not a mapping of counts
        self.ledger.outbox_seen[pid] = max(fresh.values(), default=self.ledger.outbox_seen[pid])
        self.ledger.last = max(self.ledger.last, step.at)
        self.ledger.runs += 1
        self.clock[pid] = step.at
        self.idle[pid] = self.idle[pid] + 1 if repeated and (r.seen, len(r.lines)) == before \
            else 0
        if self.idle[pid] >= STUCK:
            self.ledger.stuck.append(f"{pid}: stuck at {step.at.isoformat()} ({step.kind})")
            del self.active[pid]


def count(setup: Setup, rehearsals: dict[str, Rehearsal], ledger: Ledger, sink: MessageIds,
          seconds: float, to_the_end: bool, log: Callable[[str], None]) -> Figures:
    """The store and the sink against the plan."""
    expected_t = applied_t = lost_t = dup_t = closed = lost_n = dup_n = 0
    expected_m: set[str] = set()
    queued: set[str] = set()
    statuses: Counter[str] = Counter()
    events: dict[str, str] = {}
    with service_for(setup.store_url) as service:
        for pid in rehearsals:
            _, _, instance = service.load(pid)
            closed += instance.regions["main"] == "closed"
            audit = service.store.audit(pid)
            applied = Counter(e.trigger or "" for e in audit if e.kind == "transition")
            planned = ledger.planned[pid]
            expected_t += planned.total()
            applied_t += applied.total()
            lost_t += (planned - applied).total()
            dup_t += (applied - planned).total()
            decided = Counter(str(e.inputs["key"]) for e in audit if e.kind == "notice")
            if decided - ledger.notices[pid]:
                log(f"  {pid}: notices not planned: {list(decided - ledger.notices[pid])[:3]}")
            lost_n += (ledger.notices[pid] - decided).total()
            dup_n += (decided - ledger.notices[pid]).total()
            planned_m = ledger.messages[pid]
            expected_m |= set(planned_m)
            dup_n += (planned_m - Counter(set(planned_m))).total()  # planned twice: decided twice
            box = service.store.outbox(pid)
            queued.update(m.key for m in box)
            statuses.update(m.status for m in box)
            events.update({m.key: m.event for m in box})
    delivered = {sink.keys[i] for i in sink.ids} & queued
    for what, keys in (("not queued", expected_m - queued), ("unplanned", queued - expected_m),
                       ("not delivered", queued - delivered)):
        if keys:
            shown = Counter(events.get(k, k.split(":")[1]) for k in keys)
            log(f"  {what}: {dict(shown)}")
    log(f"  outbox by status: {dict(statuses)}; sink: {sink.ids.total()} received, "
        f"{len(sink.ids)} Message-IDs; notices and plan entries twice: {dup_n}")
    return Figures(
        processes=len(rehearsals), closed=closed, transitions_expected=expected_t,
        transitions_applied=applied_t, transitions_lost=lost_t, transitions_duplicated=dup_t,
        messages_expected=len(expected_m), messages_queued=len(queued),
        messages_delivered=len(delivered),
        messages_lost=len(expected_m - queued) + len(queued - delivered) + lost_n,
        messages_unplanned=len(queued - expected_m),
        duplicates=sum(n - 1 for n in sink.ids.values()) + dup_n,
        ticks=ledger.ticks, seconds=seconds, to_the_end=to_the_end)


def run_load(processes: int, experts: int, tmp: Path, days: int | None = None,
             log: Callable[[str], None] = lambda line: print(line, file=sys.stderr, flush=True)
             ) -> tuple[Figures, Ledger]:
    """Set everything up, rehearse ``processes`` processes to their end (or their first
    ``days`` simulated days), count, tear down."""
    sink = MessageIds()
    with SmtpServer(sink) as smtp, service_setup(tmp, smtp.port) as setup:
        log(f"server, store, pool and two workers up; creating {processes} processes")
        ledger = Ledger()
        auth = setup.clients["PREFECT_API_AUTH_STRING"]
        with temporary_settings(updates={PREFECT_API_URL: setup.clients["PREFECT_API_URL"],
                                         PREFECT_API_AUTH_STRING: auth}):
            rehearsals = {}
            for number in range(processes):
                r = start_process(setup.store_url, DEFINITIONS[number % len(DEFINITIONS)],
                                  number, experts, ledger)
                rehearsals[r.pid] = r
            started = time.perf_counter()
            Driver(setup, rehearsals, ledger, days, log).run()
            # what the last tick queued: one more delivery (nothing else falls due)
            Runs(setup).all([("deliver-notifications", {
                "now": (ledger.last + timedelta(days=1)).isoformat(), "limit": 100_000,
                                                        "publish_artifacts": False})])
            seconds = time.perf_counter() - started
        return count(setup, rehearsals, ledger, sink, seconds, days is None, log), ledger


def main() -> None:
    """Run at the asked scale, print the table; exit 1 unless the counts match the plan."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--processes", type=int, default=50)
    parser.add_argument("--experts", type=int, default=300)
    parser.add_argument("--days", type=int, default=None,
                        help="only the first DAYS simulated days of each process")
    args = parser.parse_args()
    # a stopped run still stops its server and workers and drops its databases
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    with tempfile.TemporaryDirectory() as folder:
        figures, ledger = run_load(args.processes, args.experts, Path(folder), args.days)
    print(f"{args.processes} processes x {args.experts} experts, one Prefect server, "
          "two workers:")
    print(figures.table())
    for line in ledger.stuck:
        print(f"  {line}")
    print("nothing lost, nothing duplicated" if figures.ok else "MISMATCH against the plan")
    sys.exit(0 if figures.ok else 1)


if __name__ == "__main__":
    main()
