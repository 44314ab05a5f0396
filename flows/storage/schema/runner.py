"""Bring a database's schema up to date with Alembic, configured from code (no alembic.ini).

Every revision runs in a write transaction of its own (BEGIN IMMEDIATE on SQLite, under a
PostgreSQL advisory lock), which re-reads the revision first: concurrent openers migrate one at
a time, and a failure leaves the database at the last revision that completed.

The revision is kept in a version table of prepflow's own (names.VERSION_TABLE), never in
Alembic's default ``alembic_version``: a database with tables but neither that table nor
prepflow 0.1's ``prepflow_schema`` belongs to another application and is refused untouched.

A database written by prepflow 0.1 has ``prepflow_schema`` (step N of the hand-written runner
Alembic replaced): it is stamped at the revision of step N, and ``prepflow_schema`` dropped, in
the transaction of the first revision applied to it (or alone, when it is already at the
target). A refused revision therefore leaves a 0.1 database exactly as 0.1 left it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from io import StringIO
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Engine
from sqlalchemy.pool import NullPool

from flows.storage.db import describe
from flows.storage.errors import StoreError
from flows.storage.schema.names import LEGACY_TABLE, VERSION_TABLE

#: Key of the PostgreSQL advisory lock that makes concurrent openers migrate one at a time.
_LOCK_KEY = 0x70726570  # "prep"
#: The hand-written runner's step N → our revision.
LEGACY_STEPS = {1: "0001", 2: "0002", 3: "0003", 4: "0004"}
_legacy = sa.table(LEGACY_TABLE, sa.column("version", sa.Integer))
_DROP_LEGACY = sa.text("DROP TABLE prepflow_schema")


def config(connection: sa.Connection | None = None, stdout: StringIO | None = None) -> Config:
    """Alembic's configuration for prepflow's revisions, run on ``connection``."""
    cfg = Config(stdout=stdout) if stdout is not None else Config()
    cfg.set_main_option("script_location", str(Path(__file__).parent))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


@cache
def revisions() -> tuple[str, ...]:
    """Every revision id, oldest first (the history is one straight line)."""
    script = ScriptDirectory.from_config(config())
    return tuple(reversed([rev.revision for rev in script.walk_revisions()]))


def head() -> str:
    """The newest revision this prepflow knows."""
    return revisions()[-1]


def describe_revision(revision: str) -> str:
    """A revision's one-line description (the first line of its docstring)."""
    script = ScriptDirectory.from_config(config()).get_revision(revision)
    doc = script.module.__doc__ if script is not None else None
    if not doc:
        raise ValueError(f"schema revision {revision!r} has no description (module docstring)")
    return doc.strip().splitlines()[0]


@dataclass(frozen=True)
class Found:
    """What a database holds: its revision (None: no prepflow schema yet), and whether that
    revision comes from prepflow 0.1's ``prepflow_schema`` (not stamped yet)."""

    revision: str | None
    legacy: bool = False


def inspect(conn: sa.Connection, url: str) -> Found:
    """The database's revision; StoreError for another application's or a newer database."""
    names = set(sa.inspect(conn).get_table_names())
    if VERSION_TABLE in names:
        context = MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE})
        revision = context.get_current_revision()
        if revision is not None and revision not in revisions():
            raise _newer(url, f"revision {revision}")
        return Found(revision)
    if LEGACY_TABLE in names:
        step = int(conn.execute(sa.select(sa.func.max(_legacy.c.version))).scalar() or 0)
        if step > max(LEGACY_STEPS):
            raise _newer(url, f"schema version {step}")
        return Found(LEGACY_STEPS.get(step), legacy=True)
    if names:
        # Tables but no prepflow schema: another application's. Adding ours would mix two
        # applications' data silently (and a later revision could clash with their tables).
        shown = ", ".join(sorted(names)[:5]) + (", …" if len(names) > 5 else "")
        raise StoreError(
            f"The database at {url} holds tables of another application ({shown}) and no "
            "prepflow schema; use an empty database or a new file (PREPFLOW_DATABASE_URL). "
            "Nothing was changed."
        )
    return Found(None)


