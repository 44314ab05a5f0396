"""Benchmark the Prefect layer against Prefect's own floor, in one run on one local server.

1. Median wall time of an ``advance`` run with nothing due vs a no-op flow run.
   Target: <= 1.3x.
2. The full WTPF-26 rehearsal vs (its number of flow runs x the no-op run's median).
   Target: <= 1.5x.

Both comparisons use the same settings for both sides (flow heartbeats off, as the rehearsal
runs them). Starts a Prefect server on a free port with a throw-away home, and stops it.

Usage: python bench/prefect_overhead.py [--runs N]
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def main() -> None:
    """Start a server, measure, print the ratios, stop the server."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    from flows.orchestration.serve import start_server, stop

    with tempfile.TemporaryDirectory(prefix="prepflow-bench-") as folder:
        root = Path(folder)
        port = _free_port()
        os.environ["PREFECT_HOME"] = str(root / "home")
        server = start_server(root / "home", port, lambda text: None)
        os.environ["PREFECT_API_URL"] = f"http://127.0.0.1:{port}/api"
        try:
            measure(root, args.runs)
        finally:
            from prefect.logging.handlers import APILogWorker

            APILogWorker.drain_all()  # send buffered run logs before the server goes away
            stop(server)


def measure(root: Path, runs: int) -> None:
    """The measurements proper, against the running server."""
    from prefect import flow
    from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings

    from flows.cli.orchestration_cmds import run_rehearsal
    from flows.definition_file import load_definition
    from flows.orchestration.advance import advance
    from flows.orchestration.run_context import service_for

    @flow(name="noop", persist_result=True)
    def noop() -> None:
        """Prefect's floor: a flow run that does nothing."""

    database = f"sqlite:///{root / 'store.db'}"
    with service_for(database) as service:
        service.init(load_definition(ROOT / "config" / "wtpf26.yaml"),
                     datetime(2024, 7, 1, tzinfo=UTC))
    quiet = datetime(2024, 7, 15, tzinfo=UTC)
    with temporary_settings(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}):
        noop()
        advance(now=quiet, database=database)  # warm both paths
        noop_times, advance_times = [], []
        for _ in range(runs):
            start = time.perf_counter()
            noop()
            noop_times.append(time.perf_counter() - start)
            start = time.perf_counter()
            result = advance(now=quiet, database=database)
            advance_times.append(time.perf_counter() - start)
            assert result["applied"] == [], "nothing should be due in the benchmark"
    floor, tick = statistics.median(noop_times), statistics.median(advance_times)
    start = time.perf_counter()
    transcript = run_rehearsal(ROOT / "config" / "wtpf26.yaml",
                               f"sqlite:///{root / 'rehearsal.db'}", None, None, 0, 0, None)
    rehearsal = time.perf_counter() - start
    count = int(transcript.strip().splitlines()[-1].split()[1])
    print(f"no-op flow run, median of {runs}: {floor * 1e3:.0f} ms")
    print(f"advance run with nothing due, median of {runs}: {tick * 1e3:.0f} ms")
    print(f"ratio advance/no-op: {tick / floor:.2f}x (target <= 1.3x)")
    print(f"WTPF-26 rehearsal: {rehearsal:.1f} s for {count} flow runs "
          f"(floor {count * floor:.1f} s)")
    print(f"ratio rehearsal/(runs x no-op): {rehearsal / (count * floor):.2f}x (target <= 1.5x)")


if __name__ == "__main__":
    main()
