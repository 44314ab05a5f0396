"""Shared fixtures. PostgreSQL tests get a database of their own, so runs never collide."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from sqlalchemy.pool import NullPool

#: A database on the local server we may connect to in order to create and drop others.
PG_ADMIN_URL = os.environ.get(
    "PREPFLOW_TEST_POSTGRES_URL", "postgresql+psycopg://root@127.0.0.1:5432/test"
)


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """URL of a fresh PostgreSQL database, dropped (WITH (FORCE)) after the test."""
    name = f"prepflow_t_{uuid.uuid4().hex}"
    admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    except sa.exc.OperationalError as exc:
        admin.dispose()
        # Fail, not skip: CI has PostgreSQL, and a silent skip would hide lost coverage.
        pytest.fail(
            f"PostgreSQL tests need the server at {PG_ADMIN_URL} (set "
            f"PREPFLOW_TEST_POSTGRES_URL to use another): {exc.orig}",
            pytrace=False,
        )
    try:
        yield sa.make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()
