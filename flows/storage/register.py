"""The experts register in SQL (issue 4), with the outbox rows and audit entries of a change.

A secretariat's change takes its audit entries (``audit=``) into the same transaction, and
locks the process row first (sql_base's lock order). Emails are stored normalised, so the
unique (process_id, email) index makes "same address, ignoring case" a database rule.
"""

from __future__ import annotations

import builtins
from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa

from flows.addresses import normalise_email
from flows.storage.chain import to_utc
from flows.storage.enqueue import insert_outbox, outbox_rows
from flows.storage.errors import UnknownExpert
from flows.storage.model import AuditDraft
from flows.storage.notify_model import (
    ERASED,
    ERASED_PENDING_ERROR,
    ERASED_TEXT_FIELDS,
    EXPERT_STATUSES,
    Expert,
    ExpertDraft,
    OutboxDraft,
    addressed_to,
    check_choice,
    erased_email,
    refuse_duplicates,
)
from flows.storage.sql_base import Database, append_audit, lock_chain, require
from flows.storage.tables import experts, outbox

_E = experts.c
_O = outbox.c
_OF_PROCESS = _E.process_id == sa.bindparam("pid")
_AT = _E.email == sa.bindparam("address")
# One statement for a whole batch; sort_by_parameter_order keeps the ids in the drafts' order.
ADD = sa.insert(experts).returning(*_E, sort_by_parameter_order=True)
STORED_EMAILS = sa.select(_E.email).where(_OF_PROCESS)
EXPERTS = sa.select(experts).where(_OF_PROCESS).order_by(_E.id)
EXPERTS_BY_STATUS = (
    sa.select(experts).where(_OF_PROCESS, _E.status == sa.bindparam("wanted")).order_by(_E.id)
)
SET_STATUS = (
    sa.update(experts)
    .where(_OF_PROCESS, _AT, _E.erased.is_(False))
    .values(status=sa.bindparam("new_status"))
    .returning(*_E)
)
FIND = sa.select(_E.id).where(_OF_PROCESS, _AT)
ERASE = (
    sa.update(experts)
    .where(_E.id == sa.bindparam("expert_id"))
    .values(
        email=sa.bindparam("erased_as"),
        **dict.fromkeys(ERASED_TEXT_FIELDS, ERASED),
        gender=None,
        timezone=None,
        erased=True,
    )
)
TO_ERASE = (
    sa.select(_O.id, _O.email, _O.recipient, _O.status)
    .where(_O.process_id == sa.bindparam("pid"))
    .with_for_update()
)
# Erasure clears the server's reply and the last error too: servers repeat the recipient's
# address in them ('550 5.1.1 <ana.silva@example.br>: Recipient address rejected'). A message
# not yet sent is cancelled: it could only go to the erased address now.
_SCRUBBED = {"email": sa.bindparam("erased_as"), "name": ERASED, "context": {"erased": True}}
SCRUB_PENDING = (
    sa.update(outbox)
    .where(_O.id == sa.bindparam("item_id"))
    .values(
        **_SCRUBBED,
        status="failed",
        last_error=ERASED_PENDING_ERROR,
        failed_at=sa.bindparam("at"),
        reply=None,
    )
)
SCRUB_KEEP_STATUS = (
    sa.update(outbox)
    .where(_O.id == sa.bindparam("item_id"))
    .values(**_SCRUBBED, last_error=None, reply=None)
)


def expert(row: sa.Row[tuple[object, ...]]) -> Expert:
    """An Expert from a row of the experts table (its columns are the expert's fields)."""
    return Expert(**row._mapping)  # the columns are named as the fields (tests check both)


def read_experts(
    conn: sa.Connection, process_id: str, status: str | None, *, known_process: bool = False
) -> list[Expert]:
    """The register of ``process_id`` in nomination order, optionally of one status
    (``known_process``: the caller has read the process already, so none is no error)."""
    if status is None:
        rows = conn.execute(EXPERTS, {"pid": process_id}).all()
    else:
        check_choice(status, EXPERT_STATUSES, "expert status")
        rows = conn.execute(EXPERTS_BY_STATUS, {"pid": process_id, "wanted": status}).all()
    if not rows and not known_process:
        require(conn, process_id)
    return [expert(row) for row in rows]


