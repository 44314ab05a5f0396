"""Shared plumbing for the Prefect flows: the store a run works on, and its run's name.

Flows are thin (load → decide → perform → record); this is the part they share.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from datetime import datetime

from flows.appsettings import Settings
from flows.clock import SystemClock
from flows.service import Service
from flows.storage import open_store

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")


@contextlib.contextmanager
def service_for(database: str | None) -> Iterator[Service]:
    """A service on the run's store (parameter, else PREPFLOW_DATABASE_URL, else default)."""
    store = open_store(database or Settings().database_url)
    try:
        yield Service(store, SystemClock())
    finally:
        store.close()


def rename_run(name: str) -> None:
    """Say in the run's name what it did: operators scan names, not logs."""
    from prefect.client.orchestration import get_client
    from prefect.runtime import flow_run

    run_id = flow_run.get_id()
    if run_id is None:
        return
    with get_client(sync_client=True) as client:
        client.update_flow_run(run_id, name=name[:200])


def aware(now: datetime | None) -> datetime | None:
    """Prefect parameters may arrive naive from a form: refuse rather than guess."""
    if now is not None and now.tzinfo is None:
        raise ValueError(f"now={now.isoformat()} has no time zone; give one (e.g. +00:00)")
    return now
