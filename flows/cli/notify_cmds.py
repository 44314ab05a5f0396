"""The `prepflow experts` and `prepflow outbox` commands: the nominations register and the
messages waiting to go out. Each change by the secretariat is audited (without addresses), in
the same transaction as the change: a crash cannot leave a change without its entry."""

from __future__ import annotations

import asyncio
import json
import sys
from dataclasses import asdict
from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from flows.addresses import mask_addresses, mask_email
from flows.cli.common import (
    Actor,
    Database,
    Now,
    Process,
    app,
    markup,
    one_process,
    out,
    parse_now,
    service,
)
from flows.nominations import COLUMNS, acknowledgements, check_row, read_csv
from flows.settings import load_settings
from flows.shell import Service
from flows.storage import AuditDraft, DuplicateExpert, Expert, ExpertDraft, UnknownExpert
from flows.storage.notify_model import EXPERT_STATUSES, OUTBOX_STATUSES
from states.errors import SHOWN_PROBLEMS, InputError, first_problems
from states.roles import Act, Via

experts_app = typer.Typer(help="The register of nominated experts.", no_args_is_help=True)
outbox_app = typer.Typer(help="Messages waiting to go out, sent, or failed.",
                         invoke_without_command=True)
app.add_typer(experts_app, name="experts")
app.add_typer(outbox_app, name="outbox")



def _add(svc: Service, process_id: str, drafts: list[ExpertDraft], via: Via, now: datetime,
         source: str) -> list[Expert]:
    _, definition, _ = svc.load(process_id)
    # add_experts adds all of the drafts or raises, so the entry can count them beforehand.
    entry = AuditDraft(at=now, actor=via.member, kind="nominations", inputs={
        "added": len(drafts), "late": sum(d.late for d in drafts), "source": source,
        "via": via.doc()})
    try:
        return svc.store.add_experts(process_id, drafts,
                                     acknowledgements(definition, process_id, drafts, now),
                                     audit=[entry])
    except DuplicateExpert as exc:
        raise InputError(f"{exc} Nothing was imported.") from None


@experts_app.command("import")
def import_cmd(
    file: Annotated[Path, typer.Argument(help=f"CSV with columns {', '.join(COLUMNS)}.")],
    by: Actor,
    process: Process = None,
    skip_invalid: Annotated[bool, typer.Option(help="Import the valid lines, list the bad.")]
    = False,
    database: Database = None, now: Now = None,
) -> None:
    """Import nominations from CSV; a bad line imports nothing unless --skip-invalid.

    Example: prepflow experts import nominations.csv --by wtpf-secretariat
    """
    svc = service(database)
    process_id = one_process(svc, process)
    _, definition, _ = svc.load(process_id)
    at = svc.now(parse_now(now))
    via = svc.admit(process_id, by, Act.REGISTER, "experts import", at)
    checked = read_csv(definition, file, at)
    stored = {e.email for e in svc.store.experts(process_id)}
    fresh = []
    for draft in checked.drafts:
        if draft.email in stored:
            checked.problems.append(f"{mask_email(draft.email)} is already in the register")
        else:
            fresh.append(draft)
    if checked.problems and not skip_invalid:
        raise InputError(f"{file}: {len(checked.problems)} bad line(s), nothing imported: "
                         + first_problems(checked.problems)
                         + ". Fix them, or import the rest with --skip-invalid.")
    added = _add(svc, process_id, fresh, via, at, file.name) if fresh else []
    late = [e for e in added if e.late]
    out.print(markup("imported {} nomination(s) into {}", len(added), process_id)
              + (markup("; {} after the nominations deadline (flagged late)", len(late))
                 if late else ""))
    for problem in checked.problems[:SHOWN_PROBLEMS]:
        out.print(f"  skipped: {escape(problem)}", soft_wrap=True)
    if len(checked.problems) > SHOWN_PROBLEMS:
        out.print(markup("  … and {} more skipped", len(checked.problems) - SHOWN_PROBLEMS))


@experts_app.command("add")
def add_cmd(
    first_name: Annotated[str, typer.Option()], last_name: Annotated[str, typer.Option()],
    entity: Annotated[str, typer.Option()], email: Annotated[str, typer.Option()],
    nominated_by: Annotated[str, typer.Option(help="Member State or Sector Member.")],
    country: Annotated[str, typer.Option()], region: Annotated[str, typer.Option()],
    stakeholder_type: Annotated[str, typer.Option()], by: Actor,
    gender: Annotated[str | None, typer.Option()] = None,
    language: Annotated[str, typer.Option()] = "en",
    timezone: Annotated[str | None, typer.Option(help="IANA zone, e.g. Asia/Tokyo.")] = None,
    process: Process = None, database: Database = None, now: Now = None,
) -> None:
    """Add one nomination.

    Example: prepflow experts add --first-name Ana --last-name Silva --entity Anatel \\
        --email ana@example.br --nominated-by Brazil --country BR --region A \\
        --stakeholder-type government --by wtpf-secretariat
    """
    svc = service(database)
    process_id = one_process(svc, process)
    _, definition, _ = svc.load(process_id)
    at = svc.now(parse_now(now))
    via = svc.admit(process_id, by, Act.REGISTER, "experts add", at)
    row = {"first_name": first_name, "last_name": last_name, "entity": entity, "email": email,
           "nominated_by": nominated_by, "country": country, "region": region,
           "stakeholder_type": stakeholder_type, "gender": gender or "", "language": language,
           "timezone": timezone or ""}
    try:
        draft = check_row(definition, row, at)
    except ValueError as exc:
        raise InputError(f"nomination refused: {exc}.") from None
    (added,) = _add(svc, process_id, [draft], via, at, "experts add")
    out.print(f"added {escape(added.first_name)} {escape(added.last_name)} "
              f"({escape(mask_email(added.email))})"
              + (" — after the nominations deadline (flagged late)" if added.late else ""))


