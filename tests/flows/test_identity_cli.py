"""Who may act (issue 10), through the `prepflow` command on SQLite and PostgreSQL: members by
id only, refusals (non-members included) audited, tokens issued once and stored hashed, roles."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
import sqlalchemy as sa

from flows.identity.gate import TOKEN_ENV, hash_secret, secret_matches, token_parts
from flows.storage import AuditEntry, SqlStore
from tests.flows.cli_run import Result, Run, fresh_store, in_process

ROOT = Path(__file__).resolve().parents[2]
WTPF = str(ROOT / "config" / "wtpf26.yaml")
BY = "wtpf-secretariat"
POST = ("transition", "wtpf-26", "post_draft1", "--document", "WTPF-26/1", "--now",
        "2024-08-05T10:00Z")


@pytest.fixture
def db_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh SQLite store as PREPFLOW_DATABASE_URL, no token in the environment."""
    monkeypatch.delenv(TOKEN_ENV, raising=False)
    return fresh_store(tmp_path, monkeypatch)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def url(request: pytest.FixtureRequest, db_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """The SQLite store, or a fresh PostgreSQL database, as PREPFLOW_DATABASE_URL."""
    chosen = db_url if request.param == "sqlite" else str(
        request.getfixturevalue("postgres_url"))
    monkeypatch.setenv("PREPFLOW_DATABASE_URL", chosen)
    return chosen


@pytest.fixture
def run(url: str, capsys: pytest.CaptureFixture[str]) -> Run:
    """`prepflow ...` in-process on the test's store."""
    return in_process(capsys)


def log(url: str, process: str = "wtpf-26") -> list[AuditEntry]:
    """The process's audit log, read straight from the store."""
    with SqlStore(url) as store:
        return store.audit(process)


def state(url: str) -> dict[str, object]:
    """The stored state document of wtpf-26."""
    with SqlStore(url) as store:
        return dict(store.get("wtpf-26").state)


def issued(result: Result) -> str:
    """The token a `members token issue` printed (shown once)."""
    assert result.code == 0, result.err
    (token,) = [w for w in result.out.split() if w.startswith("pf_")]
    return token


def test_a_process_without_tokens_acts_as_before_by_member_id(run: Run, url: str) -> None:
    """No token issued, none required: a member acts by id alone, and the entry records the
    member, the role used, the channel and no flow run."""
    assert run("init", WTPF, "--now", "2024-07-10T08:00Z").code == 0
    done = run(*POST, "--by", BY)
    assert done.code == 0, done.err
    (entry,) = [e for e in log(url) if e.kind == "transition"]
    assert entry.actor == BY
    assert entry.inputs["via"] == {"member": BY, "role": "post", "channel": "cli",
                                   "flow_run_id": None}
    assert "[as post via cli]" in run("audit", "wtpf-26").out


def test_a_non_member_is_refused_and_audited(run: Run, url: str) -> None:
    """A --by that names no member is refused (exit 1, the member ids listed), the attempt is
    in the audit log, and the state is as it was."""
    run("init", WTPF, "--now", "2024-07-10T08:00Z")
    before = state(url)
    refused = run(*POST, "--by", "mallory")
    assert refused.code == 1
    assert "'mallory' is not a secretariat member id" in refused.err
    assert "wtpf-secretariat (WTPF Secretariat)" in refused.err
    last = log(url)[-1]
    assert (last.kind, last.actor, last.inputs["rule"]) == ("refusal", "mallory", "member")
    assert last.inputs["via"]["channel"] == "cli"
    assert state(url) == before


def test_a_name_or_address_is_refused_with_the_id_to_use(run: Run, url: str) -> None:
    """Members are matched by id only; typing a member's name says which id to use."""
    run("init", WTPF, "--now", "2024-07-10T08:00Z")
    refused = run(*POST, "--by", "WTPF Secretariat")
    assert refused.code == 1
    assert "use the member id 'wtpf-secretariat'" in refused.err


def test_once_a_token_is_issued_an_action_without_it_is_refused_and_audited(
        run: Run, url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The first token (issued by the store's owner as a member) makes tokens required: with
    none the act is refused (exit 1, what to do), audited, nothing else changed; with the
    member's own token it passes and the entry names the token's id."""
    run("init", WTPF, "--now", "2024-07-10T08:00Z")
    token = issued(run("members", "token", "issue", BY, "--by", BY))
    before = state(url)
    refused = run(*POST, "--by", BY)
    assert refused.code == 1
    assert f"set {TOKEN_ENV} to the token issued to '{BY}'" in refused.err
    assert f"prepflow members token issue {BY}" in refused.err
    last = log(url)[-1]
    assert (last.kind, last.actor, last.inputs["rule"]) == ("refusal", BY, "token")
    assert state(url) == before

    monkeypatch.setenv(TOKEN_ENV, "pf_000000000000_" + "0" * 48)
    forged = run(*POST, "--by", BY)
    assert forged.code == 1
    assert "not a valid token of wtpf-26" in forged.err

    monkeypatch.setenv(TOKEN_ENV, token)
    done = run(*POST, "--by", BY)
    assert done.code == 0, done.err
    (entry,) = [e for e in log(url) if e.kind == "transition"]
    token_id = token_parts(token)[0]  # type: ignore[index]
    assert entry.inputs["via"] == {"member": BY, "role": "post", "channel": "cli",
                                   "flow_run_id": None, "token": token_id}
    assert run("audit", "--verify").code == 0


def test_the_token_is_stored_hashed_and_listed_without_its_secret(run: Run, url: str) -> None:
    """The store keeps a salted scrypt hash (with its parameters), never the secret; the
    listing and the audit log show the token's id only."""
    run("init", WTPF, "--now", "2024-07-10T08:00Z")
    token = issued(run("members", "token", "issue", BY, "--by", BY))
    token_id, secret = token_parts(token)  # type: ignore[misc]
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(sa.text("SELECT * FROM prepflow_member_tokens")).all()
            audit = conn.execute(sa.text("SELECT inputs FROM audit_log")).all()
    finally:
        engine.dispose()
    (row,) = [dict(r._mapping) for r in rows]
    assert secret not in str(row)
    assert secret not in str(audit)
    assert row["secret_hash"].startswith("scrypt$16384$8$1$")
    assert secret_matches(secret, row["secret_hash"])
    assert not secret_matches(secret[:-1] + "x", row["secret_hash"])
    listing = run("members", "token", "list")
    assert token_id in listing.out
    assert secret not in listing.out
    (entry,) = [e for e in log(url) if e.kind == "token-issued"]
    assert entry.inputs["member"] == BY
    assert entry.inputs["token"] == token_id


def test_a_salted_hash_differs_for_the_same_secret() -> None:
    """Two hashes of one secret differ (random salt) and both verify."""
    first, second = hash_secret("s3cret"), hash_secret("s3cret")
    assert first != second
    assert secret_matches("s3cret", first)
    assert secret_matches("s3cret", second)


TEAM = textwrap.dedent("""\
    secretariat:
      - {id: ana, name: Ana Lima, email: ana@example.org, roles: [post, register]}
      - {id: ben, name: Ben Okafor, email: ben@example.org, roles: [amend, forum]}
    """)


def team_definition(tmp_path: Path, require: bool = False) -> str:
    """WTPF-26 run by two members with different roles (and, if ``require``, tokens)."""
    text = Path(WTPF).read_text(encoding="utf-8")
    head, rest = text.split("secretariat:\n", 1)
    rest = rest.split("\n\n", 1)[1]
    body = head + TEAM + ("require_tokens: true\n" if require else "") + "\n" + rest
    path = tmp_path / "team.yaml"
    path.write_text(body, encoding="utf-8")
    return str(path)


def test_another_members_token_is_refused(run: Run, url: str, tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """A token acts for the member it was issued to only: Ben's token with --by ana is refused
    and audited; each with their own passes."""
    run("init", team_definition(tmp_path), "--now", "2024-07-10T08:00Z")
    ana = issued(run("members", "token", "issue", "ana", "--by", "ana"))
    monkeypatch.setenv(TOKEN_ENV, ana)
    ben = issued(run("members", "token", "issue", "ben", "--by", "ana"))
    monkeypatch.setenv(TOKEN_ENV, ben)
    refused = run(*POST, "--by", "ana")
    assert refused.code == 1
    assert "the token given is 'ben''s, not 'ana''s" in refused.err
    assert log(url)[-1].inputs["rule"] == "token"
    monkeypatch.setenv(TOKEN_ENV, ana)
    assert run(*POST, "--by", "ana").code == 0


def test_a_missing_role_is_refused_naming_who_holds_it(run: Run, url: str,
                                                       tmp_path: Path) -> None:
    """Ben may not post (no 'post' role): refused, audited, the holders named; moving a date
    is his to do."""
    run("init", team_definition(tmp_path), "--now", "2024-07-10T08:00Z")
    refused = run(*POST, "--by", "ben")
    assert refused.code == 1
    assert "'ben' does not hold the 'post' role" in refused.err
    assert "ask a member who holds it: ana" in refused.err
    last = log(url)[-1]
    assert (last.inputs["rule"], last.inputs["via"]["role"]) == ("role", "post")
    moved = run("amend", "wtpf-26", "ieg1", "2024-10-07..2024-10-08", "--by", "ben",
                "--reason", "CL-24/44", "--now", "2024-07-15T08:00Z")
    assert moved.code == 0, moved.err
    override = run(*POST[:-2], "--now", "2024-08-05T10:00Z", "--by", "ana", "--override",
                   "--reason", "why not")
    assert override.code == 1
    assert "'override' role" in override.err


def test_required_tokens_refuse_before_any_is_issued_and_register_needs_its_role(
        run: Run, url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A definition saying require_tokens refuses an act with none from the start; the first
    token is issued without one (nobody could otherwise), later ones need the issuer's; the
    experts register is gated too."""
    run("init", team_definition(tmp_path, require=True), "--now", "2024-07-10T08:00Z")
    refused = run(*POST, "--by", "ana")
    assert refused.code == 1
    assert "says every act needs a token" in refused.err
    not_registrar = run("members", "token", "issue", "ben", "--by", "ben")
    assert not_registrar.code == 1
    assert "'register' role" in not_registrar.err
    ana = issued(run("members", "token", "issue", "ana", "--by", "ana"))
    again = run("members", "token", "issue", "ben", "--by", "ana")
    assert again.code == 1
    assert "no token came with this act" in again.err
    monkeypatch.setenv(TOKEN_ENV, ana)
    assert run("members", "token", "issue", "ben", "--by", "ana").code == 0
    erase = run("experts", "erase", "x@example.org", "--by", "mallory", "--reason", "DSR")
    assert erase.code == 1
    assert (log(url)[-1].kind, log(url)[-1].actor) == ("refusal", "mallory")


def test_a_revoked_token_is_refused(run: Run, url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """After revocation the token no longer acts, and the process still needs tokens."""
    run("init", WTPF, "--now", "2024-07-10T08:00Z")
    first = issued(run("members", "token", "issue", BY, "--by", BY))
    monkeypatch.setenv(TOKEN_ENV, first)
    second = issued(run("members", "token", "issue", BY, "--by", BY))
    monkeypatch.setenv(TOKEN_ENV, second)
    revoked = run("members", "token", "revoke", token_parts(first)[0], "--by", BY)  # type: ignore[index]
    assert revoked.code == 0, revoked.err
    monkeypatch.setenv(TOKEN_ENV, first)
    refused = run(*POST, "--by", BY)
    assert refused.code == 1
    assert "was revoked on" in refused.err
    assert [e.kind for e in log(url)].count("token-revoked") == 1
    monkeypatch.setenv(TOKEN_ENV, second)
    assert run(*POST, "--by", BY).code == 0


def test_revoking_the_last_registrar_token_is_refused_and_never_reopens_issuing(
        run: Run, url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The only register-role token cannot be revoked (nobody could issue again): exit 2,
    nothing written; and once a registrar was ever given a token, issuing without one is refused."""
    run("init", WTPF, "--now", "2024-07-10T08:00Z")
    only = issued(run("members", "token", "issue", BY, "--by", BY))
    monkeypatch.setenv(TOKEN_ENV, only)
    before = [e.kind for e in log(url)]
    refused = run("members", "token", "revoke", token_parts(only)[0], "--by", BY)  # type: ignore[index]
    assert refused.code == 2, refused.out
    assert "last active token of a member with the 'register' role" in refused.err
    assert [e.kind for e in log(url)] == before
    monkeypatch.delenv(TOKEN_ENV)
    again = run("members", "token", "issue", BY, "--by", BY)
    assert again.code == 1, again.out
    assert [e.kind for e in log(url)][-1] == "refusal"
