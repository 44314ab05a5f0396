"""The durable store: processes as opaque JSON documents plus a tamper-evident audit log,
the experts register and the outbox of messages to send.

``open_store(url)`` gives a SqlStore (SQLite by default, PostgreSQL for several workers). Each
aggregate has its own protocol (ProcessStore, RegisterStore, OutboxStore); ``Store`` is all of
them. Tests use a real SQLite store (flows.storage.testing), not a hand-written double.
"""

from __future__ import annotations

from flows.storage.chain import GENESIS, entry_hash
from flows.storage.errors import (
    DuplicateExpert,
    StoreError,
    UnknownExpert,
    UnknownOutboxItem,
    UnknownProcess,
    VersionConflict,
)
from flows.storage.model import AuditDraft, AuditEntry, StoredProcess
from flows.storage.notify_model import Expert, ExpertDraft, OutboxDraft, OutboxItem
from flows.storage.protocols import (
    ContributionStore,
    OutboxStore,
    ProcessStore,
    ProcessTransaction,
    RegisterStore,
    Store,
)
from flows.storage.sql_store import SqlStore

#: Used when PREPFLOW_DATABASE_URL is not set: a file in the working directory.
DEFAULT_URL = "sqlite:///prepflow.db"


def open_store(url: str | None = None, key: bytes | None = None) -> SqlStore:
    """The store at ``url`` (default: prepflow.db in the working directory), schema up to date;
    ``key``: the audit key new processes' chains are keyed with (settings.AuditSettings)."""
    return SqlStore(url or DEFAULT_URL, key=key)


__all__ = [
    "DEFAULT_URL",
    "GENESIS",
    "AuditDraft",
    "AuditEntry",
    "ContributionStore",
    "DuplicateExpert",
    "Expert",
    "ExpertDraft",
    "OutboxDraft",
    "OutboxItem",
    "OutboxStore",
    "ProcessStore",
    "ProcessTransaction",
    "RegisterStore",
    "SqlStore",
    "Store",
    "StoreError",
    "StoredProcess",
    "UnknownExpert",
    "UnknownOutboxItem",
    "UnknownProcess",
    "VersionConflict",
    "entry_hash",
    "open_store",
]
