"""An anchor outside the database: an append-only witness file of each process's chain head.

The hash chain shows an edit only to someone who does not hold the database: its owner can
delete the tail and reset the process row's head, or recompute every hash after an edit. Each
``advance`` run therefore appends the head (seq, hash) of every process whose head moved to a
file the database's owner does not control, and ``audit --verify`` checks that the stored log
still holds the latest witnessed entry with exactly that hash.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from flows.storage.chain import iso_utc, short
from flows.storage.model import AuditEntry, StoredProcess
from flows.storage.protocols import ProcessStore


@dataclass(frozen=True)
class Head:
    """One witnessed chain head: the process, its last entry's seq and hash, when (UTC)."""

    process: str
    seq: int
    hash: str
    at: str

    def line(self) -> str:
        """The witness file's spelling: one JSON object per line."""
        return json.dumps({"process": self.process, "seq": self.seq, "hash": self.hash,
                           "at": self.at}, sort_keys=True) + "\n"


def read(path: Path) -> tuple[dict[str, Head], list[str]]:
    """The latest witnessed head of each process, and the problems with unreadable lines."""
    latest: dict[str, Head] = {}
    bad: list[str] = []
    with path.open(encoding="utf-8") as lines:
        for number, text in enumerate(lines, 1):
            if not text.strip():
                continue
            try:
                doc = json.loads(text)
                head = Head(str(doc["process"]), int(doc["seq"]), str(doc["hash"]),
                            str(doc["at"]))
            except (ValueError, TypeError, KeyError):
                bad.append(f"line {number} of the audit witness file {path} is not a witnessed "
                           "head (the file was edited)")
                continue
            latest[head.process] = head
    return latest, bad


def holds(log: Sequence[AuditEntry], head: Head) -> bool:
    """The log still has the witnessed entry, with exactly the witnessed hash."""
    return any(e.seq == head.seq and e.hash == head.hash for e in log)


def witness(path: Path, store: ProcessStore, rows: Iterable[StoredProcess],
            now: datetime) -> list[Head]:
    """Append the head of each of ``rows`` that moved since its last witness line.

    A process whose log no longer holds its witnessed entry gets no new line: the latest line
    must keep the evidence until ``audit --verify`` reports it.
    """
    latest, _ = read(path) if path.exists() else ({}, [])
    added: list[Head] = []
    for stored in rows:
        seen = latest.get(stored.process_id)
        if seen is not None and seen.seq == stored.audit_seq:
            continue
        log = store.audit(stored.process_id)
        if not log or (seen is not None and not holds(log, seen)):
            continue
        added.append(Head(stored.process_id, log[-1].seq, log[-1].hash, iso_utc(now)))
    if added:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a", encoding="utf-8") as out:  # one write: lines stay whole
            out.write("".join(head.line() for head in added))
    return added


def check(head: Head | None, log: Sequence[AuditEntry]) -> list[str]:
    """What the witnessed ``head`` says is wrong with one process's stored log."""
    if head is None or holds(log, head):
        return []
    stored = (f"stored head is seq {log[-1].seq} / hash {log[-1].hash}" if log
              else "the stored log is empty")
    return [f"{head.process}: the audit log was truncated or rewritten after seq {head.seq} "
            f"(witnessed at {head.at} UTC with hash {short(head.hash)}…): {stored}"]


def verify(path: Path, process_ids: Sequence[str],
           whole: bool) -> tuple[dict[str, Head], list[str]]:
    """The witnessed heads, and the file's own problems: missing, unreadable lines, and (for a
    ``whole`` store) witnessed processes no longer stored."""
    if not path.exists():
        return {}, [f"the audit witness file {path} (PREPFLOW_AUDIT_WITNESS) does not exist: "
                    "it was removed, or no 'prepflow advance' has run since it was configured"]
    latest, problems = read(path)
    if whole:
        problems += [f"{pid}: witnessed at seq {head.seq} ({head.at} UTC) but no longer in the "
                     "store (the process was deleted)"
                     for pid, head in sorted(latest.items()) if pid not in process_ids]
    return latest, problems
