"""A delivery run's lease: who the run is, when another run is dead, and the heartbeat.

Each run is recorded with its host and process id and a lease it renews every third of its
length. Another run is dead when its lease has run out, or at once when it ran on this host
and its process is gone (a SIGKILL, an OOM kill, a power cut of the worker's container): its
rows need not wait for a timeout. A reused process id only makes a dead run look alive until
its lease runs out (never the reverse), and a run on another host is judged by its lease only.
"""

from __future__ import annotations

import asyncio
import os
import socket
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Protocol

from flows.addresses import get_logger
from flows.storage.notify_model import DeliveryRun

log = get_logger("prepflow.mail")

#: The real clock: a lease is about processes alive now, never the effective ``now`` that
#: tests and ``--now`` move.
Wall = Callable[[], datetime]


def wall_clock() -> datetime:
    """Now, in UTC, from the system clock."""
    return datetime.now(UTC)


class LeaseStore(Protocol):
    """What a lease needs of a store."""

    def renew_run(self, run_id: str, lease_until: datetime) -> bool: ...


def new_run(wall: Wall, length: timedelta) -> DeliveryRun:
    """A fresh run on this host and process, its lease running ``length`` from now."""
    started = wall()
    return DeliveryRun(f"{uuid.uuid4().hex}", socket.gethostname(), os.getpid(), started,
                       started + length)


def process_alive(pid: int) -> bool:
    """Whether a process with this id runs on this host (signal 0 checks, sends nothing); a
    zombie (killed, not yet reaped by its parent) is dead."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    try:  # Linux: the state follows the command's closing parenthesis
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state != "Z"


def dead_runs(runs: Sequence[DeliveryRun], wall: Wall) -> list[str]:
    """The runs whose lease has run out, or whose process on this host is gone."""
    now, host = wall(), socket.gethostname()
    return [r.run_id for r in runs
            if r.lease_until <= now or (r.host == host and not process_alive(r.pid))]


async def keep_alive(store: LeaseStore, run_id: str, length: timedelta, wall: Wall,
                     lost: Callable[[], None]) -> None:
    """Renew the lease every third of its length until cancelled; call ``lost`` (and stop)
    if another run found this one dead meanwhile (its rows are no longer ours)."""
    while True:
        await asyncio.sleep(length.total_seconds() / 3)
        if not await asyncio.to_thread(store.renew_run, run_id, wall() + length):
            log.warning("delivery run %s lost its lease: another run took its messages back",
                        run_id)
            lost()
            return
