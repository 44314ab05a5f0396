"""Asking the secretariat for a manual step when it falls due, once.

When ``advance`` finds a manual step due (e.g. 'post the Second Draft' on 4 Nov 2024) and the
``await-secretariat`` deployment is served, it starts one run of it for that step, tagged with
the process and step; while such a run is waiting, no second one is started.
"""

from __future__ import annotations

from datetime import datetime

from flows.orchestration.run_context import password_of
from states.definition import ProcessDefinition
from states.instance import Instance
from states.queries import manual_steps

DEPLOYMENT = "await-secretariat/await-secretariat"


def request_steps(definition: ProcessDefinition, instance: Instance, now: datetime,
                  database: str | None) -> int:
    """Start an await-secretariat run per due step not already waiting; returns how many."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        DeploymentFilter,
        DeploymentFilterId,
        FlowRunFilter,
        FlowRunFilterState,
        FlowRunFilterStateType,
        FlowRunFilterTags,
    )
    from prefect.client.schemas.objects import StateType
    from prefect.deployments import run_deployment
    from prefect.exceptions import ObjectNotFound

    process_id = instance.process_id
    steps = [step.trigger for step in manual_steps(definition, instance, now)]  # due or overdue
    if not steps:
        return 0
    started = 0
    with get_client(sync_client=True) as client:
        try:
            deployment = client.read_deployment_by_name(DEPLOYMENT)
        except ObjectNotFound:
            return 0  # not served (tests, rehearsals): the status warning is the reminder
        for trigger in steps:
            tags = [f"process:{process_id}", f"step:{trigger}"]
            live = client.read_flow_runs(
                deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment.id])),
                flow_run_filter=FlowRunFilter(
                    tags=FlowRunFilterTags(all_=tags),
                    state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[
                        StateType.SCHEDULED, StateType.PENDING, StateType.RUNNING,
                        StateType.PAUSED])),
                ),
                limit=1,
            )
            if live:
                continue
            parameters: dict[str, object] = {"process": process_id, "trigger": trigger}
            if database and not password_of(database):  # never a credential to the server:
                parameters["database"] = database  # the served run then uses its settings
            run_deployment(DEPLOYMENT, parameters=parameters, tags=tags, timeout=0,
                           as_subflow=False)
            started += 1
    return started
