"""Issue 9: each audit entry keeps the real clock of its writing beside its effective time;
an action taken with --now far from the clock says so in `audit` and `status`, and the
recording time is hashed, so it cannot be edited quietly (SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from sqlalchemy.pool import NullPool

from flows.cli import app as cli
from flows.storage import SqlStore
from flows.storage.tables import audit_log
from tests.flows import test_cli
from tests.flows.test_cli import BY, WTPF, Run, ok

db_url, run = test_cli.db_url, test_cli.run  # the CLI tests' fixtures: a fresh store, main()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def any_url(request: pytest.FixtureRequest, db_url: str,
            monkeypatch: pytest.MonkeyPatch) -> str:
    """The SQLite store, or a fresh PostgreSQL database; output wide enough for the audit."""
    monkeypatch.setattr(cli.out, "width", 400)
    return db_url if request.param == "sqlite" else request.getfixturevalue("postgres_url")


def _columns(url: str) -> dict[str, bool]:
    """The audit log's columns and whether each is nullable."""
    engine = sa.create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            return {c["name"]: c["nullable"] for c in sa.inspect(conn).get_columns("audit_log")}
    finally:
        engine.dispose()


def test_upgrade_from_0005_adds_a_nullable_recording_time(any_url: str) -> None:
    """Revision 0006 adds audit_log.recorded_at, NULL allowed (old entries: unknown)."""
    SqlStore(any_url, revision="0005").close()
    assert "recorded_at" not in _columns(any_url)
    SqlStore(any_url).close()
    assert _columns(any_url)["recorded_at"] is True


def _backdated(run: Run, url: str) -> None:
    """A process started and a draft posted "as of" 2024, recorded today."""
    ok(run("init", WTPF, "--database", url, "--now", "2024-07-10T08:00Z"))
    ok(run("transition", "wtpf-26", "post_draft1", "--by", BY, "--document", "WTPF-26/1",
           "--database", url, "--now", "2024-08-05T07:00Z"))


def test_an_action_with_now_in_2024_is_recorded_at_the_real_clock(run: Run,
                                                                   any_url: str) -> None:
    """The entry's effective time is --now, its recorded_at the real clock; audit marks it,
    status says the last change was made as of --now, and verify stays clean."""
    before = datetime.now(UTC)
    _backdated(run, any_url)
    with SqlStore(any_url) as store:
        last = store.audit("wtpf-26")[-1]
    assert last.at == datetime(2024, 8, 5, 7, 0, tzinfo=UTC)
    assert last.recorded_at is not None
    assert before - timedelta(seconds=1) <= last.recorded_at <= datetime.now(UTC)
    recorded = last.recorded_at.astimezone(ZoneInfo("Europe/Zurich"))
    shown = recorded.strftime("%Y-%m-%d %H:%M %Z")
    audit = ok(run("audit", "wtpf-26", "--database", any_url)).out
    assert f"(recorded {shown}, acted as of 2024-08-05 09:00 CEST)" in audit
    assert f"(recorded {shown}, acted as of 2024-07-10 10:00 CEST)" in audit
    status = ok(run("status", "wtpf-26", "--database", any_url)).out
    assert (f"last change made as of 2024-08-05 09:00 CEST (--now), recorded {shown}"
            in " ".join(status.split()))
    assert ok(run("audit", "--verify", "--database", any_url)).code == 0


def test_an_action_at_the_clock_is_not_marked(run: Run, any_url: str) -> None:
    """Without --now the effective time is the clock: no mark, no status line."""
    ok(run("init", WTPF, "--database", any_url))
    assert "(recorded " not in ok(run("audit", "--database", any_url)).out
    assert "last change made as of" not in ok(run("status", "--database", any_url)).out


def test_an_edited_recording_time_is_caught_by_verify(run: Run, any_url: str) -> None:
    """recorded_at is hashed: moving it to match --now (hiding the backdating) breaks the
    entry's hash, and audit --verify exits 1 naming the entry."""
    _backdated(run, any_url)
    engine = sa.create_engine(any_url, poolclass=NullPool)
    try:
        with engine.begin() as conn:
            changed = conn.execute(
                sa.update(audit_log)
                .where(audit_log.c.process_id == "wtpf-26", audit_log.c.seq == 2)
                .values(recorded_at=datetime(2024, 8, 5, 7, 0, tzinfo=UTC)))
            assert changed.rowcount == 1
    finally:
        engine.dispose()
    tampered = run("audit", "--verify", "--database", any_url)
    assert tampered.code == 1
    assert "Traceback" not in tampered.err
    assert "audit entry #2 does not match its hash" in " ".join(tampered.err.split())