@experts_app.command("list")
def list_cmd(process: Process = None,
             status: Annotated[str | None, typer.Option(help="nominated, confirmed, "
                                                        "withdrawn")] = None,
             database: Database = None) -> None:
    """The register, with status and late flags.

    Example: prepflow experts list --status confirmed
    """
    if status is not None and status not in EXPERT_STATUSES:
        raise InputError(f"--status '{status}' is not a nomination status; choose one of "
                         f"{', '.join(EXPERT_STATUSES)}.")
    svc = service(database)
    process_id = one_process(svc, process)
    table = Table(title=markup("{}: nominated experts", process_id), title_justify="left")
    for column in ("#", "name", "entity", "email", "nominated by", "region", "type", "lang",
                   "status", "late"):
        table.add_column(column)
    for e in svc.store.experts(process_id, status):
        table.add_row(str(e.id), escape(f"{e.first_name} {e.last_name}"), escape(e.entity),
                      escape(e.email), escape(e.nominated_by), e.region, e.stakeholder_type,
                      e.language, e.status, "late" if e.late else "")
    out.print(table)


@experts_app.command("export")
def export_cmd(email: Annotated[str, typer.Argument(help="The person's address.")],
               process: Process = None, database: Database = None) -> None:
    """Everything stored about one person (a data-subject request), as JSON.

    Example: prepflow experts export ana@example.br > ana.json
    """
    svc = service(database)
    process_id = one_process(svc, process)
    wanted = email.strip().lower()
    people = [e for e in svc.store.experts(process_id) if e.email == wanted]
    if not people:
        raise InputError(f"no nomination with address {mask_email(wanted)} in {process_id}.")
    messages = [m for m in svc.store.outbox(process_id) if m.email == wanted]
    body = {"expert": asdict(people[0]), "messages": [asdict(m) for m in messages]}
    sys.stdout.write(json.dumps(body, indent=2, default=str, ensure_ascii=False) + "\n")


@experts_app.command("erase")
def erase_cmd(email: Annotated[str, typer.Argument(help="The person's address.")], by: Actor,
              reason: Annotated[str, typer.Option(help="The request's reference.")],
              process: Process = None, database: Database = None, now: Now = None) -> None:
    """Erase a person's data from the register and the outbox; the audit chain stays valid.

    Example: prepflow experts erase ana@example.br --by wtpf-secretariat --reason "DSR-2025-07"
    """
    svc = service(database)
    process_id = one_process(svc, process)
    at = svc.now(parse_now(now))
    via = svc.admit(process_id, by, Act.ERASE, "experts erase", at)
    wanted = email.strip().lower()
    person = [e for e in svc.store.experts(process_id) if e.email == wanted]
    if not person:
        raise InputError(f"no nomination with address {mask_email(wanted)} in {process_id}.")
    entry = AuditDraft(at=at, actor=via.member, kind="erasure", reason=reason,
                       inputs={"expert": person[0].id, "via": via.doc()})
    rows = svc.store.erase_expert(process_id, wanted, audit=[entry])
    out.print(markup("erased expert #{} ({} stored row(s) scrubbed)", person[0].id, rows))


@experts_app.command("status")
def status_cmd(email: Annotated[str, typer.Argument()],
               status: Annotated[str, typer.Argument(help="nominated, confirmed, withdrawn")],
               by: Actor, process: Process = None, database: Database = None,
               now: Now = None) -> None:
    """Confirm or withdraw a nomination (withdrawn experts receive nothing more).

    Example: prepflow experts status ana@example.br confirmed --by wtpf-secretariat
    """
    svc = service(database)
    process_id = one_process(svc, process)
    at = svc.now(parse_now(now))
    via = svc.admit(process_id, by, Act.REGISTER, "experts status", at)
    wanted = email.strip().lower()
    # The entry names the expert by register id (no address in the audit log), so it is
    # looked up first; set_expert_status still refuses, writing nothing, if the expert is
    # erased meanwhile.
    known = {e.email: e.id for e in svc.store.experts(process_id) if not e.erased}
    if wanted not in known:
        raise UnknownExpert(process_id, wanted)
    entry = AuditDraft(at=at, actor=via.member, kind="nomination-status",
                       inputs={"expert": known[wanted], "status": status, "via": via.doc()})
    try:
        expert = svc.store.set_expert_status(process_id, wanted, status, audit=[entry])
    except ValueError as exc:
        raise InputError(str(exc)) from None
    out.print(markup("expert #{} is now {}", expert.id, status))


