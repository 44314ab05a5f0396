"""The store's values for processes: what callers hand in and what comes back.

The store is deliberately ignorant of the core's types (``states/``): it persists opaque JSON
documents, so the core can change its snapshot format without a schema migration here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NoReturn, TypeVar, cast

from states.dates import require_aware

#: A JSON document or a part of one.
J = TypeVar("J")


@dataclass(frozen=True)
class AuditDraft:
    """One audit entry as a caller describes it; the store gives it a place in the chain."""

    at: datetime
    actor: str
    kind: str
    trigger: str | None = None
    from_state: str | None = None
    to_state: str | None = None
    reason: str | None = None
    inputs: Mapping[str, Any] = field(default_factory=dict)
    #: The real clock when the entry was written (the edge's clock); None: the store stamps it.
    recorded_at: datetime | None = None

    def __post_init__(self) -> None:
        # A naive time is ambiguous across the delegations' time zones: refuse it at the door.
        require_aware(self.at, "audit time")
        if self.recorded_at is not None:
            require_aware(self.recorded_at, "audit recording time")


@dataclass(frozen=True)
class AuditEntry:
    """An audit entry as written: the draft's fields, its place in the chain, and its hashes."""

    process_id: str
    seq: int
    at: datetime
    actor: str
    kind: str
    trigger: str | None
    from_state: str | None
    to_state: str | None
    reason: str | None
    inputs: Mapping[str, Any]
    prev_hash: str
    hash: str
    #: The real clock when it was written (revision 0006); None for entries written before.
    recorded_at: datetime | None = None


def _read_only(*_args: object, **_kwargs: object) -> NoReturn:
    raise TypeError(
        "a stored definition is shared by every process made from it and cannot be changed "
        "in place; change a copy (copy.deepcopy(process.definition) gives plain dicts and lists)"
    )


class FrozenDict(dict[str, Any]):
    """A JSON object that refuses changes; copies of it (copy, deepcopy, pickle) are plain."""

    __setitem__ = __delitem__ = __ior__ = _read_only
    clear = pop = popitem = setdefault = update = _read_only

    def __reduce__(self) -> tuple[Any, ...]:
        return (dict, (dict(self),))

    def __deepcopy__(self, memo: dict[int, Any]) -> dict[str, Any]:
        thawed: dict[str, Any] = thaw(self)
        return thawed


class FrozenList(list[Any]):
    """A JSON array that refuses changes; copies of it (copy, deepcopy, pickle) are plain."""

    __setitem__ = __delitem__ = __iadd__ = __imul__ = _read_only
    append = extend = insert = pop = remove = reverse = sort = clear = _read_only

    def __reduce__(self) -> tuple[Any, ...]:
        return (list, (list(self),))

    def __deepcopy__(self, memo: dict[int, Any]) -> list[Any]:
        thawed: list[Any] = thaw(self)
        return thawed


def freeze(document: J) -> J:
    """A read-only copy of a JSON document: FrozenDict and FrozenList all the way down
    (a FrozenDict is a dict, a FrozenList a list: the document keeps its type)."""
    if isinstance(document, dict):
        return cast(J, FrozenDict((key, freeze(value)) for key, value in document.items()))
    if isinstance(document, list):
        return cast(J, FrozenList(freeze(value) for value in document))
    return document


def thaw(document: J) -> J:
    """A plain, changeable copy of a JSON document (frozen or not)."""
    if isinstance(document, dict):
        return cast(J, {key: thaw(value) for key, value in document.items()})
    if isinstance(document, list):
        return cast(J, [thaw(value) for value in document])
    return document


@dataclass(frozen=True)
class StoredProcess:
    """A process as stored: its definition, the core's snapshot, and bookkeeping for the log.

    ``definition`` is read-only (FrozenDict): one body is shared by every process made from
    it, so that reading ten thousand processes does not parse and hold ten thousand copies.
    ``state`` is the caller's own copy.
    """

    process_id: str
    definition: dict[str, Any]
    definition_hash: str
    state: dict[str, Any]
    version: int
    audit_seq: int
    created_at: datetime
    updated_at: datetime
