"""The store keeps processes and a tamper-evident audit log, the same way on every backend."""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.pool import NullPool

from flows.storage import (
    AuditDraft,
    SqlStore,
    Store,
    StoredProcess,
    StoreError,
    UnknownProcess,
    VersionConflict,
    open_store,
)
from flows.storage.chain import seal
from flows.storage.tables import audit_log, definitions

T0 = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)
DEFINITION = {"name": "wtpf", "states": ["draft", "comments", "final"]}
OTHER = {"name": "wtdc", "states": ["draft", "final"]}


def draft(n: int = 0, **changes: Any) -> AuditDraft:
    """An audit draft n minutes after T0."""
    fields: dict[str, Any] = {
        "at": T0 + timedelta(minutes=n),
        "actor": "system",
        "kind": "transition",
        "trigger": f"t{n}",
        "from_state": "draft",
        "to_state": "comments",
        "reason": "deadline reached",
        "inputs": {"n": n},
    }
    fields.update(changes)
    return AuditDraft(**fields)


def make(store: Store, process_id: str = "wtpf-26", entries: int = 0) -> StoredProcess:
    """A process with audit #1 (init) plus ``entries`` committed transitions."""
    store.create(process_id, DEFINITION, "defhash", {"state": "draft"}, draft(0, kind="init"))
    process = store.get(process_id)
    for i in range(entries):
        process = store.commit(process_id, process.version, {"state": f"s{i}"}, [draft(i + 1)])
    return process


@dataclass
class Backend:
    """A store under test plus a back door to its storage, for tampering."""

    name: str
    store: Store
    url: str | None = None

    def sql(self, statement: str, **params: Any) -> None:
        """Run raw SQL behind the store's back."""
        assert self.url is not None
        engine = sa.create_engine(self.url, poolclass=NullPool)
        try:
            with engine.begin() as conn:
                conn.execute(sa.text(statement), params)
        finally:
            engine.dispose()


def _open(name: str, request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    url = (
        f"sqlite:///{tmp_path / 'prepflow.db'}"
        if name == "sqlite"
        else request.getfixturevalue("postgres_url")
    )
    return Backend(name, SqlStore(url), url)


SQL_BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


@pytest.fixture(params=SQL_BACKENDS)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    """Each store implementation in turn, closed afterwards."""
    opened = _open(request.param, request, tmp_path)
    yield opened
    opened.store.close()


@pytest.fixture(params=SQL_BACKENDS)
def sql_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A URL for an empty SQLite file or PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'prepflow.db'}"
    url: str = request.getfixturevalue("postgres_url")
    return url


# --- behaviour -----------------------------------------------------------------------------


def test_create_is_idempotent(backend: Backend) -> None:
    """A second create of the same id returns False and writes nothing."""
    store = backend.store
    assert store.create("wtpf-26", DEFINITION, "h1", {"state": "draft"}, draft(0, kind="init"))
    assert not store.create("wtpf-26", {"other": 1}, "h2", {"state": "x"}, draft(5))
    process = store.get("wtpf-26")
    assert (process.definition, process.definition_hash) == (DEFINITION, "h1")
    assert (process.state, process.version, process.audit_seq) == ({"state": "draft"}, 1, 1)
    assert [e.kind for e in store.audit("wtpf-26")] == ["init"]
    assert process.created_at.tzinfo is UTC


def test_get_unknown_lists_known(backend: Backend) -> None:
    """Asking for an unknown process names it and lists the known ones."""
    make(backend.store, "wtpf-26")
    make(backend.store, "wtdc-25")
    with pytest.raises(UnknownProcess, match=r"'wtpf-99'.*wtdc-25, wtpf-26"):
        backend.store.get("wtpf-99")


def test_list_is_ordered_by_id(backend: Backend) -> None:
    """list() returns every process ordered by id."""
    for pid in ["c", "a", "b"]:
        make(backend.store, pid)
    assert [p.process_id for p in backend.store.list()] == ["a", "b", "c"]


def test_commit_bumps_version_and_appends(backend: Backend) -> None:
    """A commit replaces the state, bumps the version and chains the new entries."""
    store = backend.store
    make(store)
    after = store.commit("wtpf-26", 1, {"state": "comments"}, [draft(1), draft(2)])
    assert (after.state, after.version, after.audit_seq) == ({"state": "comments"}, 2, 3)
    assert store.get("wtpf-26") == after
    log = store.audit("wtpf-26")
    assert [e.seq for e in log] == [1, 2, 3]
    assert [e.prev_hash for e in log[1:]] == [e.hash for e in log[:-1]]
    assert log[2].inputs == {"n": 2}
    assert log[2].trigger == "t2"


