"""Keep each distinct definition once, in ``definitions``, not once per process.

Schema step 3 of the hand-written runner this replaces, its DDL unchanged: a database any
release left at step 2 upgrades from here. Revisions spell out the DDL of their day instead
of reusing ``tables.py``, so that later changes there never rewrite history.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from flows.storage.errors import StoreError
from flows.storage.tables import UtcDateTime

revision = "0003"
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Keep each distinct definition once, in ``definitions``, not once per process."""
    _step3_shared_definitions(op.get_bind())


def downgrade() -> None:
    """Refused: prepflow never drops a secretariat's records; restore a backup instead."""
    raise NotImplementedError("prepflow schema revisions are not reversible; restore a backup")


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
    # "other kinds of table schema changes"; schema.runner has turned foreign keys off meanwhile).
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
    names = [column.name for column in columns]
    rebuilt = sa.Table("processes_new", md, *columns)
    rebuilt.create(conn)
    current = sa.table("processes", *(sa.column(name) for name in names))
    conn.execute(sa.insert(rebuilt).from_select(names, sa.select(*current.c)))
    conn.exec_driver_sql("DROP TABLE processes")
    conn.exec_driver_sql("ALTER TABLE processes_new RENAME TO processes")
