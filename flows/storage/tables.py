"""The current shape of the tables, for reading and writing (SQLAlchemy Core, not ORM: speed).

Migrations do not use these objects: each step spells out the DDL of its day, so that changing
a table here never changes what an old step did.
"""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.engine import Dialect

from flows.storage.chain import to_utc


class UtcDateTime(sa.TypeDecorator[datetime]):
    """Aware UTC in, aware UTC out, on SQLite (which keeps no zone) and PostgreSQL alike."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        utc = to_utc(value)
        # SQLite stores the wall time only; it is UTC by this type's contract.
        return utc if dialect.name == "postgresql" else utc.replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


# JSON (not JSONB) on PostgreSQL keeps the documents' text exactly, so audit inputs read back
# exactly as they were hashed (JSONB would turn 1e+20 into 100000000000000000000).
metadata = sa.MetaData()

# One row per distinct definition: thousands of processes usually share one (revision 0003).
# A body never changes under its hash, so a store may cache it for as long as it lives.
definitions = sa.Table(
    "definitions",
    metadata,
    sa.Column("hash", sa.Text, primary_key=True),
    sa.Column("body", sa.JSON, nullable=False),
)

processes = sa.Table(
    "processes",
    metadata,
    sa.Column("process_id", sa.Text, primary_key=True),
    sa.Column("definition_hash", sa.Text, sa.ForeignKey("definitions.hash"), nullable=False),
    sa.Column("state", sa.JSON, nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("audit_seq", sa.Integer, nullable=False),
    sa.Column("head_hash", sa.String(64), nullable=False),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("updated_at", UtcDateTime, nullable=False),
)

audit_log = sa.Table(
    "audit_log",
    metadata,
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
    # The real clock at writing (revision 0006), beside the effective ``at`` (which --now
    # may set); NULL for entries written before it was kept.
    sa.Column("recorded_at", UtcDateTime),
    sa.Index("ix_audit_log_at", "at"),
)

# Members' tokens (revision 0008, issue 10): a token is shown once when issued; only its
# salted scrypt hash is kept (with the parameters it was made with), looked up by token_id.
member_tokens = sa.Table(
    "prepflow_member_tokens",
    metadata,
    sa.Column("token_id", sa.Text, primary_key=True),
    sa.Column("process_id", sa.Text, sa.ForeignKey("processes.process_id"), nullable=False),
    sa.Column("member", sa.Text, nullable=False),
    sa.Column("secret_hash", sa.Text, nullable=False),
    sa.Column("issued_at", UtcDateTime, nullable=False),
    sa.Column("issued_by", sa.Text, nullable=False),
    sa.Column("revoked_at", UtcDateTime),
    sa.Column("revoked_by", sa.Text),
    sa.Index("ix_prepflow_member_tokens_process", "process_id"),
)

# The experts register (revision 0004). Emails are stored normalised (stripped, lower-case), so
# the unique index makes "same address, ignoring case" a database rule, not only a check.
experts = sa.Table(
    "experts",
    metadata,
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
)

# Messages to send (revision 0004): written in the transition's transaction, drained by the
# deliverer. ``key`` makes every write idempotent; (status, next_attempt_at) serves claim().
outbox = sa.Table(
    "outbox",
    metadata,
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
    # Revision 0007 (issue 9): the delivery run holding a 'sending' row, and how many times the
    # message may have reached a server (accepted, or handed over with its fate unknown).
    sa.Column("claimed_by", sa.Text),
    sa.Column("sends", sa.Integer, nullable=False, server_default="0"),
    sa.Index("ux_outbox_key", "key", unique=True),
    sa.Index("ix_outbox_due", "status", "next_attempt_at"),
)

# Delivery runs alive now (revision 0007): each holds a lease it renews while it runs; a row
# 'sending' whose run is gone, expired, or a dead process on this host is taken back at once.
outbox_runs = sa.Table(
    "prepflow_outbox_runs",
    metadata,
    sa.Column("run_id", sa.Text, primary_key=True),
    sa.Column("host", sa.Text, nullable=False),
    sa.Column("pid", sa.Integer, nullable=False),
    sa.Column("started_at", UtcDateTime, nullable=False),
    sa.Column("lease_until", UtcDateTime, nullable=False),
)

# The contributions register (revision 0005): every contribution received on a draft, on time
# or late (never dropped); a window's summary reads one (process_id, cycle).
contributions = sa.Table(
    "prepflow_contributions",
    metadata,
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
)
