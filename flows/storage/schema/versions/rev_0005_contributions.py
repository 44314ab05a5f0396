"""The contributions register (issue 8): comments and contributions received on each draft.

Revisions spell out the DDL of their day instead of reusing ``tables.py``, so that later
changes there never rewrite history.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from flows.storage.tables import UtcDateTime

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """The contributions register (issue 8)."""
    _step5_contributions(op.get_bind())


def downgrade() -> None:
    """Refused: prepflow never drops a secretariat's records; restore a backup instead."""
    raise NotImplementedError("prepflow schema revisions are not reversible; restore a backup")


def _step5_contributions(conn: sa.Connection) -> None:
    """One row per contribution received, on time or late (never dropped); (process_id,
    cycle) is what a window's summary and ``comments list --cycle`` read."""
    md = sa.MetaData()
    sa.Table("processes", md, sa.Column("process_id", sa.Text, primary_key=True))
    sa.Table(
        "prepflow_contributions",
        md,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("process_id", sa.Text, sa.ForeignKey("processes.process_id"), nullable=False),
        sa.Column("cycle", sa.Text, nullable=False),
        sa.Column("submitter", sa.Text, nullable=False),
        sa.Column("category", sa.Text, nullable=False),
        sa.Column("country", sa.Text),
        sa.Column("region", sa.Text),
        sa.Column("kind", sa.Text, nullable=False),
        sa.Column("title", sa.Text, nullable=False),
        sa.Column("document", sa.Text, nullable=False),
        sa.Column("language", sa.Text, nullable=False),
        sa.Column("opinion", sa.Text),
        sa.Column("received_at", UtcDateTime, nullable=False),
        sa.Column("late", sa.Boolean, nullable=False),
        sa.Column("recorded_at", UtcDateTime, nullable=False),
        sa.Column("recorded_by", sa.Text, nullable=False),
        sa.Index("ix_prepflow_contributions_cycle", "process_id", "cycle"),
    ).create(conn)
