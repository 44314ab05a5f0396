"""Plan dates and deadline arithmetic: parsing, instants across DST, refused local times."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from states import InputError, PlanDate, Span, advance, amend, apply, start
from states.dates import FORMS, describe, end_instant, require_aware, start_instant
from states.definition import parse_definition
from states.errors import DefinitionError
from tests.states.helpers import OTHER, SEC, new, raw, utc, wtpf

GENEVA = ZoneInfo("Europe/Zurich")
NEW_YORK = ZoneInfo("America/New_York")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-10", PlanDate(2024, 10)),
        ("2024-10-07", PlanDate(2024, 10, 7)),
        ("2024-10-07 14:00", PlanDate(2024, 10, 7, time(14, 0))),
        ("2024-10-07T14:00", PlanDate(2024, 10, 7, time(14, 0))),
        ("  2024-2-29 ", PlanDate(2024, 2, 29)),
        (date(2024, 8, 26), PlanDate(2024, 8, 26)),
        (datetime(2025, 3, 14, 12, 0), PlanDate(2025, 3, 14, time(12, 0))),
        (PlanDate(2026, 2), PlanDate(2026, 2)),
    ],
)
def test_plan_date_parses_valid_forms(text: object, expected: PlanDate) -> None:
    """A month, a day, a day with a time, a date and a naive datetime all parse."""
    assert PlanDate.parse(text) == expected


@pytest.mark.parametrize(
    ("text", "fragments"),
    [
        ("2024-02-30", ["February 2024 has days 1 to 29"]),
        ("2023-02-29", ["February 2023 has days 1 to 28"]),
        ("2024-13", ["month 13 does not exist", FORMS]),
        ("tomorrow", ["'tomorrow' is not a date", FORMS]),
        ("2024-10-07 24:00", ["24:00 is not a time of day"]),
        ("07/10/2024", ["not a date", "2024-11-04"]),
        (20241007, [FORMS]),
        (datetime(2024, 10, 7, 14, tzinfo=GENEVA), ["without a time zone offset"]),
    ],
)
def test_plan_date_refuses_invalid_forms_saying_what_is_valid(
    text: object, fragments: list[str]
) -> None:
    """A bad date is refused with the bad value and the valid forms or range in the message."""
    with pytest.raises(ValueError, match=r"\S") as caught:
        PlanDate.parse(text)
    for fragment in fragments:
        assert fragment in str(caught.value)


@pytest.mark.parametrize("text", ["2024-10", "2024-10-07", "2024-10-07 14:00"])
def test_plan_date_text_round_trips(text: str) -> None:
    """str() of a parsed plan date parses back to the same value (the store keeps text)."""
    assert str(PlanDate.parse(text)) == text
    assert PlanDate.parse(str(PlanDate.parse(text))) == PlanDate.parse(text)


def test_month_only_date_spans_the_whole_month_and_is_not_exact() -> None:
    """'2024-02' means any day of February 2024 (leap year), so it is not exact."""
    month = PlanDate.parse("2024-02")
    assert not month.exact
    assert (month.first_day(), month.last_day()) == (date(2024, 2, 1), date(2024, 2, 29))
    assert month.human() == "February 2024"
    assert PlanDate.parse("2024-08-26 12:00").human() == "26 Aug 2024 12:00"


@pytest.mark.parametrize(
    ("day", "starts", "ends", "hours"),
    [
        ("2024-08-26", utc(2024, 8, 25, 22), utc(2024, 8, 26, 22), 24),  # CEST
        ("2024-12-20", utc(2024, 12, 19, 23), utc(2024, 12, 20, 23), 24),  # CET
        ("2024-10-27", utc(2024, 10, 26, 22), utc(2024, 10, 27, 23), 25),  # summer time ends
        ("2025-03-30", utc(2025, 3, 29, 23), utc(2025, 3, 30, 22), 23),  # summer time starts
        ("2025-10-26", utc(2025, 10, 25, 22), utc(2025, 10, 26, 23), 25),
        ("2026-03-29", utc(2026, 3, 28, 23), utc(2026, 3, 29, 22), 23),
    ],
)
def test_geneva_day_instants_across_dst(
    day: str, starts: datetime, ends: datetime, hours: int
) -> None:
    """A Geneva day starts at local midnight and a deadline on it ends at the next midnight."""
    value = PlanDate.parse(day)
    assert start_instant(value, GENEVA) == starts
    assert end_instant(value, GENEVA) == ends
    assert end_instant(value, GENEVA) - start_instant(value, GENEVA) == timedelta(hours=hours)
    assert ends.utcoffset() == timedelta(0)


@pytest.mark.parametrize(
    ("value", "tz", "ends"),
    [
        ("2025-03-14 12:00", GENEVA, utc(2025, 3, 14, 11)),
        ("2024-08-26 12:00", GENEVA, utc(2024, 8, 26, 10)),
        ("2026-03-13 12:00", NEW_YORK, utc(2026, 3, 13, 16)),  # EDT since 8 Mar 2026
        ("2026-03-06 12:00", NEW_YORK, utc(2026, 3, 6, 17)),  # still EST
        ("2026-03-08", NEW_YORK, utc(2026, 3, 9, 4)),
    ],
)
def test_deadline_with_time_of_day_ends_at_that_local_time(
    value: str, tz: ZoneInfo, ends: datetime
) -> None:
    """'2025-03-14 12:00' is a deadline at noon local time, not at the end of the day."""
    assert end_instant(PlanDate.parse(value), tz) == ends


def test_month_only_date_has_no_instant() -> None:
    """A month-only date cannot become an instant; the error names the month."""
    for instant in (start_instant, end_instant):
        with pytest.raises(ValueError, match="October 2024 is known only to the month"):
            instant(PlanDate.parse("2024-10"), GENEVA)


@pytest.mark.parametrize(
    ("value", "tz", "fragment"),
    [
        ("2025-03-30 02:30", GENEVA, "does not exist in Europe/Zurich"),
        ("2026-03-29 02:00", GENEVA, "does not exist"),
        ("2026-03-08 02:30", NEW_YORK, "does not exist in America/New_York"),
        ("2024-10-27 02:30", GENEVA, "happens twice in Europe/Zurich"),
        ("2025-10-26 02:59", GENEVA, "happens twice"),
        ("2026-11-01 01:30", NEW_YORK, "happens twice in America/New_York"),
    ],
)
def test_nonexistent_and_ambiguous_local_times_are_refused(
    value: str, tz: ZoneInfo, fragment: str
) -> None:
    """A local time skipped or repeated by a clock change is refused, saying which it is."""
    with pytest.raises(ValueError, match=fragment):
        PlanDate.parse(value).check_local_time(tz)


@pytest.mark.parametrize(
    "value", ["2025-03-30 01:59", "2025-03-30 03:00", "2024-10-27 03:00", "2024-10-27", "2024-10"]
)
def test_unambiguous_local_times_are_accepted(value: str) -> None:
    """Times just outside the change, whole days and months pass the local-time check."""
    PlanDate.parse(value).check_local_time(GENEVA)


def test_definition_with_a_skipped_deadline_time_is_refused() -> None:
    """A comment deadline at a time the clocks skip makes the definition invalid."""
    data = raw(OTHER)
    data["cycles"][0]["comment_deadline"] = "2026-03-08 02:30"
    with pytest.raises(DefinitionError, match="does not exist in America/New_York"):
        parse_definition(data, "other")


def test_each_local_time_problem_names_its_field() -> None:
    """Every skipped or repeated local time is reported at its field's path, not the top."""
    data = raw(OTHER)
    data["cycles"][0]["comment_deadline"] = "2026-03-08 02:30"
    data["cycles"][0]["meetings"][0]["start"] = "2026-11-01 01:30"
    with pytest.raises(DefinitionError) as caught:
        parse_definition(data, "other")
    assert [p.path for p in caught.value.problems] == [
        "cycles[0].comment_deadline", "cycles[0].meetings[0].start"]
    assert "(top level)" not in str(caught.value)


