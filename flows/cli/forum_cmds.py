"""The forum commands: forum next (the next agenda item), forum status.

The agenda's items are states of the forum; moving on is one store transaction through the
shell, audited with the forum's whole record.
"""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape

from flows.cli.common import Actor, Database, Now, app, markup, out, parse_now, service
from states import opinions
from states.forum import LABELS, Stage
from states.machine import AGENDA, table_for
from states.roles import Act

forum_app = typer.Typer(help="The forum in session: its agenda, chair, report and Opinions.",
                        no_args_is_help=True)
app.add_typer(forum_app, name="forum")

Process = Annotated[str, typer.Argument(help="Process id, e.g. wtpf-26.")]


@forum_app.command("next")
def next_cmd(process: Process, by: Actor,
             chair: Annotated[str | None, typer.Option(
                 help="The chair elected (when leaving the chair's election).")] = None,
             document: Annotated[str | None, typer.Option(
                 help="The chair's report reference (when leaving its adoption).")] = None,
             reason: Annotated[str | None, typer.Option(help="Why (recorded).")] = None,
             database: Database = None, now: Now = None) -> None:
    """Move the forum to its next agenda item.

    Examples:
      prepflow forum next wtpf-26 --by wtpf-secretariat
      prepflow forum next wtpf-26 --chair "H.E. Ms A. Chair" --by wtpf-secretariat
      prepflow forum next wtpf-26 --document WTPF-26/CR --by wtpf-secretariat
    """
    inputs = {"chair": chair, "document": document}
    outcome = service(database).change(
        process, "forum next", by, inputs,
        lambda d, i, at: opinions.forum_next(d, i, by, at, chair, document, reason),
        parse_now(now), act=Act.FORUM)
    for record in outcome.decision.records:
        if record.kind == "transition":
            label = record.inputs.get("label", record.trigger)
            out.print(markup("{} ({} → {})", str(label), record.from_state, record.to_state),
                      soft_wrap=True, highlight=False)


@forum_app.command("status")
def status_cmd(process: Process, database: Database = None) -> None:
    """Where the forum's agenda stands, its chair and report, and each Opinion before it.

    Example: prepflow forum status wtpf-26
    """
    _, definition, instance = service(database).load(process)
    table = table_for(definition)
    forum = instance.forum
    out.print(f"[bold]{escape(definition.forum.name)}[/]: "
              f"{escape(table.labels[instance.regions[AGENDA]])}", soft_wrap=True)
    position = opinions.agenda_item(definition, instance.regions[AGENDA])
    for number, item in enumerate(definition.forum.agenda, start=1):
        mark = "→" if number == position else ("✓" if number < position else " ")
        out.print(markup("  {} {}. {}", mark, number, item), soft_wrap=True, highlight=False)
    remote = "yes" if definition.forum.remote_participation else "no"
    out.print(markup("chair: {}; chair's report: {}; remote participation: {}",
                     forum.chair or "—", forum.report or "—", remote), soft_wrap=True,
              highlight=False)
    if forum.working_groups:
        out.print(markup("working groups: {}", ', '.join(forum.working_groups)), highlight=False)
    before = [o for o in instance.opinions.values()
              if o.stage is Stage.FINAL or o.stage in (Stage.ADOPTED, Stage.NOT_ADOPTED)]
    for o in before:
        mark = "" if o.consensus else " (presented without IEG consensus)"
        out.print(markup("  Opinion {}: {}{}", o.id, LABELS[o.stage], mark), soft_wrap=True,
                  highlight=False)
    if before:
        binding = "non-binding" if forum.non_binding else "binding"
        out.print(markup("Outcomes are recorded as {}: the forum adopts Opinions, not "
                         "prescriptive regulatory outcomes.", binding), highlight=False)
