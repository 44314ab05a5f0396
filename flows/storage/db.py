"""Opening a database engine with the right settings, and turning its failures into plain words.

SQLite is the default (one file next to the checkout); PostgreSQL is for several workers.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Engine

from flows.storage.chain import canonical_json
from flows.storage.errors import StoreError

#: How long a SQLite writer waits for another one before giving up, in milliseconds.
BUSY_TIMEOUT_MS = 10_000
_BACKENDS = ("sqlite", "postgresql")


def describe(url: str | sa.URL) -> str:
    """The URL as we may show it: password masked."""
    try:
        return sa.make_url(url).render_as_string(hide_password=True)
    except sa.exc.ArgumentError:
        return "<unreadable database URL>"


def make_engine(url: str, *, write: bool = False) -> Engine:
    """An engine for ``url`` with durable, queueing SQLite or a pinged PostgreSQL pool.

    ``write``: an engine for writers, whose SQLite transactions start with BEGIN IMMEDIATE.
    """
    try:
        parsed = sa.make_url(url)
    except sa.exc.ArgumentError as exc:
        shown = re.sub(r"(://[^:/@]*):[^@]*@", r"\1:***@", url)  # never echo a password
        raise StoreError(
            f"{shown!r} is not a database URL prepflow can read. Give one like "
            "sqlite:///prepflow.db or postgresql+psycopg://user@host:5432/prepflow in "
            "PREPFLOW_DATABASE_URL."
        ) from exc
    backend = parsed.get_backend_name()
    if backend not in _BACKENDS:
        raise StoreError(
            f"prepflow keeps its records in SQLite or PostgreSQL, not {backend!r} "
            f"({describe(parsed)}). Set PREPFLOW_DATABASE_URL to a sqlite:/// or "
            "postgresql+psycopg:// URL."
        )
    try:
        if backend == "sqlite":
            engine = sa.create_engine(parsed, json_serializer=canonical_json)
            _tune_sqlite(engine, "BEGIN IMMEDIATE" if write else "BEGIN")
        else:
            engine = sa.create_engine(parsed, json_serializer=canonical_json, pool_pre_ping=True)
    except (sa.exc.ArgumentError, sa.exc.NoSuchModuleError, ImportError) as exc:
        raise StoreError(
            f"prepflow cannot use the database URL {describe(parsed)}: {exc}. Check the driver "
            "part of PREPFLOW_DATABASE_URL (sqlite:/// or postgresql+psycopg://)."
        ) from exc
    return engine


def _tune_sqlite(engine: Engine, begin: str) -> None:
    """WAL, fsync on commit, foreign keys, and writers that queue instead of failing."""

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: sqlite3.Connection, _record: object) -> None:
        # Take BEGIN away from the sqlite3 module so that we can say BEGIN IMMEDIATE
        # (SQLAlchemy's "pysqlite serializable" recipe).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            cursor.execute("PRAGMA journal_mode = WAL")
            # FULL: a committed transition survives a power cut, not only a crash.
            cursor.execute("PRAGMA synchronous = FULL")
            cursor.execute("PRAGMA foreign_keys = ON")
        finally:
            cursor.close()

    # A writer takes the write lock up front: a second writer then waits (busy_timeout) rather
    # than failing with SQLITE_BUSY when its read turns into a write. The recipe's "begin"
    # event would do the same, but any Connection event makes SQLAlchemy dispatch events
    # around every statement: bench/core.py's transition went from about 1,075 to 1,020 µs
    # without it. So the engine's own dialect says how to begin (each engine has a dialect of
    # its own, hence one engine for readers and one for writers; SQLAlchemy still wraps a
    # failing BEGIN as its own error, for guard()).
    def _do_begin(dbapi_connection: sqlite3.Connection) -> None:
        dbapi_connection.execute(begin)

    engine.dialect.do_begin = _do_begin  # type: ignore[method-assign,assignment]


@contextmanager
def guard(url: str) -> Iterator[None]:
    """Re-raise database failures as StoreError with a message a secretariat can act on."""
    try:
        yield
    except sa.exc.SQLAlchemyError as exc:
        raise store_error(url, exc) from exc


def store_error(url: str, exc: sa.exc.SQLAlchemyError) -> StoreError:
    """One readable paragraph: which database, what went wrong, what to do."""
    orig = getattr(exc, "orig", None)
    detail = " ".join(line.strip() for line in str(orig or exc).splitlines() if line.strip())
    lowered = detail.lower()
    if "file is not a database" in lowered or "malformed" in lowered:
        return StoreError(
            f"The file behind {url} is not a prepflow database, or it is damaged ({detail}). "
            "Restore it from a backup, or point PREPFLOW_DATABASE_URL at another file "
            "(prepflow creates a new one if the file does not exist)."
        )
    if "unable to open database file" in lowered:
        return StoreError(
            f"prepflow cannot open or create the database file {url} ({detail}). Check that "
            "the folder exists and that you may write to it, or point PREPFLOW_DATABASE_URL "
            "at another file."
        )
    if "database is locked" in lowered:
        return StoreError(
            f"The database {url} stayed locked by another prepflow program for more than "
            f"{BUSY_TIMEOUT_MS // 1000} seconds ({detail}). Wait for it to finish and try again."
        )
    if isinstance(exc, sa.exc.OperationalError | sa.exc.InterfaceError) and (
        "connect" in lowered or "server" in lowered or getattr(exc, "connection_invalidated", False)
    ):
        return StoreError(
            f"prepflow cannot reach the database server at {url} ({detail}). Check that the "
            "server is running and accepts connections, and that PREPFLOW_DATABASE_URL is right."
        )
    return StoreError(
        f"The database at {url} reported a problem prepflow did not expect ({detail}). Check "
        "that PREPFLOW_DATABASE_URL names a prepflow database; if it does, ask for technical "
        "help and pass on this message."
    )
