"""`prepflow audit --verify` and Service.verify against a store edited behind prepflow's back:
the whole state is rebuilt from the log and compared, and each definition checked against its
hash, on SQLite and PostgreSQL.

The seven tamperings of issue 9, each its own test id on both backends ([sqlite], [postgresql]):
(1) an edited definition body: test_an_edited_definition_body_is_reported; (2)–(5) an
amendment date, an added override, a document reference, a notice added or removed:
test_a_state_field_edited_behind_the_log_is_reported[amendment-date|override-added|document|
notice-added|notice-removed]; (6) a tail cut off with the head reset, and (7) a chain
recomputed after an edit: test_audit_anchor.py's test_a_forged_chain_is_caught_by_the_witness
[truncated|recomputed] and, with the audit key, test_audit_hmac.py's recomputed-chain tests."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from flows.shell import Service
from flows.storage import SqlStore
from states.definition import ProcessDefinition
from states.replay import fingerprint_of
from tests.flows import test_cli
from tests.flows.test_cli import BY, WTPF, Run, ok

db_url, run = test_cli.db_url, test_cli.run  # the CLI tests' fixtures: a fresh store, main()
RELEASE_01 = Path(__file__).resolve().parents[1] / "fixtures" / "prepflow-release-0.1.db"

Doc = dict[str, Any]


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def any_url(request: pytest.FixtureRequest, db_url: str) -> str:
    """The SQLite store, or a fresh PostgreSQL database."""
    return db_url if request.param == "sqlite" else request.getfixturevalue("postgres_url")


def _amendment_date(state: Doc) -> None:
    state["amendments"]["ieg2"]["start"] = "2025-02-11"


def _override(state: Doc) -> None:
    state["overrides"].append({"rule": "six-weeks", "what": "post_final", "message": "late",
                               "at": "2024-09-02T08:00:00Z", "by": BY, "reason": "forged"})


def _document(state: Doc) -> None:
    state["happened"]["post_draft1"]["document"] = "WTPF-26/9"


def _notice_added(state: Doc) -> None:
    state["notices"].append("wtpf-26:reminder:draft1:2024-08-26:7d")


def _notice_removed(state: Doc) -> None:
    state["notices"].remove("wtpf-26:rule:six-weeks:unknown:2026-04-13:unset")


STATE_EDITS: dict[str, tuple[Callable[[Doc], None], str]] = {
    "amendment-date": (_amendment_date,
                       "amendments['ieg2'].start differs: stored 2025-02-11, log 2025-02-10"),
    "override-added": (_override, "overrides: 1 stored, 0 in the log"),
    "document": (_document, "happened['post_draft1'].document differs: stored WTPF-26/9, "
                            "log WTPF-26/1"),
    "notice-added": (_notice_added, "notice 'wtpf-26:reminder:draft1:2024-08-26:7d' is stored "
                                    "but not in the log"),
    "notice-removed": (_notice_removed, "notice 'wtpf-26:rule:six-weeks:unknown:2026-04-13:"
                                        "unset' is in the log but not stored"),
}


def _history(run: Run, url: str) -> None:
    """A process with an amendment, a posted document and a notice, honestly recorded."""
    ok(run("init", WTPF, "--database", url, "--now", "2024-07-10T08:00Z"))
    ok(run("transition", "wtpf-26", "post_draft1", "--by", BY, "--document", "WTPF-26/1",
           "--database", url, "--now", "2024-08-05T07:00Z"))
    ok(run("amend", "wtpf-26", "ieg2", "2025-02-10..2025-02-12", "--by", BY, "--reason",
           "CWG dates", "--database", url, "--now", "2024-09-01T08:00Z"))


def _rewrite(url: str, table: str, key: str, value: str, column: str,
             edit: Callable[[Doc], None]) -> None:
    """Edit one JSON document in the database with raw SQL, as an intruder would."""
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            text = conn.execute(sa.text(f"SELECT {column} FROM {table} WHERE {key} = :v"),
                                {"v": value}).scalar_one()
            doc = json.loads(text) if isinstance(text, str) else text
            edit(doc)
            new = "CAST(:doc AS json)" if engine.dialect.name == "postgresql" else ":doc"
            changed = conn.execute(sa.text(f"UPDATE {table} SET {column} = {new} "
                                           f"WHERE {key} = :v"),
                                   {"doc": json.dumps(doc), "v": value})
            assert changed.rowcount == 1
    finally:
        engine.dispose()


def _service_problems(url: str) -> list[str]:
    """What Service.verify finds in the store, read fresh (no cached definition)."""
    with SqlStore(url) as store:
        return Service(store).verify()


@pytest.mark.parametrize("kind", list(STATE_EDITS))
def test_a_state_field_edited_behind_the_log_is_reported(run: Run, any_url: str,
                                                         kind: str) -> None:
    """An edited amendment date, an added override, a changed document reference, an added
    or removed notice: each named by audit --verify (exit 1) and by Service.verify."""
    _history(run, any_url)
    assert ok(run("audit", "--verify", "--database", any_url)).code == 0
    assert _service_problems(any_url) == []
    edit, message = STATE_EDITS[kind]
    _rewrite(any_url, "processes", "process_id", "wtpf-26", "state", edit)
    tampered = run("audit", "--verify", "--database", any_url)
    assert tampered.code == 1
    assert "Traceback" not in tampered.err
    assert message in " ".join(tampered.err.split())
    [problem] = _service_problems(any_url)
    assert problem == ("wtpf-26: the stored state does not match its audit log: "
                       f"{message}. The state was changed outside prepflow")


def test_an_edited_definition_body_is_reported(run: Run, any_url: str) -> None:
    """A comment deadline edited in the stored definition no longer hashes to the hash the
    process was created with: audit --verify exits 1, Service.verify says so."""
    _history(run, any_url)
    with SqlStore(any_url) as store:
        hash_ = store.get("wtpf-26").definition_hash

    def later_deadline(body: Doc) -> None:
        assert body["cycles"][1]["comment_deadline"] == "2024-12-20"
        body["cycles"][1]["comment_deadline"] = "2025-03-31"

    _rewrite(any_url, "definitions", "hash", hash_, "body", later_deadline)
    tampered = run("audit", "--verify", "--database", any_url)
    assert tampered.code == 1
    assert "the definition was edited outside prepflow" in " ".join(tampered.err.split())
    [problem] = _service_problems(any_url)
    assert problem.startswith("wtpf-26: the stored definition's content hashes to ")
    assert f"not to {hash_[:12]}… it was stored under" in problem


def test_the_body_hash_is_the_definitions_fingerprint(run: Run, db_url: str) -> None:
    """fingerprint_of a stored body spells the hash as ProcessDefinition.fingerprint does."""
    _history(run, db_url)
    with SqlStore(db_url) as store:
        stored = store.get("wtpf-26")
    definition = ProcessDefinition.model_validate(stored.definition)
    assert fingerprint_of(stored.definition) == definition.fingerprint() == \
        stored.definition_hash


def test_a_release_0_1_store_verifies_clean(tmp_path: Path) -> None:
    """Stores written by release 0.1 (older notice keys, older definitions) rebuild exactly."""
    path = tmp_path / "release.db"
    shutil.copyfile(RELEASE_01, path)
    assert _service_problems(f"sqlite:///{path}") == []
