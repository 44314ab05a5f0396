"""The draft Opinions commands: opinions add, move, outcome, list.

Each change is one store transaction through the shell; a rule's refusal (exit 1) is audited
and changes nothing else; bad input (exit 2) changes nothing.
"""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from flows.cli.common import Actor, Database, Now, app, markup, out, parse_now, service
from flows.shell import Outcome
from states import opinions
from states.dates import describe, zone
from states.errors import InputError
from states.forum import LABELS, Opinion
from states.roles import Act

opinions_app = typer.Typer(help="Draft Opinions: presented, moved beside the drafts, and the "
                           "forum's outcome.", no_args_is_help=True)
app.add_typer(opinions_app, name="opinions")

Process = Annotated[str, typer.Argument(help="Process id, e.g. wtpf-26.")]
OpinionId = Annotated[str, typer.Argument(help="The Opinion's id, e.g. op-1.")]
Reason = Annotated[str | None, typer.Option(help="Why (recorded in the audit log).")]


def _said(outcome: Outcome, opinion_id: str) -> None:
    opinion = outcome.decision.after.opinions[opinion_id]
    where = opinion.history[-1].where
    mark = "" if opinion.consensus else " (no IEG consensus)"
    out.print(markup("Opinion {}: {}{} (cycle {}, IEG meeting {})", opinion.id, opinion.label,
                     mark, where.cycle or "—", where.meeting or "—"), soft_wrap=True,
              highlight=False)


@opinions_app.command("add")
def add_cmd(process: Process, opinion_id: OpinionId,
            title: Annotated[str, typer.Option(help="The Opinion's title.")],
            by: Actor,
            theme: Annotated[str | None, typer.Option(help="One of the process's themes.")] = None,
            reason: Reason = None, database: Database = None, now: Now = None) -> None:
    """Record a draft Opinion presented (its outline proposed); refused once the final report
    is posted (Resolution 2, resolves 10).

    Example: prepflow opinions add wtpf-26 op-1 --title "Meaningful connectivity" \\
        --theme digital-divides --by wtpf-secretariat
    """
    inputs = {"opinion": opinion_id, "title": title, "theme": theme}
    outcome = service(database).change(
        process, f"opinions add {opinion_id}", by, inputs,
        lambda d, i, at: opinions.add(d, i, opinion_id, title, theme, by, at, reason),
        parse_now(now), act=Act.OPINION)
    _said(outcome, opinion_id)


@opinions_app.command("move")
def move_cmd(process: Process, opinion_id: OpinionId,
             stage: Annotated[str, typer.Argument(help="possible, annexed or final.")],
             by: Actor,
             no_consensus: Annotated[bool, typer.Option(
                 "--no-consensus", help="The expert group reached no consensus on it.")] = False,
             reason: Reason = None, database: Database = None, now: Now = None) -> None:
    """Move an Opinion forward: possible draft Opinion, annexed to a draft, in the final report.

    Example: prepflow opinions move wtpf-26 op-1 annexed --by wtpf-secretariat --no-consensus
    """
    inputs = {"opinion": opinion_id, "stage": stage, "consensus": not no_consensus}
    outcome = service(database).change(
        process, f"opinions move {opinion_id}", by, inputs,
        lambda d, i, at: opinions.move(d, i, opinion_id, stage, by, at, not no_consensus,
                                       reason),
        parse_now(now), act=Act.OPINION)
    _said(outcome, opinion_id)


@opinions_app.command("outcome")
def outcome_cmd(process: Process, opinion_id: OpinionId,
                result: Annotated[str, typer.Argument(help="adopted, not-adopted or withdrawn.")],
                by: Actor, reason: Reason = None, database: Database = None,
                now: Now = None) -> None:
    """Record the forum's outcome for an Opinion (non-binding), or withdraw it before one.

    Example: prepflow opinions outcome wtpf-26 op-1 adopted --by wtpf-secretariat
    """
    inputs = {"opinion": opinion_id, "outcome": result}
    outcome = service(database).change(
        process, f"opinions outcome {opinion_id}", by, inputs,
        lambda d, i, at: opinions.outcome(d, i, opinion_id, result, by, at, reason),
        parse_now(now), act=Act.FORUM)
    _said(outcome, opinion_id)


@opinions_app.command("list")
def list_cmd(process: Process,
             format_: Annotated[str, typer.Option("--format", help="table or json")] = "table",
             database: Database = None) -> None:
    """The Opinions with their stage, theme, where they were presented and last changed.

    Example: prepflow opinions list wtpf-26 --format json
    """
    if format_ not in ("table", "json"):
        raise InputError(f"--format '{format_}': use table or json.")
    _, definition, instance = service(database).load(process)
    rows = sorted(instance.opinions.values(), key=lambda o: o.history[0].at)
    if format_ == "json":
        out.print(json.dumps([o.model_dump(mode="json") for o in rows], indent=2),
                  markup=False, highlight=False, soft_wrap=True)
        return
    tz = zone(definition.timezone)
    table = Table(title=markup("{}: draft Opinions ({})", process, len(rows)), title_justify="left")
    for column in ("id", "title", "theme", "stage", "consensus", "presented", "last change"):
        table.add_column(column)
    for o in rows:
        table.add_row(o.id, escape(o.title), o.theme or "—", LABELS[o.stage],
                      "yes" if o.consensus else "no (IEG)", _where(o),
                      markup("{} by {}", describe(o.history[-1].at, tz), o.history[-1].by))
    out.print(table)


def _where(opinion: Opinion) -> str:
    first = opinion.presented_in
    return f"{first.cycle or 'forum'}" + (f", after {first.meeting}" if first.meeting else "")
