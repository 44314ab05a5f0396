"""The processes (current state, chain head) and their append-only audit log.

Schema step 1 of the hand-written runner this replaces, its DDL unchanged: a database any
release left at step 0 upgrades from here. Revisions spell out the DDL of their day instead
of reusing ``tables.py``, so that later changes there never rewrite history.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from flows.storage.tables import UtcDateTime

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    """The processes (current state, chain head) and their append-only audit log."""
    _step1_tables(op.get_bind())


def downgrade() -> None:
    """Refused: prepflow never drops a secretariat's records; restore a backup instead."""
    raise NotImplementedError("prepflow schema revisions are not reversible; restore a backup")


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
