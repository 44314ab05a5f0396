"""Members' tokens (issue 10): an identity the person does not merely type.

One row per token issued by ``prepflow members token issue``: whose it is, the salted scrypt
hash of its secret (never the secret), who issued it and when, and its revocation. Revisions
spell out the DDL of their day instead of reusing ``tables.py``, so that later changes there
never rewrite history.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from flows.storage.tables import UtcDateTime

revision = "0008"
down_revision = "0007"  # the outbox revision (issue 10 lands after it)
branch_labels = None
depends_on = None


def upgrade() -> None:
    """The members' tokens table (issue 10)."""
    _step8_member_tokens(op.get_bind())


def downgrade() -> None:
    """Refused: prepflow never drops a secretariat's records; restore a backup instead."""
    raise NotImplementedError("prepflow schema revisions are not reversible; restore a backup")


def _step8_member_tokens(conn: sa.Connection) -> None:
    """Looked up by token id (the part of a token before its secret), listed by process."""
    md = sa.MetaData()
    sa.Table("processes", md, sa.Column("process_id", sa.Text, primary_key=True))
    sa.Table(
        "prepflow_member_tokens",
        md,
        sa.Column("token_id", sa.Text, primary_key=True),
        sa.Column("process_id", sa.Text, sa.ForeignKey("processes.process_id"), nullable=False),
        sa.Column("member", sa.Text, nullable=False),
        sa.Column("secret_hash", sa.Text, nullable=False),
        sa.Column("issued_at", UtcDateTime, nullable=False),
        sa.Column("issued_by", sa.Text, nullable=False),
        sa.Column("revoked_at", UtcDateTime),
        sa.Column("revoked_by", sa.Text),
        sa.Index("ix_prepflow_member_tokens_process", "process_id"),
    ).create(conn)
