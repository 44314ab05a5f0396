"""Secretariat actions from the Prefect UI: a deployment whose Run form is the action form,
and a wait-for-input run that asks for a manual step when it falls due.

Both record the actor in the audit log, with the channel and the flow run (issue 10); a rule's
refusal becomes the run's failure message and changes nothing but the audit log. Once tokens
are in use on a process, each form carries its member's token (see form_secrets.py for how it
is kept off the Prefect server).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from prefect.client.schemas.objects import State
from prefect.flow_runs import suspend_flow_run
from prefect.input import RunInput
from prefect.states import Completed, Failed
from pydantic import BaseModel, Field, SecretStr, create_model
from pydantic.json_schema import SkipJsonSchema

from flows.identity.gate import Caller
from flows.orchestration import quiet_refusals
from flows.orchestration.artifacts import send_all, views
from flows.orchestration.form_secrets import current_run_id, forget_answers, scrub_parameter
from flows.orchestration.run_context import (
    aware,
    rename_run,
    run_logger,
    service_for,
    store_flow,
)
from flows.orchestration.waiting_steps import REQUEST_DAYS, close_waiting, why_closed
from flows.storage import StoreError
from states.definition import ProcessDefinition
from states.errors import PrepflowError
from states.machine import table_for
from states.roles import Channel

quiet_refusals.install()  # the engine imports this module before it runs one of its flows

#: A token field, masked in the form (format: password) and never logged or stored in clear.
TOKEN_HELP = ("Your personal token (prepflow members token issue), once tokens are in use on "
              "the process")


def _blank(schema: dict[str, Any]) -> None:
    """An optional field shows empty in a form, not as 'None' (its null default is dropped)."""
    schema.pop("default", None)


# SkipJsonSchema[...]: hidden from the operators' forms (issue 11), a rehearsal's or a test's
# knob (now, database, publish_artifacts), or the null of an optional field. Prefect builds a
# Run form from the parameters' JSON schema; the field is left out of it, and Python callers
# still pass it.


class SecretariatAction(BaseModel):
    """A manual transition, as the Prefect UI's Run form shows it. ``prepflow serve`` turns
    process, trigger and actor into choices (forms.py)."""

    process: str = Field(description="Process id, e.g. wtpf-26")
    trigger: str = Field(description="Manual step, e.g. post_draft2 or post_final; whether it "
                         "is allowed now is checked when the run acts")
    actor: str = Field(description="Your secretariat member id")
    token: SecretStr | SkipJsonSchema[None] = Field(default=None, description=TOKEN_HELP,
                                                    json_schema_extra=_blank)
    document: str = Field(description="Reference of the document posted, e.g. WTPF-26/2")
    reason: str | SkipJsonSchema[None] = Field(
        default=None, description="Why; required with override", json_schema_extra=_blank)
    override: bool = Field(default=False, description="Set aside an overridable rule "
                           "(e.g. the forum date is not set yet)")


def perform(action: SecretariatAction, now: datetime | None,
            database: str | None, publish_artifacts: bool = True,
            channel: Channel = Channel.ACTION_FORM) -> State[Any]:
    """Apply the action; a refusal or bad input is the run's failure message."""
    logger = run_logger()
    with service_for(database, _caller(channel, action.token)) as service:
        try:
            outcome = service.transition(action.process, action.trigger, action.actor,
                                         action.document, action.reason, action.override,
                                         aware(now))
        except (PrepflowError, StoreError, ValueError) as exc:
            logger.error("%s", exc)
            rename_run(f"{action.process}: {action.trigger} refused")
            return Failed(message=str(exc))
        labels = [str(r.inputs.get("label", r.trigger)) for r in outcome.decision.records
                  if r.kind == "transition"]
        for label in labels:
            logger.info("%s: %s", action.process, label)
        at = service.now(aware(now))
        if channel is not Channel.WAITING_STEP:  # its request, if any, would wait in vain
            close_waiting(action.process, action.trigger,
                          f"done via {channel} by {action.actor} at {at:%Y-%m-%d %H:%M} UTC; "
                          "this request is closed, nothing else to do.", database)
        if publish_artifacts:
            _, definition, instance = service.load(action.process)
            send_all(views(definition, instance, at))
    rename_run(f"{action.process}: {', '.join(labels)}")
    return Completed(message="; ".join(labels), data={"applied": labels,
                                                      "version": outcome.version})


@store_flow(name="secretariat-action", log_prints=False, persist_result=True)
def secretariat_action(action: SecretariatAction, now: SkipJsonSchema[datetime | None] = None,
                       database: SkipJsonSchema[str | None] = None,
                       publish_artifacts: SkipJsonSchema[bool] = True) -> State[Any]:
    """A secretariat member posts a draft or the final report from the Run form."""
    scrub_parameter("action")
    return perform(action, now, database, publish_artifacts)


