"""prepflow's schema as Alembic revisions (versions/), migrated from code by runner.py.

Named ``schema``, not ``alembic``: a package named after a library would shadow it.
"""

from __future__ import annotations

from flows.storage.schema.runner import (
    LEGACY_STEPS,
    Found,
    config,
    current,
    describe_revision,
    head,
    revisions,
    upgrade,
)

__all__ = [
    "LEGACY_STEPS",
    "Found",
    "config",
    "current",
    "describe_revision",
    "head",
    "revisions",
    "upgrade",
]
