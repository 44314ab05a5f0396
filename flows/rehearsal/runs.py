"""Acting in a rehearsal: one real flow run per step, and the audit log read back as lines.

The driver and every stage action (``flows.rehearsal.stages``) act through these, so each
thing a rehearsal does is a real, audited flow run whose entries reach the transcript.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any, cast

from prefect.client.schemas.objects import State

from flows.orchestration.advance import advance
from flows.orchestration.deliver import deliver_notifications
from flows.orchestration.run_context import service_for
from flows.orchestration.secretariat import Amendment, secretariat_amend
from flows.rehearsal.stepping import Rehearsal
from flows.rehearsal.transcript import describe_entries, window_text
from flows.storage import AuditEntry
from states.contributions import summarize
from states.instance import Instance


def run_flow(r: Rehearsal, flow_fn: Callable[..., object], **kwargs: object) -> State[Any]:
    """One real flow run. Views are published once at the end, not by every step, and no
    await-secretariat run is requested: the scripted secretariat answers instead."""
    r.runs += 1
    if flow_fn is advance:
        kwargs["ask_secretariat"] = False
    if flow_fn is deliver_notifications:
        kwargs["limit"] = 100_000
    return cast("State[Any]", flow_fn(return_state=True, publish_artifacts=False, **kwargs))


def amend(r: Rehearsal, now: datetime, key: str, value: str, reason: str,
          override: bool = False) -> bool:
    """``prepflow amend`` by the rehearsal's actor, through the secretariat-amend flow;
    False when it was refused (the refusal is audited and reaches the transcript)."""
    change = Amendment(process=r.pid, milestone=key, date=value, actor=r.actor, token=r.secret,
                       reason=reason, override=override)
    state = run_flow(r, secretariat_amend, change=change, now=now, database=r.database)
    return bool(state.is_completed())


def current(r: Rehearsal) -> Instance:
    """The rehearsed process as the store holds it now."""
    with service_for(r.database) as service:
        _, _, instance = service.load(r.pid)
    return instance


def read_back(r: Rehearsal) -> list[AuditEntry]:
    """Turn the audit entries written since last time into transcript lines; returns them."""
    with service_for(r.database) as service:
        entries = [e for e in service.store.audit(r.pid) if e.seq > r.seen]
        _, _, instance = service.load(r.pid)
    if entries:
        r.seen = entries[-1].seq
    r.lines.extend(describe_entries(r.definition, entries, instance))
    return entries


def comment_windows(r: Rehearsal) -> list[str]:
    """The register at the end, one line per draft's comment window (late ones included, as
    ``prepflow comments summary`` counts them)."""
    with service_for(r.database) as service:
        register = service.store.contributions(r.pid)
    return [f"# comments {window_text(r.definition, summarize(register, c.id))}"
            for c in r.definition.cycles if c.comment_deadline is not None]
