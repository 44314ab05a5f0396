"""The keyed audit chain (issue 9): with PREPFLOW_AUDIT_KEY set, new processes are chained with
HMAC-SHA256, so a chain recomputed after an edit without the key (plain SHA-256) or with another
key is caught, naming the first bad entry; without the key, verify says it cannot check the
HMACs; unkeyed stores verify as before; the key shows nowhere. SQLite and PostgreSQL."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import sqlalchemy as sa

from flows.settings import AuditSettings, Settings
from flows.shell import Service
from flows.storage import SqlStore
from flows.storage.chain import GENESIS, KEYED, check_chain, keyed, recompute
from flows.storage.model import AuditEntry
from tests.flows import test_audit_anchor, test_audit_tamper, test_cli
from tests.flows.test_cli import BY, Run, ok

db_url, run, any_url = test_cli.db_url, test_cli.run, test_audit_tamper.any_url

KEY = "correct horse battery staple 42"
OTHER = "a different key, also long enough"


@pytest.fixture
def key(monkeypatch: pytest.MonkeyPatch) -> bytes:
    """The audit key, configured through PREPFLOW_AUDIT_KEY."""
    monkeypatch.setenv("PREPFLOW_AUDIT_KEY", KEY)
    return KEY.encode()


def _history(run: Run, url: str) -> None:
    """The anchor tests' history: init, advances, a posted draft (six entries or so)."""
    test_audit_anchor._history(run, url)


def _problems(url: str, key: bytes | None) -> list[str]:
    with SqlStore(url, key=key) as store:
        return Service(store).verify()


def _verify(run: Run, url: str) -> tuple[int, str]:
    result = run("audit", "--verify", "--database", url)
    assert "Traceback" not in result.err
    return result.code, " ".join((result.out + result.err).split())


def test_a_keyed_process_verifies_clean_and_its_hashes_say_so(run: Run, any_url: str,
                                                              key: bytes) -> None:
    """Every entry and the head are HMACs (64 characters, 'hmac-sha256:…'); verify exits 0."""
    _history(run, any_url)
    log = test_cli.audit(any_url)
    assert all(keyed(e.hash) and len(e.hash) == 64 for e in log)
    assert log[0].prev_hash == GENESIS
    code, text = _verify(run, any_url)
    assert (code, "audit log intact" in text) == (0, True)
    assert _problems(any_url, key) == []


def test_a_chain_recomputed_whole_without_the_key_is_caught(run: Run, any_url: str,
                                                            key: bytes) -> None:
    """Entry #2 edited and the whole chain recomputed with plain SHA-256 (head reset, state
    rebuilt), a downgrade to a plain chain: with the key set, verify says so and exits 1."""
    _history(run, any_url)
    entries = len(test_cli.audit(any_url))
    test_audit_anchor._forge(any_url, entries, edit=True, key=None)
    [problem] = _problems(any_url, key)
    assert problem == ("wtpf-26: the audit chain is not keyed (plain SHA-256 from entry #1) "
                       "although PREPFLOW_AUDIT_KEY is set, so anyone could have recomputed "
                       "it: the process was created before the key was set, or its chain was "
                       "rewritten without the key.")
    code, text = _verify(run, any_url)
    assert code == 1
    assert problem in text


def test_an_edit_recomputed_with_plain_sha256_from_the_edit_on_names_that_entry(
        run: Run, any_url: str, key: bytes) -> None:
    """Only the entries from the edited one on recomputed (plain): the first bad seq is it."""
    _history(run, any_url)
    log = test_cli.audit(any_url)
    _recompute_tail(any_url, log, start=3, key=None)
    [problem] = _problems(any_url, key)
    assert problem.startswith("wtpf-26: audit entry #3 (and ")
    assert "plain SHA-256 hash in a keyed" in problem