class SqlRegister:
    """The RegisterStore of a SQL database."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def add_experts(
        self,
        process_id: str,
        drafts: Sequence[ExpertDraft],
        outbox: Sequence[OutboxDraft] = (),
        *,
        audit: Sequence[AuditDraft] = (),
    ) -> builtins.list[Expert]:
        """Register nominations (with their outbox rows and ``audit`` entries) all or nothing;
        DuplicateExpert if an address repeats, in the batch or against the register."""
        emails = [normalise_email(x.email) for x in drafts]
        messages = outbox_rows(outbox)
        rows = [
            {
                **{"process_id": process_id, "email": email, "first_name": x.first_name},
                **{"last_name": x.last_name, "entity": x.entity, "nominated_by": x.nominated_by},
                **{"country": x.country, "region": x.region, "gender": x.gender},
                **{"stakeholder_type": x.stakeholder_type, "language": x.language},
                **{"timezone": x.timezone, "status": x.status, "late": x.late, "erased": False},
                "nominated_at": to_utc(x.nominated_at),
            }
            for email, x in zip(emails, drafts, strict=True)
        ]
        with self._db.write() as conn:
            head = lock_chain(conn, process_id)
            stored = set(conn.execute(STORED_EMAILS, {"pid": process_id}).scalars())
            refuse_duplicates(process_id, emails, stored)
            added = [expert(row) for row in conn.execute(ADD, rows).all()] if rows else []
            insert_outbox(conn, messages)
            append_audit(conn, process_id, head, audit)
        return added

    def experts(self, process_id: str, status: str | None = None) -> builtins.list[Expert]:
        """The register of ``process_id`` in the order of nomination, optionally by status."""
        with self._db.read() as conn:
            return read_experts(conn, process_id, status)

    def set_expert_status(
        self, process_id: str, email: str, status: str, *, audit: Sequence[AuditDraft] = ()
    ) -> Expert:
        """Change one expert's status (nominated, confirmed, withdrawn), with the ``audit``
        entries in the same transaction."""
        check_choice(status, EXPERT_STATUSES, "expert status")
        params = {"pid": process_id, "address": normalise_email(email), "new_status": status}
        with self._db.write() as conn:
            head = lock_chain(conn, process_id) if audit else None
            row = conn.execute(SET_STATUS, params).first()
            if row is None:
                require(conn, process_id)
                raise UnknownExpert(process_id, email)
            if head is not None:
                append_audit(conn, process_id, head, audit)
        return expert(row)

    def erase_expert(
        self, process_id: str, email: str, *, audit: Sequence[AuditDraft] = ()
    ) -> int:
        """Scrub an expert's personal data and that of the messages to them, with the ``audit``
        entries in the same transaction; rows touched.

        The audit log holds no personal data and is left alone, so its chain stays valid.
        Messages not yet sent are cancelled (failed, with ERASED_PENDING_ERROR).
        """
        norm = normalise_email(email)
        now = datetime.now(UTC)
        with self._db.write() as conn:
            head = lock_chain(conn, process_id) if audit else None
            expert_id = conn.execute(FIND, {"pid": process_id, "address": norm}).scalar()
            to = erased_email(expert_id)
            touched = 0
            if expert_id is not None:
                conn.execute(ERASE, {"expert_id": expert_id, "erased_as": to})
                touched += 1
            scrub: list[dict[str, object]] = []
            keep: list[dict[str, object]] = []
            for item_id, address, recipient, status in conn.execute(TO_ERASE, {"pid": process_id}):
                if addressed_to(address, recipient, norm, expert_id):
                    batch = scrub if status == "pending" else keep
                    batch.append({"item_id": item_id, "erased_as": to, "at": now})
            if scrub:
                conn.execute(SCRUB_PENDING, scrub)
            if keep:
                kept = [{"item_id": p["item_id"], "erased_as": p["erased_as"]} for p in keep]
                conn.execute(SCRUB_KEEP_STATUS, kept)
            touched += len(scrub) + len(keep)
            if head is not None:
                append_audit(conn, process_id, head, audit)
        return touched