def test_amend_to_an_ambiguous_time_is_an_input_error() -> None:
    """Amending a deadline to a repeated local time is refused as bad input (exit 2)."""
    definition = wtpf()
    with pytest.raises(InputError, match="happens twice") as caught:
        amend(definition, new(definition), "draft1.comments", "2024-10-27 02:30", SEC, "r",
              utc(2024, 7, 15))
    assert caught.value.exit_code == 2


def test_naive_datetime_is_refused_with_a_suggestion() -> None:
    """require_aware refuses a naive datetime and shows how to write it with a zone."""
    with pytest.raises(ValueError, match=r"2024-08-26T22:00:00\+00:00"):
        require_aware(datetime(2024, 8, 26, 22))


def test_engine_refuses_naive_now_everywhere() -> None:
    """start, apply, advance and amend raise InputError for a naive ``now``."""
    definition = wtpf()
    instance = new(definition)
    naive = datetime(2024, 8, 5, 8)
    calls = [
        lambda: start(definition, naive),
        lambda: advance(definition, instance, naive),
        lambda: apply(definition, instance, "post_draft1", SEC, naive, document="D"),
        lambda: amend(definition, instance, "forum", "2026-06-02", SEC, "r", naive),
    ]
    for call in calls:
        with pytest.raises(InputError, match="has no time zone"):
            call()


