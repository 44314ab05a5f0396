"""Load and faults (issue 10), at a small scale: bench/load.py's whole machinery — a Prefect
server on PostgreSQL with auth, two workers, an SMTP sink — on four processes of two
definitions with twenty experts each, over their first weeks of simulated time, every
transition and message counted against the core's plan. The full scale is `python
bench/load.py` (50 processes x 300 experts, the whole process), reported in the closing note.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.load import run_load

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

PROCESSES, EXPERTS, DAYS = 4, 20, 30


def test_two_workers_lose_and_duplicate_nothing(tmp_path: Path) -> None:
    """Ticks run by two workers at once over four processes apply every transition the core
    planned exactly once and queue and deliver every planned message exactly once."""
    figures, ledger = run_load(PROCESSES, EXPERTS, tmp_path, days=DAYS, log=lambda _: None)
    assert figures.processes == PROCESSES
    assert ledger.ticks >= 2
    assert not ledger.stuck
    # the plan is not empty: postings, closes, meetings; acknowledgements and notices
    assert figures.transitions_expected >= PROCESSES
    assert figures.messages_expected > PROCESSES * EXPERTS
    assert figures.transitions_applied == figures.transitions_expected
    assert (figures.transitions_lost, figures.transitions_duplicated) == (0, 0)
    assert figures.messages_queued == figures.messages_expected
    assert figures.messages_delivered == figures.messages_expected
    assert (figures.messages_lost, figures.messages_unplanned, figures.duplicates) == (0, 0, 0)
    assert figures.ok
