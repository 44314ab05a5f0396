"""What can go wrong in the store, each with a message a secretariat can act on.

Kept apart from the value modules (model.py, notify_model.py) so that neither imports the other.
Messages mask expert addresses (``j***@itu.int``) so that they can reach a log safely; the full
address stays on the exception for the command line.
"""

from __future__ import annotations

from collections.abc import Sequence

from flows.addresses import mask_email

#: How many known process ids an UnknownProcess message lists before it says "and N more".
_KNOWN_SHOWN = 20


class StoreError(Exception):
    """Something is wrong with the database itself; the message tells a secretariat what to do."""


class DamagedState(StoreError):
    """A stored process whose state or definition no longer reads as one."""

    def __init__(self, process_id: str, cause: Exception) -> None:
        self.process_id = process_id
        first = str(cause).splitlines()[0] if str(cause) else type(cause).__name__
        super().__init__(f"process '{process_id}' is damaged in the store: its saved state or "
                         f"definition no longer reads ({first}). Nothing was changed. Check it "
                         "with 'prepflow audit --verify' and restore it from a backup.")


class UnknownProcess(StoreError):
    """The process id names no stored process."""

    def __init__(self, process_id: str, known: Sequence[str]) -> None:
        self.process_id = process_id
        self.known = list(known)
        if not known:
            listing = "There are no processes stored yet."
        else:
            shown = ", ".join(known[:_KNOWN_SHOWN])
            more = len(known) - _KNOWN_SHOWN
            tail = f" and {more} more" if more > 0 else ""
            listing = f"Known processes: {shown}{tail}."
        super().__init__(f"There is no process called {process_id!r}. {listing}")


class VersionConflict(StoreError):
    """Someone else changed the process between our read and our write (optimistic locking)."""

    def __init__(self, process_id: str, expected: int, actual: int) -> None:
        self.process_id = process_id
        self.expected = expected
        self.actual = actual
        super().__init__(
            f"Process {process_id!r} was changed by someone else meanwhile (it is now at "
            f"version {actual}, this change was based on version {expected}). Nothing was "
            "written; reload the process and try again."
        )


class DuplicateExpert(StoreError):
    """A nomination repeats an address already in the batch or already stored for the process.

    ``email`` and ``index`` (position in the batch) name the first duplicate; ``duplicates``
    lists every one as (index, email), so an importer can report or skip them all.
    """

    def __init__(
        self,
        email: str,
        process_id: str,
        index: int,
        duplicates: Sequence[tuple[int, str]] = (),
    ) -> None:
        self.email = email
        self.process_id = process_id
        self.index = index
        self.duplicates = list(duplicates) or [(index, email)]
        shown = ", ".join(f"#{i + 1} {mask_email(e)}" for i, e in self.duplicates[:10])
        more = len(self.duplicates) - 10
        tail = f" and {more} more" if more > 0 else ""
        super().__init__(
            f"{len(self.duplicates)} nomination(s) for {process_id!r} repeat an address already "
            f"nominated (same address, ignoring case): {shown}{tail}. Nothing was added; "
            "remove the repeated lines and try again."
        )


class UnknownExpert(StoreError):
    """No expert with that address is registered for the process."""

    def __init__(self, process_id: str, email: str) -> None:
        self.process_id = process_id
        self.email = email
        super().__init__(
            f"No expert with the address {mask_email(email)} is registered for {process_id!r} "
            "(addresses are compared ignoring case; `prepflow experts list` shows them)."
        )


class UnknownOutboxItem(StoreError):
    """No outbox message has that id."""

    def __init__(self, item_id: int) -> None:
        self.item_id = item_id
        super().__init__(
            f"There is no outbox message with id {item_id}; `prepflow outbox` lists them."
        )
