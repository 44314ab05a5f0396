"""The experts register and the outbox of messages to send (issue 4).

Schema step 4 of the hand-written runner this replaces, its DDL unchanged: a database any
release left at step 3 upgrades from here. Revisions spell out the DDL of their day instead
of reusing ``tables.py``, so that later changes there never rewrite history.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from flows.storage.tables import UtcDateTime

revision = "0004"
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    """The experts register and the outbox of messages to send (issue 4)."""
    _step4_experts_and_outbox(op.get_bind())


def downgrade() -> None:
    """Refused: prepflow never drops a secretariat's records; restore a backup instead."""
    raise NotImplementedError("prepflow schema revisions are not reversible; restore a backup")


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
