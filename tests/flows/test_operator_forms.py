"""The operators' Run forms (issue 11): choices from the store, required fields, no rehearsal
knobs; and a refused action that ends Failed with the rule's message and no traceback, run
the way a served deployment runs it (a child process of the engine)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId
from prefect.exceptions import PrefectHTTPStatusError

from flows.orchestration.forms import FormChoices, store_choices
from flows.orchestration.serve import deployments
from tests.flows.test_prefect_flows import BY, START, WTPF, database, service, snapshot

__all__ = ["database"]  # fixture shared with test_prefect_flows

ROOT = Path(__file__).resolve().parents[2]
CHOICES = FormChoices(("wtpf-26",), ("post_draft1", "post_draft2"), (BY, "other-member"))


def served(choices: FormChoices | None = CHOICES) -> dict[str, Any]:
    """The served deployments by name."""
    return {d.name: d for d in deployments("*/15 * * * *", "Europe/Zurich", choices)}  # type: ignore[attr-defined]


def schema_of(deployment: Any) -> dict[str, Any]:
    """A deployment's parameter schema, as Prefect sends it to the server."""
    return dict(deployment._parameter_openapi_schema.model_dump())


def test_action_form_offers_choices_and_hides_the_rehearsal_knobs() -> None:
    """The action form: process, trigger and actor are choices, document is required, token
    and reason show empty (no 'None'), and now, database, publish_artifacts are not there."""
    schema = schema_of(served()["secretariat-action"])

    assert list(schema["properties"]) == ["action"]
    form = schema["definitions"]["SecretariatAction"]
    fields = form["properties"]
    assert fields["process"]["enum"] == ["wtpf-26"]
    assert fields["trigger"]["enum"] == ["post_draft1", "post_draft2"]
    assert fields["actor"]["enum"] == [BY, "other-member"]
    assert set(form["required"]) == {"process", "trigger", "actor", "document"}
    for optional in ("token", "reason"):
        assert "default" not in fields[optional], optional
        assert "anyOf" not in fields[optional], optional  # one text field, no null choice
    assert fields["token"]["format"] == "password"


def test_amend_and_waiting_forms_hide_the_knobs_and_free_text_without_choices() -> None:
    """The amend form gets process and actor choices; without choices (prefect deploy, an
    unreadable store) the forms take free text; no form shows now, database or publishing."""
    amend = schema_of(served()["secretariat-amend"])
    assert list(amend["properties"]) == ["change"]
    assert amend["definitions"]["Amendment"]["properties"]["process"]["enum"] == ["wtpf-26"]
    assert "enum" not in amend["definitions"]["Amendment"]["properties"]["milestone"]
    plain = schema_of(served(None)["secretariat-action"])
    assert "enum" not in plain["definitions"]["SecretariatAction"]["properties"]["process"]
    waiting = schema_of(served()["await-secretariat"])
    assert set(waiting["properties"]) == {"process", "trigger", "timeout_hours"}


def test_choices_come_from_the_store(database: str) -> None:
    """The store's processes, their manual steps (table order) and members are the choices."""
    with service(database) as svc:
        svc.init(WTPF, START)

    choices = store_choices(database)

    assert choices.processes == ("wtpf-26",)
    assert choices.triggers[0] == "post_draft1"
    assert "post_final" in choices.triggers
    assert "close_comments_draft1" not in choices.triggers  # automatic: not for a form
    assert choices.members == tuple(m.id for m in WTPF.secretariat)


@pytest.fixture
def action_deployment(prefect_server: str) -> Iterator[UUID]:
    """The secretariat-action deployment, with its choices, on the test server."""
    deployment_id = served()["secretariat-action"].apply()
    yield deployment_id
    with get_client(sync_client=True) as client:
        client.delete_deployment(deployment_id)


def test_the_server_keeps_the_form_and_refuses_a_choice_not_offered(
        action_deployment: UUID) -> None:
    """The schema the server keeps is the operator form; a run asked for a process that is not
    offered is refused by the server before anything runs."""
    with get_client(sync_client=True) as client:
        kept = client.read_deployment(action_deployment)
        assert kept.parameter_openapi_schema is not None
        assert list(kept.parameter_openapi_schema["properties"]) == ["action"]
        with pytest.raises(PrefectHTTPStatusError, match=r"'nope-1' is not one of \['wtpf-26'\]"):
            client.create_flow_run_from_deployment(action_deployment, parameters={"action": {
                "process": "nope-1", "trigger": "post_draft1", "actor": BY,
                "document": "X/1"}})


def test_a_refused_action_fails_with_the_rule_and_no_traceback(
        prefect_server: str, database: str, action_deployment: UUID, tmp_path: Path) -> None:
    """A refused action, run by Prefect's engine in a child process as a served run is, ends
    Failed with the rule's message; neither its logs nor the terminal hold a traceback."""
    with service(database) as svc:
        svc.init(WTPF, START)
    before = snapshot(database, "wtpf-26")
    with get_client(sync_client=True) as client:
        run = client.create_flow_run_from_deployment(action_deployment, parameters={
            "action": {"process": "wtpf-26", "trigger": "post_draft2", "actor": BY,
                       "document": "WTPF-26/2"},
            "database": database, "publish_artifacts": False})
    env = {**os.environ, "PREFECT_API_URL": prefect_server,
           "PREFECT_HOME": str(tmp_path / "prefect-home"),
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}

    child = subprocess.run([sys.executable, "-m", "prefect.engine", str(run.id)], cwd=ROOT,
                           env=env, capture_output=True, text=True, timeout=120)

    terminal = child.stdout + child.stderr
    assert child.returncode == 0, terminal
    assert "Traceback" not in terminal, terminal
    assert "unexpected exception" not in terminal, terminal
    with get_client(sync_client=True) as client:
        state = client.read_flow_run(run.id).state
        logs = client.read_logs(LogFilter(flow_run_id=LogFilterFlowRunId(any_=[run.id])))
    assert state is not None
    assert state.is_failed()
    assert state.message is not None
    assert state.message.startswith("Refused by rule 'order'")
    assert logs, "the run logged nothing"
    assert not [log.message for log in logs if "Traceback" in log.message]
    assert [log.message for log in logs if log.message.startswith("Refused by rule 'order'")]
    assert snapshot(database, "wtpf-26")[:2] == before[:2]
