"""The Prefect flows against a real (temporary) Prefect server: ticks, actions, crashes.

(The waiting steps, which need a deployment to suspend, are in test_waiting_steps.py.)

Each test has a SQLite store of its own (a file in tmp_path); the Prefect server is shared by
the session (``prefect_server`` in conftest.py). Runs, names, states and artifacts are read
back from the server through the Prefect client, as the UI would show them.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    ArtifactFilter,
    ArtifactFilterFlowRunId,
)
from prefect.client.schemas.objects import FlowRun, StateType
from prefect.states import State

from flows.clock import FixedClock
from flows.definition_file import definition_from_text, load_definition
from flows.orchestration.advance import advance
from flows.orchestration.secretariat import SecretariatAction, secretariat_action
from flows.shell import Service
from flows.storage import AuditEntry, open_store
from states.definition import ProcessDefinition
from states.instance import Instance

pytestmark = pytest.mark.usefixtures("prefect_server")

ROOT = Path(__file__).resolve().parents[2]
WTPF = load_definition(ROOT / "config" / "wtpf26.yaml")
BY = "wtpf-secretariat"
GENEVA = ZoneInfo("Europe/Zurich")


def utc(*args: int) -> datetime:
    """An aware UTC instant."""
    return datetime(*args, tzinfo=UTC)


#: When the test processes are created (the day after CL-24/44 went out).
START = utc(2024, 7, 10, 8)
#: 2024-08-26 is the First Draft's comment deadline: it passes at midnight Geneva (CEST).
FIRST_DEADLINE_PASSED = utc(2024, 8, 26, 22)


def mini(deadline: str = "2025-02-07") -> ProcessDefinition:
    """A one-draft process whose forum date is not set yet (Council has not decided)."""
    return definition_from_text(textwrap.dedent(f"""\
        id: mini-26
        name: A small forum's preparation (test fixture)
        timezone: Europe/Zurich
        forum: {{name: MINI-26, opens: null, days: 2}}
        secretariat: [{{id: sec, name: Secretariat, email: sec@example.org}}]
        rules: {{final_min_lead_days: 42}}
        cycles:
          - {{id: draft1, name: Only Draft, posting: 2024-09-30, comment_deadline: {deadline}}}
          - {{id: final, name: Final report, kind: final, posting: 2025-03-03}}
        """), "mini-26 (test)")


@pytest.fixture
def database(tmp_path: Path) -> str:
    """A fresh SQLite store for this test."""
    return f"sqlite:///{tmp_path / 'prepflow.db'}"


@contextmanager
def service(database: str) -> Iterator[Service]:
    """A service on the test's store (closed afterwards, as a flow run's would be)."""
    store = open_store(database)
    try:
        yield Service(store, FixedClock(START))
    finally:
        store.close()


def snapshot(database: str, process_id: str) -> tuple[dict[str, Any], int, list[AuditEntry]]:
    """A process's state document, version and audit log."""
    with service(database) as svc:
        stored = svc.store.get(process_id)
        return stored.state, stored.version, svc.store.audit(process_id)


def main_state(database: str, process_id: str) -> str:
    """Where the process's main region stands."""
    return str(Instance.from_doc(snapshot(database, process_id)[0]).regions["main"])


def wtpf_with_first_draft_posted(database: str) -> None:
    """WTPF-26 created, and the First Draft posted on its Annex 2 day."""
    with service(database) as svc:
        svc.init(WTPF, START)
        svc.transition("wtpf-26", "post_draft1", BY, "WTPF-26/1", now=utc(2024, 8, 5, 8))


def flow_run(state: State[Any]) -> FlowRun:
    """The run a returned state belongs to, as the server has it now."""
    run_id = state.state_details.flow_run_id
    assert run_id is not None
    with get_client(sync_client=True) as client:
        return client.read_flow_run(run_id)


def transitions(entries: list[AuditEntry]) -> list[AuditEntry]:
    """The transition entries of an audit log."""
    return [e for e in entries if e.kind == "transition"]


# --- the scheduled tick -------------------------------------------------------------------


