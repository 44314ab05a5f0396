"""How a message words dates, instants, zones and meeting modes, per language.

Plain functions of their inputs (no templates, no email package): the renderer derives the
templates' ``*_text`` values with them, and tests can check a wording alone.
"""

from __future__ import annotations

import re
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from states.dates import PlanDate

_MONTHS = {
    "en": ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"],
    "fr": ["janv.", "févr.", "mars", "avr.", "mai", "juin", "juil.", "août", "sept.", "oct.",
           "nov.", "déc."],
}
MODES = {
    "en": {"in-person": "in person", "virtual": "virtual (online)",
           "hybrid": "hybrid (in person and online)"},
    "fr": {"in-person": "en présentiel", "virtual": "virtuelle (en ligne)",
           "hybrid": "hybride (en présentiel et en ligne)"},
}
_SPACES = re.compile(r"\s+")


class RenderError(ValueError):
    """The row cannot become a mail (missing context, bad address, broken template)."""


def one_line(text: str) -> str:
    """Any whitespace run (CR and LF included) as one space: safe for a header."""
    return _SPACES.sub(" ", str(text)).strip()


def known_zone(name: str | None) -> ZoneInfo | None:
    """The zone, or None for no name or a name this machine does not know."""
    if not name:
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None


def zone_label(zone: ZoneInfo) -> str:
    """'Geneva' for ITU's zone (Europe/Zurich is the IANA name for Geneva), else the city."""
    if zone.key == "Europe/Zurich":
        return "Geneva"
    return zone.key.rsplit("/", 1)[-1].replace("_", " ")


def _abbrev(local: datetime) -> str:
    name = local.tzname() or ""
    return f"UTC{name}" if name[:1] in "+-" else name  # '+03' says less than 'UTC+03'


def day_text(day: str | date, language: str) -> str:
    """'20 Dec 2024' (English), '20 déc. 2024' (French)."""
    value: date = day if isinstance(day, date) else PlanDate.parse(day).first_day()
    months = _MONTHS.get(language, _MONTHS["en"])
    return f"{value.day} {months[value.month - 1]} {value.year}"


def instant_text(instant: str | datetime, zone: ZoneInfo, language: str) -> str:
    """'20 Dec 2024, 24:00 CET': midnight reads as the end of the day before (a deadline
    "by 20 December" ends at 24:00 on the 20th, which is 00:00 on the 21st), in the zone
    abbreviation in force at that end, so the text names the very instant given."""
    moment = datetime.fromisoformat(instant) if isinstance(instant, str) else instant
    if moment.tzinfo is None:
        raise RenderError(f"instant {instant!r} has no offset; give it in UTC, e.g. ...+00:00")
    local = moment.astimezone(zone)
    clock = local.strftime("%H:%M")
    if local.time() == time(0):
        # '24:00' is read in the offset in force just before the instant, not on the day's
        # wall-clock start: on a DST-change day these differ (end of 30 Mar 2025 is 24:00 CEST).
        local, clock = (moment - timedelta(microseconds=1)).astimezone(zone), "24:00"
    return f"{day_text(local.date(), language)}, {clock} {_abbrev(local)}"


def span_text(start: str, end: str | None, language: str) -> str:
    """A meeting's days (and hours, when the plan gives them), without the zone."""
    first_date, last_date = PlanDate.parse(start), PlanDate.parse(end or start)
    first = day_text(first_date.first_day(), language)
    last = day_text(last_date.last_day(), language)
    days = first if first == last else f"{first} – {last}"
    if first_date.at is not None:
        days += f", {first_date.at:%H:%M}"
        if last_date.at is not None:
            days += f"–{last_date.at:%H:%M}"
    return days


def when_text(start: str, end: str | None, zone: ZoneInfo, language: str) -> str:
    """A meeting's days (and hours, when the plan gives them) in the process's zone."""
    return f"{span_text(start, end, language)} ({zone_label(zone)})"


_MOVED = {"en": "moved from {old} to {new} ({zone} time)",
          "fr": "déplacée du {old} au {new} (heure de {zone})"}


def moved_text(previous: tuple[str, str | None], now: tuple[str, str | None], zone: ZoneInfo,
               language: str) -> str:
    """'moved from 7 Oct 2024 – 8 Oct 2024 to 14 Oct 2024 – 15 Oct 2024 (Geneva time)'."""
    return _MOVED.get(language, _MOVED["en"]).format(
        old=span_text(*previous, language), new=span_text(*now, language),
        zone=zone_label(zone))


_DAY = {"en": ("day", "days"), "fr": ("jour", "jours")}


def days_text(count: float, language: str) -> str:
    """'1 day', '3 days', '2.5 days' (French: '1 jour', '1,5 jour', '3 jours').

    Whole numbers without a decimal; others to one decimal, so the number shown decides the
    word (0.96 is '1 day', never '1.0 days'). French is singular below 2, English only at 1.
    """
    shown = f"{count:.1f}".removesuffix(".0")
    singular, plural = _DAY.get(language, _DAY["en"])
    if language == "fr":
        return f"{shown.replace('.', ',')} {singular if abs(float(shown)) < 2 else plural}"
    return f"{shown} {singular if shown in ('1', '-1') else plural}"


def mode_text(mode: str, language: str) -> str:
    """'hybrid (in person and online)' for 'hybrid', in the message's language."""
    modes = MODES.get(language, MODES["en"])
    return modes.get(mode, mode)


_AND = {"en": "and", "fr": "et"}


def days_list_text(days: list[str] | tuple[str, ...], language: str) -> str:
    """A meeting on non-contiguous days: '20 Jan 2026, 22 Jan 2026 and 3 Feb 2026'."""
    shown = [day_text(d, language) for d in days]
    if len(shown) < 2:
        return "".join(shown)
    return f"{', '.join(shown[:-1])} {_AND.get(language, 'and')} {shown[-1]}"


_CHANGED = {"en": ("now {what} (before: {was})", "in {place}", "no place named"),
            "fr": ("désormais {what} (avant : {was})", "à {place}", "sans lieu indiqué")}


def where_changed_text(previous: tuple[str | None, str | None], now: tuple[str | None, str | None],
                       language: str) -> str | None:
    """'now in person, in Geneva (before: virtual (online), no place named)': an update's
    change of mode and place; None when neither changed (or the old ones are not on record)."""
    (was_mode, was_place), (mode, place) = previous, now
    if was_mode is None or (was_mode, was_place) == (mode, place):
        return None
    form, at, nowhere = _CHANGED.get(language, _CHANGED["en"])

    def said(how: str | None, where: str | None) -> str:
        return f"{mode_text(how or '', language)}, {at.format(place=where) if where else nowhere}"

    return form.format(what=said(mode, place), was=said(was_mode, was_place))
