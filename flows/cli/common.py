"""What every `prepflow` command shares: the typer app, the consoles, the common options and the
store they open. The command modules import this; nothing here imports them.
"""

from __future__ import annotations

import shutil
import string
from datetime import datetime
from pathlib import Path
from typing import Annotated
from zoneinfo import ZoneInfo

import typer
from rich.console import Console
from rich.markup import escape

from flows.identity.gate import Caller
from flows.settings import Settings, load_settings
from flows.shell import Service
from flows.storage import Store, open_store
from states.dates import check_year
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


@app.callback()
def _settings_first() -> None:
    # Every command checks the environment's settings first, even one that sends no mail or
    # opens no store: a typo in PREPFLOW_SMTP_PORT is one paragraph and exit 2 at once, the
    # same for every command, never a traceback in the middle of one. (No docstring: typer
    # would show it as the app's help.)
    load_settings()


_WIDTH = max(100, shutil.get_terminal_size((140, 40)).columns)
out = Console(highlight=False, width=_WIDTH)
err = Console(stderr=True, highlight=False, width=_WIDTH)

class _Escaping(string.Formatter):
    """str.format that escapes every value it fills in for rich."""

    def format_field(self, value: object, format_spec: str) -> str:
        return escape(super().format_field(value, format_spec))


_ESCAPING = _Escaping()


def markup(template: str, *values: object) -> str:
    """``template`` (our rich markup, '{}' for each value) with ``values`` escaped: a name,
    reason or path that came from a person or a file is printed as typed, never read as
    markup ('[/]' would stop the command after its work was done; '[red]' would restyle).
    Every print of the CLI that mixes markup and values goes through here (or escape())."""
    return _ESCAPING.format(template, *values)


Now = Annotated[str | None, typer.Option(
    "--now", help="Act as if it were this instant (ISO 8601 with zone, e.g. "
    "2024-08-27T00:00+02:00); for rehearsals and corrections. Default: the clock.")]
Database = Annotated[str | None, typer.Option(
    "--database", help="SQLAlchemy URL of the store; default $PREPFLOW_DATABASE_URL, "
    "else sqlite:///prepflow.db here.")]
Actor = Annotated[str, typer.Option("--by", help="Your secretariat member id (with your token in "
                                     "$PREPFLOW_TOKEN once tokens are in use).")]


def write_output(path: Path, data: bytes | str, option: str) -> None:
    """Write what a command produced to ``path``; a path that cannot be written (a folder, a
    missing folder, no permission) is bad input: one paragraph, exit 2."""
    try:
        if isinstance(data, str):
            path.write_text(data, encoding="utf-8")
        else:
            path.write_bytes(data)
    except OSError as exc:
        raise InputError(f"{option} {path}: cannot be written ({exc.strerror or exc}); give a "
                         "file in a folder you may write to.") from None


def parse_now(text: str | None) -> datetime | None:
    """An aware instant from the command line; naive or malformed ones are refused."""
    if text is None:
        return None
    try:
        value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise InputError(f"--now '{text}' is not a date and time; write e.g. "
                         "2024-08-27T00:00+02:00 or 2024-08-26T22:00Z.") from None
    try:
        check_year(value.year, text)
    except ValueError as exc:
        raise InputError(f"--now {exc}.") from None
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


Process = Annotated[str | None, typer.Option(
    "--process", help="Process id; default: the only process in the store.")]


def one_process(svc: Service, process: str | None) -> str:
    """The process a command with --process acts on: the one named (which must exist), else
    the store's only one; several or none is bad input saying which to name."""
    if process:
        svc.store.get(process)
        return process
    ids = svc.process_ids()
    if len(ids) != 1:
        raise InputError("say which process with --process (the store holds "
                         f"{', '.join(ids) or 'none yet; run prepflow init first'}).")
    return ids[0]


def process_ids(svc: Service, process: str | None) -> list[str]:
    if process:
        return [process]
    ids = svc.process_ids()
    if not ids:
        raise InputError("no process in this store yet; create one with "
                         "'prepflow init config/wtpf26.yaml'.")
    return ids

