"""Who is acting (issue 10): members' tokens, made, hashed and checked, and the gate every act
passes before the core decides on it.

A token is ``pf_<id>_<secret>``: the id finds the stored row, the secret is checked against its
salted scrypt hash (hashlib's, parameters kept with the hash, so they can be raised later
without invalidating tokens already issued). Tokens are required on a process once one has
been issued for it (revoked ones included: revoking the last token must not quietly reopen
the process to anyone typing a member id) and always when its definition says
``require_tokens``. Without tokens, acting is as before: a member's id is enough.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from flows.storage import AuditDraft, ProcessStore, StoredProcess
from flows.storage.tokens import StoredToken, TokenStore
from states import engine
from states.definition import Member, ProcessDefinition
from states.errors import Refused, RuleId
from states.instance import Instance
from states.roles import Act, Channel, Role, Via, granted, needed

#: The environment variable the CLI reads a member's token from.
TOKEN_ENV = "PREPFLOW_TOKEN"
#: scrypt's cost (n = 2**14, r = 8: 16 MiB and some tens of milliseconds per check).
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2 ** 14, 8, 1


def new_token() -> tuple[str, str, str]:
    """A fresh token: (token id, the whole token as shown once, the hash to store)."""
    token_id, secret = secrets.token_hex(6), secrets.token_hex(24)
    return token_id, f"pf_{token_id}_{secret}", hash_secret(secret)


def hash_secret(secret: str, salt: bytes | None = None, n: int = SCRYPT_N, r: int = SCRYPT_R,
                p: int = SCRYPT_P) -> str:
    """``scrypt$n$r$p$salt$hash`` (hex) of a token's secret, with a random salt."""
    salt = salt if salt is not None else secrets.token_bytes(16)
    digest = hashlib.scrypt(secret.encode(), salt=salt, n=n, r=r, p=p, dklen=32,
                            maxmem=256 * n * r)
    return f"scrypt${n}${r}${p}${salt.hex()}${digest.hex()}"


def secret_matches(secret: str, stored: str) -> bool:
    """Whether ``secret`` hashes to ``stored`` under the parameters stored with it."""
    try:
        kdf, n, r, p, salt, digest = stored.split("$")
        if kdf != "scrypt":
            return False
        again = hash_secret(secret, bytes.fromhex(salt), int(n), int(r), int(p))
    except ValueError:
        return False
    return hmac.compare_digest(again.rsplit("$", 1)[1], digest)


def token_parts(token: str) -> tuple[str, str] | None:
    """(id, secret) of a token as typed, or None when it is not shaped like one."""
    parts = token.strip().split("_")
    if len(parts) != 3 or parts[0] != "pf" or not parts[1] or not parts[2]:
        return None
    return parts[1], parts[2]


@dataclass(frozen=True)
class Caller:
    """Where an act comes from: the channel, the token given with it (never shown), and the
    Prefect flow run carrying it."""

    channel: Channel = Channel.CLI
    token: str | None = field(default=None, repr=False)
    flow_run_id: str | None = None

    @classmethod
    def from_environment(cls) -> Caller:
        """The CLI's caller: the token in $PREPFLOW_TOKEN, if any. Read here rather than in
        flows.settings: it is who is typing, not how prepflow is configured."""
        return cls(Channel.CLI, os.environ.get(TOKEN_ENV, "").strip() or None)


@dataclass(frozen=True)
class Presented:
    """What the store says about a process's tokens and the one the caller gave, read (and the
    secret checked: scrypt is slow on purpose) before the act's write transaction."""

    in_use: bool
    """A token was ever issued for the process."""
    holders: frozenset[str]
    """Members holding an active token."""
    ever: frozenset[str] = frozenset()
    """Members ever issued a token, revoked or not."""
    token: StoredToken | None = None
    """The stored token the caller's names, when there is one."""
    matches: bool = False
    """The caller's secret matches that token's hash."""


