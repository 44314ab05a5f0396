"""Choices in the operators' Run forms (issue 11): process, trigger and actor as drop-downs.

Prefect draws a deployment's Run form from its parameter schema (JSON schema, made from the
flow's signature when the deployment is built). The choices depend on the store, so
``prepflow serve`` reads them once at start and writes them into the schema of the forms it
serves as ``enum`` lists: the processes in the store, their manual triggers, their secretariat
members. The server then refuses a run whose form holds anything else, before it starts.

They are a superset: which trigger is allowed *now*, for *this* process, is decided when the
run acts, and a refusal says the rule and what is allowed instead. A process created after
``serve`` started is offered once it restarts (until then its id is refused by the form: the
CLI acts on it meanwhile). Deployments made by ``prefect deploy`` (prefect.yaml) carry no
choices: their forms take free text, checked the same way when the run acts.

What the forms do not show (``now``, ``database``, ``publish_artifacts``: for rehearsals and
tests) is left out of the schema by the flows' signatures (``SkipJsonSchema``), not here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from states.machine import Mode, table_for

#: The form models whose fields get choices, by flow name and parameter.
FORMS = {"secretariat-action": "action", "secretariat-amend": "change"}


@dataclass(frozen=True)
class FormChoices:
    """What the forms offer, in the store's order (processes) and table order (triggers)."""

    processes: tuple[str, ...]
    triggers: tuple[str, ...]
    members: tuple[str, ...]

    def fields(self) -> dict[str, tuple[str, ...]]:
        """The choices by form field (a field absent from a form is skipped)."""
        return {"process": self.processes, "trigger": self.triggers, "actor": self.members}


def store_choices(database: str | None = None) -> FormChoices:
    """The choices the store's processes allow (``database``: as ``service_for`` takes it)."""
    from flows.orchestration.run_context import service_for

    processes: list[str] = []
    triggers: dict[str, None] = {}
    members: dict[str, None] = {}
    with service_for(database) as service:
        for stored in service.store.list():
            definition, _ = service.decode(stored)
            processes.append(stored.process_id)
            triggers.update(dict.fromkeys(
                t for t, spec in table_for(definition).by_trigger.items()
                if spec.mode is Mode.MANUAL))
            members.update(dict.fromkeys(m.id for m in definition.secretariat))
    return FormChoices(tuple(processes), tuple(triggers), tuple(members))


def with_choices(schema: dict[str, Any], parameter: str,
                 choices: FormChoices) -> dict[str, Any]:
    """``schema`` (a deployment's parameter schema) with ``enum`` lists on the fields of
    ``parameter``'s model; a field with no choices (an empty store) stays free text."""
    ref = str(schema["properties"][parameter].get("$ref", ""))
    model = schema.get("definitions", {}).get(ref.rsplit("/", 1)[-1])
    if model is None:
        return schema
    for name, values in choices.fields().items():
        field = model["properties"].get(name)
        if field is not None and values:
            field["enum"] = list(values)
    return schema


def offer_choices(deployments: list[Any], choices: FormChoices) -> None:
    """Write the choices into the served operator forms' schemas.

    Prefect has no public setter for a RunnerDeployment's schema; its own ``freeze`` (frozen
    parameters) and ``prefect deploy`` write ``_parameter_openapi_schema`` the same way.
    """
    for deployment in deployments:
        parameter = FORMS.get(deployment.flow_name)
        if parameter is None:
            continue
        schema = deployment._parameter_openapi_schema
        updated = with_choices(schema.model_dump(), parameter, choices)
        deployment._parameter_openapi_schema = type(schema).model_validate(updated)
