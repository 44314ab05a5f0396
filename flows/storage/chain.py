"""The per-process hash chain, shared by every store so that they hash and verify identically.

Each entry's hash covers its content, its place (process id and seq) and the previous entry's
hash; the process row keeps the count and the last hash. Editing, deleting (even the last
entry), reordering or inserting entries therefore shows up in ``check_chain``. The chain is per
process so that several workers can append to different processes at once.

With a key (PREPFLOW_AUDIT_KEY) a process is created *keyed*: each entry's hash is an
HMAC-SHA256 under the key, so the database's owner cannot recompute the chain after an edit
without it. A keyed hash is spelt ``hmac-sha256:`` + the MAC in lowercase base32 (64
characters, the column's width), a plain one as 64 hex digits: the scheme travels with every
hash, so a writer knows a process's scheme from the head it locks and ``check_chain`` from the
first entry, with no schema change; the key itself is stored nowhere. A process keeps the
scheme it was created with (``sealing_key``).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from flows.storage.errors import StoreError
from flows.storage.model import AuditDraft, AuditEntry
from states.dates import require_aware

#: prev_hash of each process's first entry.
GENESIS = "0" * 64
#: How a keyed entry's hash begins (the rest: the HMAC-SHA256 in lowercase base32, unpadded).
KEYED = "hmac-sha256:"


def keyed(hash_: str) -> bool:
    """The hash was made with a key (HMAC-SHA256), not plain SHA-256."""
    return hash_.startswith(KEYED)


def short(hash_: str) -> str:
    """The first 12 characters of a hash's value (after its scheme), for messages."""
    return (KEYED + hash_[len(KEYED):][:12]) if keyed(hash_) else hash_[:12]


def digest(text: str, key: bytes | None) -> str:
    """A plain SHA-256 (hex) of ``text``, or with ``key`` its HMAC-SHA256 spelt as KEYED."""
    data = text.encode("utf-8")
    if key is None:
        return hashlib.sha256(data).hexdigest()
    mac = hmac.new(key, data, hashlib.sha256).digest()
    return KEYED + base64.b32encode(mac).decode("ascii").rstrip("=").lower()


def sealing_key(process_id: str, head_hash: str, key: bytes | None) -> bytes | None:
    """The key a writer chains ``process_id``'s next entries with: its own for a keyed
    process, none for a plain one (a process keeps its scheme: a plain process created before
    the key was set stays plain). A keyed process and no key is refused, nothing written."""
    if not keyed(head_hash):
        return None
    if key is None:
        raise StoreError(
            f"process {process_id!r} has a keyed audit chain (HMAC-SHA256) and no key is "
            "configured here, so its new audit entries cannot be chained. Nothing was written. "
            "Set PREPFLOW_AUDIT_KEY (or PREPFLOW_AUDIT_KEY_BLOCK, naming the Prefect Secret "
            "block holding it) to the store's key and try again.")
    return key


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
    key: bytes | None = None,
) -> str:
    """sha256 (hex) of the canonical JSON of everything an entry says, including its place;
    with ``key``, its HMAC-SHA256 instead (see ``digest``).

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
    return digest(canonical_json(body), key)


def seal(process_id: str, seq: int, prev_hash: str, draft: AuditDraft,
         stamp: datetime | None = None, key: bytes | None = None) -> AuditEntry:
    """Turn a draft into the entry that follows ``prev_hash`` at position ``seq``; a draft
    without a recording time gets ``stamp`` (the writer's real clock); ``key``: keyed."""
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
    return AuditEntry(**fields, hash=entry_hash(**fields, key=key))


def seal_all(
    process_id: str, audit_seq: int, head_hash: str, drafts: Iterable[AuditDraft],
    stamp: datetime | None = None, key: bytes | None = None,
) -> list[AuditEntry]:
    """Chain ``drafts`` after a log that has ``audit_seq`` entries ending in ``head_hash``
    (``stamp``: the recording time of drafts that bring none; ``key``: see sealing_key)."""
    sealed: list[AuditEntry] = []
    prev, seq = head_hash, audit_seq
    for draft in drafts:
        seq += 1
        entry = seal(process_id, seq, prev, draft, stamp, key)
        sealed.append(entry)
        prev = entry.hash
    return sealed


def recompute(entry: AuditEntry, key: bytes | None = None) -> str:
    """The hash ``entry`` should carry given what it says now (plain, or under ``key``)."""
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
        key=key,
    )


