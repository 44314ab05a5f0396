"""Issuing and revoking members' tokens (issue 10): the acts behind `prepflow members token`,
also used by the rehearsal's scripted secretariat. Each is admitted like any other act (the
'register' role; a token once a member holding that role has one) and audited with the change.
"""

from __future__ import annotations

from datetime import datetime

from flows.identity.gate import new_token
from flows.shell import Service
from flows.storage import AuditDraft, StoreError
from flows.storage.tokens import StoredToken, TokenStore
from states.errors import InputError
from states.roles import Act, Role, granted


def token_store(svc: Service) -> TokenStore:
    """The service's store of tokens (every SQL store has one)."""
    if svc.gate.tokens is None:
        raise StoreError("this store keeps no members' tokens.")
    return svc.gate.tokens


def issue_token(svc: Service, process_id: str, member: str, by: str,
                now: datetime | None = None) -> tuple[str, str]:
    """Issue ``member``'s token, by ``by``: (its id, the token, to be shown once)."""
    _, definition, _ = svc.load(process_id)
    if definition.member(member) is None:
        ids = ", ".join(m.id for m in definition.secretariat)
        raise InputError(f"'{member}' is not a member id of {process_id}; its members are "
                         f"{ids}. Nothing was issued.")
    store, at = token_store(svc), svc.now(now)
    via = svc.admit(process_id, by, Act.TOKENS, "members token issue", at)
    token_id, token, hashed = new_token()
    entry = AuditDraft(at=at, actor=via.member, kind="token-issued", inputs={
        "token": token_id, "member": member.strip(), "via": via.doc()})
    store.issue(StoredToken(token_id, process_id, member.strip(), hashed, at, via.member),
                [entry])
    return token_id, token


def revoke_token(svc: Service, token_id: str, by: str, reason: str | None = None,
                 now: datetime | None = None) -> StoredToken:
    """Revoke a token (by id, or given whole), by ``by``; the process keeps needing tokens."""
    store = token_store(svc)
    found = store.token(token_id.strip().removeprefix("pf_").split("_")[0])
    if found is None:
        raise InputError(f"no token {token_id}; see 'prepflow members token list'.")
    if not found.active:
        raise InputError(f"token {found.token_id} was revoked already.")
    _, definition, _ = svc.load(found.process_id)
    registrars = {m.id for m in definition.secretariat if Role.REGISTER in granted(m.roles)}
    others = {t.member for t in store.tokens(found.process_id)
              if t.active and t.token_id != found.token_id} & registrars
    if found.member in registrars and not others:
        raise InputError(
            f"token {found.token_id} is the last active token of a member with the 'register' "
            f"role on {found.process_id}: without it nobody could issue tokens again. Issue a "
            "new token to a register-role member first (prepflow members token issue ID), "
            "then revoke this one.")
    at = svc.now(now)
    via = svc.admit(found.process_id, by, Act.TOKENS, "members token revoke", at)
    entry = AuditDraft(at=at, actor=via.member, kind="token-revoked", reason=reason, inputs={
        "token": found.token_id, "member": found.member, "via": via.doc()})
    return store.revoke(found.token_id, at, via.member, [entry])
