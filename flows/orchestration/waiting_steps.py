"""Asking the secretariat for a manual step when it falls due, once; and closing the request
when the step is done another way.

When ``advance`` finds a manual step due (e.g. 'post the Second Draft' on 4 Nov 2024) and the
``await-secretariat`` deployment is served, it starts a run of it for that step. The run is
created with an idempotency key naming the process, the step and the instant it fell due, so
the Prefect server itself creates it once however many ticks (or workers) ask at the same time
(issue 10: a check-then-create was a race). A date moved by an amendment is a new due instant:
the old request stays answerable until the new day's request replaces it (and closes it).

A step done through another channel (the CLI, the action form) leaves its request waiting for
an answer that would fail with 'already happened': the tick (and the action form, at once)
closes it instead, Cancelled with a message saying who did the step and how. A tick calls the
Prefect server for a process only when one of its steps is due or was done in the last
REQUEST_DAYS (a request's lifetime), so idle processes cost no API call.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from hashlib import sha256
from typing import TYPE_CHECKING
from uuid import UUID

from flows.orchestration.run_context import password_of
from states.definition import ProcessDefinition
from states.instance import Instance
from states.machine import Mode, table_for
from states.queries import ManualStep, manual_steps

if TYPE_CHECKING:
    from prefect.client.orchestration import SyncPrefectClient
    from prefect.client.schemas.objects import FlowRun

DEPLOYMENT = "await-secretariat/await-secretariat"
#: How long a request waits (await_secretariat's timeout_hours) before the server fails it.
REQUEST_DAYS = 7


def idempotency_key(process_id: str, step: ManualStep, database: str | None = None) -> str:
    """One request per process, step and due instant: 'wtpf-26:post_draft2:2024-11-03T23:00'.
    A store named in the parameters (a rehearsal's, a test's) is part of it: one Prefect
    server may ask for the same step of two stores."""
    key = f"{process_id}:{step.trigger}:{step.opens.isoformat()}"
    return key if database is None else f"{key}@{sha256(database.encode()).hexdigest()[:12]}"


def request_steps(definition: ProcessDefinition, instance: Instance, now: datetime,
                  database: str | None) -> list[UUID]:
    """Ask for each due step (once: the server keeps the idempotency key) and close the
    requests of steps no longer waiting; the ids of the due steps' requests."""
    from prefect.client.orchestration import get_client
    from prefect.deployments import run_deployment
    from prefect.exceptions import ObjectNotFound

    process_id = instance.process_id
    steps = manual_steps(definition, instance, now)  # due or overdue
    if not steps and not _recently_done(definition, instance, now):
        return []  # nothing to ask, nothing to close: no call to the server
    asked: list[UUID] = []
    store = store_parameter(database)
    with get_client(sync_client=True) as client:
        try:
            deployment = client.read_deployment_by_name(DEPLOYMENT)
        except ObjectNotFound:
            return []  # not served (tests, rehearsals): the status warning is the reminder
        for step in steps:
            parameters: dict[str, object] = {"process": process_id, "trigger": step.trigger}
            if store:
                parameters["database"] = store
            run = run_deployment(deployment.id, parameters=parameters, timeout=0,
                                 tags=[f"process:{process_id}", f"step:{step.trigger}"],
                                 idempotency_key=idempotency_key(process_id, step, store),
                                 as_subflow=False)
            asked.append(run.id)  # type: ignore[union-attr]  # sync here: a FlowRun
        for run in _waiting(client, deployment.id, process_id, store):
            if run.id not in asked:
                close(client, [run], why_closed(definition, instance, _tag(run, "step:")))
    return asked


def _recently_done(definition: ProcessDefinition, instance: Instance, now: datetime) -> bool:
    """A manual step happened within a request's lifetime (REQUEST_DAYS): its request, if
    any, may still wait. An older request has timed out on the server (Failed) already."""
    manual = {t for t, spec in table_for(definition).by_trigger.items()
              if spec.mode is Mode.MANUAL}
    since = now - timedelta(days=REQUEST_DAYS)
    return any(h.at >= since for t, h in instance.happened.items() if t in manual)


def why_closed(definition: ProcessDefinition, instance: Instance, trigger: str | None) -> str:
    """What a closed request says: who did the step, when, with which document."""
    spec = table_for(definition).by_trigger.get(trigger or "")
    label = spec.label if spec is not None else trigger
    done = instance.happened.get(trigger or "")
    if done is not None:
        document = f" ({done.document})" if done.document else ""
        return (f"'{label}' was done by {done.by} on {done.at:%Y-%m-%d %H:%M} UTC{document}, "
                "not through this request; closed, nothing else to do.")
    return (f"'{label}' is not waiting for the secretariat now (its date was moved, or a new "
            "request replaces this one); closed, nothing changed.")


def store_parameter(database: str | None) -> str | None:
    """The ``database`` a request carries: never a credential to the server; without one the
    run uses its settings' store."""
    return database if database and not password_of(database) else None


def close_waiting(process_id: str, trigger: str, message: str,
                  database: str | None = None) -> int:
    """Close the requests for ``trigger`` of the process in the store ``database`` (as a flow
    takes it) still waiting: the step was just done another way; how many. Without such a
    deployment, nothing to close."""
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound

    with get_client(sync_client=True) as client:
        try:
            deployment = client.read_deployment_by_name(DEPLOYMENT)
        except ObjectNotFound:
            return 0
        runs = [r for r in _waiting(client, deployment.id, process_id,
                                    store_parameter(database))
                if _tag(r, "step:") == trigger]
        return close(client, runs, message)


def close(client: SyncPrefectClient, runs: Iterable[FlowRun], message: str) -> int:
    """Cancel each run (none is executing: a suspended run holds no process), with
    ``message`` as the state's message the UI shows; how many."""
    from prefect.states import Cancelled

    count = 0
    for run in runs:
        client.set_flow_run_state(run.id, Cancelled(message=message), force=True)
        count += 1
    return count


def _waiting(client: SyncPrefectClient, deployment_id: UUID, process_id: str,
             store: str | None) -> list[FlowRun]:
    """The process's requests not yet started or suspended (not those being executed), for
    its store (a rehearsal of 'wtpf-26' must not close the real wtpf-26's request)."""
    from prefect.client.schemas.filters import (
        DeploymentFilter,
        DeploymentFilterId,
        FlowRunFilter,
        FlowRunFilterState,
        FlowRunFilterStateType,
        FlowRunFilterTags,
    )
    from prefect.client.schemas.objects import StateType

    return [run for run in client.read_flow_runs(
        deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment_id])),
        flow_run_filter=FlowRunFilter(
            tags=FlowRunFilterTags(all_=[f"process:{process_id}"]),
            state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[
                StateType.SCHEDULED, StateType.PAUSED])),
        ),
        limit=200,
    ) if run.parameters.get("database") == store]


def _tag(run: FlowRun, prefix: str) -> str | None:
    """The value of the run's ``prefix``-tag (e.g. the step of 'step:post_draft2')."""
    return next((t.removeprefix(prefix) for t in run.tags if t.startswith(prefix)), None)
