"""SIGTERM to `prepflow serve` while a tick runs (issue 11): the tick ends Cancelled (Prefect's
runner cancels its in-flight runs on SIGTERM) or Completed, never Crashed; run for real, with
the served deployments in a child process and a tick slowed down by a slow disk.

Prefect 3.9.1's runner marks a run it was cancelling Cancelled ("Runner is shutting down.")
even when the run completed within the cancellation's grace period (seen here: the tick logs
"Finished in state Completed()", then the runner forces Cancelled). The store is right either
way (each transition is its own transaction; the next tick applies what is left, once).

Not covered: SIGTERM to the whole process group (``os.killpg``, systemd's default
``KillMode=control-group``) also reaches the run's own process at once, before the runner's
cancel intent: Prefect's engine then records the run Crashed. A supervisor should signal the
serve process only (systemd: ``KillMode=mixed``)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from prefect.client.orchestration import get_client
from prefect.client.schemas.objects import StateType
from prefect.deployments import run_deployment

from tests.flows.test_prefect_flows import (
    BY,
    FIRST_DEADLINE_PASSED,
    START,
    WTPF,
    closed_count,
    service,
    utc,
)

ROOT = Path(__file__).resolve().parents[2]
PROCESSES = 40

#: Loaded by every Python started with this folder on its path, the served run's child
#: process included: each write to the store takes 20 ms more (a slow disk), so the tick
#: lasts seconds and the signal lands in the middle of it.
SLOW_DISK = """
import time
from sqlalchemy import event
from sqlalchemy.pool import Pool


@event.listens_for(Pool, "connect")
def _slow_disk(dbapi_connection, _record):
    def trace(sql):
        if sql.lstrip()[:6].upper() in ("INSERT", "UPDATE"):
            time.sleep(0.02)
    dbapi_connection.set_trace_callback(trace)
"""

SERVE = """
import sys
from flows.orchestration.serve import serve_forever

serve_forever("0 0 1 1 *", "Europe/Zurich", print, sys.argv[1])
"""


def test_sigterm_to_serve_mid_tick_cancels_the_tick_cleanly(
        prefect_server: str, tmp_path: Path) -> None:
    """SIGTERM to the serve process while its tick runs: the tick's run ends Cancelled or
    Completed, not Crashed, and serve exits."""
    path = tmp_path / "prepflow.db"
    database = f"sqlite:///{path}"
    with service(database) as svc:
        for n in range(PROCESSES):
            pid = f"wtpf-26-{n:03d}"
            svc.init(WTPF, START, process_id=pid)
            svc.transition(pid, "post_draft1", BY, "WTPF-26/1", now=utc(2024, 8, 5, 8))
    slow = tmp_path / "slow"
    slow.mkdir()
    (slow / "sitecustomize.py").write_text(SLOW_DISK)
    env = {**os.environ, "PREFECT_API_URL": prefect_server, "PREFECT_RUNNER_POLL_FREQUENCY": "1",
           "PREFECT_HOME": str(tmp_path / "prefect-home"),
           "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
           "PYTHONPATH": os.pathsep.join([str(slow), str(ROOT),
                                          os.environ.get("PYTHONPATH", "")])}
    log = (tmp_path / "serve.log").open("wb")
    serving = subprocess.Popen([sys.executable, "-c", SERVE, database], cwd=ROOT, env=env,
                               stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 90
        with get_client(sync_client=True) as client:
            while True:  # served once the deployment exists
                assert serving.poll() is None, (tmp_path / "serve.log").read_text()
                assert time.monotonic() < deadline, "serve did not start in 90 s"
                try:
                    client.read_deployment_by_name("advance/advance")
                    break
                except Exception:  # noqa: BLE001 — not there yet
                    time.sleep(0.2)
        tick = run_deployment("advance/advance", timeout=0, as_subflow=False, parameters={
            "now": FIRST_DEADLINE_PASSED.isoformat(), "ask_secretariat": False,
            "publish_artifacts": False})
        while closed_count(path) < 2:  # the tick is writing
            assert serving.poll() is None, (tmp_path / "serve.log").read_text()
            assert time.monotonic() < deadline, "the tick did not start in 90 s"
            time.sleep(0.05)

        os.kill(serving.pid, signal.SIGTERM)  # the serve process only, as a supervisor does
        serving.wait(60)
    finally:
        if serving.poll() is None:
            os.killpg(serving.pid, signal.SIGKILL)
            serving.wait(10)
        log.close()

    with get_client(sync_client=True) as client:
        state = client.read_flow_run(tick.id).state
    assert state is not None
    output = (tmp_path / "serve.log").read_text()
    assert state.type in (StateType.CANCELLED, StateType.COMPLETED), (state, output)
    assert closed_count(path) <= PROCESSES
    with service(database) as svc:
        assert svc.store.verify() == []

