"""Crash-safe delivery: outbox rows name the run that holds them, and count sends (issue 9).

A deliverer killed mid-run used to leave rows 'sending' for a fixed 15 minutes and then
'uncertain' for a person. Each delivery run now has a row in ``prepflow_outbox_runs`` with a
lease it renews; the rows it claims say which run holds them (``claimed_by``), so the next
run takes back a dead run's rows at once. ``sends`` counts how many times a message may have
reached a server, so a message sent twice (same Message-ID) says so. Rows already sent count
one send.

Revisions spell out the DDL of their day instead of reusing ``tables.py``, so that later
changes there never rewrite history.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from flows.storage.tables import UtcDateTime

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Delivery leases and a send counter on the outbox (issue 9)."""
    _step7_outbox_leases()


def downgrade() -> None:
    """Refused: prepflow never drops a secretariat's records; restore a backup instead."""
    raise NotImplementedError("prepflow schema revisions are not reversible; restore a backup")


def _step7_outbox_leases() -> None:
    """Two outbox columns and the runs table; every message already sent counts one send."""
    op.add_column("outbox", sa.Column("claimed_by", sa.Text, nullable=True))
    op.add_column("outbox", sa.Column("sends", sa.Integer, nullable=False, server_default="0"))
    op.execute("UPDATE outbox SET sends = 1 WHERE status = 'sent'")
    op.create_table(
        "prepflow_outbox_runs",
        sa.Column("run_id", sa.Text, primary_key=True),
        sa.Column("host", sa.Text, nullable=False),
        sa.Column("pid", sa.Integer, nullable=False),
        sa.Column("started_at", UtcDateTime, nullable=False),
        sa.Column("lease_until", UtcDateTime, nullable=False),
    )
