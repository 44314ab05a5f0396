"""Plan dates and deadline arithmetic.

A plan date may be known to the day (optionally with a time) or only to the month, as in
Decision 641 Annex 2 ("1st IEG meeting: October 2024"). Deadlines are instants in the
process's time zone: "comments by 26 August 2024" means up to the end of that day in Geneva.
All instants handed out are aware UTC datetimes.
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import GetCoreSchemaHandler, GetJsonSchemaHandler
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import core_schema

_PATTERN = re.compile(
    r"^(?P<y>\d{4})-(?P<m>\d{1,2})(?:-(?P<d>\d{1,2})(?:[ T](?P<H>\d{1,2}):(?P<M>\d{2}))?)?$"
)
FORMS = "a day like 2024-11-04, a day and time like 2024-11-04 12:00, or a month like 2024-11"
#: The years a plan date or an instant may name. At the calendar's edges (0001, 9999) deadline
#: arithmetic (the day after, six weeks before, a zone's offset) falls off the calendar.
YEARS = range(1900, 3000)


def check_year(year: int, shown: object) -> None:
    """A ValueError for a year outside ``YEARS``, saying which years are allowed."""
    if year not in YEARS:
        raise ValueError(f"'{shown}': year {year} is out of range; dates lie between "
                         f"{YEARS.start} and {YEARS.stop - 1}")


def zone(name: str) -> ZoneInfo:
    """The named IANA time zone, or a ValueError that says what would be valid."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(
            f"unknown time zone '{name}' (use an IANA name such as Europe/Zurich)"
        ) from exc


