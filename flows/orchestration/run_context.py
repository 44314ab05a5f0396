"""Shared plumbing for the Prefect flows: the store a run works on, and its run's name.

Flows are thin (load → decide → perform → record); this is the part they share.

Flows never take credentials as parameters (issue 9): Prefect keeps a run's parameters on its
server and shows them in its UI. A flow's ``database`` parameter names a store by a URL
without a password (a SQLite file, a rehearsal's store); the credentials of the production
store come from the settings (PREPFLOW_DATABASE_URL, which ``prepflow serve --database``
sets for its flow runs, whose deployments carry no store). A password in the parameter of a
run started in this process (a rehearsal, a test) reaches Prefect masked (``store_flow``); a
run the Prefect server already recorded with one in clear (started from its UI or API) is
refused before the store is opened (``store_url``).
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any, ParamSpec, TypeVar
from uuid import UUID

import sqlalchemy as sa
from prefect import Flow

from flows.addresses import mask_logger
from flows.clock import SystemClock
from flows.identity.gate import Caller
from flows.settings import load_settings
from flows.shell import Service
from flows.storage import Store, open_store
from states.dates import require_aware
from states.errors import InputError

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")


_OPEN: OrderedDict[tuple[str, bytes | None], Store] = OrderedDict()
_KEEP = 4
_LOCK = threading.Lock()
P = ParamSpec("P")
R = TypeVar("R")


def password_of(url: str) -> str | None:
    """The password in a store URL, if any (a URL that does not parse has none we can see)."""
    try:
        return sa.make_url(url).password
    except sa.exc.ArgumentError:
        return None


def masked(url: str) -> str:
    """``url`` with its password (if any) shown as ***, for a record kept by Prefect."""
    if not password_of(url):
        return url
    return sa.make_url(url).render_as_string(hide_password=True)


def store_url(database: str | None) -> str:
    """The run's store: the ``database`` parameter (a URL without a password), else the
    settings' PREPFLOW_DATABASE_URL, else the default."""
    if database is not None and password_of(database) and _recorded_in_clear(database):
        raise InputError(
            f"this run's database parameter ({masked(database)}) holds a password, which the "
            "Prefect server now keeps in the run's record and shows in its UI. Nothing was "
            "opened or changed. Delete this flow run, change the database password, and start "
            "runs without the parameter: set PREPFLOW_DATABASE_URL in the environment of the "
            "process running the flows ('prepflow serve --database URL' does that).")
    return database or load_settings().database.url


def _recorded_in_clear(database: str) -> bool:
    """The current flow run's record on the Prefect server holds ``database`` unmasked (it
    was created elsewhere than by a StoreFlow call in this process)."""
    from prefect.context import FlowRunContext

    context = FlowRunContext.get()
    run = None if context is None else context.flow_run
    return run is not None and run.parameters.get("database") == database


class StoreFlow(Flow[P, R]):
    """A Prefect flow whose ``database`` parameter is recorded with its password masked.
    (Prefect's ``with_options`` builds a plain Flow: give such a copy no password.)"""

    def serialize_parameters(self, parameters: dict[str, Any]) -> dict[str, Any]:
        """Prefect's serialization, after masking: what the server keeps of a run's inputs."""
        database = parameters.get("database")
        if isinstance(database, str) and password_of(database):
            parameters = {**parameters, "database": masked(database)}
        return super().serialize_parameters(parameters)


def store_flow(name: str, log_prints: bool = False,
               persist_result: bool = True) -> Callable[[Callable[P, R]], StoreFlow[P, R]]:
    """``@flow(...)`` for a flow that takes a ``database`` parameter (see StoreFlow)."""

    def decorate(fn: Callable[P, R]) -> StoreFlow[P, R]:
        return StoreFlow(fn, name=name, log_prints=log_prints, persist_result=persist_result)

    return decorate


@contextlib.contextmanager
def service_for(database: str | None, caller: Caller | None = None) -> Iterator[Service]:
    """A service on the run's store (``store_url``), chained with the settings' audit key.

    Stores stay open for the next run in this process (a rehearsal makes dozens of runs; a
    worker many): the few most recent are kept, older ones closed. ``caller``: who acts
    through it (a form's channel and token, issue 10).
    """
    url = store_url(database)
    key = load_settings().audit.secret_key()
    with _LOCK:
        store = _OPEN.pop((url, key), None) or open_store(url, key)
        _OPEN[(url, key)] = store
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
