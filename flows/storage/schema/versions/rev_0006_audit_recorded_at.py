"""The real clock beside the effective time of each audit entry (issue 9).

An action taken with ``--now`` is recorded at that effective time; ``recorded_at`` keeps when
it was really written, so ``audit`` and ``status`` can say so. Entries written before this
revision get NULL (unknown) and keep the hash they were written with.

Revisions spell out the DDL of their day instead of reusing ``tables.py``, so that later
changes there never rewrite history.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from flows.storage.tables import UtcDateTime

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """The audit log's recording time (issue 9)."""
    _step6_audit_recorded_at()


def downgrade() -> None:
    """Refused: prepflow never drops a secretariat's records; restore a backup instead."""
    raise NotImplementedError("prepflow schema revisions are not reversible; restore a backup")


def _step6_audit_recorded_at() -> None:
    """A nullable column: NULL is "written before the clock was kept", never a guess."""
    op.add_column("audit_log", sa.Column("recorded_at", UtcDateTime, nullable=True))
