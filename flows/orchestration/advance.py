"""The scheduled tick: apply every automatic transition that is due, then show the result.

Deadlines are checks on a tick, not timers: a frequent cron schedule runs this flow; the core's
``advance(now)`` is idempotent, so a duplicated, late or DST-doubled run applies each
transition once. A two-year plan is never one long-running or paused flow.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from flows.orchestration.artifacts import anchor_artifact, first_tick_of_day, send_all, views
from flows.orchestration.run_context import (
    aware,
    rename_run,
    run_logger,
    service_for,
    store_flow,
)
from flows.orchestration.waiting_steps import request_steps
from flows.settings import load_settings
from states.status import report

#: Above this many processes even the daily refresh publishes only the processes it changed.
PUBLISH_ALL_UP_TO = 25


@store_flow(name="advance", log_prints=False, persist_result=True)
def advance(now: datetime | None = None, database: str | None = None,
            processes: list[str] | None = None, publish_artifacts: bool = True,
            ask_secretariat: bool = True) -> dict[str, Any]:
    """Apply what is due in every process (or the named ones) at ``now`` (default: the clock)."""
    logger = run_logger()
    with service_for(database) as service:
        at = service.now(aware(now))
        outcomes = service.advance(at, processes)
        witnessed = set(service.anchor(load_settings().audit.witness, processes))
        applied = [
            {"process": o.process_id, "trigger": r.trigger, "label": r.inputs.get("label"),
             "from": r.from_state, "to": r.to_state, "due": r.inputs.get("due")}
            for o in outcomes for r in o.decision.records if r.kind == "transition"
        ]
        messages = [{"process": o.process_id, "label": str(r.inputs.get("event", "message"))
                     .replace("_", " ") + " queued"}
                    for o in outcomes for r in o.decision.records if r.kind == "notice"]
        for step in applied:
            logger.info("%s: %s (%s → %s)", step["process"], step["label"], step["from"],
                        step["to"])
        for problem in service.damaged:
            logger.error("%s", problem)
        unreadable = {d.process_id for d in service.damaged}
        wanted = set(processes) if processes else None
        rows = [r for r in service.store.list()  # one read for every process's view
                if r.process_id not in unreadable
                and (wanted is None or r.process_id in wanted)]
        touched = {o.process_id for o in outcomes} | witnessed
        warnings: dict[str, list[str]] = {}
        for stored in rows:
            process_id = stored.process_id
            definition, instance = service.decode(stored)
            current = report(definition, instance, at)
            urgent = [w for w in current.warnings if w.urgent]
            warnings[process_id] = [w.text for w in urgent]
            for warning in urgent:
                logger.warning("%s: %s", process_id, warning.text)
            if ask_secretariat:
                request_steps(definition, instance, at, database)
            if publish_artifacts and (process_id in touched or (
                    len(rows) <= PUBLISH_ALL_UP_TO
                    and first_tick_of_day(at, definition.timezone))):
                send_all([*views(definition, instance, at, urgent,
                                 service.store.experts(process_id)),
                          anchor_artifact(service.store, stored)])
    rename_run(run_name(applied + messages))
    return {"at": at.isoformat(), "applied": applied, "messages": len(messages),
            "warnings": warnings}


def run_name(applied: list[dict[str, Any]]) -> str:
    """'wtpf-26: Third Draft comment window closed, comment reminder queued', or 'nothing due'
    (a tick that only decided messages says so: an operator should see reminders go out)."""
    if not applied:
        return "nothing due"
    by_process: dict[str, list[str]] = {}
    for step in applied:
        by_process.setdefault(step["process"], []).append(str(step["label"]))
    return "; ".join(f"{pid}: {', '.join(labels)}" for pid, labels in by_process.items())