def check_chain(
    process_id: str, entries: Iterable[AuditEntry], audit_seq: int, head_hash: str,
    key: bytes | None = None,
) -> list[str]:
    """Problems with one process's log (read in seq order) against its process row; ``key``:
    the configured audit key, which a keyed chain's hashes are checked under."""
    log = list(entries)
    scheme = keyed(log[0].hash if log else head_hash)
    problems: list[str] = []
    unkeyed: list[int] = []  # entries of a keyed chain spelt plain: recomputed without the key
    unmatched: list[int] = []  # keyed entries whose HMAC the key does not give
    expected_seq, prev_hash, last_seq = 1, GENESIS, 0
    for entry in log:
        gap = entry.seq != expected_seq
        if gap:
            missing = (
                f"#{expected_seq}"
                if entry.seq == expected_seq + 1
                else f"#{expected_seq}–#{entry.seq - 1}"
            )
            problems.append(f"{process_id}: audit entry {missing} is missing (deleted)")
        bad = False
        if scheme and not keyed(entry.hash):
            unkeyed.append(entry.seq)
            bad = True
        elif scheme and key is not None and recompute(entry, key) != entry.hash:
            unmatched.append(entry.seq)
            bad = True
        elif not scheme and recompute(entry) != entry.hash:
            problems.append(
                f"{process_id}: audit entry #{entry.seq} does not match its hash "
                "(edited or moved after it was written)"
            )
            bad = True
        if not bad and entry.prev_hash != prev_hash and not gap:
            problems.append(
                f"{process_id}: audit entry #{entry.seq} does not follow entry "
                f"#{entry.seq - 1} (an entry before it was replaced, inserted or reordered)"
            )
        expected_seq, prev_hash, last_seq = entry.seq + 1, entry.hash, entry.seq
    problems += _keyed_problems(process_id, scheme, key, unkeyed, unmatched, bool(log))
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


def _keyed_problems(process_id: str, scheme: bool, key: bytes | None, unkeyed: list[int],
                    unmatched: list[int], logged: bool) -> list[str]:
    """What the key says about a chain: the first entry of each kind of failure, with how many
    follow (a chain recomputed from entry #k fails from #k on), never the key itself."""

    def first(seqs: list[int]) -> str:
        more = len(seqs) - 1
        return f"#{seqs[0]}" + (f" (and {more} later entr{'y' if more == 1 else 'ies'})"
                                if more else "")

    problems = []
    if unkeyed:
        problems.append(
            f"{process_id}: audit entry {first(unkeyed)} carries a plain SHA-256 hash in a keyed "
            "(HMAC-SHA256) chain: the chain was recomputed without the key from there on")
    if unmatched:
        problems.append(
            f"{process_id}: audit entry {first(unmatched)} does not match its HMAC under the "
            "configured PREPFLOW_AUDIT_KEY: it was edited, or the chain was recomputed with "
            "another key (or the key configured is not the store's)")
    if scheme and key is None:
        problems.append(
            f"{process_id}: the audit chain is keyed (HMAC-SHA256) and no key is configured, so "
            "its entries' HMACs were not checked (their order, links and the process's head "
            "were). Set PREPFLOW_AUDIT_KEY, or PREPFLOW_AUDIT_KEY_BLOCK naming the Prefect "
            "Secret block holding it, and verify again.")
    if not scheme and key is not None and logged:
        problems.append(
            f"{process_id}: the audit chain is not keyed (plain SHA-256 from entry #1) although "
            "PREPFLOW_AUDIT_KEY is set, so anyone could have recomputed it: the process was "
            "created before the key was set, or its chain was rewritten without the key.")
    return problems
