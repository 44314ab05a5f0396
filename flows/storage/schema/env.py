"""Alembic's environment script, run by ``alembic.command`` from flows/storage/schema/runner.py.

There is no alembic.ini and no engine here: the runner hands in a connection already inside
its transaction (``config.attributes["connection"]``), under the PostgreSQL advisory lock or
SQLite's BEGIN IMMEDIATE, so that concurrent openers migrate one at a time.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context

from flows.storage.schema.names import VERSION_TABLE
from flows.storage.tables import metadata

_connection = context.config.attributes.get("connection")
if not isinstance(_connection, sa.Connection):
    raise RuntimeError(
        "prepflow's schema is migrated from code (flows.storage.schema), with a connection "
        "in config.attributes['connection']; there is no alembic.ini to run it from"
    )
# compare_type: `alembic check` also compares column types, not only names. A version table of
# our own: another application's `alembic_version` must never be taken for prepflow's.
context.configure(connection=_connection, target_metadata=metadata, compare_type=True,
                  version_table=VERSION_TABLE)
with context.begin_transaction():  # the runner's transaction: Alembic nests nothing
    context.run_migrations()
