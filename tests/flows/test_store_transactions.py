"""A transition's store work is one transaction, and concurrent writers queue without losing
a change or forking the audit chain, on SQLite and PostgreSQL."""

from __future__ import annotations

import dataclasses
import sqlite3
import threading
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from flows.storage import (
    ExpertDraft,
    SqlStore,
    StoredProcess,
    StoreError,
    UnknownProcess,
    VersionConflict,
    db,
)
from tests.flows.test_storage import SQL_BACKENDS, T0, Backend, _open, draft, make


@pytest.fixture(params=SQL_BACKENDS)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    """Each store implementation in turn, closed afterwards."""
    opened = _open(request.param, request, tmp_path)
    yield opened
    opened.store.close()


# --- one transaction per change ----------------------------------------------------------


def test_transaction_reads_and_writes_once(backend: Backend) -> None:
    """A transaction reads the process, its register and writes, all committed together."""
    store = backend.store
    make(store)
    with store.transaction("wtpf-26") as tx:
        stored = tx.get()
        assert tx.experts() == []
        saved = tx.commit({"state": "comments"}, [draft(1)])
        with pytest.raises(RuntimeError, match="writes once"):
            tx.commit({"state": "final"}, [draft(2)])
    assert (stored.version, saved.version) == (1, 2)
    assert store.get("wtpf-26") == saved
    assert store.verify() == []


def test_transaction_that_raises_writes_nothing(backend: Backend) -> None:
    """An exception in the block rolls the write back: state and chain stay as they were."""
    store = backend.store
    make(store)

    def change_mind() -> None:
        with store.transaction("wtpf-26") as tx:
            tx.commit({"state": "comments"}, [draft(1)])
            raise LookupError("the caller changed its mind")

    with pytest.raises(LookupError):
        change_mind()
    process = store.get("wtpf-26")
    assert (process.version, process.audit_seq, process.state) == (1, 1, {"state": "draft"})
    with pytest.raises(UnknownProcess), store.transaction("zzz") as tx:
        tx.get()


def test_transaction_checks_an_expected_version(backend: Backend) -> None:
    """A commit on a version read earlier, outside the transaction, refuses a moved row."""
    store = backend.store
    make(store, entries=1)
    with pytest.raises(VersionConflict), store.transaction("wtpf-26") as tx:
        tx.commit({"state": "x"}, [draft(5)], expected_version=1)
    assert store.get("wtpf-26").version == 2
    assert store.verify() == []


def test_transaction_reads_the_register_as_the_store_does(backend: Backend) -> None:
    """The register read inside a transaction gives the same experts as store.experts()."""
    store = backend.store
    make(store)
    nominee = ExpertDraft(
        email="Ana.Ruiz@x.org", first_name="Ana", last_name="Ruiz", entity="SUBTEL",
        nominated_by="Chile", country="Chile", region="AMS", stakeholder_type="government",
        nominated_at=T0 + timedelta(hours=1), late=True,
    )
    store.add_experts("wtpf-26", [nominee, dataclasses.replace(nominee, email="b@x.org")])
    store.set_expert_status("wtpf-26", "b@x.org", "confirmed")
    with store.transaction("wtpf-26") as tx:
        tx.get()
        assert tx.experts() == store.experts("wtpf-26")
        assert tx.experts("confirmed") == store.experts("wtpf-26", "confirmed")
    assert store.experts("wtpf-26")[0].nominated_at == T0 + timedelta(hours=1)


# --- concurrency ---------------------------------------------------------------------------


def _race(n: int, work: Callable[[int], Any]) -> list[Any]:
    """Run ``work(i)`` in n threads released together; return results or exceptions."""
    barrier = threading.Barrier(n)
    results: list[Any] = [None] * n

    def run(i: int) -> None:
        barrier.wait()
        try:
            results[i] = work(i)
        except Exception as exc:  # noqa: BLE001 (collected for the assertions)
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    return results


def test_concurrent_commits_one_conflict(backend: Backend) -> None:
    """Two writers on the same version: exactly one wins, the other gets VersionConflict."""
    store = backend.store
    make(store)
    for version in range(1, 6):

        def write(i: int, version: int = version) -> StoredProcess:
            return store.commit("wtpf-26", version, {"writer": i}, [draft(i)])

        results = _race(2, write)
        winners = [r for r in results if isinstance(r, StoredProcess)]
        losers = [r for r in results if isinstance(r, VersionConflict)]
        assert (len(winners), len(losers)) == (1, 1), results
        assert store.get("wtpf-26") == winners[0]
    process = store.get("wtpf-26")
    assert (process.version, process.audit_seq) == (6, 6)
    assert store.verify() == []


def test_concurrent_appends_keep_the_chain(backend: Backend) -> None:
    """Refusals appended from several threads at once all land, in one intact chain."""
    make(backend.store)

    def append(i: int) -> None:
        for j in range(5):
            backend.store.commit("wtpf-26", 0, None, [draft(j, kind="refusal", actor=f"w{i}")])

    assert _race(4, append) == [None] * 4
    assert backend.store.get("wtpf-26").audit_seq == 21
    assert backend.store.verify() == []


def test_sqlite_reads_do_not_wait_for_a_writer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While another program holds the write lock, reads go on and a writer gives up in words."""
    monkeypatch.setattr(db, "BUSY_TIMEOUT_MS", 100)
    path = tmp_path / "prepflow.db"
    with SqlStore(f"sqlite:///{path}") as store:
        make(store)
        other = sqlite3.connect(path, isolation_level=None)
        try:
            other.execute("BEGIN IMMEDIATE")
            assert store.get("wtpf-26").version == 1
            assert [p.version for p in store.list()] == [1]
            with pytest.raises(StoreError, match="stayed locked by another prepflow program"):
                store.commit("wtpf-26", 1, {"state": "comments"}, [draft(1)])
        finally:
            other.execute("ROLLBACK")
            other.close()
        assert store.commit("wtpf-26", 1, {"state": "comments"}, [draft(1)]).version == 2
        assert store.verify() == []
