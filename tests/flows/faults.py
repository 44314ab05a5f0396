"""What the fault tests (issue 10, "Load and faults") share: WTPF-26 processes with experts
and a comment window due to close, hooks behind the store's back, and the exactly-once check."""

from __future__ import annotations

import json
import os
import sys
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.pool import NullPool

from flows.cli import app as cli
from flows.clock import FixedClock
from flows.definition_file import load_definition
from flows.shell import Service
from flows.storage import SqlStore
from flows.storage.notify_model import ExpertDraft
from tests.flows.cli_run import Run, in_process

ROOT = Path(__file__).resolve().parents[2]
WTPF = load_definition(ROOT / "config" / "wtpf26.yaml")
START = datetime(2024, 7, 10, 8, tzinfo=UTC)
POSTED = datetime(2024, 8, 5, 8, tzinfo=UTC)
#: Past the First Draft's comment deadline: each process's window closes, its experts are told.
CLOSED = datetime(2024, 8, 26, 22, tzinfo=UTC)
CLOSE = "close_comments_draft1"
MOVED = "(draft1.comment_window → draft1.comments_closed)"
EXPERTS = 3


def wide_run(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Run:
    """`prepflow` in-process, with consoles wide enough that no line wraps."""
    monkeypatch.setattr(cli.out, "width", 200)
    monkeypatch.setattr(cli.err, "width", 200)
    return in_process(capsys)


def experts() -> list[ExpertDraft]:
    """Confirmed experts: the window's close mails each of them."""
    return [ExpertDraft(email=f"expert{n}@example.org", first_name="Expert", last_name=str(n),
                        entity="Ministry", nominated_by="Chile", country="Chile", region="AMS",
                        stakeholder_type="government", nominated_at=START, status="confirmed")
            for n in range(EXPERTS)]


def seed(url: str, ids: list[str]) -> None:
    """WTPF-26 processes with experts and their First Draft posted: each has a close due."""
    with SqlStore(url) as store:
        svc = Service(store, FixedClock(START))
        for pid in ids:
            svc.init(WTPF, START, pid)
            store.add_experts(pid, experts())
            svc.transition(pid, "post_draft1", "wtpf-secretariat", "WTPF-26/1", now=POSTED)


def sql(url: str, *statements: str) -> None:
    """Statements behind the store's back (the fault's hooks)."""
    engine = sa.create_engine(url, poolclass=NullPool)
    try:
        with engine.begin() as conn:
            for statement in statements:
                conn.execute(sa.text(statement))
    finally:
        engine.dispose()


def scalar(url: str, query: str) -> int:
    """One number read behind the store's back."""
    engine = sa.create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            return int(conn.execute(sa.text(query)).scalar_one())
    finally:
        engine.dispose()


def advance_command(url: str) -> list[str]:
    """`prepflow advance` at CLOSED on ``url``, as a command of its own."""
    return [sys.executable, "-m", "flows.cli", "advance", "--now", CLOSED.isoformat(),
            "--database", url]


def command_env() -> dict[str, str]:
    """The environment of a worker started from the checkout."""
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get(
        "PYTHONPATH", "")]), "COLUMNS": "200"}


def wait_for(ready: Callable[[], bool], seconds: float, what: str) -> None:
    """Poll until ``ready`` (a condition on another process), failing after ``seconds``."""
    deadline = time.monotonic() + seconds
    while not ready():
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not so after {seconds} s")
        time.sleep(0.02)


def assert_each_once(url: str, ids: list[str]) -> None:
    """Every process closed its window exactly once, wrote the same trail and queued the same
    messages as every other, each message once; the chains verify."""
    with SqlStore(url) as store:
        assert store.verify() == []
        log = store.audit()
        outbox = store.outbox()
        regions = {pid: store.get(pid).state["regions"]["main"] for pid in ids}
    assert set(regions.values()) == {"draft1.comments_closed"}
    steps = Counter((e.process_id, e.trigger) for e in log if e.kind == "transition")
    assert {pid: steps[(pid, CLOSE)] for pid in ids} == dict.fromkeys(ids, 1)
    assert max(steps.values()) == 1, "a transition was applied twice"
    trails = {pid: [(e.kind, e.trigger, e.from_state, e.to_state,
                     json.dumps(e.inputs, sort_keys=True).replace(pid, "<pid>"))
                    for e in log if e.process_id == pid] for pid in ids}
    assert all(trail == trails[ids[0]] for trail in trails.values()), \
        "a process's trail differs from the others'"
    assert Counter(i.key for i in outbox).most_common(1)[0][1] == 1
    sent = Counter((i.process_id, i.event, i.recipient) for i in outbox)
    assert max(sent.values()) == 1, "a message was queued twice"
    closed = Counter(i.process_id for i in outbox if i.event == "comments_closed")
    assert closed == dict.fromkeys(ids, EXPERTS)
