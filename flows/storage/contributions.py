"""The contributions register in SQL (issue 8), with the audit entries of each addition.

An addition takes its audit entries (``audit=``) into the same transaction and locks the
process row first (sql_base's lock order). Rows are the core's ``Contribution`` values: the
register is a list of them, each decided on (on time or late) by ``states.contributions``.
"""

from __future__ import annotations

import builtins
from collections.abc import Sequence

import sqlalchemy as sa

from flows.storage.model import AuditDraft
from flows.storage.sql_base import Database, append_audit, lock_chain, require
from flows.storage.tables import contributions
from states.contribution_types import Contribution

_C = contributions.c
_OF_PROCESS = _C.process_id == sa.bindparam("pid")
# One statement for a whole batch; sort_by_parameter_order keeps the ids in the given order.
ADD = sa.insert(contributions).returning(*_C, sort_by_parameter_order=True)
ALL = sa.select(contributions).where(_OF_PROCESS).order_by(_C.id)
OF_CYCLES = (
    sa.select(contributions)
    .where(_OF_PROCESS, _C.cycle.in_(sa.bindparam("cycles", expanding=True)))
    .order_by(_C.id)
)
_FIELDS = [c.name for c in contributions.c if c.name != "id"]


def contribution(row: sa.Row[tuple[object, ...]]) -> Contribution:
    """A Contribution from a row (the columns are named as its fields)."""
    return Contribution.model_validate(dict(row._mapping))


def rows(process_id: str, items: Sequence[Contribution]) -> list[dict[str, object]]:
    """ADD's parameters for contributions of ``process_id`` (ids are the database's)."""
    out = []
    for item in items:
        if item.process_id != process_id:
            raise ValueError(f"a contribution of '{item.process_id}' cannot be added to "
                             f"'{process_id}'")
        values = item.model_dump(exclude={"id"})
        out.append({name: values[name] for name in _FIELDS})
    return out


def insert_contributions(conn: sa.Connection, process_id: str,
                         items: Sequence[Contribution]) -> list[Contribution]:
    """Write ``items`` in ``conn``'s transaction; the stored contributions, with their ids."""
    if not items:
        return []
    return [contribution(row) for row in conn.execute(ADD, rows(process_id, items)).all()]


def read_contributions(conn: sa.Connection, process_id: str,
                       cycles: Sequence[str] | None = None) -> list[Contribution]:
    """The register of ``process_id`` in the order recorded, optionally of some cycles only."""
    if cycles is None:
        found = conn.execute(ALL, {"pid": process_id}).all()
    elif not cycles:
        return []
    else:
        found = conn.execute(OF_CYCLES, {"pid": process_id, "cycles": list(cycles)}).all()
    return [contribution(row) for row in found]


class SqlContributions:
    """The ContributionStore of a SQL database."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def add_contributions(
        self, process_id: str, items: Sequence[Contribution], *,
        audit: Sequence[AuditDraft] = (),
    ) -> builtins.list[Contribution]:
        """Add ``items`` and append the ``audit`` entries in one transaction, all or nothing."""
        with self._db.write() as conn:
            head = lock_chain(conn, process_id)
            added = insert_contributions(conn, process_id, items)
            append_audit(conn, process_id, head, audit)
        return added

    def contributions(self, process_id: str,
                      cycle: str | None = None) -> builtins.list[Contribution]:
        """The register of ``process_id`` in the order recorded, optionally of one cycle;
        UnknownProcess when there is no such process."""
        with self._db.read() as conn:
            found = read_contributions(conn, process_id, None if cycle is None else [cycle])
            if not found:
                require(conn, process_id)
        return found
