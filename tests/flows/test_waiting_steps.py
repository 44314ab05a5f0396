"""Waiting steps on a real (temporary) Prefect server (issue 10): one request per due step even
when ticks race, a request that suspends (no process holds it) and is answered later, and a
request closed when its step is done through another channel."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterTags
from prefect.client.schemas.objects import FlowRun, State
from prefect.exceptions import Pause
from prefect.flow_engine import run_flow
from prefect.flow_runs import resume_flow_run

from flows.orchestration.secretariat import SecretariatAction, await_secretariat, secretariat_action
from flows.orchestration.waiting_steps import idempotency_key, request_steps, store_parameter
from states.instance import Instance
from states.queries import manual_steps
from tests.flows.test_prefect_flows import (
    BY,
    START,
    WTPF,
    database,
    main_state,
    mini,
    service,
    snapshot,
    utc,
)

pytestmark = pytest.mark.usefixtures("prefect_server")
__all__ = ["database"]  # fixture shared with test_prefect_flows

#: The First Draft's posting day (5 Aug 2024) has begun in Geneva.
POSTING = utc(2024, 8, 5, 8)


@pytest.fixture(scope="module")
def deployment(prefect_server: str) -> Iterator[UUID]:
    """The await-secretariat deployment on the test server (suspension needs one); removed
    afterwards, so other tests' ticks do not ask for steps."""
    deployment_id = await_secretariat.to_deployment(  # type: ignore[union-attr]
        name="await-secretariat").apply()
    assert isinstance(deployment_id, UUID)
    yield deployment_id
    with get_client(sync_client=True) as client:
        client.delete_deployment(deployment_id)


def requests(process_id: str, database: str) -> list[FlowRun]:
    """The await-secretariat runs for a process on this test's store, as the server has them
    now (the session's server also holds other tests' runs tagged with the same process)."""
    with get_client(sync_client=True) as client:
        return [run for run in client.read_flow_runs(flow_run_filter=FlowRunFilter(
            tags=FlowRunFilterTags(all_=[f"process:{process_id}"])))
            if run.parameters.get("database") == store_parameter(database)]


def read(run_id: UUID) -> FlowRun:
    """A run as the server has it now."""
    with get_client(sync_client=True) as client:
        return client.read_flow_run(run_id)


def execute(run_id: UUID, now: datetime = POSTING) -> State[Any] | None:
    """Execute a request's run here, as a served worker would, at ``now``; None when it
    suspended."""
    run = read(run_id)
    parameters = {**run.parameters, "now": now}
    try:
        state = run_flow(await_secretariat, flow_run=run, return_type="state",
                         parameters=await_secretariat.validate_parameters(parameters))
    except Pause:
        return None
    assert isinstance(state, State)
    return state


def ask(database: str, process_id: str = "wtpf-26", at: datetime = POSTING) -> UUID:
    """What a tick does at ``at``: request the one due step; the request's id."""
    with service(database) as svc:
        _, definition, instance = svc.load(process_id)
    asked = request_steps(definition, instance, at, database)
    assert len(asked) == 1
    return asked[0]


def test_concurrent_ticks_create_one_request(database: str, deployment: UUID) -> None:
    """Two ticks asking for the same due step at the same moment make one run (the server's
    idempotency key), and asking again later returns that run."""
    with service(database) as svc:
        svc.init(WTPF, START)
        _, definition, instance = svc.load("wtpf-26")
    barrier = threading.Barrier(2)
    asked: list[list[UUID]] = []

    def tick() -> None:
        barrier.wait()
        asked.append(request_steps(definition, instance, POSTING, database))

    ticks = [threading.Thread(target=tick) for _ in range(2)]
    for thread in ticks:
        thread.start()
    for thread in ticks:
        thread.join(30)

    runs = requests("wtpf-26", database)
    assert len(runs) == 1
    assert asked == [[runs[0].id], [runs[0].id]]
    assert runs[0].idempotency_key == idempotency_key("wtpf-26", manual_steps(
        definition, instance, POSTING)[0], database)
    assert runs[0].idempotency_key.startswith("wtpf-26:post_draft1:2024-08-04T22:00:00+00:00@")
    assert request_steps(definition, instance, POSTING, database) == [runs[0].id]
    assert len(requests("wtpf-26", database)) == 1


