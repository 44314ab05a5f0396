"""A revision's new definition is stored with its state and audit entries, in one transaction,
on SQLite and PostgreSQL; an init from a file that only gained defaulted fields still matches."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from flows.definition_file import load_definition
from flows.shell import Service
from flows.storage import SqlStore
from tests.flows.test_storage import DEFINITION, OTHER, SQL_BACKENDS, Backend, _open, draft, make

WTPF = Path(__file__).resolve().parents[2] / "config" / "wtpf26.yaml"


@pytest.fixture(params=SQL_BACKENDS)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    """Each store implementation in turn, closed afterwards."""
    opened = _open(request.param, request, tmp_path)
    yield opened
    opened.store.close()


def test_commit_with_a_definition_moves_the_process_to_it(backend: Backend) -> None:
    """The process reads the new body under its hash, the old body stays for others."""
    store = backend.store
    make(store)
    make(store, "other-26")
    with store.transaction("wtpf-26") as tx:
        tx.get()
        saved = tx.commit({"state": "draft"}, [draft(1, kind="revision")],
                          definition=(OTHER, "otherhash"))
    assert (saved.definition, saved.definition_hash) == (OTHER, "otherhash")
    fresh = store.get("wtpf-26")
    assert (fresh.definition, fresh.definition_hash, fresh.version) == (OTHER, "otherhash", 2)
    assert store.get("other-26").definition == DEFINITION
    assert store.verify() == []


def test_a_failed_revision_leaves_the_definition(backend: Backend) -> None:
    """An exception after the commit call rolls the definition back with everything else."""
    store = backend.store
    make(store)

    def crash() -> None:
        with store.transaction("wtpf-26") as tx:
            tx.get()
            tx.commit({"state": "x"}, [draft(1)], definition=(OTHER, "otherhash"))
            raise RuntimeError("crash before the end of the transaction")

    with pytest.raises(RuntimeError):
        crash()
    assert store.get("wtpf-26").definition_hash == "defhash"


def test_a_hash_naming_another_body_is_refused(backend: Backend) -> None:
    """A hash already stored with a different body is never reused for this one."""
    store = backend.store
    make(store)

    def clash() -> None:
        with store.transaction("wtpf-26") as tx:
            tx.get()
            tx.commit({"state": "x"}, [draft(1)], definition=(OTHER, "defhash"))

    with pytest.raises(ValueError, match="already names"):
        clash()
    assert store.get("wtpf-26").definition == DEFINITION


def test_init_matches_a_stored_definition_without_new_defaulted_fields(tmp_path: Path) -> None:
    """A store written before meetings had 'informal' and 'days': same meaning, so init of the
    same file is a no-op, not 'a different version'."""
    store = SqlStore(f"sqlite:///{tmp_path / 'old.db'}")
    try:
        definition = load_definition(WTPF)
        body = definition.model_dump(mode="json")
        for cycle in body["cycles"]:
            for meeting in cycle["meetings"]:
                for field in ("informal", "days", "remote_participation"):
                    meeting.pop(field)
        body["forum"].pop("mode")
        at = datetime(2024, 7, 10, tzinfo=UTC)
        store.create("wtpf-26", body, "older-fingerprint", {"process_id": "wtpf-26",
                     "regions": {"main": "draft1.drafting", "consultation": "none"}},
                     draft(0, kind="init"))
        assert Service(store).init(definition, at) is False
    finally:
        store.close()