@dataclass(frozen=True, order=True)
class PlanDate:
    """A date in a plan: to the day (maybe with a local time), or only to the month."""

    year: int
    month: int
    day: int | None = None
    at: time | None = None

    @classmethod
    def parse(cls, value: object) -> PlanDate:
        """Parse '2024-10', '2024-10-07', '2024-10-07 14:00' or a date; ValueError says why not."""
        if isinstance(value, PlanDate):
            return value
        if isinstance(value, date):
            check_year(value.year, value)
        if isinstance(value, datetime):
            if value.tzinfo is not None:
                raise ValueError("give a local date and time without a time zone offset")
            return cls(value.year, value.month, value.day, value.time().replace(microsecond=0))
        if isinstance(value, date):
            return cls(value.year, value.month, value.day)
        if not isinstance(value, str):
            raise ValueError(f"expected {FORMS}")
        return cls._parse_text(value)

    @classmethod
    def _parse_text(cls, value: str) -> PlanDate:
        """'2024-10', '2024-10-07' or '2024-10-07 14:00', checked field by field."""
        match = _PATTERN.match(value.strip())
        if not match:
            raise ValueError(f"'{value}' is not a date; expected {FORMS}")
        year, month = int(match["y"]), int(match["m"])
        check_year(year, value)
        if not 1 <= month <= 12:
            raise ValueError(f"'{value}': month {month} does not exist; expected {FORMS}")
        if match["d"] is None:
            return cls(year, month)
        day = int(match["d"])
        last = calendar.monthrange(year, month)[1]
        if not 1 <= day <= last:
            raise ValueError(
                f"'{value}': {calendar.month_name[month]} {year} has days 1 to {last}"
            )
        if match["H"] is None:
            return cls(year, month, day)
        hour, minute = int(match["H"]), int(match["M"])
        if hour > 23 or minute > 59:
            raise ValueError(f"'{value}': {hour:02d}:{minute:02d} is not a time of day")
        return cls(year, month, day, time(hour, minute))

    @property
    def exact(self) -> bool:
        """True when known to the day, so it can drive an automatic transition."""
        return self.day is not None

    def first_day(self) -> date:
        """The earliest calendar day this plan date can mean."""
        return date(self.year, self.month, self.day or 1)

    def last_day(self) -> date:
        """The latest calendar day this plan date can mean."""
        days = calendar.monthrange(self.year, self.month)[1]
        return date(self.year, self.month, self.day or days)

    def __str__(self) -> str:
        if self.day is None:
            return f"{self.year:04d}-{self.month:02d}"
        text = f"{self.year:04d}-{self.month:02d}-{self.day:02d}"
        return f"{text} {self.at.strftime('%H:%M')}" if self.at else text

    def human(self) -> str:
        """'26 Aug 2024', '26 Aug 2024 12:00' or 'October 2024', for messages."""
        if self.day is None:
            return f"{calendar.month_name[self.month]} {self.year}"
        text = human_day(self.first_day())
        return f"{text} {self.at.strftime('%H:%M')}" if self.at else text

    def check_local_time(self, tz: ZoneInfo) -> None:
        """Refuse a local time that a daylight-saving change skips or repeats."""
        if self.at is None or self.day is None:
            return
        naive = datetime.combine(self.first_day(), self.at)
        early, late = naive.replace(tzinfo=tz, fold=0), naive.replace(tzinfo=tz, fold=1)
        # A skipped time also has two offsets (PEP 495: fold picks before/after the gap), so
        # the round trip, which only a skipped time fails, must be checked first.
        back = early.astimezone(UTC).astimezone(tz)
        if back.replace(tzinfo=None) != naive:
            raise ValueError(
                f"{self} does not exist in {tz.key} (clocks jump forward that night); "
                "pick a time outside 02:00-03:00"
            )
        if early.utcoffset() != late.utcoffset():
            raise ValueError(
                f"{self} happens twice in {tz.key} (clocks go back that night); "
                "pick a time outside 02:00-03:00"
            )

    @classmethod
    def __get_pydantic_core_schema__(
        cls, source: type[Any], handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        return core_schema.no_info_before_validator_function(
            cls.parse,
            core_schema.is_instance_schema(cls),
            serialization=core_schema.plain_serializer_function_ser_schema(str),
        )

    @classmethod
    def __get_pydantic_json_schema__(
        cls, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        return {"type": "string", "examples": ["2024-11-04", "2024-10", "2024-11-04 12:00"]}


def human_day(day: date) -> str:
    """'26 Aug 2024': unambiguous in every official language's reading of numbers."""
    return f"{day.day} {calendar.month_abbr[day.month]} {day.year}"


def start_instant(value: PlanDate, tz: ZoneInfo) -> datetime:
    """When something planned for this date begins: local midnight (or the given time), in UTC."""
    if value.day is None:
        raise ValueError(f"{value.human()} is known only to the month")
    local = datetime.combine(value.first_day(), value.at or time(0), tzinfo=tz)
    return local.astimezone(UTC)


def end_instant(value: PlanDate, tz: ZoneInfo) -> datetime:
    """When a deadline on this date passes: the end of that local day (or the given time), UTC."""
    if value.day is None:
        raise ValueError(f"{value.human()} is known only to the month")
    if value.at is not None:
        return datetime.combine(value.first_day(), value.at, tzinfo=tz).astimezone(UTC)
    next_day = value.first_day() + timedelta(days=1)
    return datetime.combine(next_day, time(0), tzinfo=tz).astimezone(UTC)


def local_day(instant: datetime, tz: ZoneInfo) -> date:
    """The calendar day an instant falls on in the process's time zone."""
    return require_aware(instant).astimezone(tz).date()


def describe(instant: datetime, tz: ZoneInfo) -> str:
    """'27 Aug 2024 00:00 CEST': a displayed time always says its zone."""
    local = require_aware(instant).astimezone(tz)
    return f"{human_day(local.date())} {local.strftime('%H:%M')} {local.tzname()}"


def require_aware(instant: datetime, what: str = "time") -> datetime:
    """``instant`` in UTC; a naive one is refused, since the core never guesses a time zone.

    The one "is aware" check of the whole code base: the edge uses it too (``what`` names the
    value in the message, e.g. "audit time", "--now").
    """
    if instant.tzinfo is None or instant.utcoffset() is None:
        raise ValueError(
            f"{what} {instant.isoformat()} has no time zone; give one, e.g. "
            f"{instant.isoformat()}+00:00 or {instant.isoformat()}Z"
        )
    return instant.astimezone(UTC)


def days(count: int) -> str:
    """'1 day', '0 days', '42 days': a count of days as people write it."""
    return f"{count} day" if abs(count) == 1 else f"{count} days"


def zone_city(tz: ZoneInfo) -> str:
    """'Geneva' for ITU's zone (Europe/Zurich is the IANA name for Geneva), else its city, as
    messages name a process's local time ('15 Jun 2026 (Geneva time)')."""
    if tz.key == "Europe/Zurich":
        return "Geneva"
    return tz.key.rsplit("/", 1)[-1].replace("_", " ")