def test_a_chain_recomputed_with_another_key_is_caught(run: Run, any_url: str,
                                                       key: bytes) -> None:
    """Entry #3 edited and the chain from there recomputed under another key: verify with the
    store's key names #3 and says the HMAC does not match."""
    _history(run, any_url)
    log = test_cli.audit(any_url)
    _recompute_tail(any_url, log, start=3, key=OTHER.encode())
    [problem] = _problems(any_url, key)
    assert problem == (f"wtpf-26: audit entry #3 (and {len(log) - 3} later entries) does not "
                       "match its HMAC under the configured PREPFLOW_AUDIT_KEY: it was edited, "
                       "or the chain was recomputed with another key (or the key configured is "
                       "not the store's)")
    code, text = _verify(run, any_url)
    assert (code, problem in text) == (1, True)


def test_the_wrong_key_configured_is_reported(run: Run, any_url: str, key: bytes,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """An honest keyed chain verified under another key: entry #1 onwards does not match."""
    _history(run, any_url)
    monkeypatch.setenv("PREPFLOW_AUDIT_KEY", OTHER)
    code, text = _verify(run, any_url)
    assert code == 1
    assert "wtpf-26: audit entry #1 (and " in text
    assert "does not match its HMAC under the configured PREPFLOW_AUDIT_KEY" in text
    assert OTHER not in text
    assert KEY not in text


def test_without_the_key_verify_says_it_cannot_check_and_checks_the_rest(
        run: Run, any_url: str, key: bytes, monkeypatch: pytest.MonkeyPatch) -> None:
    """Key unset: exit 1 naming what to set; the state is still rebuilt and compared."""
    _history(run, any_url)
    monkeypatch.delenv("PREPFLOW_AUDIT_KEY")
    code, text = _verify(run, any_url)
    assert code == 1
    assert ("wtpf-26: the audit chain is keyed (HMAC-SHA256) and no key is configured, so its "
            "entries' HMACs were not checked") in text
    assert "Set PREPFLOW_AUDIT_KEY, or PREPFLOW_AUDIT_KEY_BLOCK" in text
    test_audit_tamper._rewrite(any_url, "processes", "process_id", "wtpf-26", "state",
                               test_audit_tamper._document)
    problems = _problems(any_url, None)
    assert len(problems) == 2
    assert "the stored state does not match its audit log" in problems[1]


def test_without_the_key_a_keyed_process_takes_no_new_entries(
        run: Run, db_url: str, key: bytes, monkeypatch: pytest.MonkeyPatch) -> None:
    """A writer without the key would break the chain: refused as a store error (exit 2,
    what to set), nothing written."""
    _history(run, db_url)
    before = test_cli.audit(db_url)
    monkeypatch.delenv("PREPFLOW_AUDIT_KEY")
    refused = run("transition", "wtpf-26", "post_draft2", "--by", BY, "--document",
                  "WTPF-26/2", "--database", db_url, "--now", "2024-11-04T08:00Z")
    assert refused.code == 2
    assert "Traceback" not in refused.err
    assert "has a keyed audit chain" in " ".join(refused.err.split())
    assert test_cli.audit(db_url) == before


def test_an_unkeyed_store_verifies_as_before_without_a_key(run: Run, any_url: str) -> None:
    """No key anywhere: plain SHA-256 hashes, verify exits 0 (the release-0.1 test too)."""
    _history(run, any_url)
    assert not any(keyed(e.hash) for e in test_cli.audit(any_url))
    assert _verify(run, any_url)[0] == 0


def test_a_plain_process_with_the_key_set_stays_plain_and_is_reported(
        run: Run, any_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A process created before the key keeps plain entries (its scheme is fixed); with the
    key set verify says its chain could have been recomputed by anyone (a downgrade looks so)."""
    _history(run, any_url)
    monkeypatch.setenv("PREPFLOW_AUDIT_KEY", KEY)
    ok(run("advance", "--database", any_url, "--now", "2024-09-30T00:00+02:00"))
    assert not any(keyed(e.hash) for e in test_cli.audit(any_url))
    code, text = _verify(run, any_url)
    assert code == 1
    assert ("wtpf-26: the audit chain is not keyed (plain SHA-256 from entry #1) although "
            "PREPFLOW_AUDIT_KEY is set") in text


def test_the_key_shows_nowhere(run: Run, db_url: str, key: bytes) -> None:
    """Not in audit output, verify output, errors, nor the settings' repr."""
    _history(run, db_url)
    shown = [run("audit", "wtpf-26", "--database", db_url),
             run("audit", "--verify", "--database", db_url),
             run("transition", "wtpf-26", "no_such_step", "--by", BY, "--database", db_url)]
    for result in shown:
        assert KEY not in result.out + result.err
    settings = Settings()
    assert KEY not in repr(settings)
    assert KEY not in str(settings.audit)
    assert settings.audit.secret_key() == key


def test_a_short_key_is_bad_input(run: Run, db_url: str,
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """A key under 16 characters is refused as bad input (exit 2), without echoing it."""
    monkeypatch.setenv("PREPFLOW_AUDIT_KEY", "short-key")
    result = run("audit", "--verify", "--database", db_url)
    assert result.code == 2
    assert "PREPFLOW_AUDIT_KEY" in result.err
    assert "short-key" not in result.err


def test_a_keyed_process_whose_whole_log_was_deleted_reports_the_deletion() -> None:
    """A keyed head with its whole log deleted: deletion reported, and the key not needed."""
    head = KEYED + "a" * 52
    problems = check_chain("p", [], 3, head, b"k" * 16)
    assert problems == ["p: the log ends at entry #0 but the process records 3 entries (the "
                        "last entries were deleted)"]


@pytest.mark.usefixtures("prefect_server")
def test_the_key_may_come_from_a_prefect_secret_block() -> None:
    """PREPFLOW_AUDIT_KEY_BLOCK names a Prefect Secret block; the key is read from it."""
    from prefect.blocks.system import Secret

    Secret(value=KEY).save("prepflow-audit-key", overwrite=True)
    assert AuditSettings(key_block="prepflow-audit-key").secret_key() == KEY.encode()


def _recompute_tail(url: str, log: list[AuditEntry], start: int, key: bytes | None) -> None:
    """Edit entry ``start``'s reason and recompute its hash and every later one (plain or
    under ``key``), resetting the head, as the database's owner could."""
    prev, forged = log[start - 2].hash, []
    for entry in log[start - 1:]:
        if entry.seq == start:
            entry = dataclasses.replace(entry, reason="edited")
        entry = dataclasses.replace(entry, prev_hash=prev)
        entry = dataclasses.replace(entry, hash=recompute(entry, key))
        forged.append(entry)
        prev = entry.hash
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            for entry in forged:
                conn.execute(sa.text("UPDATE audit_log SET reason = :reason, prev_hash = :prev, "
                                     "hash = :hash WHERE process_id = 'wtpf-26' AND seq = :seq"),
                             {"reason": entry.reason, "prev": entry.prev_hash,
                              "hash": entry.hash, "seq": entry.seq})
            conn.execute(sa.text("UPDATE processes SET head_hash = :hash "
                                 "WHERE process_id = 'wtpf-26'"), {"hash": prev})
    finally:
        engine.dispose()


def test_a_keyed_chain_recomputed_with_another_key_is_caught_by_both_anchors(
        run: Run, any_url: str, key: bytes, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Entry #2 edited and every hash recomputed under another key, head reset, state rebuilt:
    the key names entry #1 on, and the witness file the rewritten head."""
    witness = tmp_path / "witness.jsonl"
    monkeypatch.setenv("PREPFLOW_AUDIT_WITNESS", str(witness))
    _history(run, any_url)
    entries = len(test_cli.audit(any_url))
    test_audit_anchor._forge(any_url, entries, edit=True, key=OTHER.encode())
    with SqlStore(any_url, key=key) as store:
        problems = Service(store).verify(witness=witness)
    hmac_problem, witnessed = problems
    assert hmac_problem.startswith(f"wtpf-26: audit entry #1 (and {entries - 1} later "
                                   "entries) does not match its HMAC")
    assert witnessed.startswith("wtpf-26: the audit log was truncated or rewritten after seq ")
    assert f"with hash {KEYED}" in witnessed
