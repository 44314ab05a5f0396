"""The names prepflow's schema bookkeeping uses in a database (shared by the runner and env.py).

Alembic's default ``alembic_version`` is not ours to claim: a database that has one belongs
to some application that uses Alembic (Prefect's own database does), and it must be refused,
not migrated into.
"""

#: The table that holds prepflow's Alembic revision.
VERSION_TABLE = "prepflow_alembic_version"
#: The hand-written runner's table (prepflow 0.1).
LEGACY_TABLE = "prepflow_schema"