class Gate:
    """Admits an act (member, token, roles) or refuses it; the shell audits either way."""

    def __init__(self, tokens: TokenStore | None, caller: Caller | None = None) -> None:
        self.tokens = tokens
        self.caller = caller or Caller()

    def present(self, process_id: str) -> Presented:
        """The process's tokens and the caller's, as the store has them."""
        issued = self.tokens.tokens(process_id) if self.tokens is not None else []
        holders = frozenset(t.member for t in issued if t.active)
        parts = token_parts(self.caller.token) if self.caller.token else None
        stored = self.tokens.token(parts[0]) if parts and self.tokens is not None else None
        matches = bool(stored and parts and secret_matches(parts[1], stored.secret_hash))
        return Presented(bool(issued), holders, token=stored, matches=matches,
                         ever=frozenset(t.member for t in issued))

    def via(self, actor: str, needs: tuple[Role, ...], presented: Presented | None = None) -> Via:
        """The identity an entry records (a refusal's too: the member as claimed)."""
        token = presented.token.token_id if presented and presented.token else None
        return Via(actor.strip(), needs[0], self.caller.channel, self.caller.flow_run_id, token)

    def admit(self, presented: Presented, definition: ProcessDefinition, process_id: str,
              actor: str, act: Act, needs: tuple[Role, ...]) -> Via:
        """The Via of an admitted act; Refused (member, token or role) otherwise."""
        member = engine.actor_of(definition, actor)
        self._token(presented, definition, process_id, member, act)
        engine.authorize(definition, actor, needs)
        return self.via(member.id, needs, presented if presented.matches else None)

    def _token(self, presented: Presented, definition: ProcessDefinition, process_id: str,
               member: Member, act: Act) -> None:
        """Refused unless the caller's token is the acting member's own, when tokens apply."""
        registrars = {m.id for m in definition.secretariat if Role.REGISTER in granted(m.roles)}
        if act is Act.TOKENS and not presented.ever & registrars and not self.caller.token:
            return  # bootstrap: nobody who could issue was ever given a token (the store's owner
            # acts); revoking a registrar's token never reopens this (revoke_token keeps one)
        if presented.in_use:
            why = f"tokens are in use on {process_id} (a member's token has been issued)"
        elif definition.require_tokens:
            why = f"the definition of {process_id} says every act needs a token"
        else:
            return
        ask = (f"set {TOKEN_ENV} to the token issued to '{member.id}' with 'prepflow members "
               f"token issue {member.id} --process {process_id}'"
               if self.caller.channel is Channel.CLI else
               f"fill in the form's token field with the token issued to '{member.id}' "
               f"(prepflow members token issue {member.id} --process {process_id})")
        token, problem = presented.token, None
        if not self.caller.token:
            problem = "no token came with this act"
        elif token is None or token.process_id != process_id or not presented.matches:
            problem = f"the token given is not a valid token of {process_id} (mistyped, " \
                      "another process's, or forged)"
        elif token.member != member.id:
            problem = f"the token given is '{token.member}''s, not '{member.id}''s: each " \
                      "member acts with their own"
        elif not token.active:
            when = token.revoked_at.date().isoformat() if token.revoked_at else "?"
            problem = f"the token given ({token.token_id}) was revoked on {when} by " \
                      f"{token.revoked_by}"
        if problem is not None:
            raise Refused(RuleId.TOKEN, f"{why}, and {problem}.", f"{ask}.")


def admit_audited(store: ProcessStore, gate: Gate,
                  decode: Callable[[StoredProcess], tuple[ProcessDefinition, Instance]],
                  process_id: str, actor: str, act: Act, action: str, at: datetime,
                  recorded_at: datetime, override: bool = False) -> Via:
    """The Via of an act the shell does not decide on itself (the registers, the outbox,
    tokens), or Refused after the refusal is audited in a transaction of its own. The act
    then writes its own entries (carrying the Via) with its change."""
    needs, presented = needed(act, override), gate.present(process_id)
    refused: Refused | None = None
    with store.transaction(process_id) as tx:
        definition, instance = decode(tx.get())
        try:
            return gate.admit(presented, definition, process_id, actor, act, needs)
        except Refused as exc:
            record = engine.refusal_record(definition, instance, action, actor, at, exc,
                                           {"via": gate.via(actor, needs).doc()})
            tx.commit(None, [AuditDraft(
                at=record.at, actor=record.actor, kind=record.kind, trigger=record.trigger,
                from_state=record.from_state, to_state=record.to_state, reason=record.reason,
                inputs=record.inputs, recorded_at=recorded_at)])
            refused = exc
    raise refused
