"""`prepflow db upgrade|current|history`: the database's schema, for operators.

Opening a store upgrades it anyway; ``db upgrade`` does it on purpose (before a release goes
live, say), ``db current`` says where a database stands without changing it, and ``db
history`` lists the revisions this prepflow knows. Alembic does the work (alembic.command,
configured from code by flows.storage.schema); these commands say it in plain words.
"""

from __future__ import annotations

from pathlib import Path

import typer
from sqlalchemy import make_url
from sqlalchemy.exc import ArgumentError

from flows.cli.common import Database, app, out
from flows.settings import load_settings
from flows.storage import StoreError
from flows.storage.db import describe, guard, make_engine
from flows.storage.schema import Found, current, describe_revision, head, revisions
from flows.storage.sql_store import SqlStore

db = typer.Typer(help="The database's schema: upgrade it, see where it stands, list changes.",
                 no_args_is_help=True)
app.add_typer(db, name="db")


def say(text: str) -> None:
    """One plain paragraph on standard output (no markup, wrapped by the terminal)."""
    out.print(text, soft_wrap=True, markup=False, highlight=False)


def _url(database: str | None) -> str:
    return database or load_settings().database.url


def _found(url: str) -> Found:
    """Where the database at ``url`` stands, read without changing it."""
    engine = make_engine(url)
    try:
        with guard(describe(url)):
            return current(engine)
    finally:
        engine.dispose()


def _missing_file(url: str) -> bool:
    """A SQLite URL naming a file that does not exist (opening it would create it)."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        return False  # opening it says what is wrong with it
    path = parsed.database
    return (parsed.get_backend_name() == "sqlite" and bool(path) and path != ":memory:"
            and not Path(str(path)).exists())


@db.command("upgrade")
def upgrade(database: Database = None) -> None:
    """Bring the database's schema up to date (a new database is created empty).

    Example: prepflow db upgrade --database sqlite:///prepflow.db
    """
    url = _url(database)
    before = _found(url)
    SqlStore(url).close()  # opening upgrades, one opener at a time (flows.storage.schema)
    shown = describe(url)
    if before.revision == head() and not before.legacy:
        say(f"The database {shown} was already up to date (revision {head()}).")
        return
    start = "an empty database" if before.revision is None else f"revision {before.revision}"
    if before.legacy:
        start += " (written by prepflow 0.1)"
    say(f"Upgraded the database {shown} from {start} to revision {head()}: "
        f"{describe_revision(head())}")


@db.command("current")
def show_current(database: Database = None) -> None:
    """Show the database's schema revision and whether it is up to date (changes nothing).

    Example: prepflow db current
    """
    url = _url(database)
    if _missing_file(url):
        raise StoreError(f"There is no database file at {describe(url)} yet; "
                         "'prepflow db upgrade' creates it. Nothing was created.")
    found = _found(url)
    if found.revision is None:
        raise StoreError(f"The database {describe(url)} has no prepflow schema yet; "
                         "'prepflow db upgrade' creates it.")
    where = f"The database {describe(url)} is at revision {found.revision}"
    if found.legacy:
        say(f"{where} (written by prepflow 0.1); 'prepflow db upgrade' brings it up to "
                  f"revision {head()}.")
    elif found.revision == head():
        say(f"{where}: up to date.")
    else:
        say(f"{where}; revision {head()} is the newest. 'prepflow db upgrade' applies "
                  "the rest.")


@db.command("history")
def history() -> None:
    """List the schema revisions this prepflow knows, oldest first.

    Example: prepflow db history
    """
    for revision in revisions():
        mark = " (newest)" if revision == head() else ""
        say(f"{revision}{mark}  {describe_revision(revision)}")
