"""A realistic made-up nominations register, for rehearsals and tests of the balance.

Real nomination pools are lopsided, and the balance view exists to show it: more experts from
some regions than their share of the Member States, a few countries nominating many, about a
third women, mostly government experts, some from least developed countries. This draws such a
pool from the country list with a seeded random generator: the same seed and size give the same
register, byte for byte. Every person, address and entity is invented (example.org).
"""

from __future__ import annotations

import csv
import random
from collections.abc import Sequence
from pathlib import Path

from flows.nominations import COLUMNS
from states.balance import Country, CountryList

#: How a nomination pool leans by region (weights, not shares): Europe and Asia nominate more
#: than their share of the Member States, the Americas less.
REGION_WEIGHTS = {"A": 14, "B": 26, "C": 12, "D": 22, "E": 26}
#: Stakeholder types of a government-led process; types the definition lacks are skipped.
TYPE_WEIGHTS = {"government": 58, "private sector": 14, "academia": 10, "civil society": 7,
                "international organization": 5, "technical community": 6}
#: Women, men, gender not given (about a third women, as in ITU expert groups).
GENDER_WEIGHTS = {"F": 35, "M": 60, "": 5}
LANGUAGES = {"A": ("en", "es"), "B": ("en", "fr"), "C": ("ru", "en"), "D": ("fr", "en", "ar"),
             "E": ("en", "zh", "ar")}
#: Names given that are not ITU Member States (Palau is a UN member outside ITU).
NOT_IN_LIST = ("Palau", "Kosovo", "Utopia")
FIRST = ("Amina", "Ana", "Chen", "Daniel", "Elena", "Fatima", "Hiro", "Ivan", "Joao", "Karim",
         "Lea", "Maria", "Nadia", "Omar", "Priya", "Rahul", "Sara", "Tomas", "Yuki", "Zanele")
LAST = ("Abebe", "Ahmed", "Banda", "Costa", "Dubois", "Garcia", "Haddad", "Ito", "Kim",
        "Kowalski", "Mensah", "Nguyen", "Okafor", "Petrov", "Rossi", "Sato", "Silva", "Singh",
        "Smith", "Wang")


def _weighted(rng: random.Random, weights: dict[str, int]) -> str:
    return rng.choices(list(weights), weights=list(weights.values()))[0]


def _country_weights(rng: random.Random, countries: Sequence[Country]) -> list[float]:
    """A few countries nominate many (Zipf-like over a seeded order), many nominate one or two."""
    order = list(range(len(countries)))
    rng.shuffle(order)
    weights = [0.0] * len(countries)
    for rank, index in enumerate(order, start=1):
        weights[index] = 1 / rank ** 0.8
    return weights


def nomination_rows(seed: int, size: int, countries: CountryList, stakeholder_types: Sequence[str],
                    languages: Sequence[str], unknown: int = 0) -> list[dict[str, str]]:
    """``size`` nominations as CSV rows (flows.nominations.COLUMNS); the last ``unknown`` of
    them name a country outside the list (to check those are counted, not dropped)."""
    rng = random.Random(seed)
    members = {region: [c for c in countries.countries if c.region == region]
               for region in countries.regions}
    pools = {region: (group, _country_weights(rng, group)) for region, group in members.items()}
    regions = {r: REGION_WEIGHTS.get(r, 10) for r in countries.regions}
    types = {t: TYPE_WEIGHTS.get(t, 5) for t in stakeholder_types}
    rows = []
    for n in range(1, size + 1):
        region = _weighted(rng, regions)
        group, weights = pools[region]
        country = rng.choices(group, weights=weights)[0]
        first, last = rng.choice(FIRST), rng.choice(LAST)
        kind = _weighted(rng, types)
        spoken = [x for x in LANGUAGES.get(region, ("en",)) if x in languages] or ["en"]
        named = country.name if n <= size - unknown else NOT_IN_LIST[n % len(NOT_IN_LIST)]
        rows.append({
            "first_name": first, "last_name": last,
            "entity": f"{'Ministry of ICT' if kind == 'government' else kind.title()} "
                      f"{country.code}-{n % 7}",
            "email": f"{first.lower()}.{last.lower()}.{n:04d}@example.org",
            "nominated_by": named if kind == "government" or n % 3 else f"Sector Member {n % 11}",
            # The code mostly, as nominations forms have it; sometimes the name as typed.
            "country": country.code if n % 4 and named == country.name else named,
            "region": region, "stakeholder_type": kind, "gender": _weighted(rng, GENDER_WEIGHTS),
            "language": rng.choice(spoken), "timezone": ""})
    return rows


def write_csv(path: Path, rows: Sequence[dict[str, str]]) -> Path:
    """The rows as a nominations file `prepflow experts import` reads (UTF-8, header first)."""
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(COLUMNS))
        writer.writeheader()
        writer.writerows(rows)
    return path
