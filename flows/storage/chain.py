"""The per-process hash chain, shared by every store so that they hash and verify identically.

Each entry's hash covers its content, its place (process id and seq) and the previous entry's
hash; the process row keeps the count and the last hash. Editing, deleting (even the last
entry), reordering or inserting entries therefore shows up in ``check_chain``. The chain is per
process so that several workers can append to different processes at once.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from flows.storage.model import AuditDraft, AuditEntry
from states.dates import require_aware

#: prev_hash of each process's first entry.
GENESIS = "0" * 64


def canonical_json(value: object) -> str:
    """One spelling per document, so that hashes do not depend on key order or escaping."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )


def to_document(value: Mapping[str, Any], what: str) -> dict[str, Any]:
    """A plain-JSON copy of ``value`` exactly as it will read back from any store."""
    return document_and_text(value, what)[0]


def document_and_text(value: Mapping[str, Any], what: str) -> tuple[dict[str, Any], str]:
    """to_document's copy and its canonical JSON text (what a store writes), spelt once."""
    try:
        text = canonical_json(value)
        doc = json.loads(text)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"the {what} cannot be stored as JSON: {exc}") from exc
    if not isinstance(doc, dict):
        raise ValueError(f"the {what} must be a JSON object, not {type(value).__name__}")
    return doc, text


def definition_clash(process_id: str, definition_hash: str) -> ValueError:
    """The error for a definition whose hash already names a different stored definition."""
    return ValueError(
        f"the definition of {process_id} has the hash {definition_hash!r}, which already names "
        "a different stored definition; give each definition the hash of its own content "
        "(ProcessDefinition.fingerprint())"
    )


def iso_utc(at: datetime) -> str:
    """The hashed spelling of a time: UTC, always with microseconds, ending in Z."""
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def to_utc(at: datetime) -> datetime:
    """``at`` in UTC, refusing naive times (they are ambiguous between delegations)."""
    return require_aware(at)


def entry_hash(
    *,
    process_id: str,
    seq: int,
    at: datetime,
    actor: str,
    kind: str,
    trigger: str | None,
    from_state: str | None,
    to_state: str | None,
    reason: str | None,
    inputs: Mapping[str, Any],
    prev_hash: str,
    recorded_at: datetime | None = None,
) -> str:
    """sha256 (hex) of the canonical JSON of everything an entry says, including its place.

    ``recorded_at`` is hashed only when known, so entries written before revision 0006 (NULL)
    keep the hash they were written with, and a later one's recording time cannot be edited."""
    body = {
        "process_id": process_id,
        "seq": seq,
        "at": iso_utc(at),
        "actor": actor,
        "kind": kind,
        "trigger": trigger,
        "from_state": from_state,
        "to_state": to_state,
        "reason": reason,
        "inputs": inputs,
        "prev_hash": prev_hash,
    }
    if recorded_at is not None:
        body["recorded_at"] = iso_utc(recorded_at)
    return hashlib.sha256(canonical_json(body).encode("utf-8")).hexdigest()


def seal(process_id: str, seq: int, prev_hash: str, draft: AuditDraft,
         stamp: datetime | None = None) -> AuditEntry:
    """Turn a draft into the entry that follows ``prev_hash`` at position ``seq``; a draft
    without a recording time gets ``stamp`` (the writer's real clock)."""
    at = to_utc(draft.at)
    recorded = draft.recorded_at or stamp
    inputs = to_document(draft.inputs, f"inputs of audit entry #{seq} of {process_id}")
    fields: dict[str, Any] = {
        "process_id": process_id,
        "seq": seq,
        "at": at,
        "actor": draft.actor,
        "kind": draft.kind,
        "trigger": draft.trigger,
        "from_state": draft.from_state,
        "to_state": draft.to_state,
        "reason": draft.reason,
        "inputs": inputs,
        "prev_hash": prev_hash,
        "recorded_at": None if recorded is None else to_utc(recorded),
    }
    return AuditEntry(**fields, hash=entry_hash(**fields))


def seal_all(
    process_id: str, audit_seq: int, head_hash: str, drafts: Iterable[AuditDraft],
    stamp: datetime | None = None,
) -> list[AuditEntry]:
    """Chain ``drafts`` after a log that has ``audit_seq`` entries ending in ``head_hash``
    (``stamp``: the recording time of drafts that bring none)."""
    sealed: list[AuditEntry] = []
    prev, seq = head_hash, audit_seq
    for draft in drafts:
        seq += 1
        entry = seal(process_id, seq, prev, draft, stamp)
        sealed.append(entry)
        prev = entry.hash
    return sealed


def recompute(entry: AuditEntry) -> str:
    """The hash ``entry`` should carry given what it says now."""
    return entry_hash(
        process_id=entry.process_id,
        seq=entry.seq,
        at=entry.at,
        actor=entry.actor,
        kind=entry.kind,
        trigger=entry.trigger,
        from_state=entry.from_state,
        to_state=entry.to_state,
        reason=entry.reason,
        inputs=entry.inputs,
        prev_hash=entry.prev_hash,
        recorded_at=entry.recorded_at,
    )


def check_chain(
    process_id: str, entries: Iterable[AuditEntry], audit_seq: int, head_hash: str
) -> list[str]:
    """Problems with one process's log (read in seq order) against its process row."""
    problems: list[str] = []
    expected_seq, prev_hash, last_seq = 1, GENESIS, 0
    for entry in entries:
        gap = entry.seq != expected_seq
        if gap:
            missing = (
                f"#{expected_seq}"
                if entry.seq == expected_seq + 1
                else f"#{expected_seq}–#{entry.seq - 1}"
            )
            problems.append(f"{process_id}: audit entry {missing} is missing (deleted)")
        if recompute(entry) != entry.hash:
            problems.append(
                f"{process_id}: audit entry #{entry.seq} does not match its hash "
                "(edited or moved after it was written)"
            )
        elif entry.prev_hash != prev_hash and not gap:
            problems.append(
                f"{process_id}: audit entry #{entry.seq} does not follow entry "
                f"#{entry.seq - 1} (an entry before it was replaced, inserted or reordered)"
            )
        expected_seq, prev_hash, last_seq = entry.seq + 1, entry.hash, entry.seq
    if last_seq < audit_seq:
        problems.append(
            f"{process_id}: the log ends at entry #{last_seq} but the process records "
            f"{audit_seq} entries (the last entries were deleted)"
        )
    elif last_seq > audit_seq:
        problems.append(
            f"{process_id}: the log goes on to entry #{last_seq} but the process records only "
            f"{audit_seq} entries (entries were inserted)"
        )
    elif prev_hash != head_hash:
        problems.append(
            f"{process_id}: the last audit entry #{last_seq} is not the one the process "
            "recorded (the end of the log was rewritten)"
        )
    return problems
