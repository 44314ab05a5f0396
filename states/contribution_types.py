"""The contributions register's values: who sent what on which draft, and a window's counts.

Kept apart from ``states.contributions`` (the decisions) because the instance stores the
window summaries: ``states.instance`` imports this module, and the decisions import the
instance, so these values must not.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from datetime import UTC, datetime
from enum import StrEnum
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator


class SubmitterCategory(StrEnum):
    """Who may comment on a draft (Res. 2; CL-24/44): the membership, or the public while a
    public consultation on that draft is open."""

    MEMBER_STATE = "member-state"
    SECTOR_MEMBER = "sector-member"
    ASSOCIATE = "associate"
    ACADEMIA = "academia"
    PUBLIC = "public"


class ContributionKind(StrEnum):
    """What a contribution is (Decision 641, Annex 2)."""

    DRAFT_COMMENT = "draft-comment"
    """A comment on the draft report."""
    OPINION_OUTLINE = "opinion-outline"
    """A contribution on outlines of possible draft Opinions."""
    OPINION_COMMENT = "opinion-comment"
    """A comment on a draft Opinion."""


#: ITU's six official languages (the definition's OFFICIAL_LANGUAGES, as a type).
Language = Literal["ar", "zh", "en", "fr", "ru", "es"]


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ContributionDraft(_Frozen):
    """A contribution as the secretariat enters it, before the register decides on it."""

    process_id: str = Field(min_length=1)
    cycle: str = Field(min_length=1)
    submitter: str = Field(min_length=1, max_length=300)
    category: SubmitterCategory
    country: str | None = None
    region: str | None = None
    """One of the definition's notifications.regions ids, when known."""
    received_at: AwareDatetime
    """When the secretariat received it (stored UTC; lateness is decided on this)."""
    kind: ContributionKind
    title: str = Field(min_length=1, max_length=500)
    document: str = Field(min_length=1, max_length=200)
    language: Language = "en"
    opinion: str | None = None
    """The draft Opinion a comment is on (kind opinion-comment)."""

    @field_validator("received_at")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        return value.astimezone(UTC)

    @field_validator("submitter", "title", "document")
    @classmethod
    def _text(cls, value: str) -> str:
        if any(c in value for c in "\r\n"):
            raise ValueError("contains a line break")
        if not value.strip():
            raise ValueError("is empty")
        return value.strip()

    @field_validator("country", "region", "opinion")
    @classmethod
    def _optional(cls, value: str | None) -> str | None:
        if value is not None and any(c in value for c in "\r\n"):
            raise ValueError("contains a line break")
        return (value or "").strip() or None


def audit_submitter(draft: ContributionDraft) -> str:
    """The submitter as the audit log may show it: a private person (category public) only
    as 'J***' (the README's promise: no personal names in the log); an entity in full."""
    if draft.category is SubmitterCategory.PUBLIC:
        return f"{draft.submitter[:1]}***"
    return draft.submitter


def audit_inputs(draft: ContributionDraft) -> dict[str, object]:
    """``draft`` as audit inputs (JSON), its submitter as ``audit_submitter`` shows it; the
    full name stays in the contributions table only."""
    return {**draft.model_dump(mode="json", exclude={"id"}), "submitter": audit_submitter(draft)}


def reference(draft: ContributionDraft) -> tuple[str, str, str]:
    """What identifies a contribution: its process, draft and document reference (compared
    without case and with runs of spaces as one)."""
    return draft.process_id, draft.cycle, " ".join(draft.document.split()).casefold()


class Contribution(ContributionDraft):
    """A contribution in the register: accepted on time or late, never dropped."""

    late: bool
    recorded_at: AwareDatetime
    recorded_by: str
    id: int | None = None
    """The register's number, once stored."""

    @field_validator("recorded_at")
    @classmethod
    def _recorded_utc(cls, value: datetime) -> datetime:
        return value.astimezone(UTC)


NO_REGION = "none"
"""The region key of contributions whose region is not known."""


class WindowSummary(_Frozen):
    """One draft's comment window in counts: what the IEG meeting sees (issue 8)."""

    cycle: str
    total: int = 0
    on_time: int = 0
    late: int = 0
    by_kind: dict[str, int] = Field(default_factory=dict)
    by_category: dict[str, int] = Field(default_factory=dict)
    by_region: dict[str, int] = Field(default_factory=dict)
    """Region id → count; contributions without one under ``NO_REGION``."""


def summarize(contributions: Iterable[Contribution], cycle: str) -> WindowSummary:
    """The window of ``cycle``: each of its contributions counted once, the others ignored.

    Deterministic: every kind and category appears (zero included) in declaration order,
    regions in sorted order, so the same register gives the same JSON.
    """
    mine = [c for c in contributions if c.cycle == cycle]
    kinds = Counter(c.kind.value for c in mine)
    categories = Counter(c.category.value for c in mine)
    regions = Counter(c.region or NO_REGION for c in mine)
    late = sum(c.late for c in mine)
    return WindowSummary(
        cycle=cycle, total=len(mine), on_time=len(mine) - late, late=late,
        by_kind={k.value: kinds[k.value] for k in ContributionKind},
        by_category={k.value: categories[k.value] for k in SubmitterCategory},
        by_region={r: regions[r] for r in sorted(regions)},
    )
