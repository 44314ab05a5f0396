"""The durable store: processes as opaque JSON documents plus a tamper-evident audit log,
the experts register and the outbox of messages to send.

``open_store(url)`` gives a SqlStore (SQLite by default, PostgreSQL for several workers);
MemoryStore is the test double with the same behaviour.
"""

from __future__ import annotations

from flows.storage.chain import GENESIS, entry_hash
from flows.storage.memory_store import MemoryStore
from flows.storage.migrations import LATEST as SCHEMA_VERSION
from flows.storage.model import (
    AuditDraft,
    AuditEntry,
    Store,
    StoredProcess,
    StoreError,
    UnknownProcess,
    VersionConflict,
)
from flows.storage.notify_model import (
    DuplicateExpert,
    Expert,
    ExpertDraft,
    OutboxDraft,
    OutboxItem,
    UnknownExpert,
    UnknownOutboxItem,
    mask_email,
    normalise_email,
)
from flows.storage.sql_store import SqlStore

#: Used when PREPFLOW_DATABASE_URL is not set: a file in the working directory.
DEFAULT_URL = "sqlite:///prepflow.db"


def open_store(url: str | None = None) -> Store:
    """The store at ``url`` (default: prepflow.db in the working directory), schema up to date."""
    return SqlStore(url or DEFAULT_URL)


__all__ = [
    "DEFAULT_URL",
    "GENESIS",
    "SCHEMA_VERSION",
    "AuditDraft",
    "AuditEntry",
    "DuplicateExpert",
    "Expert",
    "ExpertDraft",
    "MemoryStore",
    "OutboxDraft",
    "OutboxItem",
    "SqlStore",
    "Store",
    "StoreError",
    "StoredProcess",
    "UnknownExpert",
    "UnknownOutboxItem",
    "UnknownProcess",
    "VersionConflict",
    "entry_hash",
    "mask_email",
    "normalise_email",
    "open_store",
]
