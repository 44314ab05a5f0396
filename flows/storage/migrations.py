"""Versioned schema steps, applied in order when a store opens (a light equivalent of Alembic).

``prepflow_schema`` holds the version reached. Each step runs in its own transaction together
with the version bump, so a failure never leaves tables half-made. Steps spell out the DDL of
their day instead of reusing ``tables.py``, so that later changes there never rewrite history.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Engine

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


@dataclass(frozen=True)
class Step:
    """One migration: the version it produces and what it does."""

    version: int
    apply: Callable[[sa.Connection], None]


STEPS: tuple[Step, ...] = (
    Step(1, _step1_tables),
    Step(2, _step2_audit_time_index),
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
    with engine.connect() as conn:  # a cheap read first: opening an up-to-date store locks nothing
        current = current_version(conn)
    _refuse_newer(engine, current)
    writer = engine.execution_options(**{WRITE: True})
    while current < target:
        with writer.begin() as conn:
            if conn.dialect.name == "postgresql":
                conn.execute(sa.select(sa.func.pg_advisory_xact_lock(_LOCK_KEY)))
            current = current_version(conn)  # again, under the lock: another opener may have run
            _refuse_newer(engine, current)
            if current >= target:
                break
            if current == 0:
                conn.execute(sa.text("CREATE TABLE prepflow_schema (version INTEGER NOT NULL)"))
                conn.execute(sa.insert(_schema).values(version=0))
            STEPS[current].apply(conn)
            current = STEPS[current].version
            conn.execute(sa.update(_schema).values(version=current))
    return current


def _refuse_newer(engine: Engine, current: int) -> None:
    """Old code must not write into a schema it does not understand."""
    if current > LATEST:
        raise StoreError(
            f"The database at {describe(engine.url)} was created by a newer prepflow (schema "
            f"version {current}; this prepflow knows versions up to {LATEST}). Upgrade "
            "prepflow before using this database, or set PREPFLOW_DATABASE_URL to another one."
        )
