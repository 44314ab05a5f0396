"""Reshaping a running process: `prepflow meetings add|cancel|split|change` and `revise`.

Each command builds the next version of the process's definition from the one in force
(states/reshape.py) and asks the core whether the process may move to it
(states/revision.py): history kept, rules re-checked, experts sent updated invitations. A
refusal exits 1 and is audited; bad input exits 2 and changes nothing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from flows.cli.common import Actor, Database, Now, app, markup, out, parse_now, service
from flows.definition_file import load_definition
from flows.shell import Outcome, Reshape
from states import reshape
from states.definition import ProcessDefinition
from states.errors import InputError
from states.reshape import Dates, Session, mode_of

meetings_app = typer.Typer(help="Add, cancel, split or change meetings of a running process.",
                           no_args_is_help=True)
app.add_typer(meetings_app, name="meetings")

Process = Annotated[str, typer.Argument(help="Process id, e.g. wtpf-26.")]
Reason = Annotated[str, typer.Option(help="Why (recorded in the audit log, told to experts).")]
Override = Annotated[bool, typer.Option(help="Accept breaking a rule, with --reason.")]
ModeOption = Annotated[str | None, typer.Option(
    "--mode", help="physical (in-person), virtual or hybrid.")]
Place = Annotated[str | None, typer.Option(help="Where, e.g. Geneva ('' for none).")]


def _run(database: str | None, process: str, build: Reshape, by: str, reason: str,
         override: bool, now: str | None, action: str, inputs: dict[str, object],
         sessions: tuple[str, ...] = ()) -> None:
    outcome = service(database).revise(process, build, by, reason, override, parse_now(now),
                                       action, inputs, sessions)
    _show(outcome)


def _show(outcome: Outcome) -> None:
    for record in outcome.decision.records:
        if record.kind == "revision":
            out.print(markup("revised {}: {} change(s)", outcome.process_id,
                             len(record.inputs["changes"])), soft_wrap=True)
            for change in record.inputs["changes"]:
                out.print(f"  - {escape(str(change))}", soft_wrap=True)
        elif record.kind == "notice":
            out.print(markup("message decided: {} to {}", record.inputs.get("event"),
                             record.inputs.get("audience")), soft_wrap=True)
        elif record.kind == "override":
            out.print(f"override: {escape(str(record.inputs.get('message')))}", soft_wrap=True)


@meetings_app.command("add")
def add_cmd(
    process: Process, by: Actor, reason: Reason,
    cycle: Annotated[str, typer.Option(help="The draft cycle the meeting belongs to.")],
    meeting_id: Annotated[str, typer.Option("--id", help="New meeting id, e.g. ieg4b.")],
    name: Annotated[str, typer.Option(help="e.g. '4th IEG meeting (resumed)'.")],
    start: Annotated[str, typer.Option(help="First day, e.g. 2026-03-10.")],
    end: Annotated[str | None, typer.Option(help="Last day (several contiguous days).")] = None,
    days: Annotated[str | None, typer.Option(
        help="Exact non-contiguous days, e.g. 2026-03-10,2026-03-12,2026-03-17.")] = None,
    mode: ModeOption = None, place: Place = None,
    informal: Annotated[bool, typer.Option(
        help="An informal session: recorded and invited to, not a step of the process.")
    ] = False,
    override: Override = False, database: Database = None, now: Now = None,
) -> None:
    """Add a meeting to a running process (after where it stands).

    Example:
      prepflow meetings add wtpf-26 --cycle draft4 --id ieg4b --name "4th IEG meeting, part 2" \\
          --start 2026-03-10 --mode virtual --by wtpf-secretariat --reason "CWG decision"
    """
    if days and end:
        raise InputError("give --end or --days, not both.")
    dates = (Dates.parse(days) if days else Dates.parse(f"{start}..{end}" if end else start)
             ).check()
    if days and dates.start != Dates.parse(start).start:
        raise InputError(f"--start {start} is not the first of --days {days}.")
    chosen = mode_of(mode, "--mode") if mode else None

    def build(definition: ProcessDefinition) -> ProcessDefinition:
        return reshape.add_meeting(definition, cycle, meeting_id, name, dates, chosen, place,
                                   informal)

    _run(database, process, build, by, reason, override, now, f"meetings add {meeting_id}",
         {"cycle": cycle, "meeting": meeting_id, "start": start, "end": end, "days": days,
          "mode": mode, "place": place, "informal": informal})


@meetings_app.command("cancel")
def cancel_cmd(
    process: Process, meeting: Annotated[str, typer.Argument(help="Meeting id, e.g. ieg4.")],
    by: Actor, reason: Reason, override: Override = False, database: Database = None,
    now: Now = None,
) -> None:
    """Cancel a meeting that has not started (invited experts get a cancellation).

    Example: prepflow meetings cancel wtpf-26 ieg4-3 --by wtpf-secretariat --reason "not needed"
    """
    _run(database, process, lambda d: reshape.cancel_meeting(d, meeting), by, reason, override,
         now, f"meetings cancel {meeting}", {"meeting": meeting})


@meetings_app.command("split")
def split_cmd(
    process: Process, meeting: Annotated[str, typer.Argument(help="Meeting id, e.g. ieg4.")],
    session: Annotated[list[str], typer.Option(
        "--session", help=f"One session (repeat, in order): {reshape.SESSION_FORM}.")],
    by: Actor, reason: Reason, override: Override = False, database: Database = None,
    now: Now = None,
) -> None:
    """Split a planned meeting into sessions; the first keeps the meeting's id.

    Example:
      prepflow meetings split wtpf-26 ieg4 --session "physical:2026-01-20..2026-01-22@Geneva" \\
          --session "informal virtual:2026-03-10" --session "informal virtual:2026-04-02" \\
          --by wtpf-secretariat --reason "CWG-WTPF decision"
    """
    sessions = [Session.parse(text) for text in session]
    names = tuple(s.name(meeting, number) for number, s in enumerate(sessions, start=1))
    _run(database, process, lambda d: reshape.split_meeting(d, meeting, sessions), by, reason,
         override, now, f"meetings split {meeting}", {"meeting": meeting, "sessions": session},
         names)


@meetings_app.command("change")
def change_cmd(
    process: Process, by: Actor, reason: Reason,
    meeting: Annotated[str | None, typer.Argument(
        help="Meeting id, e.g. ieg4 (the forum: --forum instead).")] = None,
    mode: ModeOption = None, place: Place = None,
    remote: Annotated[bool | None, typer.Option(
        "--remote/--no-remote", help="Remote participation offered (meetings).")] = None,
    join_url: Annotated[str | None, typer.Option(
        help="The meeting's https join link ('' removes it).")] = None,
    forum: Annotated[bool, typer.Option(
        help="Change the forum (then name no meeting).")] = False,
    override: Override = False, database: Database = None, now: Now = None,
) -> None:
    """Change a meeting's (or, with --forum, the forum's) mode and place; dates move with
    'prepflow amend'.

    Examples:
      prepflow meetings change wtpf-26 ieg3 --mode physical --place Geneva --by ... --reason ...
      prepflow meetings change wtpf-26 --forum --mode hybrid --place Geneva --by ... --reason ...
      prepflow meetings change wtpf-26 ieg3 --join-url https://itu.zoom.us/j/1 --by ... --reason ...
    """
    if forum and join_url is not None:
        raise InputError("--join-url is for a meeting; the forum has no join link here.")
    if forum and meeting is not None:
        raise InputError(f"give a meeting ('{meeting}') or --forum, not both.")
    if meeting == "forum":
        raise InputError("the forum is named with --forum: prepflow meetings change "
                         f"{process} --forum --mode MODE --place PLACE --by NAME --reason WHY.")
    target = "forum" if forum else meeting
    if target is None:
        raise InputError("name the meeting (e.g. ieg4), or give --forum.")
    chosen = mode_of(mode, "--mode") if mode else None

    def build(definition: ProcessDefinition) -> ProcessDefinition:
        if target == "forum":
            return reshape.change_forum(definition, chosen, place)
        return reshape.change_meeting(definition, str(target), chosen, place, remote, join_url)

    _run(database, process, build, by, reason, override, now, f"meetings change {target}",
         {"meeting": target, "mode": mode, "place": place, "remote": remote,
          **({"join_url": join_url} if join_url is not None else {})})


@app.command("revise")
def revise_cmd(
    process: Process,
    definition: Annotated[Path, typer.Argument(help="The new version of its definition.")],
    by: Actor, reason: Reason, override: Override = False, database: Database = None,
    now: Now = None,
) -> None:
    """Move a running process to a new version of its definition (history kept).

    Example:
      prepflow revise wtpf-26 config/wtpf26.yaml --by wtpf-secretariat --reason "Council 2025"
    """
    new = load_definition(definition)
    _run(database, process, lambda _: new, by, reason, override, now, "revise",
         {"file": str(definition)})
