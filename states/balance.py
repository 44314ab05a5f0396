"""The expert group's balance: who the active experts are, by region, stakeholder type, gender
and development status, against the Member States' own regional distribution.

Res. 2 (resolves a) asks the Secretary-General for a *balanced* group of experts and sets no
quota, so this only counts and warns (thresholds from the definition); it never refuses. The
country list (ITU regions, LDCs, developing) is data handed in as a typed model; reading its file
is the edge's job. Nobody is dropped: an expert whose country is not in the list is counted
under "unknown country" and named in a warning.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from datetime import date
from typing import Protocol

from pydantic import BaseModel, ConfigDict, Field, model_validator

from states.definition import BalanceWarnings, Region

#: Gender as recorded → the group it is counted in; any other given value is counted as given.
GENDER_ALIASES = {"f": "female", "female": "female", "woman": "female", "w": "female",
                  "women": "female", "m": "male", "male": "male", "man": "male", "men": "male"}
NOT_GIVEN = "not given"
UNKNOWN_COUNTRY = "unknown country"
DEVELOPING, LDC, DEVELOPED = "developing", "of which least developed", "developed"
#: Statuses that leave the group (an erased expert's data is gone; a withdrawn one has left).
INACTIVE = ("withdrawn",)


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Country(_Frozen):
    """One Member State as the country list has it."""

    code: str = Field(pattern=r"^[A-Z]{2}$", description="ISO 3166-1 alpha-2")
    name: str = Field(min_length=1)
    region: str = Field(min_length=1)
    developing: bool
    ldc: bool = False

    @model_validator(mode="after")
    def _ldc_is_developing(self) -> Country:
        if self.ldc and not self.developing:
            raise ValueError(f"{self.code} is marked ldc but not developing; every least "
                             "developed country is a developing one")
        return self


class CountryList(_Frozen):
    """The Member States with their region and development status, and where that came from."""

    source: str = Field(min_length=1)
    as_of: date
    region_scheme: str = ""
    regions: list[str] = Field(min_length=1)
    ldc_count: int = Field(ge=0, description="how many LDCs the source lists (checked)")
    countries: list[Country] = Field(min_length=1)

    @model_validator(mode="after")
    def _consistent(self) -> CountryList:
        codes = Counter(c.code for c in self.countries)
        names = Counter(c.name.casefold() for c in self.countries)
        twice = sorted([k for k, n in codes.items() if n > 1] + [k for k, n in names.items()
                                                                  if n > 1])
        if twice:
            raise ValueError(f"countries listed twice: {', '.join(twice)}")
        strays = sorted({f"{c.code} ({c.region})" for c in self.countries
                         if c.region not in self.regions})
        if strays:
            raise ValueError(f"regions not among {', '.join(self.regions)}: {', '.join(strays)}")
        ldcs = sum(c.ldc for c in self.countries)
        if ldcs != self.ldc_count:
            raise ValueError(f"{ldcs} countries are marked ldc but ldc_count says "
                             f"{self.ldc_count}; the UN list as of {self.as_of} is the reference")
        return self

    def find(self, text: str) -> Country | None:
        """The country named by its ISO code or its name (any case), else None."""
        wanted = text.strip()
        for country in self.countries:
            if wanted.upper() == country.code or wanted.casefold() == country.name.casefold():
                return country
        return None

    def by_region(self) -> dict[str, int]:
        """How many Member States each region has, in the list's region order."""
        counts = Counter(c.region for c in self.countries)
        return {region: counts[region] for region in self.regions}


def check_scheme(countries: CountryList, regions: Sequence[Region], where: str = "") -> None:
    """ValueError unless the list's regions are the definition's (same ids, any order)."""
    ours = [r.id for r in regions]
    if sorted(ours) != sorted(countries.regions):
        named = f" {where}" if where else ""
        raise ValueError(
            f"the country list{named} uses regions {', '.join(countries.regions)}, but the "
            f"process's definition (notifications.regions) has "
            f"{', '.join(ours) or 'none'}; name a country list of the same region scheme in "
            "notifications.countries")


class Nominee(Protocol):
    """What the balance reads of a register row (flows.storage Expert has these fields)."""

    @property
    def country(self) -> str: ...
    @property
    def region(self) -> str: ...
    @property
    def stakeholder_type(self) -> str: ...
    @property
    def gender(self) -> str | None: ...
    @property
    def status(self) -> str: ...
    @property
    def erased(self) -> bool: ...


class Share(_Frozen):
    """One group: how many experts, and their percentage of the experts counted (0.1)."""

    group: str
    experts: int
    share: float


class RegionShare(_Frozen):
    """A region's experts next to its share of the Member States; gap = experts − Member States
    (percentage points, signed: negative means the region is under-represented)."""

    region: str
    name: str
    experts: int
    share: float
    member_states: int
    member_share: float
    gap_points: float


class BalanceWarning(_Frozen):
    """A share past a configured threshold, or data the secretariat should look at."""

    dimension: str
    group: str
    text: str


class Balance(_Frozen):
    """The balance of the active experts (not withdrawn, not erased), as of the register read."""

    experts: int
    withdrawn: int
    erased: int
    regions: list[RegionShare]
    stakeholder_types: list[Share]
    genders: list[Share]
    development: list[Share]
    unknown_countries: list[str]
    warnings: list[BalanceWarning]
    countries_source: str
    countries_as_of: date


def _pct(part: int, whole: int) -> float:
    return 100 * part / whole if whole else 0.0