def test_tick_closes_the_first_draft_comment_window_and_publishes_artifacts(database: str) -> None:
    """A tick after the deadline closes the window; its name says so; artifacts are published."""
    wtpf_with_first_draft_posted(database)

    state = advance(now=FIRST_DEADLINE_PASSED, database=database, return_state=True)

    assert state.is_completed(), state.message
    assert main_state(database, "wtpf-26") == "draft1.comments_closed"
    run = flow_run(state)
    assert run.name == "wtpf-26: First Draft comment window closed"
    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(artifact_filter=ArtifactFilter(
            flow_run_id=ArtifactFilterFlowRunId(any_=[run.id])))
    by_key = {a.key: a for a in artifacts}
    assert set(by_key) >= {f"wtpf-26-{what}" for what in
                           ("status", "timeline", "diagram", "rules", "alerts")}
    timeline = str(by_key["wtpf-26-timeline"].data)
    assert "```mermaid\ngantt\n" in timeline, timeline[:200]
    assert "Comments on the First Draft due (actual) :done, milestone, 2024-08-26" in timeline
    assert "stateDiagram-v2" in str(by_key["wtpf-26-diagram"].data)
    assert "six-weeks" in str(by_key["wtpf-26-rules"].data)


def test_tick_with_nothing_due_is_completed_and_named_so(database: str) -> None:
    """A tick before any deadline changes nothing, completes, and is named 'nothing due'."""
    wtpf_with_first_draft_posted(database)
    _, _, log_before = snapshot(database, "wtpf-26")

    state = advance(now=utc(2024, 8, 10, 12), database=database, return_state=True)

    assert state.type is StateType.COMPLETED
    assert state.result()["applied"] == []
    assert flow_run(state).name == "nothing due"
    assert main_state(database, "wtpf-26") == "draft1.comment_window"
    assert transitions(snapshot(database, "wtpf-26")[2]) == transitions(log_before)


def test_tick_that_only_queues_a_reminder_says_so(database: str) -> None:
    """Seven days before the deadline the tick moves nothing but is named for its reminder."""
    wtpf_with_first_draft_posted(database)
    state = advance(now=utc(2024, 8, 20, 12), database=database, return_state=True)
    assert state.result()["applied"] == []
    assert state.result()["messages"] == 1
    assert flow_run(state).name == "wtpf-26: comment reminder queued"
    again = advance(now=utc(2024, 8, 20, 12), database=database, return_state=True)
    assert flow_run(again).name == "nothing due"


# --- duplicated and DST-doubled ticks ------------------------------------------------------


def test_duplicated_tick_applies_the_transition_once(database: str) -> None:
    """The same scheduled tick delivered twice closes the window once."""
    wtpf_with_first_draft_posted(database)

    first = advance(now=FIRST_DEADLINE_PASSED, database=database, return_state=True)
    second = advance(now=FIRST_DEADLINE_PASSED, database=database, return_state=True)

    assert first.is_completed()
    assert second.is_completed()
    assert flow_run(second).name == "nothing due"
    closed = [e for e in snapshot(database, "wtpf-26")[2] if e.trigger == "close_comments_draft1"]
    assert len(closed) == 1
    assert closed[0].at == FIRST_DEADLINE_PASSED


def test_dst_doubled_tick_applies_the_deadline_of_that_night_once(database: str) -> None:
    """02:30 happens twice on 27 Oct 2024 in Geneva; the deadline that night is applied once."""
    definition = mini(deadline="2024-10-26")  # passes at 27 Oct 00:00 CEST, before the fall back
    with service(database) as svc:
        svc.init(definition, utc(2024, 9, 1))
        svc.transition("mini-26", "post_draft1", "sec", "MINI-26/1", now=utc(2024, 9, 30, 8))
    summer = datetime(2024, 10, 27, 2, 30, tzinfo=GENEVA)  # CEST, UTC+2
    winter = summer.replace(fold=1)  # the same wall-clock time an hour later, CET, UTC+1
    ticks = [summer.astimezone(UTC), winter.astimezone(UTC)]
    assert ticks == [utc(2024, 10, 27, 0, 30), utc(2024, 10, 27, 1, 30)]

    names = [flow_run(advance(now=t, database=database, return_state=True)).name for t in ticks]

    assert names == ["mini-26: Only Draft comment window closed", "nothing due"]
    entries = snapshot(database, "mini-26")[2]
    assert [e.trigger for e in transitions(entries)] == ["post_draft1", "close_comments_draft1"]
    assert main_state(database, "mini-26") == "final.drafting"  # no meeting: the final is next


