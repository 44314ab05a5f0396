"""The expert group's balance (states/balance.py): counts, shares, gaps and warnings, on a small
country list built here so every number can be checked by hand."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import pytest
import yaml
from pydantic import ValidationError

from states.balance import (
    DEVELOPED,
    DEVELOPING,
    LDC,
    NOT_GIVEN,
    UNKNOWN_COUNTRY,
    Balance,
    Country,
    CountryList,
    balance,
    gender_group,
)
from states.definition import BalanceWarnings, Region, parse_definition
from states.errors import DefinitionError
from tests.states.helpers import WTPF26

REGIONS = [Region(id="N", name="North"), Region(id="S", name="South")]
TYPES = ["government", "academia"]
#: 4 Member States: 1 in N (developed), 3 in S (developing, one of them an LDC).
COUNTRIES = CountryList(source="test list", as_of=date(2024, 12, 13), regions=["N", "S"],
                        ldc_count=1, countries=[
    Country(code="NL", name="Northland", region="N", developing=False),
    Country(code="SA", name="Southland", region="S", developing=True),
    Country(code="SB", name="South Bay", region="S", developing=True, ldc=True),
    Country(code="SC", name="South Cape", region="S", developing=True),
])
OFF = BalanceWarnings(region_gap_points=None, min_share_gender=None, min_share_developing=None,
                      min_share_ldc=None)


@dataclass(frozen=True)
class Row:
    """A register row with the fields the balance reads."""

    country: str
    region: str
    stakeholder_type: str = "government"
    gender: str | None = None
    status: str = "nominated"
    erased: bool = False


def of(rows: list[Row], limits: BalanceWarnings = OFF) -> Balance:
    """The balance of ``rows`` on the test list."""
    return balance(rows, COUNTRIES, REGIONS, TYPES, limits)


def test_regions_are_counted_against_the_member_states_distribution() -> None:
    """3 of 4 experts from N (75%) against N's 1 of 4 Member States (25%): +50 points."""
    b = of([Row("NL", "N"), Row("nl", "N"), Row("Northland", "N"), Row("SA", "S")])
    north, south = b.regions
    assert (north.experts, north.share, north.member_states, north.member_share,
            north.gap_points) == (3, 75.0, 1, 25.0, 50.0)
    assert (south.experts, south.share, south.member_states, south.member_share,
            south.gap_points) == (1, 25.0, 3, 75.0, -50.0)


def test_withdrawn_and_erased_experts_are_not_counted_but_reported() -> None:
    """Only active experts count; the withdrawn and erased are shown as numbers apart."""
    b = of([Row("NL", "N"), Row("SA", "S", status="withdrawn"), Row("SB", "S", erased=True),
            Row("SC", "S", status="confirmed")])
    assert (b.experts, b.withdrawn, b.erased) == (2, 1, 1)
    assert [r.experts for r in b.regions] == [1, 1]


def test_an_unknown_country_is_counted_and_named_never_dropped() -> None:
    """'Atlantis' is counted in its recorded region and as 'unknown country', with a warning."""
    b = of([Row("NL", "N"), Row("Atlantis", "S")])
    assert b.experts == 2
    assert [r.experts for r in b.regions] == [1, 1]
    assert {s.group: s.experts for s in b.development} == {
        DEVELOPING: 0, LDC: 0, DEVELOPED: 1, UNKNOWN_COUNTRY: 1}
    assert b.unknown_countries == ["Atlantis"]
    assert [w.group for w in b.warnings] == [UNKNOWN_COUNTRY]
    assert "Atlantis" in b.warnings[0].text


def test_development_counts_ldcs_among_the_developing() -> None:
    """An LDC expert is developing and 'of which least developed'; shares are of everyone."""
    b = of([Row("NL", "N"), Row("SB", "S"), Row("SB", "S"), Row("SA", "S")])
    assert [(s.group, s.experts, s.share) for s in b.development] == [
        (DEVELOPING, 3, 75.0), (LDC, 2, 50.0), (DEVELOPED, 1, 25.0)]


@pytest.mark.parametrize(("given", "group"), [
    ("F", "female"), ("woman", "female"), ("M", "male"), (" male ", "male"), ("", NOT_GIVEN),
    (None, NOT_GIVEN), ("Non-binary", "non-binary")])
