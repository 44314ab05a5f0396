"""Flows never take credentials as parameters (issue 9): a database password reaches neither a
deployment's parameters nor a flow run's record on the Prefect server; a run the server holds
with one in clear is refused before the store is opened. Against the test Prefect server and
PostgreSQL (trust auth ignores the password, so a password-bearing URL still opens)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa

from flows.orchestration.advance import advance
from flows.orchestration.run_context import close_stores, masked, store_url
from flows.orchestration.serve import deployments, use_store
from tests.flows.test_balance_artifact import posted_process
from tests.flows.test_prefect_flows import flow_run, snapshot

SECRET = "s3cret-pw-4711"
TICK = datetime(2024, 8, 26, 22, tzinfo=UTC)  # the First Draft's comment window closes


@pytest.fixture
def secret_url(postgres_url: str) -> Iterator[str]:
    """A fresh PostgreSQL store's URL with a password in it, holding WTPF-26 (draft posted)."""
    url = sa.make_url(postgres_url).set(password=SECRET).render_as_string(hide_password=False)
    posted_process(url, 0).store.close()
    yield url
    close_stores()  # the flows' kept stores, before the database is dropped


def _records(*values: object) -> str:
    """What the server's records say, as one text to search."""
    return json.dumps(values, default=str)


def test_served_deployments_carry_no_store(monkeypatch: pytest.MonkeyPatch) -> None:
    """`serve --database URL` puts URL in the served runs' environment, never in a
    deployment's parameters (kept and shown by the Prefect server)."""
    monkeypatch.setenv("PREPFLOW_DATABASE_URL", "sqlite:///before.db")  # restored afterwards
    url = f"postgresql+psycopg://ops:{SECRET}@127.0.0.1/prepflow"
    use_store(url)
    assert os.environ["PREPFLOW_DATABASE_URL"] == url
    served = deployments("*/15 * * * *", "Europe/Zurich")
    assert {d.name: d.parameters for d in served} == {  # type: ignore[attr-defined]
        name: {} for name in ("advance", "secretariat-action", "secretariat-amend",
                              "await-secretariat", "deliver-notifications")}


@pytest.mark.postgres
@pytest.mark.usefixtures("prefect_server")
def test_a_served_run_keeps_the_password_off_the_server(
        secret_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Deployments applied to the server and a tick run as served (store from the settings):
    the tick closes the window, and neither record on the server holds the password."""
    from prefect.client.orchestration import get_client

    monkeypatch.setenv("PREPFLOW_DATABASE_URL", "sqlite:///unused.db")
    use_store(secret_url)
    with get_client(sync_client=True) as client:
        ids = [d.apply() for d in deployments("*/15 * * * *", "Europe/Zurich")]  # type: ignore[attr-defined]
        kept = [client.read_deployment(i) for i in ids]
    assert all(d.parameters == {} for d in kept)
    assert SECRET not in _records(*[d.model_dump(mode="json") for d in kept])
    state = advance(now=TICK, return_state=True)
    assert state.is_completed(), state.message
    assert "draft1.comments_closed" in json.dumps(snapshot(secret_url, "wtpf-26")[0])
    assert SECRET not in _records(flow_run(state).model_dump(mode="json"))


@pytest.mark.postgres
@pytest.mark.usefixtures("prefect_server")
def test_a_password_in_a_flow_parameter_is_recorded_masked(secret_url: str) -> None:
    """A run started in this process with the URL as its parameter (a rehearsal, a test)
    works, and the server's record shows the password as ***."""
    state = advance(now=TICK, database=secret_url, return_state=True)
    assert state.is_completed(), state.message
    recorded = flow_run(state).parameters
    assert recorded["database"] == masked(secret_url)
    assert "***" in recorded["database"]
    assert SECRET not in _records(flow_run(state).model_dump(mode="json"))


@pytest.mark.postgres
@pytest.mark.usefixtures("prefect_server")
def test_a_run_recorded_with_the_password_in_clear_is_refused(secret_url: str) -> None:
    """A run the server holds with the password in clear (created from its UI or API) fails
    before the store is opened, saying what to do, without the password in its message."""
    from prefect.client.orchestration import get_client
    from prefect.flow_engine import run_flow

    before = snapshot(secret_url, "wtpf-26")
    with get_client(sync_client=True) as client:
        created = client.create_flow_run(advance, parameters={"database": secret_url,
                                                               "now": TICK.isoformat()})
    state = run_flow(advance, flow_run=created, parameters={"database": secret_url, "now": TICK},
                     return_type="state")
    assert state.is_failed()
    message = str(state.message)
    assert "holds a password" in message
    assert "PREPFLOW_DATABASE_URL" in message
    assert SECRET not in message
    assert snapshot(secret_url, "wtpf-26") == before


def test_store_url_takes_a_password_outside_a_flow_run() -> None:
    """Outside a flow run (the CLI, a rehearsal's own reads) a URL is used as given."""
    url = f"postgresql+psycopg://ops:{SECRET}@127.0.0.1/prepflow"
    assert store_url(url) == url
    assert masked(url) == "postgresql+psycopg://ops:***@127.0.0.1/prepflow"
    assert masked("sqlite:///x.db") == "sqlite:///x.db"
