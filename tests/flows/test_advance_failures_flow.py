"""The advance flow over several processes when one of them cannot be advanced: the others
advance and publish, and the run ends Failed, naming the one that did not (real Prefect server).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId
from sqlalchemy.pool import NullPool

from flows.clock import FixedClock
from flows.definition_file import load_definition
from flows.orchestration.advance import advance
from flows.shell import Service
from flows.storage import SqlStore

pytestmark = pytest.mark.usefixtures("prefect_server")

ROOT = Path(__file__).resolve().parents[2]
START = datetime(2024, 7, 10, 8, tzinfo=UTC)
FIRST_DEADLINE_PASSED = datetime(2024, 8, 26, 22, tzinfo=UTC)


def test_a_failing_process_fails_the_run_without_hiding_the_others(tmp_path: Path) -> None:
    """RPD-27's stored definition is broken: WTPF-26 still closes and publishes; run Failed."""
    url = f"sqlite:///{tmp_path / 'prepflow.db'}"
    with SqlStore(url) as store:
        svc = Service(store, FixedClock(START))
        svc.init(load_definition(ROOT / "config" / "wtpf26.yaml"), START)
        svc.init(load_definition(ROOT / "tests" / "definitions" / "other_forum.yaml"), START)
        svc.transition("wtpf-26", "post_draft1", "wtpf-secretariat", "WTPF-26/1",
                       now=datetime(2024, 8, 5, 8, tzinfo=UTC))
        broken = store.get("rpd-27").definition_hash
    engine = sa.create_engine(url, poolclass=NullPool)
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE definitions SET body = :body WHERE hash = :hash"),
                     {"body": json.dumps({"id": "rpd-27"}), "hash": broken})
    engine.dispose()

    state = advance(now=FIRST_DEADLINE_PASSED, database=url, ask_secretariat=False,
                    return_state=True)

    assert state.is_failed()
    assert state.message is not None
    assert "1 of 2 processes could not be advanced" in state.message
    assert "'rpd-27' is damaged" in state.message
    with SqlStore(url) as store:
        assert store.get("wtpf-26").state["regions"]["main"] == "draft1.comments_closed"
    run_id = state.state_details.flow_run_id
    assert run_id is not None
    with get_client(sync_client=True) as client:
        run = client.read_flow_run(run_id)
        artifacts = client.read_artifacts(artifact_filter=ArtifactFilter(
            flow_run_id=ArtifactFilterFlowRunId(any_=[run_id])))
    assert run.name == "FAILED: rpd-27; wtpf-26: First Draft comment window closed"
    by_key = {a.key: a for a in artifacts}
    assert {"wtpf-26-status", "wtpf-26-timeline", "advance-report", "rpd-27-alerts"} <= set(
        by_key)
    assert "rpd-27-status" not in by_key
    report = {row["process"]: row for row in json.loads(str(by_key["advance-report"].data))}
    assert report["wtpf-26"]["status"] == "advanced"
    assert "First Draft comment window closed" in report["wtpf-26"]["detail"]
    assert report["rpd-27"]["status"] == "failed"
    assert "'rpd-27' is damaged" in report["rpd-27"]["detail"]
    assert "not advanced at 2024-08-26T22:00:00+00:00" in str(by_key["rpd-27-alerts"].data)