def test_gender_values_are_grouped(given: str | None, group: str) -> None:
    """Common spellings fold into female/male; an empty value is 'not given'; others stay."""
    assert gender_group(given) == group


def test_gender_and_stakeholder_shares_keep_empty_groups() -> None:
    """Every stakeholder type of the definition shows, zero included; 'not given' is counted."""
    b = of([Row("NL", "N", gender="F"), Row("SA", "S", gender="M"), Row("SC", "S")])
    assert [(s.group, s.experts) for s in b.stakeholder_types] == [("government", 3),
                                                                    ("academia", 0)]
    assert [(s.group, s.experts, s.share) for s in b.genders] == [
        ("female", 1, 33.3), ("male", 1, 33.3), (NOT_GIVEN, 1, 33.3)]


def test_warnings_fire_past_each_threshold_and_not_at_it() -> None:
    """A 35-point gap warns past 30, not at 35; women 1 of 4 given (25%) warn under 30%."""
    rows = [Row("NL", "N", gender="F"), Row("NL", "N", gender="M"), Row("NL", "N", gender="M"),
            Row("SA", "S", gender="M"), Row("SA", "S")]  # N: 60% of experts, 25% of the states
    loud = BalanceWarnings(region_gap_points=30, min_share_gender=30, min_share_developing=50,
                           min_share_ldc=10)
    warned = {(w.dimension, w.group) for w in of(rows, loud).warnings}
    assert warned == {("region", "N"), ("region", "S"), ("gender", "female"),
                      ("development", DEVELOPING), ("development", LDC)}
    quiet = BalanceWarnings(region_gap_points=35, min_share_gender=25, min_share_developing=40,
                            min_share_ldc=0)
    assert of(rows, quiet).warnings == []


def test_a_region_recorded_against_the_list_is_flagged() -> None:
    """An expert from Northland recorded in region S: counted in S, and the mismatch said."""
    b = of([Row("NL", "S")])
    assert [r.experts for r in b.regions] == [0, 1]
    assert [w.group for w in b.warnings] == ["recorded"]
    assert "NL (recorded S, listed N)" in b.warnings[0].text


def test_an_empty_register_has_no_shares_and_no_warnings() -> None:
    """No experts: zero counts, no division by zero, nothing to warn about."""
    b = of([], BalanceWarnings())
    assert b.experts == 0
    assert b.warnings == []
    assert b.genders == []
    assert [r.member_states for r in b.regions] == [1, 3]


def test_another_region_scheme_is_refused() -> None:
    """The list's regions must be the definition's: comparing N/S with A..E means nothing."""
    with pytest.raises(ValueError, match=r"notifications\.regions"):
        balance([], COUNTRIES, [Region(id="A", name="Americas")], TYPES, OFF)


@pytest.mark.parametrize(("change", "message"), [
    ({"ldc_count": 2}, "1 countries are marked ldc but ldc_count says 2"),
    ({"regions": ["N"]}, "regions not among N"),
    ({"countries": [*COUNTRIES.countries, Country(code="NL", name="Other", region="N",
                                                  developing=False)]}, "listed twice: NL"),
])
def test_an_inconsistent_country_list_is_refused(change: dict[str, object],
                                                 message: str) -> None:
    """Duplicates, strays from the scheme and a wrong LDC count are caught when read."""
    data = {**COUNTRIES.model_dump(), **change}
    with pytest.raises(ValidationError, match=message):
        CountryList.model_validate(data)


def test_an_ldc_must_be_developing() -> None:
    """A least developed country marked developed is a data error."""
    with pytest.raises(ValidationError, match="ldc but not developing"):
        Country(code="XX", name="X", region="N", developing=False, ldc=True)


def test_thresholds_and_list_come_from_the_definition_with_defaults() -> None:
    """WTPF-26 says nothing, so the defaults apply; a share over 100% is a definition error."""
    data = yaml.safe_load(WTPF26.read_text(encoding="utf-8"))
    settings = parse_definition(data, "wtpf26").notifications
    assert settings.balance_warnings == BalanceWarnings()
    assert (settings.balance_warnings.region_gap_points, settings.countries) == (
        10, "config/countries.yaml")
    data["notifications"]["balance_warnings"] = {"min_share_gender": 130, "min_share_ldc": None}
    with pytest.raises(DefinitionError, match=r"balance_warnings\.min_share_gender"):
        parse_definition(data, "wtpf26")