def current(engine: Engine) -> Found:
    """The database's revision, read without changing anything (not even SQLite's header)."""
    with _first_look(engine) as conn:
        return inspect(conn, describe(engine.url))


def upgrade(writer: Engine, target: str | None = None) -> str | None:
    """Apply the missing revisions up to ``target`` (default: head); the revision reached.

    ``writer``: an engine from ``db.make_engine(url, write=True)`` (BEGIN IMMEDIATE on SQLite).
    """
    order = revisions()
    target = target or order[-1]
    if target not in order:
        raise ValueError(f"schema revision {target!r} does not exist; valid: {', '.join(order)}")
    found = current(writer)  # a cheap read: opening an up-to-date store locks nothing
    if not found.legacy and _index(found.revision) >= order.index(target):
        return found.revision
    url = describe(writer.url)
    last = order.index(target)
    for index, revision in enumerate(order[: last + 1]):
        with _revision_transaction(writer) as conn:
            found = inspect(conn, url)  # again, under the lock, in the transaction that writes
            behind = _index(found.revision) < index
            if found.legacy and (behind or index == last):
                _adopt(conn, found.revision)  # with the first revision it applies, or alone
            if behind:
                command.upgrade(config(conn), revision)
    return current(writer).revision


def _adopt(conn: sa.Connection, revision: str | None) -> None:
    """Take over a prepflow 0.1 database: stamp its step's revision, drop its old table."""
    if revision is not None:
        command.stamp(config(conn), revision)
    conn.execute(_DROP_LEGACY)


def _index(revision: str | None) -> int:
    return -1 if revision is None else revisions().index(revision)


def _newer(url: str, what: str) -> StoreError:
    """Old code must not write into a schema it does not understand."""
    return StoreError(
        f"The database at {url} was created by a newer prepflow ({what}; this prepflow knows "
        f"revisions up to {head()}). Upgrade prepflow before using this database, or set "
        "PREPFLOW_DATABASE_URL to another one."
    )


@contextmanager
def _first_look(engine: Engine) -> Iterator[sa.Connection]:
    """A connection for the first read; on SQLite one without the engine's connect-time setup.

    That setup turns on WAL, which SQLite writes into the file's header: a file of another
    application must be refused exactly as it was found (an absent file is created empty).
    """
    if engine.dialect.name != "sqlite":
        with engine.connect() as conn:
            yield conn
        return
    plain = sa.create_engine(engine.url, poolclass=NullPool)
    try:
        with plain.connect() as conn:
            yield conn
    finally:
        plain.dispose()


@contextmanager
def _revision_transaction(writer: Engine) -> Iterator[sa.Connection]:
    """One revision's write transaction; on SQLite with foreign keys off until it ends.

    SQLite's procedure for rebuilding a table that others refer to (revision 0003): foreign
    keys off (outside any transaction, hence on the driver's connection), change,
    ``foreign_key_check``, commit, foreign keys on. With them on, dropping the old table would
    count every audit entry as orphaned, even though the rebuilt table takes its name and rows
    before the commit.
    """
    with writer.connect() as conn:
        raw = conn.connection.driver_connection if conn.dialect.name == "sqlite" else None
        if raw is not None:
            raw.execute("PRAGMA foreign_keys = OFF")
        try:
            with conn.begin():
                if conn.dialect.name == "postgresql":
                    conn.execute(sa.select(sa.func.pg_advisory_xact_lock(_LOCK_KEY)))
                yield conn
                if raw is not None:
                    _check_foreign_keys(conn, writer)
        finally:
            if raw is not None:
                try:
                    raw.execute("PRAGMA foreign_keys = ON")
                except BaseException:
                    conn.invalidate()  # never hand a connection without foreign keys to the pool
                    raise


def _check_foreign_keys(conn: sa.Connection, writer: Engine) -> None:
    broken = conn.exec_driver_sql("PRAGMA foreign_key_check").first()
    if broken is not None:
        raise StoreError(
            f"Upgrading the database at {describe(writer.url)} would leave a row of "
            f"{broken[0]!r} pointing at nothing ({tuple(broken)}). Nothing was changed; ask "
            "for technical help and pass on this message."
        )