@outbox_app.callback()
def outbox_cmd(ctx: typer.Context, process: Process = None,
               status: Annotated[str | None, typer.Option(
                   help="pending, sending, sent, failed, uncertain")] = None,
               show_addresses: Annotated[bool, typer.Option(
                   help="Show full addresses (for the secretariat); masked by default.")]
               = False,
               database: Database = None) -> None:
    """List messages (pending, sent, failed, uncertain); subcommands retry and deliver.

    Addresses are personal data: shown masked (j***@itu.int) unless --show-addresses.
    Example: prepflow outbox --status failed
    """
    if ctx.invoked_subcommand is not None:
        return
    if status is not None and status not in OUTBOX_STATUSES:
        raise InputError(f"--status '{status}' is not a message status; choose one of "
                         f"{', '.join(OUTBOX_STATUSES)}.")
    svc = service(database)
    table = Table(title="Outbox", title_justify="left")
    for column in ("id", "process", "event", "to", "status", "tries", "last error / reply"):
        table.add_column(column)
    shown = (lambda text: text) if show_addresses else mask_addresses
    for m in svc.store.outbox(process, status):
        to = m.email if show_addresses else mask_email(m.email)
        table.add_row(str(m.id), m.process_id, m.event, escape(to), _status(m.status, m.sends),
                      str(m.attempts), escape(shown(m.last_error or m.reply or "")))
    out.print(table)


def _status(status: str, sends: int) -> str:
    """The status, and whether the message may have reached a server more than once (its
    copies share one Message-ID, so a receiving system can drop them). "Maybe": a send whose
    fate was unknown (a dropped connection, a run that died) counts as one."""
    if status == "sent" and sends > 1:
        return "sent, maybe twice (same Message-ID)" if sends == 2 else \
            f"sent, maybe {sends} times (same Message-ID)"
    if status in ("pending", "uncertain") and sends > 0:
        return f"{status} (may have arrived already)"
    return status


@outbox_app.command("retry")
def retry_cmd(item: Annotated[int, typer.Argument(help="Outbox id.")], by: Actor,
              reason: Annotated[str, typer.Option(help="Why (an uncertain message may "
                                                  "already have arrived).")],
              database: Database = None, now: Now = None) -> None:
    """Queue a failed or uncertain message again (audited: it may be sent twice).

    Example: prepflow outbox retry 42 --by wtpf-secretariat --reason "mailbox fixed"
    """
    svc = service(database)
    at = svc.now(parse_now(now))
    target = [m for m in svc.store.outbox() if m.id == item]
    if not target:
        raise InputError(f"no message {item} in the outbox; see 'prepflow outbox'.")
    if target[0].status == "pending":
        raise InputError(f"message {item} is pending; only failed or uncertain messages can be "
                         "retried (it goes out with the next 'prepflow outbox deliver').")
    via = svc.admit(target[0].process_id, by, Act.OUTBOX, "outbox retry", at)
    entry = AuditDraft(at=at, actor=via.member, kind="outbox-retry", reason=reason, inputs={
        "message": item, "event": target[0].event, "was": target[0].status, "via": via.doc()})
    try:
        again = svc.store.requeue(item, at, audit=[entry])
    except ValueError as exc:
        raise InputError(str(exc)) from None
    out.print(markup("message {} ({}) is pending again", again.id, again.event))


@outbox_app.command("deliver")
def deliver_cmd(
    dry_run: Annotated[bool, typer.Option(help="Show what would go out; send nothing.")] = False,
    limit: Annotated[int, typer.Option(min=1)] = 5000,
    database: Database = None, now: Now = None,
) -> None:
    """Send queued messages through SMTP (PREPFLOW_SMTP_* settings), or --dry-run.

    Example: PREPFLOW_SMTP_HOST=smtp.example.org prepflow outbox deliver --dry-run
    """
    from flows.mail.delivery import preview
    from flows.mail.render import Renderer
    from flows.orchestration.deliver import run_delivery

    settings = load_settings()
    svc = service(database, settings)
    at = svc.now(parse_now(now))
    if dry_run:
        renderer = Renderer(settings.smtp.sender)
        found = asyncio.run(preview(svc.store, at, renderer=renderer, limit=limit))
        table = Table(title=markup("{} message(s) would go out now (nothing sent)", len(found)),
                      title_justify="left")
        for column in ("id", "event", "to", "subject", "idempotency key"):
            table.add_column(column)
        for item, message in found:
            subject = message if isinstance(message, str) else str(message["Subject"])
            table.add_row(str(item.id), item.event, mask_email(item.email), escape(subject),
                          item.key)
        out.print(table)
        return
    report = run_delivery(svc, at, limit, settings.smtp)
    out.print(markup("delivery: {}", report))
    for problem in report.problems:
        out.print(markup("  #{} {} to {}: {}", problem.id, problem.event,
                         mask_addresses(problem.recipient), mask_addresses(problem.error)),
                  soft_wrap=True)
    if report.failed or report.uncertain:
        raise typer.Exit(1)