def test_deadline_at_the_end_of_the_25_hour_day_is_applied_once_at_its_instant(
    database: str,
) -> None:
    """27 Oct 2024 lasts 25 hours in Geneva: a deadline that day passes at 23:00Z, not sooner.

    Neither 02:30 (CEST, then CET) nor 22:59Z closes the window; 23:00Z closes it once.
    """
    wtpf_with_first_draft_posted(database)
    with service(database) as svc:
        # Accepted without override: no rule is broken (the 1st IEG meeting is month-only).
        svc.amend("wtpf-26", "draft1.comments", "2024-10-27", BY, "extended",
                  now=utc(2024, 8, 20, 8))
        # 02:00 CEST, before the doubled hour: sends the reminders due by then (the one-day
        # reminder fell due at the end of 26 Oct), so the ticks below have nothing else to do.
        svc.advance(utc(2024, 10, 27, 0))
    deadline = datetime(2024, 10, 28, tzinfo=GENEVA)  # the end of 27 Oct, in CET
    assert deadline.astimezone(UTC) == utc(2024, 10, 27, 23)
    summer = datetime(2024, 10, 27, 2, 30, tzinfo=GENEVA)  # CEST, UTC+2
    winter = summer.replace(fold=1)  # CET, UTC+1
    early = [summer.astimezone(UTC), winter.astimezone(UTC), utc(2024, 10, 27, 22, 59)]
    assert early[:2] == [utc(2024, 10, 27, 0, 30), utc(2024, 10, 27, 1, 30)]
    before = snapshot(database, "wtpf-26")

    names = [flow_run(advance(now=t, database=database, return_state=True)).name
             for t in early]

    assert names == ["nothing due"] * 3
    assert snapshot(database, "wtpf-26") == before
    assert main_state(database, "wtpf-26") == "draft1.comment_window"

    names = [flow_run(advance(now=deadline, database=database, return_state=True)).name
             for _ in range(2)]

    assert names == ["wtpf-26: First Draft comment window closed", "nothing due"]
    assert main_state(database, "wtpf-26") == "draft1.comments_closed"
    entries = snapshot(database, "wtpf-26")[2]
    closed = [e for e in transitions(entries) if e.trigger == "close_comments_draft1"]
    assert [e.at for e in closed] == [utc(2024, 10, 27, 23)]
    assert transitions(entries)[:-1] == transitions(before[2])


# --- secretariat-action ---------------------------------------------------------------------


def test_secretariat_action_applies_and_records_the_actor(database: str) -> None:
    """Posting the First Draft from the Run form is applied and audited with the actor."""
    with service(database) as svc:
        svc.init(WTPF, START)
    action = SecretariatAction(process="wtpf-26", trigger="post_draft1", actor=BY,
                               document="WTPF-26/1")

    state = secretariat_action(action=action, now=utc(2024, 8, 5, 8), database=database,
                               return_state=True)

    assert state.is_completed(), state.message
    assert state.message == "First Draft posted"
    assert flow_run(state).name == "wtpf-26: First Draft posted"
    assert main_state(database, "wtpf-26") == "draft1.comment_window"
    last = snapshot(database, "wtpf-26")[2][-1]
    assert (last.kind, last.trigger, last.actor) == ("transition", "post_draft1", BY)
    assert last.inputs["document"] == "WTPF-26/1"


def test_secretariat_action_refused_by_a_rule_fails_with_the_refusal(database: str) -> None:
    """Posting the Third Draft during the first cycle fails the run; only the refusal is logged."""
    with service(database) as svc:
        svc.init(WTPF, START)
    state_before, version_before, log_before = snapshot(database, "wtpf-26")
    action = SecretariatAction(process="wtpf-26", trigger="post_draft3", actor=BY,
                               document="WTPF-26/3")

    state = secretariat_action(action=action, now=utc(2024, 8, 5, 8), database=database,
                               return_state=True)

    assert state.is_failed()
    run = flow_run(state)
    assert run.state is not None
    assert run.state.is_failed()
    assert run.state.message == state.message
    assert state.message is not None
    assert state.message.startswith("Refused by rule 'order': 'Third Draft posted' cannot "
                                    "happen yet")
    assert run.name == "wtpf-26: post_draft3 refused"
    state_after, version_after, log_after = snapshot(database, "wtpf-26")
    assert (state_after, version_after) == (state_before, version_before)
    assert log_after[:-1] == log_before
    refusal = log_after[-1]
    assert (refusal.kind, refusal.trigger, refusal.actor) == ("refusal", "post_draft3", BY)
    assert refusal.reason == state.message


