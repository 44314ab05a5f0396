"""config/countries.yaml, the Member States list behind the balance: read through the loader the
command and the artifact use, and checked against what its header states."""

from __future__ import annotations

from collections import Counter
from datetime import date
from pathlib import Path

import pytest
import yaml

from flows.definition_file import load_definition
from flows.orchestration.balance_view import countries_path, load_countries
from states.definition import ProcessDefinition, parse_definition
from states.errors import InputError

ROOT = Path(__file__).resolve().parents[2]
WTPF_FILE = ROOT / "config" / "wtpf26.yaml"
WTPF = load_definition(WTPF_FILE)
#: The UN list of LDCs as of 13 December 2024 (after Bhutan, 2023, and São Tomé and Príncipe,
#: 2024, graduated): 32 in Africa, 8 in Asia, Haiti, 3 in the Pacific.
LDCS = {
    "AO", "BJ", "BF", "BI", "CF", "TD", "KM", "CD", "DJ", "ER", "ET", "GM", "GN", "GW", "LS", "LR",
    "MG", "MW", "ML", "MR", "MZ", "NE", "RW", "SN", "SL", "SO", "SS", "SD", "TG", "UG", "TZ", "ZM",
    "AF", "BD", "KH", "LA", "MM", "NP", "TL", "YE", "HT", "KI", "SB", "TV"}


def wtpf_with(**notifications: object) -> ProcessDefinition:
    """WTPF-26 with some notifications fields replaced."""
    data = yaml.safe_load(WTPF_FILE.read_text(encoding="utf-8"))
    data["notifications"].update(notifications)
    return parse_definition(data, "test")


def test_the_list_has_the_193_member_states_once_each() -> None:
    """193 entries, codes and names unique, every region one of the definition's."""
    countries = load_countries(WTPF)
    codes = [c.code for c in countries.countries]
    assert len(codes) == 193
    assert len(set(codes)) == 193
    assert len({c.name for c in countries.countries}) == 193
    assert {c.region for c in countries.countries} == {r.id for r in
                                                        WTPF.notifications.regions}
    assert "NO" in codes  # Norway: read as a string, not YAML 1.1's boolean 'no'


def test_region_counts_come_from_the_data_and_sum_to_193() -> None:
    """The Member States per region are counted from the entries; they cover everyone."""
    countries = load_countries(WTPF)
    counted = Counter(c.region for c in countries.countries)
    assert countries.by_region() == {r: counted[r] for r in countries.regions}
    assert sum(countries.by_region().values()) == 193
    assert countries.by_region()["A"] == 35
    assert countries.by_region()["D"] == 54


def test_the_ldcs_are_the_un_list_of_december_2024() -> None:
    """44 LDCs as stated in the file; Bhutan, São Tomé and Príncipe, Vanuatu have graduated."""
    countries = load_countries(WTPF)
    marked = {c.code for c in countries.countries if c.ldc}
    assert countries.ldc_count == 44
    assert countries.as_of == date(2024, 12, 13)
    assert marked == LDCS
    assert len(LDCS) == 44
    assert all(c.developing for c in countries.countries if c.ldc)


@pytest.mark.parametrize(("codes", "region"), [
    ("IL TR CY CH VA", "B"),
    ("RU BY UA MD GE AM AZ KZ KG TJ TM UZ", "C"),
    ("SA AE QA JO LB SY IQ YE OM KW BH", "E"),
    ("EG MA DZ TN LY SD MR", "D"),
    ("MX CU JM HT TT", "A"),
])
def test_borderline_members_are_in_their_itu_region(codes: str, region: str) -> None:
    """Israel, Türkiye, Cyprus in B; the CIS and Caucasus in C; Arab Asia in E; North Africa
    in D; Mexico and the Caribbean in A."""
    found = {c.code: c.region for c in load_countries(WTPF).countries}
    assert {code: found[code] for code in codes.split()} == dict.fromkeys(codes.split(), region)


def test_the_default_path_is_the_checkouts_config_file() -> None:
    """A relative path is read from the prepflow checkout, wherever the command runs."""
    assert countries_path(WTPF) == ROOT / "config" / "countries.yaml"


def test_a_definition_of_another_region_scheme_is_refused_clearly() -> None:
    """UN regional groups against an ITU-region list: InputError naming both schemes."""
    other = wtpf_with(regions=[{"id": "AFR", "name": "African States"},
                               {"id": "WEOG", "name": "Western European and Others"}])
    with pytest.raises(InputError) as caught:
        load_countries(other)
    text = str(caught.value)
    assert "uses regions A, B, C, D, E" in text
    assert "has AFR, WEOG" in text
    assert "notifications.countries" in text


def test_a_missing_or_broken_list_names_the_file(tmp_path: Path) -> None:
    """No file, or an inconsistent one: InputError naming it and what is wrong."""
    with pytest.raises(InputError, match=r"nowhere\.yaml .*cannot be read"):
        load_countries(wtpf_with(countries=str(tmp_path / "nowhere.yaml")))
    broken = tmp_path / "broken.yaml"
    broken.write_text("source: x\nas_of: 2024-12-13\nregions: [A]\nldc_count: 3\ncountries:\n"
                      "  - {code: AR, name: Argentina, region: A, developing: true}\n",
                      encoding="utf-8")
    with pytest.raises(InputError, match=": 0 countries are marked ldc but ldc_count says 3"):
        load_countries(wtpf_with(countries=str(broken), regions=[{"id": "A", "name": "A"}]))
