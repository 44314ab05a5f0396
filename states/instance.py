"""A process instance: where each region stands, what happened, amendments and overrides.

This is the whole mutable state of one process; the store keeps it as one JSON document next
to an append-only audit log. The core never mutates an instance: it returns a new one.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator, model_validator

from states.contribution_types import WindowSummary
from states.dates import PlanDate
from states.forum import ForumRecord, Opinion
from states.invitations import StoredInvitation
from states.machine import AGENDA, AGENDA_PENDING
from states.plan import Span


class Frozen(BaseModel):
    """Immutable value objects: a decision returns new ones."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Happening(Frozen):
    """A transition that fired: when, by whom, and the document it carried."""

    trigger: str
    at: AwareDatetime
    due: AwareDatetime | None = None
    by: str
    document: str | None = None


class Amendment(Frozen):
    """A milestone's date changed after the definition, with the reason."""

    start: PlanDate
    end: PlanDate | None = None
    at: AwareDatetime
    by: str
    reason: str

    @property
    def span(self) -> Span:
        """The amended dates."""
        return Span(self.start, self.end)


class Shift(Frozen):
    """One detail before → after (None: none named)."""

    before: str | None = None
    after: str | None = None


class Relocation(Frozen):
    """A meeting (or the forum) held in another mode or place, by a revision, with its reason:
    a change of the plan the timeline lists next to the date changes."""

    mode: Shift | None = None
    place: Shift | None = None
    at: AwareDatetime
    by: str
    reason: str

    def text(self) -> str:
        """'mode virtual → in-person, place — → Geneva'."""
        return ", ".join(f"{name} {shift.before or '—'} → {shift.after or '—'}"
                         for name, shift in (("mode", self.mode), ("place", self.place))
                         if shift is not None)


class DraftVersion(Frozen):
    """A further version of a posted draft (e.g. 'revised'): the document experts now read."""

    label: str
    document: str
    at: AwareDatetime
    by: str
    reason: str | None = None


class Override(Frozen):
    """A rule set aside by a named person with a reason; shown in status forever."""

    rule: str
    what: str
    message: str
    at: AwareDatetime
    by: str
    reason: str


class Instance(Frozen):
    """One running process."""

    process_id: str
    regions: dict[str, str]
    happened: dict[str, Happening] = Field(default_factory=dict)
    amendments: dict[str, Amendment] = Field(default_factory=dict)
    """Per milestone, the latest amendment (what the plan now says)."""
    history: dict[str, tuple[Amendment, ...]] = Field(default_factory=dict)
    """Per milestone, every amendment in order (the latest is also in ``amendments``)."""
    relocations: dict[str, tuple[Relocation, ...]] = Field(default_factory=dict)
    """Per meeting (and 'forum'), every change of mode or place a revision made, in order."""
    versions: dict[str, tuple[DraftVersion, ...]] = Field(default_factory=dict)
    """Per cycle, the versions posted after its first posting (e.g. 'revised')."""
    overrides: tuple[Override, ...] = ()
    notices: tuple[str, ...] = ()
    """Keys of every message already decided: nothing is announced twice."""
    invitations: dict[str, StoredInvitation] = Field(default_factory=dict)
    """Per meeting, the last invitation sent (for updates and cancellations, RFC 5545)."""
    summaries: dict[str, WindowSummary] = Field(default_factory=dict)
    """Per draft cycle, its comment window's summary as recorded when the window closed."""
    opinions: dict[str, Opinion] = Field(default_factory=dict)
    """The draft Opinions by id, each with its stage and history."""
    forum: ForumRecord = Field(default_factory=ForumRecord)

    @model_validator(mode="before")
    @classmethod
    def _history_of_old_docs(cls, data: Any) -> Any:  # noqa: ANN401 (pydantic's raw input)
        """A document written before the history was kept: its latest amendment per milestone
        becomes a one-item history (the earlier ones live only in the audit log)."""
        if isinstance(data, dict) and data.get("amendments") and "history" not in data:
            data = {**data, "history": {k: (v,) for k, v in data["amendments"].items()}}
        return data

    @field_validator("regions")
    @classmethod
    def _agenda(cls, regions: dict[str, str]) -> dict[str, str]:
        """A document stored before the Forum's agenda was a region reads as not begun."""
        return regions if AGENDA in regions else {**regions, AGENDA: AGENDA_PENDING}

    def spans(self) -> dict[str, Span]:
        """Amended dates by milestone key."""
        return {key: a.span for key, a in self.amendments.items()}

    def to_doc(self) -> dict[str, Any]:
        """The JSON document the store keeps."""
        return self.model_dump(mode="json")

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> Instance:
        """Rebuild from the store's JSON document."""
        return cls.model_validate(doc)

    def posted_at(self, cycle: str) -> datetime | None:
        """When the cycle's document was posted, if it was."""
        happening = self.happened.get(f"post_{cycle}")
        return happening.at if happening else None
