"""Draining the outbox: the ``deliver-notifications`` flow and the CLI's ``outbox deliver``.

Runs the SMTP delivery (flows/mail/delivery.py) over the store and tells each process's
secretariat about messages that failed for good or whose fate is uncertain. Addresses never
reach Prefect logs, run names or artifacts: only counts and masked addresses do.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections import Counter
from dataclasses import asdict, replace
from datetime import datetime, timedelta
from typing import Any

from flows.addresses import mask_addresses
from flows.mail.delivery import DeliveryProblem, DeliveryReport, deliver, preview
from flows.mail.mail_transport import SmtpMailer
from flows.mail.render import Renderer
from flows.orchestration.run_context import (
    aware,
    rename_run,
    run_logger,
    service_for,
    store_flow,
)
from flows.settings import SmtpSettings, SmtpTarget, load_settings
from flows.shell import Service
from flows.storage import OutboxDraft
from states.messages import DeliveryFailures


def run_delivery(service: Service, now: datetime, limit: int = 5000,
                 settings: SmtpSettings | None = None) -> DeliveryReport:
    """Send what is due now through SMTP; report failures to the secretariat (queued)."""
    settings = settings or load_settings().smtp

    async def go() -> DeliveryReport:
        async with SmtpMailer(settings) as mailer:
            return await deliver(service.store, mailer, now, renderer=Renderer(settings.sender),
                                 limit=limit,
                                 concurrency=settings.concurrency,
                                 max_attempts=settings.max_attempts,
                                 backoff=timedelta(seconds=settings.backoff_seconds),
                                 stale_after=timedelta(seconds=settings.stale_after_seconds),
                                 uncertain=settings.uncertain)

    report = asyncio.run(go())
    report_failures(service, report, now)
    return report


def _listing(failed: int, uncertain: int) -> str:
    """The command that lists exactly the reported kinds (all uncertain: not --status failed)."""
    kinds = [k for k, n in (("failed", failed), ("uncertain", uncertain)) if n]
    return "; ".join(f"prepflow outbox --status {k}" for k in kinds)


def report_failures(service: Service, report: DeliveryReport, now: datetime) -> int:
    """One 'delivery failures' message per process and secretariat member, once per set."""
    by_process: dict[str, list[DeliveryProblem]] = {}
    for problem in report.problems:
        if problem.event == "delivery_failures":
            continue  # never report a failed report by mail: it shows in `prepflow outbox`
        by_process.setdefault(problem.process, []).append(problem)
    rows = []
    for process_id, items in by_process.items():
        _, definition, _ = service.load(process_id)
        ids = ",".join(str(i.id) for i in items)
        tag = hashlib.sha256(ids.encode()).hexdigest()[:12]
        failed = sum(not i.uncertain for i in items)
        context = DeliveryFailures.model_validate({
            "process_id": process_id, "process_name": definition.name,
            "forum": definition.forum.name, "timezone": definition.timezone,
            "failed": failed, "uncertain": len(items) - failed,
            "items": [{"id": i.id, "event": i.event, "recipient": i.recipient, "error": i.error}
                      for i in items],
            "command": _listing(failed, len(items) - failed)}).model_dump(mode="json")
        for member in definition.secretariat:
            rows.append(OutboxDraft(
                key=f"{process_id}:delivery-failures:{tag}:member:{member.id}",
                process_id=process_id, event="delivery_failures", recipient=f"member:{member.id}",
                email=member.email, name=member.name, language="en",
                timezone=definition.timezone, context=context, created_at=now))
    return service.store.enqueue(rows) if rows else 0


def dry_run(service: Service, now: datetime, limit: int = 5000,
            settings: SmtpSettings | None = None) -> Counter[str]:
    """What a delivery now would send, counted by event; nothing is claimed or sent."""
    sender = (settings or load_settings().smtp).sender
    found = asyncio.run(preview(service.store, now, renderer=Renderer(sender), limit=limit))
    return Counter(item.event if not isinstance(message, str) else f"{item.event} (not "
                   "renderable)" for item, message in found)


def unconfigured(smtp: SmtpSettings, report: DeliveryReport) -> str | None:
    """'SMTP not configured (…)' when nothing went out and no SMTP server was set: the
    messages wait for one, and the run says why rather than 'delivered 0, 2 to retry'."""
    if "host" in smtp.model_fields_set or report.sent or not (report.retried or report.failed):
        return None
    return (f"SMTP not configured (PREPFLOW_SMTP_HOST is unset and nothing accepts mail at "
            f"{smtp.host}:{smtp.port}; set PREPFLOW_SMTP_HOST, or run 'prepflow up', whose "
            "local catcher writes each message to a folder)")


@store_flow(name="deliver-notifications", log_prints=False, persist_result=True)
def deliver_notifications(database: str | None = None, now: datetime | None = None,
                          limit: int | None = None, dry_run_only: bool = False,
                          publish_artifacts: bool = True,
                          smtp: SmtpTarget | None = None) -> dict[str, Any]:
    """Send the queued messages (a crash loses none; a copy sent twice is counted); counts
    only.

    ``smtp`` sends to another server than the configured one (a rehearsal's local sink)."""
    logger = run_logger()
    settings = load_settings().pointed_at(smtp)
    limit = limit or settings.prefect.deliver_limit
    with service_for(database) as service:  # the URL, else the settings' (run_context)
        at = service.now(aware(now))
        if dry_run_only:
            counts = dry_run(service, at, limit, settings.smtp)
            rename_run(f"dry run: {sum(counts.values())} message(s) would go out")
            return {"would_send": dict(counts)}
        report = run_delivery(service, at, limit, settings.smtp)
    logger.info("delivery: %s", report)
    # deliver() masks already; masked again at the one door to Prefect's logs and artifacts,
    # so a problem text added later cannot carry an address through (issue 4).
    shown = [replace(problem, recipient=mask_addresses(problem.recipient),
                     error=mask_addresses(problem.error)) for problem in report.problems]
    for problem in shown:
        logger.warning("message %s (%s) to %s: %s", problem.id, problem.event,
                       problem.recipient, problem.error)
    cause = unconfigured(settings.smtp, report) if smtp is None else None
    if cause:
        logger.warning("%s", cause)
    if publish_artifacts and (cause or (report.sent + report.failed + report.uncertain
                                        + report.recovered) > 0):
        from prefect.artifacts import create_table_artifact

        create_table_artifact(
            [asdict(problem) for problem in shown[:200]] or [{"problems": cause or "none"}],
            key="delivery-summary",
            description=(f"{cause}. " if cause else "")
            + f"Last delivery run: {report} (addresses masked)")
    rename_run(("SMTP not configured (PREPFLOW_SMTP_HOST unset): " if cause else "")
               + f"delivered {report.sent}"
               + (f", {report.failed} failed" if report.failed else "")
               + (f", {report.retried} to retry" if report.retried else "")
               + (f", {report.uncertain} uncertain" if report.uncertain else "")
               + (f", {report.recovered} recovered" if report.recovered else ""))
    return {"sent": report.sent, "retried": report.retried, "failed": report.failed,
            "uncertain": report.uncertain, "recovered": report.recovered,
            "resent": report.resent}
