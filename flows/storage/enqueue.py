"""Writing messages to the outbox: the rows a draft becomes, written idempotently.

Used by a transition (in its transaction, on the driver cursor: hot.py), by a nomination (with
the register's rows) and by ``enqueue``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import fields

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from flows.storage import hot
from flows.storage.chain import to_document, to_utc
from flows.storage.notify_model import OutboxDraft
from flows.storage.tables import outbox

_O = outbox.c
# ON CONFLICT DO NOTHING: a key already written (a retried transition, a resumed run) is
# skipped, never an error and never a second message. RETURNING, not rowcount, counts the new
# rows: psycopg's rowcount is not reliable for ON CONFLICT.
ENQUEUE = {
    name: dialect.insert(outbox)
    .on_conflict_do_nothing(index_elements=[_O.key])
    .returning(_O.id)
    for name, dialect in (("sqlite", sqlite), ("postgresql", postgresql))
}


def outbox_rows(drafts: Iterable[OutboxDraft]) -> list[dict[str, object]]:
    """ENQUEUE parameters; contexts are checked as JSON before anything is written."""
    rows: list[dict[str, object]] = []
    for o in drafts:
        context = to_document(o.context, f"context of outbox message {o.key!r}")
        at = to_utc(o.created_at)
        rows.append(
            {
                **{"key": o.key, "process_id": o.process_id, "event": o.event},
                **{"recipient": o.recipient, "email": o.email, "name": o.name},
                **{"language": o.language, "timezone": o.timezone, "context": context},
                **{"created_at": at, "status": "pending", "attempts": 0},
                "next_attempt_at": at,
            }
        )
    return rows


def insert_outbox(conn: sa.Connection, rows: Sequence[dict[str, object]]) -> int:
    """Insert prepared outbox rows in the connection's transaction; the number actually new."""
    if not rows:
        return 0
    return len(conn.execute(ENQUEUE[conn.dialect.name], rows).all())


#: ENQUEUE one row at a time on the driver cursor, for the transition path (hot.py): sqlite3
#: runs no RETURNING under executemany, and a transition queues a handful of messages.
_DRAFT_COLUMNS = [c.name for c in outbox.c if c.name in {f.name for f in fields(OutboxDraft)}]
ENQUEUE_ONE = {
    name: hot.Statement(statement, [*_DRAFT_COLUMNS, "status", "attempts", "next_attempt_at"])
    for name, statement in ENQUEUE.items()
}


def insert_outbox_hot(conn: sa.Connection, rows: Sequence[dict[str, object]]) -> int:
    """insert_outbox on the driver cursor (hot.py), values bound as the column types do."""
    dialect, added = conn.dialect, 0
    for row in rows:
        at = hot.time_in(dialect, row["created_at"])  # type: ignore[arg-type]  # outbox_rows'
        params = {**row, "context": hot.json_in(row["context"]), "created_at": at}
        params["next_attempt_at"] = at
        added += len(hot.run(conn, ENQUEUE_ONE[dialect.name], params).fetchall())
    return added
