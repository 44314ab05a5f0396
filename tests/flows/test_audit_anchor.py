"""The anchor outside the database (issue 9): `advance` appends the moved chain heads to the
witness file, and `audit --verify` catches a truncated tail or a recomputed chain that the hash
chain alone cannot, on SQLite and PostgreSQL; the Prefect tick publishes the head too."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa

from flows.orchestration.advance import advance
from flows.shell import Service
from flows.storage import SqlStore
from flows.storage.chain import GENESIS, recompute
from states.definition import ProcessDefinition
from states.replay import rebuild
from tests.flows import test_audit_tamper, test_cli
from tests.flows.test_cli import BY, WTPF, Run, ok

db_url, run = test_cli.db_url, test_cli.run
any_url = test_audit_tamper.any_url


@pytest.fixture
def witness(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The witness file, configured through PREPFLOW_AUDIT_WITNESS."""
    path = tmp_path / "anchor" / "witness.jsonl"
    monkeypatch.setenv("PREPFLOW_AUDIT_WITNESS", str(path))
    return path


def _lines(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def _history(run: Run, url: str) -> None:
    """Init, a posted draft and three advances (the second closes the comment window)."""
    ok(run("init", WTPF, "--database", url, "--now", "2024-07-10T08:00Z"))
    ok(run("advance", "--database", url, "--now", "2024-07-11T08:00Z"))
    ok(run("transition", "wtpf-26", "post_draft1", "--by", BY, "--document", "WTPF-26/1",
           "--database", url, "--now", "2024-08-05T07:00Z"))
    ok(run("advance", "--database", url, "--now", "2024-08-27T00:00+02:00"))
    ok(run("advance", "--database", url, "--now", "2024-08-27T00:00+02:00"))


def _forge(url: str, keep: int, edit: bool, key: bytes | None = None) -> None:
    """As the database's owner: keep the first ``keep`` entries (``edit``: change the actor
    of entry #2 and recompute every hash after it, plain or under ``key``), reset the head,
    and store the state the forged log rebuilds, so that only a witness outside the database
    (or the audit key) can tell."""
    with SqlStore(url) as store:
        log = store.audit("wtpf-26")[:keep]
        definition = ProcessDefinition.model_validate(store.get("wtpf-26").definition)
    prev, forged = GENESIS, []
    for entry in log:
        if edit and entry.seq == 2:
            entry = dataclasses.replace(entry, actor="someone-else")
        entry = dataclasses.replace(entry, prev_hash=prev)
        entry = dataclasses.replace(entry, hash=recompute(entry, key))
        forged.append(entry)
        prev = entry.hash
    state = rebuild(definition, forged, "wtpf-26").to_doc()
    engine = sa.create_engine(url)
    new = "CAST(:state AS json)" if engine.dialect.name == "postgresql" else ":state"
    try:
        with engine.begin() as conn:
            conn.execute(sa.text("DELETE FROM audit_log WHERE process_id = 'wtpf-26' "
                                 "AND seq > :keep"), {"keep": keep})
            for entry in forged:
                conn.execute(sa.text("UPDATE audit_log SET actor = :actor, prev_hash = :prev, "
                                     "hash = :hash WHERE process_id = 'wtpf-26' AND seq = :seq"),
                             {"actor": entry.actor, "prev": entry.prev_hash,
                              "hash": entry.hash, "seq": entry.seq})
            conn.execute(sa.text(f"UPDATE processes SET audit_seq = :seq, head_hash = :hash, "
                                 f"state = {new} WHERE process_id = 'wtpf-26'"),
                         {"seq": keep, "hash": prev, "state": json.dumps(state)})
    finally:
        engine.dispose()


def _problems(url: str, witness: Path | None) -> list[str]:
    with SqlStore(url) as store:
        return Service(store).verify(witness=witness)


def test_advance_appends_each_moved_head_once(run: Run, db_url: str, witness: Path) -> None:
    """One line per advance that moved the head, matching the stored last entry; a tick with
    nothing new adds none."""
    _history(run, db_url)
    lines = _lines(witness)
    last = test_cli.audit(db_url)[-1]
    assert [line["process"] for line in lines] == ["wtpf-26", "wtpf-26"]
    assert int(str(lines[0]["seq"])) < last.seq
    assert (lines[-1]["seq"], lines[-1]["hash"]) == (last.seq, last.hash)
    assert str(lines[-1]["at"]).endswith("Z")
    ok(run("advance", "--database", db_url, "--now", "2024-08-28T00:00+02:00"))
    assert len(_lines(witness)) == 2


def test_an_untouched_log_verifies_clean(run: Run, any_url: str, witness: Path) -> None:
    """Nothing edited: audit --verify exits 0 and Service.verify finds nothing."""
    _history(run, any_url)
    assert "audit log intact" in ok(run("audit", "--verify", "--database", any_url)).out
    assert _problems(any_url, witness) == []


@pytest.mark.parametrize("edit", [False, True], ids=["truncated", "recomputed"])
def test_a_forged_chain_is_caught_by_the_witness(run: Run, any_url: str, witness: Path,
                                                 edit: bool) -> None:
    """A tail cut off with the head reset, or an edited entry with the chain recomputed:
    the chain and the replay are consistent, but the witnessed head is gone (exit 1)."""
    _history(run, any_url)
    witnessed = _lines(witness)[-1]
    keep = int(str(witnessed["seq"])) - (2 if not edit else 0)
    _forge(any_url, keep, edit)
    assert _problems(any_url, None) == []  # invisible from inside the database
    head = test_cli.audit(any_url)[-1]
    expected = (f"wtpf-26: the audit log was truncated or rewritten after seq "
                f"{witnessed['seq']} (witnessed at {witnessed['at']} UTC with hash "
                f"{str(witnessed['hash'])[:12]}…): stored head is seq {head.seq} / hash "
                f"{head.hash}")
    assert _problems(any_url, witness) == [expected]
    tampered = run("audit", "--verify", "--database", any_url)
    assert tampered.code == 1
    assert "Traceback" not in tampered.err
    assert expected in " ".join(tampered.err.split())
    # The next advance must not bury the evidence under a forged head.
    ok(run("advance", "--database", any_url, "--now", "2024-08-28T00:00+02:00"))
    assert _lines(witness)[-1] == witnessed


def test_a_missing_witness_file_is_reported(run: Run, db_url: str, witness: Path) -> None:
    """Configured but removed: verify says so (exit 1); unconfigured: nothing new."""
    _history(run, db_url)
    witness.unlink()
    missing = run("audit", "--verify", "--database", db_url)
    assert missing.code == 1
    assert f"the audit witness file {witness}" in " ".join(missing.err.split())
    assert _problems(db_url, None) == []


def test_without_a_witness_advance_writes_none(run: Run, db_url: str, tmp_path: Path) -> None:
    """Unset PREPFLOW_AUDIT_WITNESS: no file anywhere, verify as before."""
    _history(run, db_url)
    assert not list(tmp_path.rglob("*.jsonl"))
    assert "audit log intact" in ok(run("audit", "--verify", "--database", db_url)).out


@pytest.mark.usefixtures("prefect_server")
def test_the_tick_publishes_the_head_and_witnesses_it(tmp_path: Path, witness: Path) -> None:
    """The Prefect advance flow appends the head to the witness file and publishes
    `wtpf-26-audit-anchor` with the same seq and hash."""
    from tests.flows.test_balance_artifact import artifacts_of, posted_process

    database = f"sqlite:///{tmp_path / 'prepflow.db'}"
    posted_process(database, 0).store.close()
    state = advance(now=datetime(2024, 8, 26, 22, tzinfo=UTC), database=database,
                    return_state=True)
    assert state.is_completed(), state.message
    published = artifacts_of(state)["wtpf-26-audit-anchor"]
    head = test_cli.audit(database)[-1]
    assert published.type == "table"
    rows = published.data if isinstance(published.data, list) else json.loads(
        str(published.data))
    assert rows == [{"process": "wtpf-26", "seq": head.seq, "hash": head.hash}]
    [line] = _lines(witness)
    assert (line["seq"], line["hash"]) == (head.seq, head.hash)
