"""What every `prepflow` command shares: the typer app, the consoles, the common options and the
store they open. The command modules import this; nothing here imports them.
"""

from __future__ import annotations

import shutil
from datetime import datetime
from typing import Annotated
from zoneinfo import ZoneInfo

import typer
from rich.console import Console

from flows.identity.gate import Caller
from flows.settings import Settings, load_settings
from flows.shell import Service
from flows.storage import Store, open_store
from states.errors import InputError

app = typer.Typer(
    name="prepflow",
    help="Run a preparatory process (drafts, comment windows, expert meetings, final report) "
    "as an audited state machine.\n\n"
    "Example: prepflow init config/wtpf26.yaml && prepflow status wtpf-26",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
_WIDTH = max(100, shutil.get_terminal_size((140, 40)).columns)
out = Console(highlight=False, width=_WIDTH)
err = Console(stderr=True, highlight=False, width=_WIDTH)

Now = Annotated[str | None, typer.Option(
    "--now", help="Act as if it were this instant (ISO 8601 with zone, e.g. "
    "2024-08-27T00:00+02:00); for rehearsals and corrections. Default: the clock.")]
Database = Annotated[str | None, typer.Option(
    "--database", help="SQLAlchemy URL of the store; default $PREPFLOW_DATABASE_URL, "
    "else sqlite:///prepflow.db here.")]
Actor = Annotated[str, typer.Option("--by", help="Your secretariat member id (with your token in "
                                     "$PREPFLOW_TOKEN once tokens are in use).")]


def parse_now(text: str | None) -> datetime | None:
    """An aware instant from the command line; naive or malformed ones are refused."""
    if text is None:
        return None
    try:
        value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise InputError(f"--now '{text}' is not a date and time; write e.g. "
                         "2024-08-27T00:00+02:00 or 2024-08-26T22:00Z.") from None
    if value.tzinfo is None:
        geneva = value.replace(tzinfo=ZoneInfo("Europe/Zurich"))
        offset = geneva.strftime("%z")
        season = "summer" if geneva.dst() else "winter"
        raise InputError(f"--now '{text}' has no time zone, so it could mean several instants; "
                         f"write e.g. {text}{offset[:3]}:{offset[3:]} (Geneva {season} time "
                         f"that day) or {text}Z (UTC).")
    return value


#: Stores opened by this command; main() closes them, so no connection outlives the command
#: (an unclosed psycopg connection warns when collected, and in-process callers run many).
_opened: list[Store] = []


def service(database: str | None, settings: Settings | None = None) -> Service:
    """The service on ``database``, else on the configured store (the command's settings,
    else read now: each command is an entry point); the caller's token is $PREPFLOW_TOKEN."""
    settings = settings or load_settings()
    store = open_store(database or settings.database.url, settings.audit.secret_key())
    _opened.append(store)
    return Service(store, caller=Caller.from_environment())


def process_ids(svc: Service, process: str | None) -> list[str]:
    if process:
        return [process]
    ids = svc.process_ids()
    if not ids:
        raise InputError("no process in this store yet; create one with "
                         "'prepflow init config/wtpf26.yaml'.")
    return ids

