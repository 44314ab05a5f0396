"""A real store for tests and rehearsals: SQLite in a throwaway folder, no hand-written double.

STYLE 14: where a real SQLite serves, prefer it to a double that must mirror SQL semantics
(ON CONFLICT, SKIP LOCKED, the hash chain's locking). It costs a schema upgrade per store,
a few tens of milliseconds.
"""

from __future__ import annotations

import shutil
import tempfile
import weakref
from pathlib import Path

from flows.storage.sql_store import SqlStore


def sqlite_store(folder: Path) -> SqlStore:
    """A store on a new (or existing) ``prepflow.db`` in ``folder``."""
    return SqlStore(f"sqlite:///{folder / 'prepflow.db'}")


def throwaway_store() -> SqlStore:
    """A store on a new SQLite file in a temporary folder, removed with the store (when it is
    garbage-collected, or when the interpreter exits)."""
    folder = Path(tempfile.mkdtemp(prefix="prepflow-store-"))
    store = sqlite_store(folder)
    weakref.finalize(store, shutil.rmtree, folder, ignore_errors=True)
    return store
