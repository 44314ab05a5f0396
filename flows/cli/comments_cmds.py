"""The `prepflow comments` commands: the register of contributions received on each draft.

A contribution after its window's deadline is recorded as late (flagged, counted apart); one
on a draft whose window never opened, or from the public with no consultation open, is
refused (exit 1, audited). Times are shown in the process's zone, with the zone named.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Annotated
from zoneinfo import ZoneInfo

import typer
from rich.markup import escape
from rich.table import Table

from flows.cli.common import Actor, Database, Now, app, markup, out, parse_now, service
from flows.contributions import draft, read_csv, record
from flows.shell import Service
from states.contributions import (
    Contribution,
    FieldError,
    WindowSummary,
    comment_deadline,
    summarize,
)
from states.dates import describe, human_day, zone
from states.definition import ProcessDefinition
from states.errors import InputError
from states.instance import Instance

comments_app = typer.Typer(help="Contributions received on each draft: add, import, list, "
                           "summary.", no_args_is_help=True)
app.add_typer(comments_app, name="comments")

ProcessArg = Annotated[str, typer.Argument(help="Process id, e.g. wtpf-26.")]
CycleOpt = Annotated[str | None, typer.Option("--cycle", help="Only this draft, e.g. draft2.")]


class Format(StrEnum):
    """How `comments summary` prints."""

    TABLE = "table"
    JSON = "json"


@comments_app.command("add")
def add_cmd(
    process: ProcessArg,
    cycle: Annotated[str, typer.Option(help="The draft commented on, e.g. draft2.")],
    sender: Annotated[str, typer.Option("--from", help="Who sent it (entity or person).")],
    category: Annotated[str, typer.Option(help="member-state, sector-member, associate, "
                                          "academia, or public (consultations only).")],
    kind: Annotated[str, typer.Option(help="draft-comment, opinion-outline or "
                                      "opinion-comment.")],
    title: Annotated[str, typer.Option()],
    document: Annotated[str, typer.Option(help="Document reference.")],
    by: Actor,
    country: Annotated[str | None, typer.Option()] = None,
    region: Annotated[str | None, typer.Option(help="Region id of the definition, e.g. A.")]
    = None,
    language: Annotated[str, typer.Option(help="ar, zh, en, fr, ru or es.")] = "en",
    received: Annotated[str | None, typer.Option(
        help="When it was received (ISO 8601; without a zone: the process's zone). "
        "Default: now.")] = None,
    opinion: Annotated[str | None, typer.Option(help="The draft Opinion commented on.")]
    = None,
    database: Database = None, now: Now = None,
) -> None:
    """Record one contribution received on a draft.

    Example: prepflow comments add wtpf-26 --cycle draft2 --from "Brazil" \\
        --category member-state --kind draft-comment --title "Comments" --document C-12 \\
        --by wtpf-secretariat
    """
    svc = service(database)
    _, definition, _ = svc.load(process)
    at = svc.now(parse_now(now))
    values = {"cycle": cycle, "from": sender, "category": category, "kind": kind,
              "title": title, "document": document, "country": country, "region": region,
              "language": language, "received": received, "opinion": opinion}
    try:
        one = draft(values, process, zone(definition.timezone), at, prefix="--")
    except ValueError as exc:
        raise InputError(f"contribution not recorded: {exc}.") from None
    try:
        (added,) = record(svc, process, [("contribution", one)], by, at)
    except FieldError as exc:
        raise InputError(f"contribution not recorded: --{exc.field} {exc.problem}") from None
    tz = zone(definition.timezone)
    out.print(escape(f"recorded #{added.id}: {added.kind} on {added.cycle} from "
                     f"{added.submitter}, received {describe(added.received_at, tz)}")
              + (" — [bold yellow]late[/] (after the comment deadline)" if added.late else ""),
              soft_wrap=True)


@comments_app.command("import")
def import_cmd(
    process: ProcessArg,
    file: Annotated[Path, typer.Argument(help="CSV (UTF-8, comma or semicolon) with columns "
                                         "cycle, from, category, kind, title, document and "
                                         "optionally country, region, language, received, "
                                         "opinion.")],
    by: Actor, database: Database = None, now: Now = None,
) -> None:
    """Import contributions from CSV; one bad or refused row records nothing.

    Example: prepflow comments import wtpf-26 comments.csv --by wtpf-secretariat
    """
    svc = service(database)
    _, definition, _ = svc.load(process)
    at = svc.now(parse_now(now))
    rows = read_csv(file, process, zone(definition.timezone), at)
    try:
        added = record(svc, process, rows.drafts, by, at,
                       action=f"comments import {file.name}", problems=rows.problems)
    except FieldError as exc:  # a file of one row is decided as one contribution
        raise InputError(f"{file}: {rows.drafts[0][0]}: {exc}") from None
    except InputError as exc:
        raise InputError(f"{file}: {exc}") from None
    late = sum(c.late for c in added)
    out.print(markup("imported {} contribution(s) into {}", len(added), process)
              + (markup("; {} after the comment deadline (flagged late)", late) if late else ""))


@comments_app.command("list")
def list_cmd(process: ProcessArg, cycle: CycleOpt = None,
             late: Annotated[bool, typer.Option("--late", help="Only late ones.")] = False,
             database: Database = None) -> None:
    """The register, in the order recorded, with receipt times in the process's zone.

    Example: prepflow comments list wtpf-26 --cycle draft2 --late
    """
    svc = service(database)
    _, definition, _ = svc.load(process)
    _check_cycle(definition, cycle)
    tz = zone(definition.timezone)
    table = Table(title=markup("{}: contributions (times {})", process, tz.key),
                  title_justify="left")
    for column in ("#", "cycle", "received", "from", "category", "country", "region", "kind",
                   "title", "document", "lang", "opinion", "late"):
        table.add_column(column, no_wrap=column in ("received", "category", "kind", "late"))
    for c in svc.store.contributions(process, cycle):
        if late and not c.late:
            continue
        table.add_row(str(c.id), c.cycle, describe(c.received_at, tz), escape(c.submitter),
                      c.category.value, escape(c.country or ""), escape(c.region or ""),
                      c.kind.value, escape(c.title), escape(c.document), c.language,
                      escape(c.opinion or ""), "late" if c.late else "")
    out.print(table)


@comments_app.command("summary")
def summary_cmd(process: ProcessArg, cycle: CycleOpt = None,
                format: Annotated[Format, typer.Option("--format")] = Format.TABLE,
                database: Database = None) -> None:
    """Per draft: counts by kind, source and region, on time and late.

    Example: prepflow comments summary wtpf-26 --format json
    """
    svc = service(database)
    _, definition, instance = svc.load(process)
    _check_cycle(definition, cycle)
    windows = _windows(svc, definition, instance, process, cycle)
    if format is Format.JSON:
        body = {"process": process, "timezone": definition.timezone, "windows": [
            {**w.summary.model_dump(mode="json"), "deadline": w.deadline,
             "at_close": w.at_close.model_dump(mode="json") if w.at_close else None}
            for w in windows]}
        sys.stdout.write(json.dumps(body, indent=2, ensure_ascii=False) + "\n")
        return
    table = Table(title=markup("{}: comment windows (times {})", process, definition.timezone),
                  title_justify="left")
    for column in ("cycle", "deadline", "total", "on time", "late", "by kind", "by source",
                   "by region", "at close"):
        table.add_column(column, no_wrap=column != "deadline")
    for w in windows:
        s = w.summary
        table.add_row(s.cycle, w.deadline, str(s.total), str(s.on_time), str(s.late),
                      _counts(s.by_kind), _counts(s.by_category), _counts(s.by_region),
                      "recorded" if w.at_close else "—")
    out.print(table)


@dataclass(frozen=True)
class _Window:
    """One draft's comment window: the register's counts now, its deadline, and the summary
    recorded when it closed (None while open)."""

    summary: WindowSummary
    deadline: str
    at_close: WindowSummary | None


def _windows(svc: Service, definition: ProcessDefinition, instance: Instance, process: str,
             cycle: str | None) -> list[_Window]:
    tz = zone(definition.timezone)
    register: list[Contribution] = svc.store.contributions(process)
    return [_Window(summarize(register, item.id),
                    _deadline(comment_deadline(definition, instance, item.id), tz),
                    instance.summaries.get(item.id))
            for item in definition.cycles
            if item.comment_deadline is not None and cycle in (None, item.id)]


def _deadline(instant: datetime, tz: ZoneInfo) -> str:
    """'20 Dec 2024, end of day (CET)' for a deadline at local midnight, else the instant."""
    local = instant.astimezone(tz)
    if local.time() == time(0):
        before = (instant - timedelta(microseconds=1)).astimezone(tz)  # the zone in force at 24:00
        return f"{human_day(before.date())}, end of day ({before.tzname()})"
    return describe(instant, tz)


def _counts(counts: dict[str, int]) -> str:
    """'draft-comment 3' and 'opinion-outline 1' on lines of their own (zeros left out)."""
    return "\n".join(f"{k} {v}" for k, v in counts.items() if v) or "—"


def _check_cycle(definition: ProcessDefinition, cycle: str | None) -> None:
    drafts = [c.id for c in definition.cycles if c.comment_deadline is not None]
    if cycle is not None and cycle not in drafts:
        raise InputError(f"--cycle '{cycle}' is not a draft of {definition.id} with a comment "
                         f"window; drafts: {', '.join(drafts)}.")