def test_aware_non_utc_now_is_the_same_instant() -> None:
    """A ``now`` given in Geneva time is the same instant as its UTC form."""
    definition = wtpf()
    instance = apply(definition, new(definition), "post_draft1", SEC, utc(2024, 8, 5, 8),
                     document="D").after
    geneva_midnight = datetime(2024, 8, 27, 0, 0, tzinfo=GENEVA)
    assert advance(definition, instance, geneva_midnight).after.regions["main"] == (
        "draft1.comments_closed"
    )
    just_before = geneva_midnight - timedelta(seconds=1)
    assert not advance(definition, instance, just_before).transitions


def test_describe_shows_the_zone_in_effect() -> None:
    """A displayed instant carries its local abbreviation: CEST in summer, CET in winter."""
    assert describe(utc(2024, 8, 26, 22), GENEVA) == "27 Aug 2024 00:00 CEST"
    assert describe(utc(2024, 12, 20, 23), GENEVA) == "21 Dec 2024 00:00 CET"


@pytest.mark.parametrize(
    ("text", "start", "end"),
    [
        ("2025-02-10", PlanDate(2025, 2, 10), None),
        ("2025-02", PlanDate(2025, 2), None),
        ("2025-02-10..2025-02-12", PlanDate(2025, 2, 10), PlanDate(2025, 2, 12)),
    ],
)
def test_span_parses_one_date_or_a_range(text: str, start: PlanDate, end: PlanDate | None) -> None:
    """A span is one plan date or 'start..end'."""
    assert Span.parse(text) == Span(start, end)


def test_span_refuses_an_end_before_its_start() -> None:
    """'2025-02-12..2025-02-10' is refused, quoting the text."""
    with pytest.raises(ValueError, match="the end comes before the start"):
        Span.parse("2025-02-12..2025-02-10")


@pytest.mark.parametrize("value", ["0001-01-01", "9999-12-31", "9999-12", "1899-12-31",
                                   "3000-01-01"])
def test_dates_at_the_calendars_edges_are_refused(value: str) -> None:
    """Years outside 1900-2999 are refused when read: the day after 9999-12-31 does not exist."""
    with pytest.raises(ValueError, match="out of range; dates lie between 1900 and 2999"):
        PlanDate.parse(value)
