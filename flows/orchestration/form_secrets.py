"""A member's token given in a Prefect form must not stay on the Prefect server (issue 10).

How Prefect 3 keeps what a form sends (checked in prefect 3.9.1's sources):

- A flow called in Python (the rehearsal, tests) stores its parameters through
  ``Flow.serialize_parameters`` (FastAPI's ``jsonable_encoder``): a pydantic ``SecretStr``
  is dumped as ``**********``, so the token never reaches the server.
- A run of a served deployment started from the UI's Run form is created with the JSON the
  browser sends: the server stores the token in the run's parameters as typed (``SecretStr``
  only makes the UI mask the field, ``format: password``). The flow therefore replaces it with
  ``**********`` in its own run's parameters (``update_flow_run``) before doing anything else.
  It sat on the server, in clear, from the form's submission to the run's start: seconds for a
  served deployment. Anyone who can read the server's database meanwhile could read it; that
  is the gap, and why tokens are revocable (``prepflow members token revoke``).
- A waiting step's answer (``suspend_flow_run(wait_for_input=...)``) is kept as a flow-run
  input under ``<key>-response``; once read, the flow deletes it.

State-change events and logs carry no parameters, and prepflow logs no token.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

#: How Prefect writes a secret it will not show.
MASK = "**********"


def current_run_id() -> str | None:
    """The running flow run's id, as the audit entry records it (None outside a run)."""
    from prefect.runtime import flow_run

    run_id = flow_run.get_id()
    return None if run_id is None else str(run_id)


def scrub_parameter(parameter: str, field: str = "token") -> bool:
    """Replace ``parameters[parameter][field]`` of the current run with the mask when it is
    stored in clear; whether anything was replaced."""
    from prefect.context import SyncClientContext

    run_id = current_run_id()
    if run_id is None:
        return False
    with SyncClientContext.get_or_create() as context:
        client = context.client
        stored: dict[str, Any] = dict(client.read_flow_run(UUID(run_id)).parameters or {})
        form = stored.get(parameter)
        if not isinstance(form, dict) or form.get(field) in (None, MASK):
            return False
        stored[parameter] = {**form, field: MASK}
        client.update_flow_run(UUID(run_id), parameters=stored)
    return True


def forget_answers() -> int:
    """Delete the current run's waiting-step answers (they may hold a token); how many."""
    from prefect.context import SyncClientContext

    run_id = current_run_id()
    if run_id is None:
        return 0
    with SyncClientContext.get_or_create() as context:
        client = context.client
        found = client.filter_flow_run_input(flow_run_id=UUID(run_id), key_prefix="",
                                             limit=100, exclude_keys=set())
        answers = [i.key for i in found if i.key.endswith("-response")]
        for key in answers:
            client.delete_flow_run_input(UUID(run_id), key)
    return len(answers)
