"""The `prepflow members` commands: who may act on a process, in which roles, and their
personal tokens (issue 10). A token is shown once, when issued; the store keeps its salted
scrypt hash only. Issuing and revoking are audited like any other act."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from flows.cli.common import (
    Actor,
    Database,
    Now,
    Process,
    app,
    markup,
    one_process,
    out,
    parse_now,
    service,
)
from flows.identity.gate import TOKEN_ENV
from flows.identity.members import issue_token, revoke_token, token_store
from flows.storage.tokens import StoredToken
from states.roles import Role, granted

members_app = typer.Typer(help="The secretariat's members, their roles and tokens.",
                          no_args_is_help=True)
token_app = typer.Typer(help="Members' personal tokens: issue (shown once), list, revoke.",
                        no_args_is_help=True)
app.add_typer(members_app, name="members")
members_app.add_typer(token_app, name="token")



def _when(token: StoredToken, revoked: bool = False) -> str:
    at, by = (token.revoked_at, token.revoked_by) if revoked else (token.issued_at,
                                                                    token.issued_by)
    return "" if at is None else f"{at:%Y-%m-%d %H:%M} UTC by {by}"


@members_app.command("list")
def list_cmd(process: Process = None, database: Database = None) -> None:
    """The secretariat members of a process: ids (what --by takes), roles, active tokens.

    Example: prepflow members list --process wtpf-26
    """
    svc = service(database)
    process_id = one_process(svc, process)
    _, definition, _ = svc.load(process_id)
    active = [t.member for t in token_store(svc).tokens(process_id) if t.active]
    table = Table(title=markup("{}: secretariat members", process_id), title_justify="left")
    for column in ("id (--by)", "name", "roles", "active tokens"):
        table.add_column(column)
    for m in definition.secretariat:
        roles = ", ".join(r.value for r in Role if r in granted(m.roles))
        table.add_row(escape(m.id), escape(m.name), roles + (" (all)" if m.roles is None else ""),
                      str(active.count(m.id)))
    out.print(table)
    if definition.require_tokens or active:
        out.print(markup("Every act on {} needs its member's token (${}).", process_id, TOKEN_ENV))


@token_app.command("issue")
def issue_cmd(member: Annotated[str, typer.Argument(help="The member's id.")], by: Actor,
              process: Process = None, database: Database = None, now: Now = None) -> None:
    """Issue a member's personal token; it is shown once, here, and never again.

    From the first token on, every act on the process needs its member's token. Issuing needs
    the 'register' role and, once a member holding that role has a token, that token: the
    first one is issued by whoever can write to the store (its owner), as --by.

    Example: prepflow members token issue wtpf-secretariat --by wtpf-secretariat
    """
    svc = service(database)
    process_id = one_process(svc, process)
    token_id, token = issue_token(svc, process_id, member, by, parse_now(now))
    out.print(markup("Token {} for '{}' on {}, shown this once (prepflow keeps only a salted "
                     "hash of it):\n", token_id, member.strip(), process_id))
    out.print(f"  {token}\n", markup=False)
    out.print(markup("Hand it to {} alone. On the command line: export {}=<the token>; in "
                     "the Prefect forms: the token field. Every act on {} now needs its "
                     "member's token.", member.strip(), TOKEN_ENV, process_id), soft_wrap=True)


@token_app.command("revoke")
def revoke_cmd(token_id: Annotated[str, typer.Argument(help="The token's id (from 'list').")],
               by: Actor,
               reason: Annotated[str | None, typer.Option(help="Why (recorded).")] = None,
               database: Database = None, now: Now = None) -> None:
    """Revoke a token (lost, leaked, member gone); the process keeps needing tokens.

    Example: prepflow members token revoke 3f2a9c0d1b4e --by wtpf-secretariat --reason left
    """
    found = revoke_token(service(database), token_id, by, reason, parse_now(now))
    out.print(markup("token {} of '{}' on {} is revoked.", found.token_id, found.member,
                     found.process_id))


@token_app.command("list")
def tokens_cmd(process: Annotated[str | None, typer.Option(
                   "--process", help="Only this process's tokens.")] = None,
               database: Database = None) -> None:
    """Tokens issued: whose, when and by whom, revoked or not (never a secret: none is kept).

    Example: prepflow members token list --process wtpf-26
    """
    svc = service(database)
    if process:
        svc.store.get(process)
    table = Table(title="Members' tokens", title_justify="left")
    for column in ("id", "process", "member", "issued", "revoked"):
        table.add_column(column)
    for t in token_store(svc).tokens(process):
        table.add_row(t.token_id, t.process_id, escape(t.member), escape(_when(t)),
                      escape(_when(t, True)))
    out.print(table)