def _shares(counts: Counter[str], order: Iterable[str], total: int) -> list[Share]:
    """Shares in the given order first (zeros kept: an absent group shows), then the rest."""
    known = list(order)
    extra = sorted(k for k in counts if k not in known)
    return [Share(group=g, experts=counts[g], share=round(_pct(counts[g], total), 1))
            for g in known + extra]


def gender_group(value: str | None) -> str:
    """'female', 'male', 'not given', or the value as given (lower case)."""
    text = (value or "").strip().casefold()
    return GENDER_ALIASES.get(text, text) if text else NOT_GIVEN


def balance(nominees: Iterable[Nominee], countries: CountryList, regions: Sequence[Region],
            stakeholder_types: Sequence[str], thresholds: BalanceWarnings) -> Balance:
    """Count the active experts and compare; raises ValueError when the region schemes differ."""
    check_scheme(countries, regions)
    everyone = list(nominees)
    active = [n for n in everyone if not n.erased and n.status not in INACTIVE]
    total = len(active)
    by_region = Counter(n.region for n in active)
    found = [(n, countries.find(n.country)) for n in active]
    unknown = sorted({n.country.strip() for n, country in found if country is None})
    development: Counter[str] = Counter()
    for _, country in found:
        if country is None:
            development[UNKNOWN_COUNTRY] += 1
        else:
            development[DEVELOPING if country.developing else DEVELOPED] += 1
            development[LDC] += country.ldc
    states = countries.by_region()
    members = sum(states.values())
    names = {r.id: r.name for r in regions}
    rows = []
    for region in [r.id for r in regions] + sorted(k for k in by_region if k not in names):
        share, member_share = _pct(by_region[region], total), _pct(states.get(region, 0), members)
        rows.append(RegionShare(
            region=region, name=names.get(region, "not in the definition"),
            experts=by_region[region], share=round(share, 1),
            member_states=states.get(region, 0), member_share=round(member_share, 1),
            gap_points=round(share - member_share, 1)))
    genders = Counter(gender_group(n.gender) for n in active)
    mismatched = sorted({f"{n.country.strip()} (recorded {n.region}, listed {c.region})"
                         for n, c in found if c is not None and c.region != n.region})
    result = Balance(
        experts=total,
        withdrawn=sum(1 for n in everyone if not n.erased and n.status in INACTIVE),
        erased=sum(1 for n in everyone if n.erased),
        regions=rows,
        stakeholder_types=_shares(Counter(n.stakeholder_type for n in active), stakeholder_types,
                                  total),
        genders=_shares(genders, ["female", "male"], total)
        if total else [],
        development=_shares(development, [DEVELOPING, LDC, DEVELOPED], total)
        if total else [],
        unknown_countries=unknown, warnings=[],
        countries_source=countries.source, countries_as_of=countries.as_of)
    found_warnings = _warnings(result, genders, thresholds, mismatched) if total else []
    return result.model_copy(update={"warnings": found_warnings})


def _warnings(b: Balance, genders: Counter[str], limits: BalanceWarnings,
              mismatched: list[str]) -> list[BalanceWarning]:
    """Every share past its threshold, plus unknown countries and regions that disagree."""
    found = _region_warnings(b, limits) + _gender_warnings(genders, limits)
    shares = {s.group: s for s in b.development}
    for group, limit, what in ((DEVELOPING, limits.min_share_developing,
                                "developing countries"),
                               (LDC, limits.min_share_ldc, "least developed countries")):
        if limit is not None and shares[group].share < limit:
            found.append(BalanceWarning(dimension="development", group=group, text=(
                f"Experts from {what} are {shares[group].share:.1f}% of {b.experts} "
                f"(threshold {limit:g}%)")))
    if b.unknown_countries:
        count = shares[UNKNOWN_COUNTRY].experts
        found.append(BalanceWarning(dimension="country", group=UNKNOWN_COUNTRY, text=(
            f"{count} expert(s) name a country not in the list ("
            f"{', '.join(b.unknown_countries)}): counted, under '{UNKNOWN_COUNTRY}'; write the "
            "ISO code or the list's name")))
    if mismatched:
        found.append(BalanceWarning(dimension="region", group="recorded", text=(
            "The recorded region differs from the country's region in the list for "
            f"{', '.join(mismatched)}; the table counts the recorded region")))
    return found


def _region_warnings(b: Balance, limits: BalanceWarnings) -> list[BalanceWarning]:
    """Regions whose share of experts is further than the threshold from their share of
    the Member States, either way."""
    if limits.region_gap_points is None:
        return []
    found = []
    for row in b.regions:
        if abs(row.gap_points) > limits.region_gap_points:
            side = "above" if row.gap_points > 0 else "below"
            found.append(BalanceWarning(dimension="region", group=row.region, text=(
                f"Region {row.region} ({row.name}) has {row.share:.1f}% of the experts, "
                f"{abs(row.gap_points):.1f} points {side} its {row.member_share:.1f}% of the "
                f"Member States (threshold {limits.region_gap_points:g} points)")))
    return found


def _gender_warnings(genders: Counter[str], limits: BalanceWarnings) -> list[BalanceWarning]:
    """Women or men below the threshold among the experts whose gender is given."""
    given = sum(n for g, n in genders.items() if g != NOT_GIVEN)
    if limits.min_share_gender is None or not given:
        return []
    found = []
    for group, word in (("female", "Women"), ("male", "Men")):
        share = _pct(genders[group], given)
        if share < limits.min_share_gender:
            found.append(BalanceWarning(dimension="gender", group=group, text=(
                f"{word} are {share:.1f}% of the {given} experts whose gender is given "
                f"(threshold {limits.min_share_gender:g}%)")))
    return found
