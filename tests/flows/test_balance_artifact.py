"""The balance as a Prefect artifact: the `advance` tick publishes `<process>-balance` when the
register has experts, with the numbers `prepflow experts balance` prints; read back from a real
(temporary) Prefect server."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId
from prefect.states import State

from flows.clock import FixedClock
from flows.definition_file import load_definition
from flows.nominations import check_row
from flows.orchestration.advance import advance
from flows.orchestration.balance_view import compute, load_countries, markdown
from flows.rehearsal.register_gen import nomination_rows
from flows.shell import Service
from flows.storage import open_store

pytestmark = pytest.mark.usefixtures("prefect_server")

ROOT = Path(__file__).resolve().parents[2]
WTPF = load_definition(ROOT / "config" / "wtpf26.yaml")
BY = "wtpf-secretariat"
START = datetime(2024, 7, 10, 8, tzinfo=UTC)
#: The First Draft's comment deadline has passed: the tick changes the process and publishes.
DEADLINE_PASSED = datetime(2024, 8, 26, 22, tzinfo=UTC)


def posted_process(database: str, experts: int) -> Service:
    """WTPF-26 with the First Draft posted and ``experts`` generated nominations registered."""
    store = open_store(database)
    svc = Service(store, FixedClock(START))
    svc.init(WTPF, START)
    svc.transition("wtpf-26", "post_draft1", BY, "WTPF-26/1", now=datetime(2024, 8, 5, 8,
                                                                           tzinfo=UTC))
    rows = nomination_rows(41, experts, load_countries(WTPF),
                           WTPF.notifications.stakeholder_types, ["en"])
    if rows:
        store.add_experts("wtpf-26", [check_row(WTPF, row, START) for row in rows])
    return svc


def artifacts_of(state: State[Any]) -> dict[str, Any]:
    """The artifacts a flow run published, by key, as the server has them."""
    with get_client(sync_client=True) as client:
        found = client.read_artifacts(artifact_filter=ArtifactFilter(
            flow_run_id=ArtifactFilterFlowRunId(any_=[state.state_details.flow_run_id])))
    return {a.key: a for a in found}


def test_the_tick_publishes_the_balance_of_the_register(tmp_path: Path) -> None:
    """150 experts: `wtpf-26-balance` holds the same markdown the command prints with md."""
    database = f"sqlite:///{tmp_path / 'prepflow.db'}"
    svc = posted_process(database, 150)
    try:
        state = advance(now=DEADLINE_PASSED, database=database, return_state=True)
        assert state.is_completed(), state.message
        published = artifacts_of(state)["wtpf-26-balance"]
        expected = markdown("wtpf-26", WTPF, compute(WTPF, svc.store.experts("wtpf-26")))
    finally:
        svc.store.close()
    assert published.type == "markdown"
    assert published.data == expected
    assert "wtpf-26: 150 active experts" in str(published.data)
    assert "| A | Americas |" in str(published.data)
    assert "@" not in str(published.data)  # counts only: no address reaches Prefect


def test_no_balance_artifact_without_experts(tmp_path: Path) -> None:
    """An empty register: the tick publishes its views, but no balance."""
    database = f"sqlite:///{tmp_path / 'prepflow.db'}"
    posted_process(database, 0).store.close()
    state = advance(now=DEADLINE_PASSED, database=database, return_state=True)
    keys = set(artifacts_of(state))
    assert "wtpf-26-status" in keys
    assert "wtpf-26-balance" not in keys
