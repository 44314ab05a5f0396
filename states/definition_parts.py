"""The parts of a process definition: meetings, cycles, the forum, the secretariat, rules and
notifications (states/definition.py assembles them into a ProcessDefinition and validates the
whole). Split out so each module stays readable in one sitting.
"""

from __future__ import annotations

import itertools
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)
from pydantic.networks import validate_email
from pydantic_core import PydanticCustomError

from states.agenda import ForumAgenda
from states.dates import PlanDate
from states.errors import RuleId
from states.meeting_link import JoinUrl
from states.roles import Role

#: An id in a definition (and a process id): lower-case letters, digits and dashes.
SLUG_PATTERN = r"^[a-z][a-z0-9-]*[a-z0-9]$|^[a-z]$"
SLUG_MAX = 40

Slug = Annotated[
    str,
    Field(
        pattern=SLUG_PATTERN,
        max_length=SLUG_MAX,
        description="lower-case letters, digits and dashes, e.g. draft-2",
    ),
]


def _check_email(value: str) -> str:
    """The same check as every other address in prepflow (email-validator, through pydantic):
    a member's address accepted here must not be refused later when a message is sent."""
    try:
        validate_email(value)
    except PydanticCustomError as exc:
        raise ValueError(f"'{value}' is not an email address like name@itu.int "
                         f"({exc.context.get('reason') if exc.context else exc})") from None
    return value


Email = Annotated[str, AfterValidator(_check_email)]


class Strict(BaseModel):
    """Unknown fields are errors: a typo in a definition must not pass silently."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Mode(StrEnum):
    """How an expert-group meeting is held ("physical" is read as in-person: same thing)."""

    IN_PERSON = "in-person"
    VIRTUAL = "virtual"
    HYBRID = "hybrid"

    @classmethod
    def _missing_(cls, value: object) -> Mode | None:
        """'physical' (the issue's word, and Decision 641's 'physical meeting') is in-person."""
        return cls.IN_PERSON if str(value).strip().lower() in ("physical", "in person") else None


class MeetingDef(Strict):
    """An expert-group meeting; its dates may be known only to the month while unfixed.

    ``days`` lists the exact days of a meeting held on non-contiguous days (start and end are
    then its first and last day, filled in when not given). An ``informal`` session (e.g. an
    informal virtual session split off an IEG meeting, or one held after the final report) is
    not a state of the machine: it gates nothing and no rule orders it, so it can be recorded
    at any point of a running process, even after the final report is posted; it lives in the
    plan and timeline, gets invitations, and is shown as not changing the report.
    """

    id: Slug
    name: str = Field(min_length=1)
    start: PlanDate
    end: PlanDate | None = None
    days: list[PlanDate] | None = None
    place: str | None = None
    mode: Mode = Mode.IN_PERSON
    join_url: JoinUrl | None = Field(default=None, exclude_if=lambda v: v is None)
    informal: bool = False
    remote_participation: bool | None = Field(
        default=None, description="remote participation offered; default: unless in-person")

    @model_validator(mode="before")
    @classmethod
    def _from_days(cls, data: object) -> object:
        """A meeting given by its days alone starts on the first and ends on the last."""
        if isinstance(data, dict) and data.get("days") and data.get("start") is None:
            days = sorted(PlanDate.parse(d) for d in data["days"])
            data = {**data, "start": days[0]}
            if len(days) > 1 and data.get("end") is None:
                data["end"] = days[-1]
        return data

    @model_validator(mode="after")
    def _end_after_start(self) -> MeetingDef:
        if self.end is not None and self.end.last_day() < self.start.first_day():
            raise ValueError(f"meeting ends ({self.end}) before it starts ({self.start})")
        if self.days is not None:
            days = self.days
            if not days or any(not d.exact for d in days):
                raise ValueError("days: give each day exactly, like 2026-01-20")
            if any(b.first_day() <= a.first_day() for a, b in itertools.pairwise(days)):
                raise ValueError("days: give each day once, in order")
            if days[0] != self.start or days[-1] != (self.end or self.start):
                raise ValueError(f"days run {days[0]} .. {days[-1]}, but start/end say "
                                 f"{self.start} .. {self.end or self.start}; leave start and "
                                 "end out, or make them the first and last day")
        return self

    @property
    def remote(self) -> bool:
        """Whether experts may take part remotely (said, or implied by a virtual/hybrid mode)."""
        if self.remote_participation is not None:
            return self.remote_participation
        return self.mode is not Mode.IN_PERSON

    @property
    def last(self) -> PlanDate:
        """The meeting's last day (its start when it lasts one day or is unfixed)."""
        return self.end or self.start