def test_version_conflict_writes_nothing(backend: Backend) -> None:
    """A commit based on a stale version raises VersionConflict and changes nothing."""
    store = backend.store
    before = make(store, entries=1)
    with pytest.raises(VersionConflict, match="someone else") as caught:
        store.commit("wtpf-26", 1, {"state": "lost"}, [draft(9)])
    assert (caught.value.process_id, caught.value.expected, caught.value.actual) == (
        "wtpf-26",
        1,
        2,
    )
    assert store.get("wtpf-26") == before
    assert len(store.audit("wtpf-26")) == 2


def test_refusal_appends_without_state(backend: Backend) -> None:
    """With state None only the entries are appended; the version is not checked or bumped."""
    store = backend.store
    before = make(store, entries=1)
    after = store.commit("wtpf-26", 1, None, [draft(3, kind="refusal", to_state=None)])
    assert (after.state, after.version, after.audit_seq) == (before.state, 2, 3)
    assert store.audit("wtpf-26")[-1].kind == "refusal"
    assert store.verify() == []


def test_audit_order(backend: Backend) -> None:
    """audit() lists entries by process id, then seq; audit(id) only that process's."""
    store = backend.store
    make(store, "b", entries=2)
    make(store, "a", entries=1)
    assert [(e.process_id, e.seq) for e in store.audit()] == [
        ("a", 1),
        ("a", 2),
        ("b", 1),
        ("b", 2),
        ("b", 3),
    ]
    assert [e.seq for e in store.audit("a")] == [1, 2]
    with pytest.raises(UnknownProcess):
        store.audit("zzz")


def test_times_come_back_aware_utc(backend: Backend) -> None:
    """An audit time given in another zone comes back as the same instant in UTC."""
    geneva = timezone(timedelta(hours=1))
    at = datetime(2025, 3, 1, 10, 0, 0, 123456, tzinfo=geneva)
    make(backend.store)
    backend.store.commit("wtpf-26", 1, None, [draft(at=at)])
    entry = backend.store.audit("wtpf-26")[-1]
    assert entry.at == at
    assert entry.at.tzinfo is UTC
    assert entry.at.microsecond == 123456


