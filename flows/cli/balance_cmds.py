"""`prepflow experts balance`: the expert group by region, stakeholder type, gender and
development status, against the Member States' regional distribution (read-only; no quota)."""

from __future__ import annotations

import csv
import sys
from enum import StrEnum
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from flows.cli.common import Database, Process, err, one_process, out, service
from flows.cli.notify_cmds import experts_app
from flows.orchestration.balance_view import (
    CSV_COLUMNS,
    REGION_HEADER,
    compute,
    csv_rows,
    headline,
    markdown,
    region_cells,
    sections,
    share_cells,
    source_line,
)
from states.balance import Balance
from states.definition import ProcessDefinition
from states.errors import InputError


class Format(StrEnum):
    """How the balance is printed."""

    TABLE = "table"
    CSV = "csv"
    MD = "md"
    JSON = "json"


@experts_app.command("balance")
def balance_cmd(
    process: Annotated[str | None, typer.Argument(
        help="Process id; default: the only process in the store.")] = None,
    fmt: Annotated[Format, typer.Option("--format", help="table, csv, md or json.")]
    = Format.TABLE,
    process_option: Process = None,
    database: Database = None,
) -> None:
    """The expert group's balance: shares by region (with the gap to the Member States'
    distribution), stakeholder type, gender, developing / least developed countries.

    Counts the experts neither withdrawn nor erased; warns past the definition's
    notifications.balance_warnings, enforces nothing.

    Example: prepflow experts balance wtpf-26 --format md > balance.md
    """
    if process and process_option and process != process_option:
        raise InputError(f"two processes named ({process}, --process {process_option}); "
                         "give one.")
    svc = service(database)
    process_id = one_process(svc, process or process_option)
    _, definition, _ = svc.load(process_id)
    experts = svc.store.experts(process_id)
    result = compute(definition, experts)
    if not result.experts:
        why = (f"{process_id}: no active experts to balance ("
               + (f"{result.withdrawn} withdrawn, {result.erased} erased" if experts
                  else "the register is empty")
               + "); import nominations with 'prepflow experts import FILE --by NAME'.")
        # Machine formats keep stdout for data: the message goes to stderr there.
        (out if fmt in (Format.TABLE, Format.MD) else err).print(escape(why), soft_wrap=True)
        return
    if fmt is Format.JSON:
        sys.stdout.write(result.model_dump_json(indent=2) + "\n")
    elif fmt is Format.CSV:
        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow(CSV_COLUMNS)
        writer.writerows(csv_rows(result))
    elif fmt is Format.MD:
        sys.stdout.write(markdown(process_id, definition, result))
    else:
        _tables(process_id, definition, result)


def _tables(process_id: str, definition: ProcessDefinition, b: Balance) -> None:
    """The rich tables: regions first (the gap is what the secretariat acts on), then shares."""
    out.print(f"[bold]{escape(headline(process_id, b))}[/]", soft_wrap=True)
    table = Table(title="By region", title_justify="left")
    for column in REGION_HEADER:
        table.add_column(column, justify="left" if column in ("region", "name") else "right")
    for row in b.regions:
        table.add_row(*map(escape, region_cells(row)))
    out.print(table)
    for title, _, shares in sections(b):
        table = Table(title=title, title_justify="left")
        for column in ("group", "experts", "share"):
            table.add_column(column, justify="left" if column == "group" else "right")
        for share in shares:
            table.add_row(*map(escape, share_cells(share)))
        out.print(table)
    if b.warnings:
        out.print("[bold yellow]Warnings[/] (no quota applies; thresholds: "
                  "notifications.balance_warnings)")
        for warning in b.warnings:
            out.print(f"  - {escape(warning.text)}", soft_wrap=True)
    else:
        out.print("[green]No warnings.[/]")
    out.print(escape(source_line(definition, b)), soft_wrap=True)