class Amendment(BaseModel):
    """A date change, as the Prefect UI's Run form shows it."""

    process: str = Field(description="Process id, e.g. wtpf-26")
    milestone: str = Field(description="e.g. forum, ieg2, draft3.comments")
    date: str = Field(description="2025-02-10, 2025-02, or 2025-02-10..2025-02-12")
    actor: str = Field(description="Your secretariat member id")
    token: SecretStr | SkipJsonSchema[None] = Field(default=None, description=TOKEN_HELP,
                                                    json_schema_extra=_blank)
    reason: str = Field(description="Why the date changes (recorded)")
    override: bool = Field(default=False, description="Accept breaking a rule, with reason")


@store_flow(name="secretariat-amend", log_prints=False, persist_result=True)
def secretariat_amend(change: Amendment, now: SkipJsonSchema[datetime | None] = None,
                      database: SkipJsonSchema[str | None] = None,
                      publish_artifacts: SkipJsonSchema[bool] = True) -> State[Any]:
    """Move a milestone or the forum; every rule is re-checked and a refusal fails the run."""
    scrub_parameter("change")
    logger = run_logger()
    with service_for(database, _caller(Channel.ACTION_FORM, change.token)) as service:
        try:
            outcome = service.amend(change.process, change.milestone, change.date, change.actor,
                                    change.reason, change.override, aware(now))
        except (PrepflowError, StoreError, ValueError) as exc:
            logger.error("%s", exc)
            rename_run(f"{change.process}: moving {change.milestone} refused")
            return Failed(message=str(exc))
        text = f"{change.process}: {change.milestone} moved to {change.date}"
        logger.info("%s", text)
        if publish_artifacts:
            _, definition, instance = service.load(change.process)
            send_all(views(definition, instance, service.now(aware(now))))
    rename_run(text)
    return Completed(message=text, data={"version": outcome.version})


class StepInput(RunInput):
    """What the secretariat fills in to complete a manual step."""

    actor: str = Field(description="Your secretariat member id")
    token: SecretStr | SkipJsonSchema[None] = Field(default=None, description=TOKEN_HELP,
                                                    json_schema_extra=_blank)
    document: str = Field(description="Reference of the document posted, e.g. WTPF-26/2")
    confirm: bool = Field(default=False, description="Tick to confirm it is online now")
    reason: str | SkipJsonSchema[None] = Field(
        default=None, description="Why (needed with override)", json_schema_extra=_blank)
    override: bool = Field(default=False, description="Set aside an overridable rule")


def step_input(definition: ProcessDefinition, description: str) -> type[StepInput]:
    """The waiting step's form for this process: *actor* is a choice of its secretariat
    members (issue 11), the description says which step is asked for."""
    ids = tuple(m.id for m in definition.secretariat)
    if not ids:  # no one to choose: free text, refused by the rule when the run acts
        return StepInput.with_initial_data(description=description)
    members: Any = Literal[ids]  # a type made at run time
    form = create_model("StepInput", __base__=StepInput,
                        actor=(members, Field(description="Your secretariat member id")))
    return form.with_initial_data(description=description)


@store_flow(name="await-secretariat", log_prints=False, persist_result=True)
def await_secretariat(process: str, trigger: str, database: SkipJsonSchema[str | None] = None,
                      timeout_hours: float = 24 * REQUEST_DAYS,
                      now: SkipJsonSchema[datetime | None] = None) -> State[Any]:
    """Ask for a manual step (e.g. 'post the Second Draft') with a form, then apply it.

    The run suspends (``suspend_flow_run``): it exits, holding no worker, until the form is
    answered; Prefect then runs it again from the start, and the second ``suspend_flow_run``
    returns the answer. Everything before it is therefore safe to repeat (it only reads), and
    a step done meanwhile through another channel ends the run Completed, saying so.
    ``now`` (default: the clock when the answer arrives) lets tests and rehearsals move time.
    """
    with service_for(database) as service:
        _, definition, instance = service.load(process)
    spec = table_for(definition).by_trigger.get(trigger)
    label = spec.label if spec is not None else trigger
    if trigger in instance.happened:  # done before the answer came: nothing to ask or apply
        forget_answers()
        rename_run(f"{process}: '{label}' done elsewhere")
        return Completed(message=why_closed(definition, instance, trigger))
    description = (f"## {label} — {process}\n\nThe step **{label}** is due. When the document "
                   "is online, give its reference, your member id (and your token, once tokens "
                   "are in use on the process), and tick *confirm*.")
    rename_run(f"{process}: waiting for '{label}'")
    answer = suspend_flow_run(wait_for_input=step_input(definition, description),
                              timeout=int(timeout_hours * 3600), key="answer")
    forget_answers()  # the answer may hold a token: read, it leaves the server
    if not answer.confirm:
        rename_run(f"{process}: '{label}' not confirmed")
        return Failed(message=f"'{label}' was not confirmed; nothing changed.")
    action = SecretariatAction(process=process, trigger=trigger, actor=answer.actor,
                               token=answer.token, document=answer.document,
                               reason=answer.reason, override=answer.override)
    return perform(action, now, database, channel=Channel.WAITING_STEP)


def _caller(channel: Channel, token: SecretStr | None) -> Caller:
    """Who acts through a form: its channel, its token, this flow run."""
    return Caller(channel, token.get_secret_value() if token else None, current_run_id())

