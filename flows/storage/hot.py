"""The transition's few statements, run on the driver cursor inside SQLAlchemy's transaction.

Measured with bench/core.py's transition loop (300-500 transitions, SQLite, this 2-core
machine, runs alternated with the previous hand-written driver path): through
``Connection.execute`` each statement costs about 35 µs of SQLAlchemy's execution machinery
(execution context, events, result and type processing) against about 4 µs in the driver;
with every statement on Core a transition took 1,000-1,120 µs (3.0-4.6x a bare durable commit
of 240-300 µs; target 3x), against 700-790 µs for the previous driver path. With the process
read, the register read, the state write and the audit and outbox inserts run here, it takes
700-750 µs (2.6-3.3x), as before, in one transaction instead of three connections.

The SQL is still Core's: each statement run here is a Core statement (transaction.py, outbox.py),
compiled once per dialect. SQLAlchemy keeps the connection, the transaction (BEGIN IMMEDIATE,
commit, rollback) and the pool; driver errors are wrapped as SQLAlchemy's (so ``db.guard``
words them as before); values are written exactly as the column types write them
(tables.UtcDateTime, canonical JSON), so rows written by either path read back alike.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Protocol

import sqlalchemy as sa
from sqlalchemy.dialects import sqlite

from flows.storage.chain import canonical_json

#: SQLite's spelling of a bound name (the engine's qmark style needs positions; names are
#: simpler and as fast).
_SQLITE_NAMED = sqlite.dialect(paramstyle="named")


class Cursor(Protocol):
    """What we use of a DB-API cursor (sqlite3's and psycopg's)."""

    rowcount: int

    def fetchone(self) -> Sequence[object] | None: ...

    def fetchall(self) -> Sequence[Sequence[object]]: ...


class Statement:
    """A Core statement, compiled once per dialect to run on the driver cursor."""

    def __init__(self, statement: sa.Executable, columns: Sequence[str] = ()) -> None:
        """``columns``: for an INSERT, the columns given (others keep their defaults, as
        Core leaves out the ones a call does not name)."""
        self.statement = statement
        self._columns = list(columns) or None
        self._compiled: dict[str, tuple[str, dict[str, object]]] = {}

    def text(self, dialect: sa.Dialect) -> tuple[str, dict[str, object]]:
        """The SQL for ``dialect`` and the values Core bound in it (literals such as 'pending')."""
        found = self._compiled.get(dialect.name)
        if found is None:
            target = _SQLITE_NAMED if dialect.name == "sqlite" else dialect
            compiled = self.statement.compile(  # type: ignore[attr-defined]
                dialect=target, column_keys=self._columns
            )
            found = self._compiled[dialect.name] = (str(compiled), dict(compiled.params))
        return found


def run(
    conn: sa.Connection,
    statement: Statement,
    params: Mapping[str, object] | Sequence[Mapping[str, object]],
) -> Cursor:
    """Execute ``statement`` (once, or once per mapping) in ``conn``'s transaction."""
    dialect = conn.dialect
    sql, defaults = statement.text(dialect)
    error: type[Exception] = dialect.loaded_dbapi.Error
    raw = conn.connection.driver_connection
    assert raw is not None  # an open Connection always has one
    cursor = raw.cursor()
    try:
        if isinstance(params, Mapping):
            cursor.execute(sql, {**defaults, **params})
        else:
            cursor.executemany(sql, [{**defaults, **p} for p in params])
    except error as exc:
        dead = dialect.is_disconnect(exc, raw, cursor)  # type: ignore[arg-type]  # a DB-API Error
        if dead:
            conn.invalidate(exc)
        raise sa.exc.DBAPIError.instance(
            sql, None, exc, error, connection_invalidated=dead, dialect=dialect
        ) from exc
    return cursor  # type: ignore[no-any-return]


def time_in(dialect: sa.Dialect, at: datetime) -> object:
    """An aware time as tables.UtcDateTime binds it: naive UTC text on SQLite."""
    utc = at.astimezone(UTC)
    if dialect.name == "postgresql":
        return utc
    return utc.replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds")


def time_out(value: object) -> datetime:
    """A time as the driver returns it, as tables.UtcDateTime reads it: aware UTC."""
    if isinstance(value, datetime):  # psycopg, timestamptz
        return value.astimezone(UTC)
    return datetime.fromisoformat(str(value)).replace(tzinfo=UTC)


def json_in(document: object) -> str:
    """A document as stored: canonical JSON text, the spelling the audit hashes use.

    psycopg sends a str as "unknown", so PostgreSQL takes it for a json column as it is.
    """
    return canonical_json(document)


def json_out(value: object) -> dict[str, object]:
    """A JSON object as the driver returns it: sqlite3 gives text, psycopg parses."""
    if isinstance(value, str):
        parsed: dict[str, object] = json.loads(value)
        return parsed
    assert isinstance(value, dict)
    return value
