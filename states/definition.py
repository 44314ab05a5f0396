"""Process definitions as validated data: a forum's preparatory process, read from a file.

The engine runs any forum's multi-round process from one of these; nothing about WTPF-26 is
in code. Reading the file (YAML) happens at the edge; this module validates the data.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_core import ErrorDetails, PydanticCustomError

from states.agenda import Themes
from states.dates import PlanDate, zone
from states.definition_parts import (
    OFFICIAL_LANGUAGES,
    BalanceWarnings,
    CycleDef,
    Email,
    FocalPoint,
    ForumDef,
    MeetingDef,
    Member,
    Mode,
    Notifications,
    Region,
    Rules,
    Slug,
    Strict,
    _check_email,
)
from states.errors import DefinitionError, Problem

__all__ = ["OFFICIAL_LANGUAGES", "BalanceWarnings", "CycleDef", "Email", "FocalPoint",
           "ForumDef", "MeetingDef", "Member", "Mode", "Notifications", "ProcessDefinition",
           "Region", "Rules", "Slug", "Strict", "_check_email", "parse_definition"]

#: The error type of a local time a daylight-saving change skips or repeats; its context
#: holds each such date's field path, so the problem is reported where the date is.
LOCAL_TIME = "local_time"


class ProcessDefinition(Strict):
    """A whole preparatory process: forum, cycles in order, deadlines, who may act."""

    id: Slug
    name: str = Field(min_length=1)
    timezone: str = "Europe/Zurich"
    source: str = ""
    forum: ForumDef
    nominations_deadline: PlanDate | None = None
    secretariat: list[Member] = Field(min_length=1)
    rules: Rules = Field(default_factory=Rules)
    notifications: Notifications = Field(default_factory=Notifications)
    cycles: list[CycleDef] = Field(min_length=1)
    themes: Themes = Field(default_factory=list)
    # every act needs its member's token, even before one is issued (issue 10)
    require_tokens: bool = Field(default=False, exclude_if=lambda v: v is False)

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        zone(value)
        return value

    @model_validator(mode="after")
    def _consistent(self) -> ProcessDefinition:
        kinds = [c.kind for c in self.cycles]
        if kinds.count("final") != 1 or kinds[-1] != "final":
            raise ValueError("exactly one cycle must be kind: final, and it must come last")
        seen: set[str] = set()
        for name in [c.id for c in self.cycles] + [m.id for c in self.cycles for m in c.meetings]:
            if name in seen or name in ("forum", "nominations"):
                raise ValueError(f"id '{name}' is used twice (cycle and meeting ids are shared)")
            seen.add(name)
        for meeting in (m for c in self.cycles for m in c.meetings):
            if meeting.id == "drafting":
                # The machine names states '<cycle>.<meeting>' next to '<cycle>.drafting'.
                raise ValueError("meeting id 'drafting' is reserved; choose another, e.g. ieg5")
        members = [m.id for m in self.secretariat]
        if len(set(members)) != len(members):
            raise ValueError("secretariat member ids must be unique")
        tz = zone(self.timezone)
        located: list[tuple[str, str, str]] = []
        for path, value in self.dates():  # a skipped or doubled local time is refused anywhere
            try:
                value.check_local_time(tz)
            except ValueError as exc:
                located.append((path, str(value), str(exc)))
        if located:
            # A model-level check has no field location of its own: the paths travel in the
            # error's context and parse_definition reports each at its field.
            summary = "; ".join(f"{path}: {message}" for path, _, message in located)
            raise PydanticCustomError(LOCAL_TIME, "{summary}",
                                      {"summary": summary, "located": located})
        return self

    def dates(self) -> Iterator[tuple[str, PlanDate]]:
        """Every date of the definition with its field path, e.g. cycles[2].comment_deadline."""
        fields = [("nominations_deadline", self.nominations_deadline),
                  ("forum.opens", self.forum.opens)]
        for c, cycle in enumerate(self.cycles):
            at = f"cycles[{c}]"
            fields += [(f"{at}.posting", cycle.posting),
                       (f"{at}.comment_deadline", cycle.comment_deadline),
                       (f"{at}.consultation_deadline", cycle.consultation_deadline)]
            for m, meeting in enumerate(cycle.meetings):
                where = f"{at}.meetings[{m}]"
                fields += [(f"{where}.start", meeting.start), (f"{where}.end", meeting.end)]
                fields += [(f"{where}.days[{d}]", day) for d, day in enumerate(meeting.days or [])]
        yield from ((path, value) for path, value in fields if value is not None)

    def cycle(self, cycle_id: str) -> CycleDef:
        """The cycle with this id (KeyError when there is none)."""
        for cycle in self.cycles:
            if cycle.id == cycle_id:
                return cycle
        raise KeyError(cycle_id)

    def citation(self, rule: str) -> str:
        """Where a rule comes from, as refusals cite it: the definition's citation for the rule,
        else its source, else 'the process definition' (never another forum's texts)."""
        return self.rules.citations.get(rule) or self.source or "the process definition"

    def member(self, actor: str) -> Member | None:
        """The secretariat member with this id (None when not listed): by id only (issue 10)."""
        return next((m for m in self.secretariat if m.id == actor.strip()), None)

    def fingerprint(self) -> str:
        """A stable hash of the definition's content: one state machine is built per hash."""
        body = json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(body.encode()).hexdigest()


def parse_definition(data: object, source: str) -> ProcessDefinition:
    """Validate raw data, turning every pydantic error into a readable Problem."""
    if not isinstance(data, dict):
        raise DefinitionError(
            source, [Problem("", type(data).__name__, "expected a mapping of fields")]
        )
    try:
        return ProcessDefinition.model_validate(data)
    except ValidationError as exc:
        raise DefinitionError(source, [p for e in exc.errors() for p in _problems(e)]) from None


def _problems(error: ErrorDetails) -> list[Problem]:
    """The Problems of one pydantic error: one, or one per date for a local-time error."""
    if error.get("type") == LOCAL_TIME:
        located = (error.get("ctx") or {}).get("located", [])
        return [Problem(path, value, message) for path, value, message in located]
    return [_problem(error)]


def _problem(error: ErrorDetails) -> Problem:
    """One pydantic error as a Problem: where, the bad value, and what would be valid."""
    path = ""
    for part in error.get("loc", ()):
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    message = str(error.get("msg", "invalid"))
    message = message.removeprefix("Value error, ")
    kind = error.get("type", "")
    if kind == "extra_forbidden":
        message = "unknown field (check the spelling; see config/wtpf26.yaml for the fields)"
    elif kind == "missing":
        message = "this field is required"
    value = error.get("input")
    shown = "" if kind == "missing" or isinstance(value, dict | list) else repr(value)
    return Problem(path, shown, message)
