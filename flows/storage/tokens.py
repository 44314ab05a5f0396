"""Members' tokens in SQL (issue 10): issued, looked up by id, revoked; each change with its
audit entries in one transaction (the process row locked first, sql_base's lock order).

Only the salted hash of a token's secret is stored (flows.identity.gate makes and checks it).
"""

from __future__ import annotations

import builtins
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

import sqlalchemy as sa

from flows.storage.errors import StoreError
from flows.storage.model import AuditDraft
from flows.storage.sql_base import Database, append_audit, lock_chain
from flows.storage.tables import member_tokens

_T = member_tokens.c
BY_ID = sa.select(member_tokens).where(_T.token_id == sa.bindparam("tid"))
OF_PROCESS = (sa.select(member_tokens).where(_T.process_id == sa.bindparam("pid"))
              .order_by(_T.issued_at, _T.token_id))
EVERY = sa.select(member_tokens).order_by(_T.process_id, _T.issued_at, _T.token_id)


@dataclass(frozen=True)
class StoredToken:
    """A token as stored: whose, its secret's hash (never the secret), issued and revoked."""

    token_id: str
    process_id: str
    member: str
    secret_hash: str
    issued_at: datetime
    issued_by: str
    revoked_at: datetime | None = None
    revoked_by: str | None = None

    @property
    def active(self) -> bool:
        """Not revoked."""
        return self.revoked_at is None


class TokenStore(Protocol):
    """The members' tokens of every process (issue 10)."""

    def token(self, token_id: str) -> StoredToken | None:
        """The token with this id, revoked or not (None: no such token)."""
        ...

    def tokens(self, process_id: str | None = None) -> builtins.list[StoredToken]:
        """Every token (of one process), in the order issued."""
        ...

    def issue(self, token: StoredToken, audit: Sequence[AuditDraft]) -> None:
        """Store a new token with its audit entries, in one transaction."""
        ...

    def revoke(self, token_id: str, at: datetime, by: str,
               audit: Sequence[AuditDraft]) -> StoredToken:
        """Revoke a token, with its audit entries; StoreError if it is unknown or revoked."""
        ...


def _token(row: sa.Row[tuple[object, ...]]) -> StoredToken:
    return StoredToken(**dict(row._mapping))  # the columns are named as its fields


class SqlTokens:
    """TokenStore over one Database."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def token(self, token_id: str) -> StoredToken | None:
        """See TokenStore.token."""
        with self.db.read() as conn:
            row = conn.execute(BY_ID, {"tid": token_id}).first()
        return None if row is None else _token(row)

    def tokens(self, process_id: str | None = None) -> builtins.list[StoredToken]:
        """See TokenStore.tokens."""
        with self.db.read() as conn:
            rows = (conn.execute(EVERY) if process_id is None
                    else conn.execute(OF_PROCESS, {"pid": process_id}))
            return [_token(r) for r in rows]

    def issue(self, token: StoredToken, audit: Sequence[AuditDraft]) -> None:
        """See TokenStore.issue."""
        with self.db.write() as conn:
            head = lock_chain(conn, token.process_id)
            conn.execute(sa.insert(member_tokens).values(**token.__dict__))
            append_audit(conn, token.process_id, head, audit)

    def revoke(self, token_id: str, at: datetime, by: str,
               audit: Sequence[AuditDraft]) -> StoredToken:
        """See TokenStore.revoke."""
        with self.db.write() as conn:
            row = conn.execute(BY_ID, {"tid": token_id}).first()
            # the process row locked (lock order), then the token read again under the lock
            head = lock_chain(conn, str(row._mapping["process_id"])) if row else None
            row = conn.execute(BY_ID, {"tid": token_id}).first()
            if head is None or row is None or row._mapping["revoked_at"] is not None:
                raise StoreError(f"token {token_id} is unknown or already revoked; see "
                                 "'prepflow members token list'. Nothing was changed.")
            conn.execute(sa.update(member_tokens).where(_T.token_id == token_id)
                         .values(revoked_at=at, revoked_by=by))
            append_audit(conn, str(row._mapping["process_id"]), head, audit)
            again = conn.execute(BY_ID, {"tid": token_id}).one()
        return _token(again)
