"""Index audit entries by time, for reports across all processes.

Schema step 2 of the hand-written runner this replaces, its DDL unchanged: a database any
release left at step 1 upgrades from here. Revisions spell out the DDL of their day instead
of reusing ``tables.py``, so that later changes there never rewrite history.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from flows.storage.tables import UtcDateTime

revision = "0002"
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Index audit entries by time, for reports across all processes."""
    _step2_audit_time_index(op.get_bind())


def downgrade() -> None:
    """Refused: prepflow never drops a secretariat's records; restore a backup instead."""
    raise NotImplementedError("prepflow schema revisions are not reversible; restore a backup")


def _step2_audit_time_index(conn: sa.Connection) -> None:
    """Index audit entries by time: "what happened across all processes this week" reports."""
    md = sa.MetaData()
    log = sa.Table("audit_log", md, sa.Column("at", UtcDateTime))
    sa.Index("ix_audit_log_at", log.c.at).create(conn)
