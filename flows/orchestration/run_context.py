"""Shared plumbing for the Prefect flows: the store a run works on, and its run's name.

Flows are thin (load → decide → perform → record); this is the part they share.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import threading
from collections import OrderedDict
from collections.abc import Iterator
from datetime import datetime
from uuid import UUID

from flows.addresses import mask_logger
from flows.clock import SystemClock
from flows.identity.gate import Caller
from flows.settings import load_settings
from flows.shell import Service
from flows.storage import Store, open_store
from states.dates import require_aware

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")


_OPEN: OrderedDict[str, Store] = OrderedDict()
_KEEP = 4
_LOCK = threading.Lock()


@contextlib.contextmanager
def service_for(database: str | None, caller: Caller | None = None) -> Iterator[Service]:
    """A service on the run's store (parameter, else PREPFLOW_DATABASE_URL, else default).

    Stores stay open for the next run in this process (a rehearsal makes dozens of runs; a
    worker many): the few most recent are kept, older ones closed. ``caller``: who acts
    through it (a form's channel and token, issue 10).
    """
    url = database or load_settings().database.url
    with _LOCK:
        store = _OPEN.pop(url, None) or open_store(url)
        _OPEN[url] = store
        while len(_OPEN) > _KEEP:
            _OPEN.popitem(last=False)[1].close()
    yield Service(store, SystemClock(), caller)


@atexit.register
def close_stores() -> None:
    """Close every store kept open (at exit, and by tests that drop their databases)."""
    with _LOCK:
        while _OPEN:
            _OPEN.popitem()[1].close()


def rename_run(name: str) -> None:
    """Say in the run's name what it did: operators scan names, not logs."""
    from prefect.context import SyncClientContext
    from prefect.runtime import flow_run

    run_id = flow_run.get_id()
    if run_id is None:
        return
    with SyncClientContext.get_or_create() as context:  # the engine's client: no new connection
        context.client.update_flow_run(UUID(str(run_id)), name=name[:200])


def aware(now: datetime | None) -> datetime | None:
    """Prefect parameters may arrive naive from a form: refuse rather than guess."""
    if now is not None:
        require_aware(now, "now")
    return now


def run_logger() -> logging.Logger | logging.LoggerAdapter[logging.Logger]:
    """The current run's Prefect logger, with addresses masked before Prefect ships a record to
    its server (a refusal or an SMTP reply may quote an expert's or a member's address)."""
    from prefect import get_run_logger

    logger = get_run_logger()
    mask_logger(logger.logger if isinstance(logger, logging.LoggerAdapter) else logger)
    return logger