class CycleDef(Strict):
    """One round: a draft posted for comment, then expert meetings; or the final report.

    ``comments: false`` marks a draft round without a comment window (posted straight to its
    meetings); it must be said, so a forgotten comment_deadline is still an error.
    """

    id: Slug
    name: str = Field(min_length=1)
    kind: Literal["draft", "final"] = "draft"
    posting: PlanDate
    comments: bool = True
    comment_deadline: PlanDate | None = None
    public_consultation: bool = False
    consultation_deadline: PlanDate | None = None
    meetings: list[MeetingDef] = Field(default_factory=list)
    description: str = ""

    @model_validator(mode="after")
    def _shape(self) -> CycleDef:
        if self.kind == "draft" and self.comments and self.comment_deadline is None:
            raise ValueError("a draft cycle needs a comment_deadline (or comments: false for "
                             "a round without a comment window)")
        if not self.comments and self.comment_deadline is not None:
            raise ValueError("comments: false, yet a comment_deadline is given; remove one")
        if not self.comments and self.kind == "final":
            raise ValueError("comments: false is for draft cycles (the final has no window)")
        if not self.comments and self.public_consultation \
                and self.consultation_deadline is None:
            raise ValueError("a public consultation on a draft without a comment window needs "
                             "its own consultation_deadline")
        if self.kind == "final" and (
            self.comment_deadline or self.meetings or self.public_consultation
        ):
            raise ValueError(
                "the final cycle only has a posting date (no comments, meetings or consultation)"
            )
        if self.consultation_deadline is not None and not self.public_consultation:
            raise ValueError("consultation_deadline given but public_consultation is false")
        return self

    @property
    def consultation_due(self) -> PlanDate | None:
        """Consultation inputs are due with the comments unless a date of their own is given."""
        if not self.public_consultation:
            return None
        return self.consultation_deadline or self.comment_deadline


class ForumDef(ForumAgenda):
    """The forum the process prepares; its dates may be set late (e.g. by Council)."""

    name: str = Field(min_length=1)
    opens: PlanDate | None = None
    days: int = Field(default=3, ge=1, le=30)
    expected: str | None = Field(default=None, description="free text while undated")
    place: str | None = None
    mode: Mode | None = None


class Member(Strict):
    """A secretariat member allowed to act on the process, in ``roles`` (all when none are
    listed, as before roles existed; left out of dumps then, so fingerprints stay; issue 10)."""

    id: Slug
    name: str = Field(min_length=1)
    email: Email
    roles: list[Role] | None = Field(default=None, exclude_if=lambda v: v is None)


class Rules(Strict):
    """Tunable rule parameters, each with its source."""

    final_min_lead_days: int = Field(
        default=42, ge=0, description="the final report's least lead before the forum opens "
        "(WTPF-26: six weeks, Council Decision 641, decides 6 d)"
    )
    reminder_days: list[int] = Field(
        default_factory=lambda: [7, 1], description="reminders before each comment deadline"
    )
    month_warning_days: int = Field(
        default=30, ge=0, description="warn this many days before a month-only milestone's month"
    )
    citations: dict[str, str] = Field(
        default_factory=dict,
        description="where each rule comes from, by rule id (e.g. six-weeks: Council Decision "
                    "641, decides 6 d); refusals cite it")

    @field_validator("citations")
    @classmethod
    def _known_rules(cls, value: dict[str, str]) -> dict[str, str]:
        known = {r.value for r in RuleId}
        unknown = sorted(set(value) - known)
        if unknown:
            raise ValueError(f"citations for unknown rules {', '.join(unknown)}; rules are "
                             f"{', '.join(sorted(known))}")
        return value


class Region(Strict):
    """A region of the definition's scheme (ITU uses several: regions are data, not code)."""

    id: str = Field(min_length=1, max_length=20)
    name: str = Field(min_length=1)


class FocalPoint(Strict):
    """A Member State's focal point, told of what the experts are told."""

    member_state: str = Field(min_length=1)
    name: str = Field(min_length=1)
    email: Email
    language: str = "en"


OFFICIAL_LANGUAGES = ("ar", "zh", "en", "fr", "ru", "es")


class BalanceWarnings(Strict):
    """When `prepflow experts balance` warns. Warnings only: Res. 2 asks for a *balanced* group
    of experts and sets no quota, so nothing is ever refused on these. ``null`` turns one off."""

    region_gap_points: float | None = Field(
        default=10, ge=0, description="a region's share of experts differs from its share of the "
        "Member States by more than this many percentage points")
    min_share_gender: float | None = Field(
        default=30, ge=0, le=100, description="women or men are below this percentage of the "
        "experts whose gender is given")
    min_share_developing: float | None = Field(
        default=50, ge=0, le=100, description="experts from developing countries are below this "
        "percentage")
    min_share_ldc: float | None = Field(
        default=10, ge=0, le=100, description="experts from least developed countries are below "
        "this percentage")


class Notifications(Strict):
    """Who is told what, in which languages; addresses of people live in the store, not here."""

    languages: list[str] = Field(default_factory=lambda: ["en"],
                                 description="languages messages are offered in; English first")
    region_scheme: str = ""
    regions: list[Region] = Field(default_factory=list)
    stakeholder_types: list[str] = Field(default_factory=lambda: [
        "government", "private sector", "academia", "civil society",
        "international organization", "technical community"])
    focal_points: list[FocalPoint] = Field(default_factory=list)
    forum_reminder_days: list[int] = Field(default_factory=lambda: [14])
    document_url: str | None = Field(default=None,
                                     description="link to a posted document, with {document}")
    countries: str = Field(default="config/countries.yaml", min_length=1, description=(
        "the Member States list for the balance (regions, LDCs, developing): a path relative to "
        "the prepflow checkout, or absolute; its region ids must be this scheme's"))
    balance_warnings: BalanceWarnings = Field(default_factory=BalanceWarnings)

    @field_validator("languages")
    @classmethod
    def _languages(cls, value: list[str]) -> list[str]:
        unknown = [v for v in value if v not in OFFICIAL_LANGUAGES]
        if unknown or "en" not in value:
            raise ValueError(f"languages must include en and be among the ITU official "
                             f"languages {', '.join(OFFICIAL_LANGUAGES)}; got {value}")
        return value
