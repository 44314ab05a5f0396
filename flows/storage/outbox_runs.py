"""Delivery runs and their leases (issue 9: a crash loses nothing).

Each delivery run writes a row here before it claims anything, renews its lease while it
runs, and deletes the row when it ends. Every outbox row it claims names it (``claimed_by``),
so the next run can tell a live run's rows from a dead one's and take the dead one's back at
once, instead of waiting a fixed 15 minutes. The rules for "dead" (lease expired, or a process
gone on this host) are the deliverer's (flows/mail/leases.py); this module only runs the SQL.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import sqlalchemy as sa

from flows.storage.chain import to_utc
from flows.storage.notify_model import DeliveryRun, OutboxItem
from flows.storage.tables import outbox, outbox_runs

_O = outbox.c
_R = outbox_runs.c

START = sa.insert(outbox_runs)
RENEW = (sa.update(outbox_runs).where(_R.run_id == sa.bindparam("run"))
         .values(lease_until=sa.bindparam("until")))
RUNS = sa.select(outbox_runs).order_by(_R.started_at, _R.run_id)
FORGET = sa.delete(outbox_runs).where(_R.run_id.in_(sa.bindparam("dead", expanding=True)))
# A row is a stopped run's when its run is named dead, or has no row here at all (ended
# without settling it, or claimed by code older than the leases). A live run's row is never
# taken: its run row is written before it claims anything.
_STRANDED = sa.and_(
    _O.status == "sending",
    sa.or_(
        _O.claimed_by.is_(None),
        _O.claimed_by.in_(sa.bindparam("dead", expanding=True)),
        _O.claimed_by.not_in(sa.select(_R.run_id).scalar_subquery()),
    ),
)
# Handed to the server perhaps (its 250 unrecorded): one more possible send either way.
RESEND = (
    sa.update(outbox).where(_STRANDED)
    .values(status="pending", next_attempt_at=sa.bindparam("now"), sends=_O.sends + 1,
            last_error=sa.bindparam("why"))
    .returning(*_O)
)
HOLD = (
    sa.update(outbox).where(_STRANDED)
    .values(status="uncertain", sends=_O.sends + 1, last_error=sa.bindparam("why"))
    .returning(*_O)
)
RESENT_WHY = ("resent: a stopped delivery run held it, and it may have arrived already "
              "(same Message-ID)")
HELD_WHY = ("uncertain: a stopped delivery run held it; it may have arrived. Not resent "
            "(PREPFLOW_SMTP_UNCERTAIN=hold)")


def start(conn: sa.Connection, run: DeliveryRun) -> None:
    """Write the run's row (its lease) in ``conn``'s transaction."""
    conn.execute(START, {"run_id": run.run_id, "host": run.host, "pid": run.pid,
                         "started_at": to_utc(run.started_at),
                         "lease_until": to_utc(run.lease_until)})


def renew(conn: sa.Connection, run_id: str, until: datetime) -> bool:
    """Extend the lease; False if the run's row is gone (another run found it dead)."""
    return bool(conn.execute(RENEW, {"run": run_id, "until": to_utc(until)}).rowcount == 1)


def runs(conn: sa.Connection) -> list[DeliveryRun]:
    """Every run with a row, oldest first."""
    return [DeliveryRun(**row._mapping) for row in conn.execute(RUNS).all()]


def take_back(conn: sa.Connection, dead: Sequence[str], now: datetime,
              resend: bool) -> list[sa.Row[tuple[object, ...]]]:
    """The stranded rows back to pending (``resend``) or to uncertain, and the dead runs'
    rows deleted, in ``conn``'s transaction; the rows changed."""
    statement, why = (RESEND, RESENT_WHY) if resend else (HOLD, HELD_WHY)
    changed = conn.execute(statement, {"dead": list(dead), "now": to_utc(now), "why": why}).all()
    if dead:
        conn.execute(FORGET, {"dead": list(dead)})
    return list(changed)


def as_items(rows: Sequence[sa.Row[tuple[object, ...]]]) -> list[OutboxItem]:
    """OutboxItems by id (RETURNING promises no order)."""
    return sorted((OutboxItem(**row._mapping) for row in rows), key=lambda i: i.id)