def test_request_suspends_and_the_answer_applies_the_step(
        database: str, deployment: UUID) -> None:
    """The request suspends (its process exits: the run is Suspended on the server), and the
    answer, given later, applies the step when Prefect runs it again."""
    with service(database) as svc:
        svc.init(WTPF, START)
    run_id = ask(database)

    assert execute(run_id) is None  # the process is free: nothing runs while it waits
    waiting = read(run_id)
    assert waiting.state is not None
    assert (waiting.state.type.value, waiting.state.name) == ("PAUSED", "Suspended")
    assert waiting.name == "wtpf-26: waiting for 'First Draft posted'"
    assert main_state(database, "wtpf-26") == "draft1.drafting"

    resume_flow_run(run_id, run_input={"actor": BY, "document": "WTPF-26/1", "confirm": True,
                                       "reason": "online since 10:00"})
    assert read(run_id).state.is_scheduled()  # type: ignore[union-attr]  # Prefect reruns it
    state = execute(run_id)

    assert state is not None
    assert state.is_completed(), state.message
    assert main_state(database, "wtpf-26") == "draft1.comment_window"
    last = snapshot(database, "wtpf-26")[2][-1]
    assert (last.kind, last.trigger, last.actor, last.reason) == (
        "transition", "post_draft1", BY, "online since 10:00")
    assert last.inputs["via"]["channel"] == "waiting step"
    assert read(run_id).name == "wtpf-26: First Draft posted"


def test_the_waiting_form_offers_the_members_and_refuses_others(
        database: str, deployment: UUID) -> None:
    """The answer's actor is a choice of the process's secretariat members: the server refuses
    another id, and the run keeps waiting."""
    with service(database) as svc:
        svc.init(WTPF, START)
    run_id = ask(database)
    assert execute(run_id) is None

    with pytest.raises(RuntimeError, match="actor"):
        resume_flow_run(run_id, run_input={"actor": "mallory", "document": "WTPF-26/1",
                                           "confirm": True})
    assert read(run_id).state.is_paused()  # type: ignore[union-attr]


def test_step_done_by_the_action_form_closes_the_request(
        database: str, deployment: UUID) -> None:
    """Posting through the action form while the request waits closes it, Cancelled with a
    message naming the channel and the member, instead of leaving it to fail later."""
    with service(database) as svc:
        svc.init(WTPF, START)
    run_id = ask(database)
    assert execute(run_id) is None

    action = SecretariatAction(process="wtpf-26", trigger="post_draft1", actor=BY,
                               document="WTPF-26/1")
    done = secretariat_action(action=action, now=POSTING, database=database,
                              publish_artifacts=False, return_state=True)

    assert done.is_completed(), done.message
    closed = read(run_id).state
    assert closed is not None
    assert closed.is_cancelled()
    assert closed.message is not None
    assert closed.message.startswith(f"done via action form by {BY} at 2024-08-05 08:00 UTC")


def test_step_done_by_the_cli_is_closed_by_the_next_tick(
        database: str, deployment: UUID) -> None:
    """A step done through the CLI (no Prefect involved) leaves the request waiting until the
    next tick, which closes it saying who did the step and when."""
    with service(database) as svc:
        svc.init(WTPF, START)
    run_id = ask(database)
    assert execute(run_id) is None
    with service(database) as svc:
        svc.transition("wtpf-26", "post_draft1", BY, "WTPF-26/1", now=POSTING)
        stored, definition, _ = svc.load("wtpf-26")

    assert request_steps(definition, Instance.from_doc(stored.state), POSTING, database) == []

    closed = read(run_id).state
    assert closed is not None
    assert closed.is_cancelled()
    assert closed.message == (f"'First Draft posted' was done by {BY} on 2024-08-05 08:00 UTC "
                              "(WTPF-26/1), not through this request; closed, nothing else "
                              "to do.")


def test_a_request_answered_after_the_step_was_done_completes_without_failing(
        database: str, deployment: UUID) -> None:
    """A request answered (so rescheduled) while the step was done elsewhere ends Completed,
    saying who did it, not Failed with 'already happened'; nothing is applied twice."""
    with service(database) as svc:
        svc.init(WTPF, START)
    run_id = ask(database)
    assert execute(run_id) is None
    resume_flow_run(run_id, run_input={"actor": BY, "document": "WTPF-26/1", "confirm": True})
    with service(database) as svc:
        svc.transition("wtpf-26", "post_draft1", BY, "WTPF-26/1", now=POSTING)
    before = snapshot(database, "wtpf-26")

    state = execute(run_id)

    assert state is not None
    assert state.is_completed(), state.message
    assert state.message is not None
    assert state.message.startswith("'First Draft posted' was done by wtpf-secretariat")
    assert snapshot(database, "wtpf-26") == before


