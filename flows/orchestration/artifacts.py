"""Publishing the operator's view as Prefect artifacts with stable keys per process.

Every run that changes a process publishes its views; a tick with nothing due publishes only
when it is the first tick of a Geneva day (the countdowns are in days), so an idle tick costs
little more than Prefect's own floor. (Sending them concurrently was measured slower here.)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from prefect.artifacts import create_markdown_artifact, create_table_artifact

from flows.orchestration import operator_view as view
from flows.orchestration.balance_view import compute, markdown
from flows.shell import Service
from flows.storage import Expert, ProcessStore, StoredProcess
from states.dates import zone
from states.definition import ProcessDefinition
from states.errors import InputError
from states.instance import Instance
from states.status import StatusWarning, report


@dataclass(frozen=True)
class Artifact:
    """One artifact to send: markdown, or a table when ``rows`` is given."""

    key: str
    description: str
    markdown: str = ""
    rows: list[dict[str, Any]] | None = None

    def send(self) -> None:
        """The API call that publishes it.

        ``_sync=True``: inside an async flow (await-secretariat) Prefect would otherwise hand
        back an un-awaited coroutine, and the artifact would silently never be created.
        """
        if self.rows is not None:
            create_table_artifact(self.rows, key=self.key, description=self.description,
                                  _sync=True)  # type: ignore[call-arg]
        else:
            create_markdown_artifact(self.markdown, key=self.key, description=self.description,
                                     _sync=True)  # type: ignore[call-arg]


def views(definition: ProcessDefinition, instance: Instance, now: datetime,
          warnings: list[StatusWarning] | None = None,
          experts: Sequence[Expert] = ()) -> list[Artifact]:
    """Status table, gantt timeline, state diagram, rule report, comment windows (and alerts,
    and the expert group's balance when the register has experts) for a process.

    Takes what the caller already loaded: a tick reads each process once, not once per view.
    """
    process_id = instance.process_id
    current = report(definition, instance, now)

    def key(what: str) -> str:
        return view.artifact_key(process_id, what)

    items = [
        Artifact(key("status"), view.status_markdown(current, definition),
                 rows=view.status_rows(definition, instance, now)),
        Artifact(key("timeline"), f"{process_id}: plan vs actual",
                 view.gantt(definition, instance)),
        Artifact(key("diagram"), f"{process_id}: state machine, current state marked",
                 view.diagram(definition, instance)),
        Artifact(key("rules"), f"{process_id}: rules and slack, six-week line first",
                 rows=view.rules_rows(definition, instance)),
        Artifact(key("comments"), f"{process_id}: comment windows at their close",
                 view.comments_markdown(definition, instance)),
    ]
    if warnings is not None:
        text = "\n".join(f"- {w.text}" for w in warnings) or "- nothing overdue, no rule at risk"
        items.append(Artifact(key("alerts"), f"{process_id}: overdue steps and rules at risk",
                              f"### Alerts for {process_id}\n\n{text}"))
    if experts:
        items.append(balance_view(definition, process_id, experts))
    return items


def balance_view(definition: ProcessDefinition, process_id: str,
                 experts: Sequence[Expert]) -> Artifact:
    """The `prepflow experts balance` tables as markdown; a country list that cannot be used
    (missing, or of another region scheme) is said in the artifact, not a failed tick."""
    key = view.artifact_key(process_id, "balance")
    what = f"{process_id}: expert group balance (counts only)"
    try:
        return Artifact(key, what, markdown(process_id, definition, compute(definition, experts)))
    except InputError as exc:
        return Artifact(key, what, f"### Expert group balance — {process_id}\n\n"
                                   f"Not computed: {exc}\n")


def anchor_artifact(store: ProcessStore, stored: StoredProcess) -> Artifact:
    """The chain head (seq, hash) as `<process>-audit-anchor`: Prefect's record of it, which the
    database's owner cannot quietly rewrite (compare it with `prepflow audit PROCESS`)."""
    process_id = stored.process_id
    log = store.audit(process_id)
    seq, head = (log[-1].seq, log[-1].hash) if log else (0, "")
    return Artifact(view.artifact_key(process_id, "audit-anchor"),
                    f"{process_id}: audit chain head (anchor outside the database)",
                    rows=[{"process": process_id, "seq": seq, "hash": head}])


def send_all(artifacts: list[Artifact]) -> None:
    """Send the artifacts, one API call each, over one client.

    In a sync flow that is the engine's client; an async flow (await-secretariat) has none,
    and Prefect's artifact calls would each open a client and never close it (sockets leak).
    """
    from prefect.context import SyncClientContext

    with SyncClientContext.get_or_create():
        for artifact in artifacts:
            artifact.send()


def publish(service: Service, process_id: str, now: datetime) -> list[str]:
    """Publish one process's views now; returns the keys."""
    _, definition, instance = service.load(process_id)
    items = views(definition, instance, now, experts=service.store.experts(process_id))
    send_all(items)
    return [a.key for a in items]


def first_tick_of_day(now: datetime, timezone: str, step_minutes: int = 15) -> bool:
    """Whether ``now`` is the day's first cron tick in the process's zone (refresh countdowns)."""
    local = now.astimezone(zone(timezone))
    return local.hour == 0 and local.minute < step_minutes
