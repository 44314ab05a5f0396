"""The process commands: check, init, status, timeline, advance, transition, amend, audit,
diagram.

Every error is one readable paragraph and an exit status: 2 for bad input (nothing changed),
1 for a rule's refusal (recorded in the audit log, state unchanged), 0 for success.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from flows.calendar_export import to_ics
from flows.cli import console as render
from flows.cli import wallclock
from flows.cli.common import (
    Actor,
    Database,
    Now,
    app,
    err,
    markup,
    out,
    parse_now,
    process_ids,
    service,
    write_output,
)
from flows.definition_file import load_definition
from flows.settings import load_settings
from states.definition import ProcessDefinition
from states.definition_parts import SLUG_MAX, SLUG_PATTERN
from states.errors import InputError
from states.machine import mermaid
from states.plan import Span, milestone_keys, plan_milestones
from states.rules import Status, check, effective_milestones


@app.command("check")
def check_cmd(
    definition: Annotated[Path, typer.Argument(help="Process definition file (YAML).")],
    forum_date: Annotated[str | None, typer.Option(
        "--forum-date", help="What if the forum opened on this date (YYYY-MM-DD)?")] = None,
    set_: Annotated[list[str] | None, typer.Option(
        "--set", help="What if MILESTONE=DATE (repeatable), e.g. --set ieg2=2025-02-10..2025-02-12"
    )] = None,
) -> None:
    """Check a plan against every rule without touching any state.

    Exit 0 when every rule holds, 1 when one breaks, 2 on invalid input.

    Examples:
      prepflow check config/wtpf26.yaml --forum-date 2026-05-10
      prepflow check config/wtpf26.yaml --set final.posting=2026-03-20 --forum-date 2026-05-10
    """
    spec = load_definition(definition)
    changes: dict[str, Span] = {}
    pairs = [("--forum-date", f"forum={forum_date}")] if forum_date else []
    for option, pair in [*(("--set", p) for p in set_ or []), *pairs]:
        key, sep, value = pair.partition("=")
        if not sep or key.strip() not in milestone_keys(spec):
            raise InputError(f"{option} '{pair}': expected MILESTONE=DATE with MILESTONE one of "
                             f"{', '.join(milestone_keys(spec))}.")
        try:
            changes[key.strip()] = Span.parse(value.strip())
        except ValueError as exc:
            raise InputError(f"{option} {value.strip()}: {exc}.") from None
    results = check(spec, effective_milestones(spec, None, changes))
    out.print(markup("[bold]{}[/]: {} rule checks", spec.id, len(results)), soft_wrap=True)
    render.rules(out, results)
    failed = [r for r in results if r.status is Status.FAIL]
    out.print(markup("{} broken, {} at risk or not checkable.", len(failed),
                     sum(r.status is Status.UNKNOWN for r in results)))
    if failed:
        raise typer.Exit(1)


@app.command("init")
def init_cmd(definition: Annotated[Path, typer.Argument(help="Process definition (YAML).")],
             process_id: Annotated[str | None, typer.Option(
                 "--id", help="Process id; default: the definition's id.")] = None,
             database: Database = None, now: Now = None) -> None:
    """Create the process instance from a definition (safe to repeat).

    Example: prepflow init config/wtpf26.yaml
    """
    if process_id is not None and (len(process_id) > SLUG_MAX
                                   or not re.fullmatch(SLUG_PATTERN, process_id)):
        raise InputError(f"--id '{process_id}' is not a process id: use lower-case letters, "
                         f"digits and dashes (at most {SLUG_MAX}), starting with a letter, "
                         "e.g. wtpf-26-rehearsal.")
    spec = load_definition(definition)
    created = service(database).init(spec, parse_now(now), process_id)
    name = process_id or spec.id
    verb = "created" if created else "already exists (unchanged)"
    out.print(markup("process [bold]{}[/] {}. Next: prepflow status {}", name, verb, name))


@app.command("status")
def status_cmd(process: Annotated[str | None, typer.Argument(help="Process id.")] = None,
               database: Database = None, now: Now = None) -> None:
    """Current states, next milestones with countdowns, overrides and warnings.

    Example: prepflow status wtpf-26
    """
    svc = service(database)
    for process_id in process_ids(svc, process):
        stored, definition, _ = svc.load(process_id)
        render.status(out, svc.status(process_id, parse_now(now)), definition.timezone)
        entries = "entry" if stored.audit_seq == 1 else "entries"
        out.print(markup("(version {}, {} audit {})", stored.version, stored.audit_seq, entries))
        note = wallclock.last_change_note(svc.store.audit(process_id), definition.timezone)
        if note:
            out.print(escape(note))


@app.command("timeline")
def timeline_cmd(
    process: Annotated[str | None, typer.Argument(help="Process id.")] = None,
    format_: Annotated[str, typer.Option("--format", help="table or ics")] = "table",
    output: Annotated[Path | None, typer.Option("--output", "-o",
                                                help="Write here instead of stdout.")] = None,
    database: Database = None, now: Now = None,
) -> None:
    """Plan vs actual; --format ics writes an RFC 5545 calendar of deadlines and meetings.

    Examples:
      prepflow timeline wtpf-26
      prepflow timeline wtpf-26 --format ics -o wtpf26.ics
    """
    if format_ not in ("table", "ics"):
        raise InputError(f"--format '{format_}': use table or ics.")
    svc = service(database)
    for process_id in process_ids(svc, process):
        _, definition, instance = svc.load(process_id)
        effective = effective_milestones(definition, instance)
        if format_ == "table":
            render.timeline(out, definition, plan_milestones(definition), effective, instance)
            continue
        data, skipped = to_ics(definition, effective, svc.now(parse_now(now)))
        if output:
            write_output(output, data, "--output")
            out.print(markup("wrote {}", output))
        else:
            sys.stdout.buffer.write(data)
        for item in skipped:
            err.print(markup("not in the calendar (day not fixed): {} {}", item.key,
                             item.span_text()))


@app.command("advance")
def advance_cmd(now: Now = None, database: Database = None,
                process: Annotated[list[str] | None, typer.Option(
                    "--process", help="Only these processes (repeatable).")] = None) -> None:
    """Apply every automatic transition that is due (safe to run late or twice).

    Each process stands alone: one that cannot be advanced is named with why, the others
    advance. Exit 1 when a process was not advanced.

    Example: prepflow advance --now 2024-08-27T00:00+02:00
    """
    settings = load_settings()
    svc = service(database, settings)
    tick = svc.tick(parse_now(now), process)
    svc.anchor(settings.audit.witness, process)
    steps = [(o.process_id, r) for o in tick.outcomes for r in o.decision.records
             if r.kind == "transition"]
    for process_id, record in steps:
        out.print(markup("{}: {} ({} → {})", process_id,
                         record.inputs.get("label", record.trigger), record.from_state,
                         record.to_state), soft_wrap=True)
    for failure in tick.failed:
        err.print(markup("[bold red]{}: not advanced:[/] {}", failure.process_id,
                         failure.reason), soft_wrap=True)
    if not steps and not tick.failed:
        out.print("nothing due.")
    if tick.failed:
        err.print(markup("{} of {} processes not advanced (the next advance tries them again); "
                         "the others advanced as shown.", len(tick.failed), len(tick.results)),
                  soft_wrap=True)
        raise typer.Exit(1)


@app.command("transition")
def transition_cmd(
    process: Annotated[str, typer.Argument(help="Process id, e.g. wtpf-26.")],
    trigger: Annotated[str, typer.Argument(help="Manual trigger, e.g. post_draft2.")],
    by: Actor,
    document: Annotated[str | None, typer.Option(help="Document reference posted.")] = None,
    reason: Annotated[str | None, typer.Option(help="Why (required with --override).")] = None,
    override: Annotated[bool, typer.Option(help="Set aside an overridable rule.")] = False,
    database: Database = None, now: Now = None,
) -> None:
    """Fire a manual transition (post a draft or the final report).

    Examples:
      prepflow transition wtpf-26 post_draft2 --by wtpf-secretariat --document WTPF-26/2
      prepflow transition wtpf-26 post_final --by wtpf-secretariat --document WTPF-26/F \\
          --override --reason "Council has not set the forum date yet"
    """
    outcome = service(database).transition(process, trigger, by, document, reason, override,
                                           parse_now(now))
    for record in outcome.decision.records:
        if record.kind == "notice":
            out.print(markup("message decided: {} to {}", record.inputs.get("event"),
                             record.inputs.get("audience")), soft_wrap=True)
            continue
        label = record.inputs.get("label", record.trigger)
        out.print(markup("{}: {} ({} → {})", record.kind, label, record.from_state,
                         record.to_state), soft_wrap=True)


@app.command("amend")
def amend_cmd(
    process: Annotated[str, typer.Argument(help="Process id.")],
    milestone: Annotated[str, typer.Argument(help="e.g. ieg2, draft3.comments, forum.")],
    date: Annotated[str, typer.Argument(help="2025-02-10, 2025-02 or 2025-02-10..2025-02-12")],
    by: Actor,
    reason: Annotated[str, typer.Option(help="Why the date changes (recorded).")],
    override: Annotated[bool, typer.Option(help="Accept breaking a rule, with reason.")] = False,
    database: Database = None, now: Now = None,
) -> None:
    """Change a milestone's date (or the forum's); every rule is re-checked.

    Examples:
      prepflow amend wtpf-26 ieg1 2024-10-07..2024-10-08 --by wtpf-secretariat --reason CL-24/44
      prepflow amend wtpf-26 forum 2026-06-02 --by wtpf-secretariat --reason "Council decision"
    """
    outcome = service(database).amend(process, milestone, date, by, reason, override,
                                      parse_now(now))
    for record in outcome.decision.records:
        if record.kind == "notice":
            shown = f"{record.inputs.get('event')} to {record.inputs.get('audience')}"
        else:
            shown = record.inputs.get("message") or (
                f"{record.inputs.get('milestone')}: {record.inputs.get('from')} → "
                f"{record.inputs.get('to')}")
        out.print(markup("{}: {}", record.kind, str(shown)), soft_wrap=True)


@app.command("audit")
def audit_cmd(process: Annotated[str | None, typer.Argument(help="Process id.")] = None,
              verify: Annotated[bool, typer.Option(help="Check the hash chain.")] = False,
              database: Database = None) -> None:
    """Show the audit log, or verify that nobody edited, deleted or reordered it.

    Examples:
      prepflow audit wtpf-26
      prepflow audit --verify
    """
    settings = load_settings()
    svc = service(database, settings)
    if process:
        svc.store.get(process)
    if verify:
        problems = svc.verify(process, settings.audit.witness)
        if problems:
            err.print("[bold red]The audit log has been tampered with:[/]")
            for problem in problems:
                err.print(f"  - {escape(problem)}", soft_wrap=True)
            raise typer.Exit(1)
        count = len(svc.store.audit(process))
        out.print(markup("audit log intact: {} {} verified.", count,
                         "entry" if count == 1 else "entries"))
        return
    log = svc.store.audit(process)
    zones = {pid: svc.definition(svc.store.get(pid)).timezone
             for pid in sorted({e.process_id for e in log})}
    render.audit(out, log, None, zones)


@app.command("diagram")
def diagram_cmd(
    definition: Annotated[Path, typer.Argument(help="Definition file.")],
    write: Annotated[Path | None, typer.Option(
        "--write", help="Replace the diagram between the markers in this file (README.md).")
    ] = None,
) -> None:
    """Print the state diagram (mermaid) built from a definition's state machine.

    Example: prepflow diagram config/wtpf26.yaml --write README.md
    """
    text = diagram_markdown(load_definition(definition))
    if write is None:
        out.print(text, soft_wrap=True, markup=False)
        return
    try:
        page = write.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"--write {write}: cannot be read as UTF-8 text ({exc}); give the "
                         "README (or another file) holding the diagram markers.") from None
    if DIAGRAM_START not in page or DIAGRAM_END not in page:
        raise InputError(f"{write} has no {DIAGRAM_START} … {DIAGRAM_END} markers.")
    head, rest = page.split(DIAGRAM_START, 1)
    write_output(write, f"{head}{DIAGRAM_START}\n{text}{DIAGRAM_END}"
                 f"{rest.split(DIAGRAM_END, 1)[1]}", "--write")
    out.print(markup("updated the diagram in {}", write))


DIAGRAM_START, DIAGRAM_END = "<!-- diagram:start -->", "<!-- diagram:end -->"


def diagram_markdown(spec: ProcessDefinition) -> str:
    """The machine's regions as fenced mermaid blocks, as the README shows them."""
    return "".join(f"```mermaid\n{block}\n```\n" for block in mermaid(spec))


