"""The hot path's SQL, run on the pooled driver connection (sqlite3 or psycopg) directly.

A committed transition reads a process and writes it back: four short statements. Through
SQLAlchemy each costs about 20 µs of Python (execution context, events, result and type
processing) against about 3 µs in the driver, which made the transition several times dearer
than the commit itself. So ``get``, ``list`` and ``commit`` use this module; everything else
(migrations, create, audit, verify) stays with SQLAlchemy Core.

The connections still come from SQLAlchemy's pool (pragmas, pre-ping, invalidation), driver
errors are wrapped as SQLAlchemy's (so ``db.guard`` words them as before), and values are
written exactly as SQLAlchemy writes them (tables.UtcDateTime, canonical JSON), so rows written
by either path read back alike through the other.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from flows.storage.chain import canonical_json

# Written with "?" placeholders; Driver.sql turns them into psycopg's "%s".
PROCESS_COLUMNS = "process_id, definition_hash, state, version, audit_seq, created_at, updated_at"
GET = f"SELECT {PROCESS_COLUMNS} FROM processes WHERE process_id = ?"
LIST = f"SELECT {PROCESS_COLUMNS} FROM processes ORDER BY process_id"
KNOWN = "SELECT process_id FROM processes ORDER BY process_id"
_HEAD_COLUMNS = "version, audit_seq, head_hash, definition_hash, created_at"
HEAD = f"SELECT {_HEAD_COLUMNS} FROM processes WHERE process_id = ?"
HEAD_AND_STATE = f"SELECT {_HEAD_COLUMNS}, state FROM processes WHERE process_id = ?"
# The WHERE repeats what the lock already guarantees (belt and braces): a row that moved
# anyway updates nothing, and commit() refuses.
ADVANCE = (
    "UPDATE processes SET state = ?, version = ?, audit_seq = ?, head_hash = ?, updated_at = ? "
    "WHERE process_id = ? AND audit_seq = ? AND version = ?"
)
APPEND_ONLY = (
    "UPDATE processes SET audit_seq = ?, head_hash = ?, updated_at = ? "
    "WHERE process_id = ? AND audit_seq = ?"
)
LOG = (
    "INSERT INTO audit_log (process_id, seq, at, actor, kind, trigger, from_state, to_state, "
    "reason, inputs, prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


def _sqlite_time(at: datetime) -> str:
    """UTC wall time in SQLAlchemy's SQLite DATETIME spelling (what UtcDateTime stores)."""
    return at.astimezone(UTC).replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds")


def _sqlite_time_out(value: str) -> datetime:
    return datetime.fromisoformat(value).replace(tzinfo=UTC)


def _pg_time_out(value: datetime) -> datetime:
    return value.astimezone(UTC)


def _same(value: Any) -> Any:
    return value


@dataclass(frozen=True)
class Driver:
    """What differs between sqlite3 and psycopg for the hot path's statements and values."""

    engine: Engine
    #: The statement that opens a write transaction (psycopg opens one by itself).
    begin: str | None
    #: Appended to a head read to lock the row (SQLite holds the whole database already).
    lock: str
    #: Appended to the outbox claim's inner select: two deliverers take different rows.
    skip_locked: str
    time_in: Callable[[datetime], Any]
    time_out: Callable[[Any], datetime]
    #: The driver's value for a JSON column as a dict: sqlite3 gives text, psycopg parses.
    json_out: Callable[[Any], Any]
    placeholder: str

    @classmethod
    def for_engine(cls, engine: Engine) -> Driver:
        """The driver behind ``engine`` (SQLite or PostgreSQL, as db.make_engine allows)."""
        if engine.dialect.name == "sqlite":
            # BEGIN IMMEDIATE: take the write lock before reading the head, so a second writer
            # waits (busy_timeout) instead of failing when its read turns into a write.
            return cls(
                engine, "BEGIN IMMEDIATE", "", "", _sqlite_time, _sqlite_time_out, json.loads, "?"
            )
        # psycopg sends a str as "unknown", so PostgreSQL takes canonical JSON text for a json
        # column as it is, and it hands aware datetimes to timestamptz columns natively.
        return cls(
            engine, None, " FOR UPDATE", " FOR UPDATE SKIP LOCKED", _same, _pg_time_out, _same, "%s"
        )

    def sql(self, statement: str) -> str:
        """``statement`` in the driver's placeholder style."""
        return statement.replace("?", self.placeholder)

    @staticmethod
    def json_in(document: Any) -> str:
        """A document as stored: canonical JSON text, the spelling the audit hashes use."""
        return canonical_json(document)

    @contextlib.contextmanager
    def cursor(self, *, write: bool = False) -> Iterator[Any]:
        """A driver cursor on a pooled connection; with ``write``, inside one transaction.

        A read is one statement, which sees one consistent snapshot by itself on either
        database (on SQLite it takes no lock at all, so it never waits for a writer).
        """
        error: type[Exception] = self.engine.dialect.loaded_dbapi.Error
        pooled = self.engine.raw_connection()
        try:
            cursor = pooled.cursor()
            try:
                if write and self.begin is not None:
                    cursor.execute(self.begin)
                yield cursor
                if write:
                    pooled.commit()
            except BaseException:
                with contextlib.suppress(error):
                    pooled.rollback()
                raise
            finally:
                cursor.close()
        except error as exc:
            dialect = self.engine.dialect
            dead = dialect.is_disconnect(exc, pooled.dbapi_connection, None)  # type: ignore[arg-type]
            if dead:
                pooled.invalidate(exc)
            raise sa.exc.DBAPIError.instance(
                None, None, exc, error, connection_invalidated=dead, dialect=dialect
            ) from exc
        finally:
            pooled.close()
