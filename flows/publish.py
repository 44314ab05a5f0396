"""Publishing the operator's view as Prefect artifacts with stable keys per process."""

from __future__ import annotations

from datetime import datetime

from prefect.artifacts import create_markdown_artifact, create_table_artifact

from flows import operator_view as view
from flows.service import Service


def publish(service: Service, process_id: str, now: datetime) -> list[str]:
    """Status table, gantt timeline, state diagram and rule report; returns the keys."""
    _, definition, instance = service.load(process_id)
    current = service.status(process_id, now)
    keys = {what: view.artifact_key(process_id, what)
            for what in ("status", "timeline", "diagram", "rules")}
    create_table_artifact(view.status_rows(definition, instance, now), key=keys["status"],
                          description=view.status_markdown(current, definition))
    create_markdown_artifact(view.gantt(definition, instance), key=keys["timeline"],
                             description=f"{process_id}: plan vs actual")
    create_markdown_artifact(view.diagram(definition, instance), key=keys["diagram"],
                             description=f"{process_id}: state machine, current state marked")
    create_markdown_artifact(view.rules_markdown(definition, instance), key=keys["rules"],
                             description=f"{process_id}: rules and slack")
    return list(keys.values())


def alert(process_id: str, warnings: list[str]) -> None:
    """Overdue steps and rules at risk, for the secretariat (the mailer sends them later)."""
    text = "\n".join(f"- {w}" for w in warnings) or "- nothing overdue, no rule at risk"
    create_markdown_artifact(f"### Alerts for {process_id}\n\n{text}",
                             key=view.artifact_key(process_id, "alerts"),
                             description=f"{process_id}: overdue steps and rules at risk")
