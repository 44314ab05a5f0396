"""`prepflow drafts`: a draft posted in versions (preliminary, revised), and their list.

The first version of a draft is its posting (`prepflow transition … post_<cycle>`); each
further version is recorded here while that draft is still the current one, audited, and the
experts are told. Refusals exit 1 (audited), bad input exits 2, as everywhere.
"""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from flows.cli.common import Actor, Database, Now, app, markup, out, parse_now, service
from states.dates import describe, zone
from states.errors import InputError
from states.versions import draft_versions

drafts_app = typer.Typer(help="Drafts posted in versions (preliminary, revised).",
                         no_args_is_help=True)
app.add_typer(drafts_app, name="drafts")


@drafts_app.command("version")
def version_cmd(
    process: Annotated[str, typer.Argument(help="Process id, e.g. wtpf-26.")],
    cycle: Annotated[str, typer.Argument(help="The draft's cycle, e.g. draft2.")],
    document: Annotated[str, typer.Option(help="Reference of this version's document.")],
    label: Annotated[str, typer.Option(help="The version's name, e.g. revised.")],
    by: Actor,
    reason: Annotated[str | None, typer.Option(help="Why a new version (recorded).")] = None,
    database: Database = None, now: Now = None,
) -> None:
    """Record a further version of a posted draft; the experts are told.

    Refused for a draft not yet posted, or once the next draft is posted (it is no longer the
    current draft).

    Example:
      prepflow drafts version wtpf-26 draft2 --document WTPF-26/2(Rev.1) --label revised \\
          --by wtpf-secretariat --reason "corrected annex"
    """
    outcome = service(database).post_version(process, cycle, document, label, by, reason,
                                             parse_now(now))
    told = ", ".join(sorted({e.event for e in outcome.decision.effects})) or "none"
    out.print(markup("{}: version '{}' ({}) recorded; message decided: {} to experts.", cycle,
                     label, document, told), soft_wrap=True)


@drafts_app.command("list")
def list_cmd(
    process: Annotated[str, typer.Argument(help="Process id, e.g. wtpf-26.")],
    cycle: Annotated[str | None, typer.Argument(help="Only this draft's cycle.")] = None,
    database: Database = None,
) -> None:
    """Each posted draft's versions, first posting first.

    Example: prepflow drafts list wtpf-26
    """
    _, definition, instance = service(database).load(process)
    tz = zone(definition.timezone)
    ids = [c.id for c in definition.cycles if c.kind == "draft"]
    if cycle is not None and cycle not in ids:
        raise InputError(f"'{cycle}' is not a draft cycle of {definition.id}: {', '.join(ids)}.")
    table = Table(title=markup("{}: draft versions", definition.id), title_justify="left")
    for column in ("cycle", "version", "document", "posted", "by", "reason"):
        table.add_column(column)
    for cycle_id in [cycle] if cycle else ids:
        for version in draft_versions(instance, cycle_id):
            table.add_row(cycle_id, escape(version.label), escape(version.document or "—"),
                          describe(version.at, tz), escape(version.by),
                          escape(version.reason or ""))
    out.print(table)
