"""The scheduled tick: apply every automatic transition that is due, then show the result.

Deadlines are checks on a tick, not timers: a frequent cron schedule runs this flow; the core's
``advance(now)`` is idempotent, so a duplicated, late or DST-doubled run applies each
transition once. A two-year plan is never one long-running or paused flow.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from flows.orchestration import operator_view as view
from flows.orchestration.artifacts import (
    Artifact,
    anchor_artifact,
    first_tick_of_day,
    send_all,
    views,
)
from flows.orchestration.run_context import (
    aware,
    rename_run,
    run_logger,
    service_for,
    store_flow,
)
from flows.orchestration.waiting_steps import request_steps
from flows.settings import load_settings
from flows.shell import Service
from flows.storage import StoredProcess
from flows.ticking import Tick
from states.status import report

#: Above this many processes even the daily refresh publishes only the processes it changed.
PUBLISH_ALL_UP_TO = 25


@store_flow(name="advance", log_prints=False, persist_result=True)
def advance(now: datetime | None = None, database: str | None = None,
            processes: list[str] | None = None, publish_artifacts: bool = True,
            ask_secretariat: bool = True) -> dict[str, Any]:
    """Apply what is due in every process (or the named ones) at ``now`` (default: the clock).

    Each process stands alone: one that fails is logged, shown in its alerts artifact and in
    the ``advance-report`` table, and the run ends Failed naming it, after every other process
    has advanced and published as usual.
    """
    logger = run_logger()
    with service_for(database) as service:
        at = service.now(aware(now))
        tick = service.tick(at, processes)
        outcomes = tick.outcomes
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
        failed = {r.process_id: r.reason for r in tick.failed}
        for process_id, reason in failed.items():
            logger.error("%s: not advanced: %s", process_id, reason)
        wanted = set(processes) if processes else None
        rows = [r for r in service.store.list()  # one read for every process's view
                if r.process_id not in failed
                and (wanted is None or r.process_id in wanted)]
        touched = {o.process_id for o in outcomes} | witnessed
        warnings: dict[str, list[str]] = {}
        for stored in rows:
            try:
                warnings[stored.process_id] = _show(
                    service, stored, at, database, ask_secretariat,
                    publish_artifacts and stored.process_id in touched,
                    publish_artifacts and len(rows) <= PUBLISH_ALL_UP_TO)
            except Exception as exc:  # noqa: BLE001 - one process's views must not stop the rest
                failed[stored.process_id] = "its views could not be made or published: " + (
                    " ".join(str(exc).split()) or type(exc).__name__)
                logger.error("%s: %s", stored.process_id, failed[stored.process_id])
        if publish_artifacts and (failed or outcomes):
            send_all(report_artifacts(tick, failed))
    rename_run(run_name(applied + messages, sorted(failed)))
    if failed:
        raise TickFailed(failed, len(tick.results))
    return {"at": at.isoformat(), "applied": applied, "messages": len(messages),
            "warnings": warnings}


class TickFailed(Exception):
    """Some processes were not advanced; every other one was (the run's name, its logs and the
    ``advance-report`` artifact say which)."""

    def __init__(self, failed: dict[str, str], looked_at: int) -> None:
        self.failed = failed
        names = "; ".join(f"{pid}: {reason}" for pid, reason in sorted(failed.items()))
        super().__init__(f"{len(failed)} of {looked_at} processes could not be advanced and "
                         f"will be tried again at the next tick; the others advanced. {names}")


def _show(service: Service, stored: StoredProcess, at: datetime, database: str | None,
          ask: bool, publish: bool, daily: bool) -> list[str]:
    """One process's urgent warnings (logged), its await-secretariat requests (if ``ask``) and
    its views (when ``publish``, or ``daily`` on the first tick of its day); returns the
    warnings' texts."""
    logger = run_logger()
    definition, instance = service.decode(stored)
    publish = publish or (daily and first_tick_of_day(at, definition.timezone))
    current = report(definition, instance, at)
    urgent = [w for w in current.warnings if w.urgent]
    for warning in urgent:
        logger.warning("%s: %s", stored.process_id, warning.text)
    if ask:
        request_steps(definition, instance, at, database)
    if publish:
        send_all([*views(definition, instance, at, urgent,
                         service.store.experts(stored.process_id)),
                  anchor_artifact(service.store, stored)])
    return [w.text for w in urgent]


def report_artifacts(tick: Tick, failed: dict[str, str]) -> list[Artifact]:
    """The tick's table, one row per process (``advance-report``), and for each failed process
    its alerts artifact saying so (its other views are left as they were)."""
    rows = []
    for result in tick.results:
        records = result.outcome.decision.records if result.outcome else ()
        steps = [str(r.inputs.get("label", r.trigger)) for r in records
                 if r.kind == "transition"]
        reason = failed.get(result.process_id)
        status = "failed" if reason else str(result.status)
        rows.append({"process": result.process_id, "status": status,
                     "detail": reason or ", ".join(steps)})
    items = [Artifact("advance-report", f"advance at {tick.at.isoformat()}: "
                      f"{len(failed)} of {len(rows)} processes failed", rows=rows)]
    for process_id, reason in sorted(failed.items()):
        items.append(Artifact(view.artifact_key(process_id, "alerts"),
                              f"{process_id}: overdue steps and rules at risk",
                              f"### Alerts for {process_id}\n\n- not advanced at "
                              f"{tick.at.isoformat()}: {reason}. The next tick tries again."))
    return items


def run_name(applied: list[dict[str, Any]], failed: Sequence[str] = ()) -> str:
    """'wtpf-26: Third Draft comment window closed, comment reminder queued', or 'nothing due'
    (a tick that only decided messages says so: an operator should see reminders go out);
    then 'FAILED: rpd-27' when a process could not be advanced."""
    by_process: dict[str, list[str]] = {}
    for step in applied:
        by_process.setdefault(step["process"], []).append(str(step["label"]))
    name = "; ".join(f"{pid}: {', '.join(labels)}" for pid, labels in by_process.items())
    if failed:
        return f"FAILED: {', '.join(failed)}" + (f"; {name}" if name else "")
    return name or "nothing due"