def test_a_rule_refusal_after_the_answer_fails_the_run_and_changes_nothing(
        database: str, deployment: UUID) -> None:
    """Posting the final report with no forum date and no override fails with the rule's text;
    only the refusal is written."""
    with service(database) as svc:
        svc.init(mini(), utc(2024, 9, 1))
        svc.transition("mini-26", "post_draft1", "sec", "MINI-26/1", now=utc(2024, 9, 30, 8))
        svc.advance(utc(2025, 2, 10))
    assert main_state(database, "mini-26") == "final.drafting"
    before = snapshot(database, "mini-26")
    at = utc(2025, 3, 3, 9)
    run_id = ask(database, "mini-26", at)
    assert execute(run_id, at) is None

    resume_flow_run(run_id, run_input={"actor": "sec", "document": "MINI-26/FINAL",
                                       "confirm": True, "override": False})
    state = execute(run_id, at)

    assert state is not None
    assert state.is_failed()
    assert state.message is not None
    assert state.message.startswith("Refused by rule 'six-weeks': the forum's opening date is "
                                    "not set")
    assert read(run_id).state.message == state.message  # type: ignore[union-attr]
    after = snapshot(database, "mini-26")
    assert after[:2] == before[:2]
    assert after[2][:-1] == before[2]
    assert (after[2][-1].kind, after[2][-1].actor) == ("refusal", "sec")


def test_invalid_answers_are_refused_and_the_request_keeps_waiting(
        database: str, deployment: UUID) -> None:
    """An answer that does not fit the form is refused by the server, the run stays suspended;
    a later well-formed answer is taken (here: not confirmed, so nothing happens)."""
    with service(database) as svc:
        svc.init(WTPF, START)
    before = snapshot(database, "wtpf-26")
    run_id = ask(database)
    assert execute(run_id) is None

    with pytest.raises(RuntimeError, match="Validation failed for field 'confirm'"):
        resume_flow_run(run_id, run_input={"actor": BY, "document": "WTPF-26/1",
                                           "confirm": "maybe"})
    with pytest.raises(RuntimeError, match="'actor' is a required property"):
        resume_flow_run(run_id, run_input={"document": "WTPF-26/1", "confirm": True})
    assert read(run_id).state.is_paused()  # type: ignore[union-attr]

    resume_flow_run(run_id, run_input={"actor": BY, "document": "WTPF-26/1", "confirm": False})
    state = execute(run_id)
    assert state is not None
    assert state.is_failed()
    assert state.message == "'First Draft posted' was not confirmed; nothing changed."
    assert snapshot(database, "wtpf-26") == before


def test_a_step_done_in_another_store_leaves_this_request_waiting(
        database: str, deployment: UUID, tmp_path: Path) -> None:
    """A rehearsal's wtpf-26 (its own store) posting the First Draft closes its own request,
    not the one of the wtpf-26 in this store, which keeps waiting."""
    rehearsal = f"sqlite:///{tmp_path / 'rehearsal.db'}"
    for store in (database, rehearsal):
        with service(store) as svc:
            svc.init(WTPF, START)
    ours, theirs = ask(database), ask(rehearsal)
    assert ours != theirs
    assert execute(ours) is None
    assert execute(theirs) is None

    action = SecretariatAction(process="wtpf-26", trigger="post_draft1", actor=BY,
                               document="WTPF-26/1")
    done = secretariat_action(action=action, now=POSTING, database=rehearsal,
                              publish_artifacts=False, return_state=True)

    assert done.is_completed(), done.message
    assert read(theirs).state.is_cancelled()  # type: ignore[union-attr]
    assert read(ours).state.is_paused()  # type: ignore[union-attr]
    assert main_state(database, "wtpf-26") == "draft1.drafting"


def test_a_moved_posting_date_replaces_the_request_on_the_new_day(
        database: str, deployment: UUID) -> None:
    """The posting day moved a week later: the request stays answerable meanwhile (posting
    early is the secretariat's call); on the new day a new request is made (a new due
    instant, a new key) and the old one is closed, saying why."""
    with service(database) as svc:
        svc.init(WTPF, START)
    first = ask(database)
    assert execute(first) is None
    with service(database) as svc:
        svc.amend("wtpf-26", "draft1.posting", "2024-08-12", BY, "the translations are late",
                  override=True, now=POSTING)
        stored, definition, _ = svc.load("wtpf-26")
    instance = Instance.from_doc(stored.state)

    assert request_steps(definition, instance, utc(2024, 8, 6, 8), database) == []
    assert read(first).state.is_paused()  # type: ignore[union-attr]

    again = request_steps(definition, instance, utc(2024, 8, 12, 8), database)
    assert len(again) == 1
    assert again[0] != first
    assert read(again[0]).idempotency_key.startswith(  # type: ignore[union-attr]
        "wtpf-26:post_draft1:2024-08-11T22:00:00+00:00@")
    closed = read(first).state
    assert closed is not None
    assert closed.is_cancelled()
    assert closed.message is not None
    assert closed.message.startswith("'First Draft posted' is not waiting for the secretariat "
                                     "now")