def test_processes_share_one_definition_row(sql_url: str) -> None:
    """Processes created from one definition keep it once; get() and list() still carry it."""
    with SqlStore(sql_url) as store:
        for pid in ["a", "b", "c"]:
            make(store, pid)
        assert not store.create("a", OTHER, "other", {}, draft(0))  # exists: keeps nothing
        assert [p.definition for p in store.list()] == [DEFINITION] * 3
    with SqlStore(sql_url) as fresh:  # a new store reads the body from the table, not a cache
        assert fresh.get("b").definition == DEFINITION
    engine = sa.create_engine(sql_url, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            rows = conn.execute(sa.select(definitions.c.hash, definitions.c.body)).all()
        assert [tuple(r) for r in rows] == [("defhash", DEFINITION)]
    finally:
        engine.dispose()


def test_one_hash_one_definition(backend: Backend) -> None:
    """A hash that already names another definition is refused: one of them would be lost."""
    store = backend.store
    make(store, "wtpf-26")
    with pytest.raises(ValueError, match=r"hash 'defhash'.*different stored definition"):
        store.create("wtdc-25", OTHER, "defhash", {"state": "draft"}, draft(0, kind="init"))
    with pytest.raises(UnknownProcess):
        store.get("wtdc-25")
    assert store.create("wtdc-25", OTHER, "otherhash", {"state": "draft"}, draft(0))


def test_state_is_the_callers_definition_is_shared(backend: Backend) -> None:
    """A returned state is the caller's to change; a definition is shared, so it refuses."""
    store = backend.store
    make(store)
    returned = [store.get("wtpf-26"), store.list()[0], store.commit("wtpf-26", 1, None, [draft(1)])]
    for process in returned:
        process.state["state"] = "forged"
        with pytest.raises(TypeError, match="cannot be changed in place"):
            process.definition["states"].append("forged")
        with pytest.raises(TypeError, match="cannot be changed in place"):
            process.definition["name"] = "forged"
        mine = copy.deepcopy(process.definition)
        mine["states"].append("mine")  # a deep copy is plain
    again = store.get("wtpf-26")
    assert (again.definition, again.state) == (DEFINITION, {"state": "draft"})


def test_naive_datetime_refused() -> None:
    """An audit draft with a naive time is refused: it is ambiguous between time zones."""
    with pytest.raises(ValueError, match="no time zone"):
        AuditDraft(at=datetime(2025, 3, 1, 9, 0), actor="system", kind="init")


def test_non_json_inputs_refused(backend: Backend) -> None:
    """Inputs that are not JSON are refused before anything is written."""
    make(backend.store)
    with pytest.raises(ValueError, match="JSON"):
        backend.store.commit("wtpf-26", 1, {"s": 1}, [draft(inputs={"x": object()})])
    assert backend.store.get("wtpf-26").version == 1


# --- tamper evidence -----------------------------------------------------------------------


def test_verify_passes_on_intact_log(backend: Backend) -> None:
    """An untouched log verifies clean, for all processes and for one."""
    make(backend.store, "a", entries=3)
    make(backend.store, "b", entries=1)
    assert backend.store.verify() == []
    assert backend.store.verify("a") == []
    with pytest.raises(UnknownProcess):
        backend.store.verify("zzz")


WTPF = "process_id = 'wtpf-26'"


def _edit(b: Backend) -> None:
    b.sql(f"UPDATE audit_log SET reason = 'nobody objected' WHERE {WTPF} AND seq = 3")


def _delete(seq: int) -> Callable[[Backend], None]:
    def tamper(b: Backend) -> None:
        b.sql(f"DELETE FROM audit_log WHERE {WTPF} AND seq = :seq", seq=seq)

    return tamper


def _swap(b: Backend) -> None:
    # Three steps: the primary key forbids two rows with the same seq even for a moment.
    b.sql(f"UPDATE audit_log SET seq = -1 WHERE {WTPF} AND seq = 2")
    b.sql(f"UPDATE audit_log SET seq = 2 WHERE {WTPF} AND seq = 3")
    b.sql(f"UPDATE audit_log SET seq = 3 WHERE {WTPF} AND seq = -1")


def _insert(b: Backend) -> None:
    """Append a forged entry that chains correctly: only the process row can give it away."""
    last = b.store.audit("wtpf-26")[-1]
    forged = seal("wtpf-26", last.seq + 1, last.hash, draft(9, reason="approved by acclamation"))
    assert b.url is not None
    engine = sa.create_engine(b.url, poolclass=NullPool)
    try:
        with engine.begin() as conn:
            conn.execute(sa.insert(audit_log), [dataclasses.asdict(forged)])
    finally:
        engine.dispose()


@pytest.mark.parametrize(
    ("tamper", "expected"),
    [
        pytest.param(_edit, "audit entry #3 does not match its hash", id="edit"),
        pytest.param(_delete(2), "audit entry #2 is missing", id="delete-middle"),
        pytest.param(_delete(4), "ends at entry #3 but the process records 4", id="delete-last"),
        pytest.param(_swap, "audit entry #2 does not match its hash", id="reorder"),
        pytest.param(_insert, "entries were inserted", id="insert"),
    ],
)
def test_verify_detects_tampering(
    backend: Backend, tamper: Callable[[Backend], None], expected: str
) -> None:
    """Editing, deleting (middle or last), reordering or inserting entries is reported."""
    make(backend.store, "wtpf-26", entries=3)
    make(backend.store, "wtdc-25", entries=3)
    tamper(backend)
    problems = backend.store.verify()
    assert any(p.startswith("wtpf-26: ") and expected in p for p in problems), problems
    assert not any(p.startswith("wtdc-25") for p in problems)
    assert backend.store.verify("wtdc-25") == []


# --- schema, files and servers -------------------------------------------------------------


def test_corrupt_sqlite_file(tmp_path: Path) -> None:
    """A file that is not a database gives a readable StoreError naming it."""
    path = tmp_path / "prepflow.db"
    path.write_bytes(b"minutes of the 2025 council, not a database " * 200)
    with pytest.raises(StoreError, match="not a prepflow database") as caught:
        SqlStore(f"sqlite:///{path}")
    assert str(path) in str(caught.value)
    assert "\n" not in str(caught.value)


def test_missing_directory(tmp_path: Path) -> None:
    """A SQLite path in a missing folder says to check the folder."""
    with pytest.raises(StoreError, match="folder exists"):
        SqlStore(f"sqlite:///{tmp_path / 'nowhere' / 'prepflow.db'}")


def test_unreachable_server_masks_password() -> None:
    """An unreachable server is reported with the URL, its password masked."""
    with pytest.raises(StoreError, match="cannot reach the database server") as caught:
        SqlStore("postgresql+psycopg://clerk:s3cret@127.0.0.1:1/prepflow")
    assert "s3cret" not in str(caught.value)
    assert "clerk:***@127.0.0.1:1" in str(caught.value)


def test_open_store_defaults_to_durable_sqlite(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without a URL the store is prepflow.db in the working directory, WAL and synchronous=FULL."""
    monkeypatch.chdir(tmp_path)
    store = open_store(None)
    try:
        assert isinstance(store, SqlStore)
        make(store)
        with store.db.engine.connect() as conn:
            pragmas = [
                conn.exec_driver_sql(f"PRAGMA {p}").scalar()
                for p in ["journal_mode", "synchronous", "foreign_keys"]
            ]
        assert pragmas == ["wal", 2, 1]  # synchronous 2 = FULL
    finally:
        store.close()
    assert (tmp_path / "prepflow.db").exists()