def test_secretariat_action_by_an_unknown_actor_fails_and_changes_nothing(database: str) -> None:
    """Someone not listed as a secretariat member is refused; only the refusal is written
    (issue 10: attempts by non-members are audited)."""
    with service(database) as svc:
        svc.init(WTPF, START)
    before = snapshot(database, "wtpf-26")
    action = SecretariatAction(process="wtpf-26", trigger="post_draft1", actor="mallory",
                               document="WTPF-26/1")

    state = secretariat_action(action=action, now=utc(2024, 8, 5, 8), database=database,
                               return_state=True)

    assert state.is_failed()
    assert state.message is not None
    assert "'mallory' is not a secretariat member id of wtpf-26" in state.message
    assert "wtpf-secretariat" in state.message  # says who may act
    after = snapshot(database, "wtpf-26")
    assert after[:2] == before[:2]
    assert after[2][:-1] == before[2]
    assert (after[2][-1].kind, after[2][-1].actor) == ("refusal", "mallory")


# --- kill and restart -----------------------------------------------------------------------

#: Run in a child process: the advance flow on a store whose writes are slowed down (a slow
#: disk), so that a SIGKILL lands in the middle of the tick, often inside a transaction.
TICK_SCRIPT = """
import sys, time
from datetime import datetime

from sqlalchemy import event
from sqlalchemy.pool import Pool


@event.listens_for(Pool, "connect")
def _slow_disk(dbapi_connection, _record):
    def trace(sql):
        if sql.lstrip()[:6].upper() in ("INSERT", "UPDATE"):
            time.sleep(0.004)
    dbapi_connection.set_trace_callback(trace)


from flows.orchestration.advance import advance

advance(now=datetime.fromisoformat(sys.argv[1]), database=sys.argv[2],
        publish_artifacts=False, ask_secretariat=False)
"""

KILL_PROCESSES = 200


def closed_count(path: Path) -> int:
    """How many comment windows the audit log says were closed (read without the store)."""
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5) as conn:
        row = conn.execute("SELECT count(*) FROM audit_log WHERE kind = 'transition' AND "
                           "trigger = 'close_comments_draft1'").fetchone()
    return int(row[0])


def test_killed_tick_leaves_a_consistent_store_and_the_next_tick_finishes_once(
        prefect_server: str, tmp_path: Path) -> None:
    """SIGKILL mid-tick: state and audit agree, the chain verifies, the next tick does the rest."""
    path = tmp_path / "prepflow.db"
    database = f"sqlite:///{path}"
    ids = [f"wtpf-26-{n:03d}" for n in range(KILL_PROCESSES)]
    with service(database) as svc:
        for pid in ids:
            svc.init(WTPF, START, process_id=pid)
            svc.transition(pid, "post_draft1", BY, "WTPF-26/1", now=utc(2024, 8, 5, 8))
    env = {**os.environ, "PREFECT_API_URL": prefect_server,
           "PREFECT_HOME": str(tmp_path / "prefect-home"),
           "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    with (tmp_path / "tick.log").open("wb") as log:
        child = subprocess.Popen(
            [sys.executable, "-c", TICK_SCRIPT, FIRST_DEADLINE_PASSED.isoformat(), database],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            deadline = time.monotonic() + 60
            while closed_count(path) < KILL_PROCESSES // 10:
                assert child.poll() is None, (tmp_path / "tick.log").read_text()
                assert time.monotonic() < deadline, "the tick made no progress in 60 s"
                time.sleep(0.01)
            os.killpg(child.pid, signal.SIGKILL)
        finally:
            if child.poll() is None:
                os.killpg(child.pid, signal.SIGKILL)
            child.wait(10)
    assert child.returncode == -signal.SIGKILL
    done_before = closed_count(path)
    assert 0 < done_before < KILL_PROCESSES, "the kill did not land mid-tick"

    with service(database) as svc:
        assert svc.store.verify() == []
        log = svc.store.audit()
        for stored in svc.store.list():
            last = [e for e in log if e.process_id == stored.process_id
                    and e.kind == "transition" and e.inputs.get("region") == "main"][-1]
            assert Instance.from_doc(stored.state).regions["main"] == last.to_state, (
                f"{stored.process_id}: state and audit log disagree")

    state = advance(now=FIRST_DEADLINE_PASSED, database=database, publish_artifacts=False,
                    ask_secretariat=False, return_state=True)

    assert state.is_completed(), state.message
    assert len(state.result()["applied"]) == KILL_PROCESSES - done_before
    with service(database) as svc:
        assert svc.store.verify() == []
        log = svc.store.audit()
        assert {Instance.from_doc(p.state).regions["main"] for p in svc.store.list()} == {
            "draft1.comments_closed"}
    per_process = Counter(e.process_id for e in transitions(log)
                          if e.trigger == "close_comments_draft1")
    assert per_process == dict.fromkeys(ids, 1)
