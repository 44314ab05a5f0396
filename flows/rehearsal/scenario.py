"""Rehearsal scenarios: what the scripted secretariat does, and the what-if events to inject.

A scenario is data (YAML), e.g. config/scenarios/wtpf26-what-if.yaml. Without one the
scripted secretariat posts each document on its planned day, fixes month-only dates as their
month approaches, and, where the plan leaves the forum undated, dates it just before posting the
final report: on ``fix_dates: {forum: ...}`` if the scenario gives it, else on the earliest day
the six-week rule allows (``flows.rehearsal.forum``).
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from flows.definition_file import load_yaml
from states.dates import PlanDate
from states.errors import DefinitionError, Problem
from states.plan import Milestone, Span


class Strict(BaseModel):
    """Unknown fields are errors here too."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Event(Strict):
    """Something that happens on a (Geneva) day: a date moves, a posting slips, an attempt."""

    on: PlanDate = Field(description="local day (and time) it happens, e.g. 2025-10-15 09:00")
    kind: Literal["amend", "post-late", "attempt"]
    milestone: str | None = None
    date: str | None = None
    trigger: str | None = None
    days: int = 0
    reason: str = "rehearsal scenario"
    override: bool = False

    @field_validator("date", mode="before")
    @classmethod
    def _as_text(cls, value: object) -> object:
        """An unquoted 2026-06-02 arrives from YAML as a date: it means the same text."""
        return value.isoformat() if isinstance(value, date) else value


class Scenario(Strict):
    """The scripted secretariat's habits and the events to inject."""

    name: str = "plain run"
    actor: str | None = None
    post_time: str = "10:00"
    fix_dates: dict[str, str] = Field(default_factory=dict,
                                      description="milestone → date used when fixing a month "
                                      "(or, for 'forum', when dating an undated forum)")
    events: list[Event] = Field(default_factory=list)

    def posting_clock(self) -> time:
        """The local time of day documents are posted."""
        hour, minute = self.post_time.split(":")
        return time(int(hour), int(minute))

    def delay(self, trigger: str) -> int:
        """Days the scenario holds back a posting."""
        return sum(e.days for e in self.events if e.kind == "post-late" and e.trigger == trigger)


def load_scenario(path: Path | None) -> Scenario:
    """Read a scenario file; errors name the file, field and value like definitions do."""
    if path is None:
        return Scenario()
    try:
        data = load_yaml(path.read_text(encoding="utf-8"), str(path))
        return Scenario.model_validate(data or {})
    except OSError as exc:
        raise DefinitionError(str(path), [Problem("", "", f"cannot be read: {exc}")]) from None
    except ValidationError as exc:
        problems = [Problem(".".join(str(p) for p in e["loc"]), repr(e.get("input")), e["msg"])
                    for e in exc.errors()]
        raise DefinitionError(str(path), problems) from None


def fixed_span(item: Milestone, scenario: Scenario) -> Span:
    """The day the scripted secretariat fixes for a month-only milestone.

    From the scenario if given; else the first Monday on or after the 7th (clear of the
    month's first days), two days for a meeting held in person, one when virtual.
    """
    if item.key in scenario.fix_dates:
        return Span.parse(scenario.fix_dates[item.key])
    assert item.start is not None
    day = date(item.start.year, item.start.month, 7)
    day += timedelta(days=(7 - day.weekday()) % 7)
    first = PlanDate(day.year, day.month, day.day)
    if item.mode in (None, "virtual"):
        return Span(first)
    last = day + timedelta(days=1)
    return Span(first, PlanDate(last.year, last.month, last.day))


def local(day: PlanDate | date, at: time, tz: ZoneInfo) -> datetime:
    """A local day and time as an aware instant."""
    value = day.first_day() if isinstance(day, PlanDate) else day
    return datetime.combine(value, at, tzinfo=tz)
