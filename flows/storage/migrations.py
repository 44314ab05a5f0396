"""Versioned schema steps, applied in order when a store opens (a light equivalent of Alembic).

``prepflow_schema`` holds the version reached. Each step runs in its own transaction together
with the version bump, so a failure never leaves tables half-made. Steps spell out the DDL of
their day instead of reusing ``tables.py``, so that later changes there never rewrite history.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.pool import NullPool

from flows.storage.db import WRITE, describe
from flows.storage.model import StoreError
from flows.storage.tables import UtcDateTime

#: Key of the PostgreSQL advisory lock that makes concurrent openers migrate one at a time.
_LOCK_KEY = 0x70726570  # "prep"

_schema = sa.table("prepflow_schema", sa.column("version", sa.Integer))


def _step1_tables(conn: sa.Connection) -> None:
    """The processes (current state, chain head) and their append-only audit log."""
    md = sa.MetaData()
    sa.Table(
        "processes",
        md,
        sa.Column("process_id", sa.Text, primary_key=True),
        sa.Column("definition", sa.JSON, nullable=False),
        sa.Column("definition_hash", sa.Text, nullable=False),
        sa.Column("state", sa.JSON, nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("audit_seq", sa.Integer, nullable=False),
        sa.Column("head_hash", sa.String(64), nullable=False),
        sa.Column("created_at", UtcDateTime, nullable=False),
        sa.Column("updated_at", UtcDateTime, nullable=False),
    )
    sa.Table(
        "audit_log",
        md,
        sa.Column("process_id", sa.Text, sa.ForeignKey("processes.process_id"), primary_key=True),
        sa.Column("seq", sa.Integer, primary_key=True),
        sa.Column("at", UtcDateTime, nullable=False),
        sa.Column("actor", sa.Text, nullable=False),
        sa.Column("kind", sa.Text, nullable=False),
        sa.Column("trigger", sa.Text),
        sa.Column("from_state", sa.Text),
        sa.Column("to_state", sa.Text),
        sa.Column("reason", sa.Text),
        sa.Column("inputs", sa.JSON, nullable=False),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
    )
    md.create_all(conn)


def _step2_audit_time_index(conn: sa.Connection) -> None:
    """Index audit entries by time: "what happened across all processes this week" reports."""
    md = sa.MetaData()
    log = sa.Table("audit_log", md, sa.Column("at", UtcDateTime))
    sa.Index("ix_audit_log_at", log.c.at).create(conn)


def _step3_shared_definitions(conn: sa.Connection) -> None:
    """Keep each distinct definition once, in ``definitions``, instead of once per process.

    Ten thousand processes usually share one definition: this makes the process row (read on
    every transition) small and lets the store cache each body, which never changes under its
    hash. The bodies move over before the column goes, so no definition is lost.
    """
    md = sa.MetaData()
    definitions = sa.Table(
        "definitions",
        md,
        sa.Column("hash", sa.Text, primary_key=True),
        sa.Column("body", sa.JSON, nullable=False),
    )
    definitions.create(conn)
    old = sa.table(
        "processes",
        sa.column("process_id"),
        sa.column("definition"),
        sa.column("definition_hash"),
    )
    # The hash is the definition's fingerprint, so one hash should never have two bodies; if an
    # old database has them anyway, refuse rather than keep one body and lose the others.
    clash = conn.execute(
        sa.select(old.c.definition_hash)
        .group_by(old.c.definition_hash)
        .having(sa.func.count(sa.distinct(sa.cast(old.c.definition, sa.Text))) > 1)
        .limit(1)
    ).scalar()
    if clash is not None:
        raise StoreError(
            f"Processes with definition hash {clash!r} hold different definitions, so they "
            "cannot share one. Nothing was changed; ask for technical help and pass on this "
            "message."
        )
    p, q = old.alias("p"), old.alias("q")
    first = (
        sa.select(sa.func.min(q.c.process_id))
        .where(q.c.definition_hash == p.c.definition_hash)
        .scalar_subquery()
    )
    conn.execute(
        sa.insert(definitions).from_select(
            ["hash", "body"],
            sa.select(p.c.definition_hash, p.c.definition).where(p.c.process_id == first),
        )
    )
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql("ALTER TABLE processes DROP COLUMN definition")
        conn.exec_driver_sql(
            "ALTER TABLE processes ADD FOREIGN KEY (definition_hash) REFERENCES definitions (hash)"
        )
        return
    # SQLite cannot add a foreign key to a table: rebuild it (https://sqlite.org/lang_altertable.html,
    # "other kinds of table schema changes"; upgrade() has turned foreign keys off meanwhile).
    columns = [
        sa.Column("process_id", sa.Text, primary_key=True),
        sa.Column("definition_hash", sa.Text, sa.ForeignKey("definitions.hash"), nullable=False),
        sa.Column("state", sa.JSON, nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("audit_seq", sa.Integer, nullable=False),
        sa.Column("head_hash", sa.String(64), nullable=False),
        sa.Column("created_at", UtcDateTime, nullable=False),
        sa.Column("updated_at", UtcDateTime, nullable=False),
    ]
    names = ", ".join(column.name for column in columns)
    sa.Table("processes_new", md, *columns).create(conn)
    conn.exec_driver_sql(f"INSERT INTO processes_new ({names}) SELECT {names} FROM processes")
    conn.exec_driver_sql("DROP TABLE processes")
    conn.exec_driver_sql("ALTER TABLE processes_new RENAME TO processes")


def _step4_experts_and_outbox(conn: sa.Connection) -> None:
    """The experts register and the outbox of messages to send (issue 4, notifications).

    Emails are stored normalised, so the unique (process_id, email) index enforces "one
    nomination per address, ignoring case". The outbox's unique key makes writing a message
    idempotent; (status, next_attempt_at) is what claim() searches.
    """
    md = sa.MetaData()
    sa.Table("processes", md, sa.Column("process_id", sa.Text, primary_key=True))
    sa.Table(
        "experts",
        md,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("process_id", sa.Text, sa.ForeignKey("processes.process_id"), nullable=False),
        sa.Column("email", sa.Text, nullable=False),
        sa.Column("first_name", sa.Text, nullable=False),
        sa.Column("last_name", sa.Text, nullable=False),
        sa.Column("entity", sa.Text, nullable=False),
        sa.Column("nominated_by", sa.Text, nullable=False),
        sa.Column("country", sa.Text, nullable=False),
        sa.Column("region", sa.Text, nullable=False),
        sa.Column("stakeholder_type", sa.Text, nullable=False),
        sa.Column("gender", sa.Text),
        sa.Column("language", sa.Text, nullable=False),
        sa.Column("timezone", sa.Text),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("nominated_at", UtcDateTime, nullable=False),
        sa.Column("late", sa.Boolean, nullable=False),
        sa.Column("erased", sa.Boolean, nullable=False),
        sa.Index("ux_experts_process_email", "process_id", "email", unique=True),
    ).create(conn)
    sa.Table(
        "outbox",
        md,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("key", sa.Text, nullable=False),
        sa.Column("process_id", sa.Text, nullable=False),
        sa.Column("event", sa.Text, nullable=False),
        sa.Column("recipient", sa.Text, nullable=False),
        sa.Column("email", sa.Text, nullable=False),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("language", sa.Text, nullable=False),
        sa.Column("timezone", sa.Text),
        sa.Column("context", sa.JSON, nullable=False),
        sa.Column("created_at", UtcDateTime, nullable=False),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("next_attempt_at", UtcDateTime, nullable=False),
        sa.Column("last_error", sa.Text),
        sa.Column("claimed_at", UtcDateTime),
        sa.Column("sent_at", UtcDateTime),
        sa.Column("reply", sa.Text),
        sa.Column("failed_at", UtcDateTime),
        sa.Index("ux_outbox_key", "key", unique=True),
        sa.Index("ix_outbox_due", "status", "next_attempt_at"),
    ).create(conn)


@dataclass(frozen=True)
class Step:
    """One migration: the version it produces and what it does."""

    version: int
    apply: Callable[[sa.Connection], None]


STEPS: tuple[Step, ...] = (
    Step(1, _step1_tables),
    Step(2, _step2_audit_time_index),
    Step(3, _step3_shared_definitions),
    Step(4, _step4_experts_and_outbox),
)
LATEST = STEPS[-1].version


def current_version(conn: sa.Connection) -> int:
    """The schema version the database has reached (0 for an empty database)."""
    if not sa.inspect(conn).has_table("prepflow_schema"):
        return 0
    return int(conn.execute(sa.select(sa.func.max(_schema.c.version))).scalar_one() or 0)


def upgrade(engine: Engine, target: int | None = None) -> int:
    """Apply the missing steps up to ``target`` (default: all); return the version reached."""
    target = LATEST if target is None else target
    if not 0 <= target <= LATEST:
        raise ValueError(f"schema version {target} does not exist; valid: 0 to {LATEST}")
    with _first_look(engine) as conn:  # a cheap read: opening an up-to-date store locks nothing
        current = current_version(conn)
        if current == 0:
            _refuse_foreign(conn, engine)
    _refuse_newer(engine, current)
    writer = engine.execution_options(**{WRITE: True})
    while current < target:
        with _step_transaction(writer) as conn:
            if conn.dialect.name == "postgresql":
                conn.execute(sa.select(sa.func.pg_advisory_xact_lock(_LOCK_KEY)))
            current = current_version(conn)  # again, under the lock: another opener may have run
            _refuse_newer(engine, current)
            if current >= target:
                break
            if current == 0:
                _refuse_foreign(conn, engine)  # again, in the transaction that would add ours
                conn.execute(sa.text("CREATE TABLE prepflow_schema (version INTEGER NOT NULL)"))
                conn.execute(sa.insert(_schema).values(version=0))
            STEPS[current].apply(conn)
            current = STEPS[current].version
            conn.execute(sa.update(_schema).values(version=current))
    return current


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


def _refuse_foreign(conn: sa.Connection, engine: Engine) -> None:
    """A database with tables but no prepflow_schema belongs to someone else: leave it alone.

    Adding prepflow's tables to it would mix two applications' data silently (and a later
    'migration' could clash with their tables).
    """
    names = sorted(sa.inspect(conn).get_table_names())
    if names:
        shown = ", ".join(names[:5]) + (", …" if len(names) > 5 else "")
        raise StoreError(
            f"The database at {describe(engine.url)} holds tables of another application "
            f"({shown}) and no prepflow schema; use an empty database or a new file "
            "(PREPFLOW_DATABASE_URL). Nothing was changed."
        )


@contextmanager
def _step_transaction(writer: Engine) -> Iterator[sa.Connection]:
    """One step's write transaction; on SQLite with foreign keys off until it ends.

    SQLite's procedure for rebuilding a table that others refer to: foreign keys off (outside
    any transaction, hence on the driver's connection), change, ``foreign_key_check``, commit,
    foreign keys on. With them on, dropping the old table would count every audit entry as
    orphaned, even though the rebuilt table takes its name and rows before the commit.
    """
    with writer.connect() as conn:
        raw = conn.connection.driver_connection if conn.dialect.name == "sqlite" else None
        if raw is not None:
            raw.execute("PRAGMA foreign_keys = OFF")
        try:
            with conn.begin():
                yield conn
                if raw is not None:
                    broken = conn.exec_driver_sql("PRAGMA foreign_key_check").first()
                    if broken is not None:
                        raise StoreError(
                            f"Upgrading the database at {describe(writer.url)} would leave a "
                            f"row of {broken[0]!r} pointing at nothing ({tuple(broken)}). "
                            "Nothing was changed; ask for technical help and pass on this "
                            "message."
                        )
        finally:
            if raw is not None:
                try:
                    raw.execute("PRAGMA foreign_keys = ON")
                except BaseException:
                    conn.invalidate()  # never hand a connection without foreign keys to the pool
                    raise


def _refuse_newer(engine: Engine, current: int) -> None:
    """Old code must not write into a schema it does not understand."""
    if current > LATEST:
        raise StoreError(
            f"The database at {describe(engine.url)} was created by a newer prepflow (schema "
            f"version {current}; this prepflow knows versions up to {LATEST}). Upgrade "
            "prepflow before using this database, or set PREPFLOW_DATABASE_URL to another one."
        )
