"""Who may act (issue 10) through the Prefect forms, on a real (temporary) Prefect server: the
action form and the waiting step carry the member's token, refusals are audited with the
channel and flow run, and the token is not left on the server."""

from __future__ import annotations

import json
from typing import Any
from uuid import UUID

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.objects import State
from prefect.flow_engine import run_flow
from prefect.flow_runs import resume_flow_run
from pydantic import SecretStr

from flows.identity.members import issue_token
from flows.orchestration.secretariat import SecretariatAction, secretariat_action
from tests.flows.test_prefect_flows import (
    BY,
    START,
    WTPF,
    database,
    flow_run,
    main_state,
    service,
    snapshot,
    utc,
)
from tests.flows.test_waiting_steps import ask, deployment, execute

pytestmark = pytest.mark.usefixtures("prefect_server")
__all__ = ["database", "deployment"]  # fixtures shared with test_prefect_flows, test_waiting_steps

POSTING = utc(2024, 8, 5, 8)


def with_token(database: str) -> str:
    """WTPF-26 created and its member's token issued (so tokens are required); the token."""
    with service(database) as svc:
        svc.init(WTPF, START)
        return issue_token(svc, "wtpf-26", BY, BY, START)[1]


def stored_parameters(run_id: Any) -> str:
    """A run's parameters as the server keeps them, as text."""
    with get_client(sync_client=True) as client:
        return json.dumps(client.read_flow_run(run_id).parameters)


def test_action_form_without_a_token_fails_and_the_refusal_is_audited(database: str) -> None:
    """Once tokens are in use, the action form without one fails the run; the refusal is in
    the audit log with the channel and the run's id, and the state is unchanged."""
    with_token(database)
    before = snapshot(database, "wtpf-26")
    action = SecretariatAction(process="wtpf-26", trigger="post_draft1", actor=BY,
                               document="WTPF-26/1")

    state = secretariat_action(action=action, now=POSTING, database=database, return_state=True)

    assert state.is_failed()
    assert state.message is not None
    assert "fill in the form's token field" in state.message
    after = snapshot(database, "wtpf-26")
    assert after[:2] == before[:2]
    refusal = after[2][-1]
    assert (refusal.kind, refusal.actor, refusal.inputs["rule"]) == ("refusal", BY, "token")
    assert refusal.inputs["via"]["channel"] == "action form"
    assert refusal.inputs["via"]["flow_run_id"] == str(flow_run(state).id)


def test_action_form_with_the_token_applies_and_keeps_it_off_the_server(database: str) -> None:
    """With the member's token the post is applied, the entry names member, role, channel and
    run, and the run's stored parameters do not hold the token."""
    token = with_token(database)
    action = SecretariatAction(process="wtpf-26", trigger="post_draft1", actor=BY,
                               token=SecretStr(token), document="WTPF-26/1")

    state = secretariat_action(action=action, now=POSTING, database=database, return_state=True)

    assert state.is_completed(), state.message
    run = flow_run(state)
    last = [e for e in snapshot(database, "wtpf-26")[2] if e.kind == "transition"][-1]
    via = last.inputs["via"]
    assert (via["member"], via["role"], via["channel"]) == (BY, "post", "action form")
    assert via["flow_run_id"] == str(run.id)
    assert token not in stored_parameters(run.id)
    assert token.split("_")[2] not in stored_parameters(run.id)


def test_a_run_created_with_the_token_in_clear_masks_it_when_it_starts(database: str) -> None:
    """A run created from the UI's form (raw JSON: the token in clear, as Prefect stores it)
    replaces the token in its own parameters before acting, and acts with it."""
    token = with_token(database)
    raw = {"action": {"process": "wtpf-26", "trigger": "post_draft1", "actor": BY,
                      "token": token, "document": "WTPF-26/1"},
           "now": POSTING.isoformat(), "database": database}
    with get_client(sync_client=True) as client:
        created = client.create_flow_run(secretariat_action, parameters=raw)
    assert token in stored_parameters(created.id)  # what the Run form leaves on the server

    state = run_flow(secretariat_action, flow_run=created,
                     parameters=secretariat_action.validate_parameters(raw),
                     return_type="state")
    assert isinstance(state, State)

    assert state.is_completed(), state.message
    assert token not in stored_parameters(created.id)
    assert "**********" in stored_parameters(created.id)
    assert main_state(database, "wtpf-26") == "draft1.comment_window"


def test_waiting_step_answered_with_the_token_applies_and_forgets_the_answer(
        database: str, deployment: UUID) -> None:
    """The waiting step's answer carries the token: the step is applied with channel 'waiting
    step', and the answer (which held the token) is no longer kept by the server."""
    token = with_token(database)
    run_id = ask(database)
    assert execute(run_id) is None  # suspended, waiting for the answer

    resume_flow_run(run_id, run_input={"actor": BY, "token": token, "document": "WTPF-26/1",
                                       "confirm": True})
    state = execute(run_id)

    assert state is not None
    assert state.is_completed(), state.message
    last = [e for e in snapshot(database, "wtpf-26")[2] if e.kind == "transition"][-1]
    assert last.inputs["via"]["channel"] == "waiting step"
    assert last.inputs["via"]["flow_run_id"] == str(run_id)
    with get_client(sync_client=True) as client:
        kept = client.filter_flow_run_input(run_id, "", 100, set())
    assert not [i for i in kept if token in i.value]
