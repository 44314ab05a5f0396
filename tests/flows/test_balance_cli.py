"""`prepflow experts balance` on a realistic generated register: the printed numbers are checked
against a count made here, independently, from the imported CSV and the country file."""

from __future__ import annotations

import csv
import json
from collections import Counter
from pathlib import Path

import pytest

from flows.definition_file import load_definition, load_yaml
from flows.orchestration.balance_view import load_countries
from flows.rehearsal.register_gen import nomination_rows, write_csv
from tests.flows.cli_run import Run, fresh_store, in_process

ROOT = Path(__file__).resolve().parents[2]
WTPF = str(ROOT / "config" / "wtpf26.yaml")
DEFINITION = load_definition(WTPF)
BY = "wtpf-secretariat"
BEFORE_DEADLINE = "2024-08-01T10:00+02:00"
TITLES = ("By region", "Stakeholder type", "Gender", "Developing / least developed")




@pytest.fixture
def run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> Run:
    """``prepflow ARGS...`` in-process on a fresh SQLite store, wide enough not to wrap."""
    fresh_store(tmp_path, monkeypatch)
    return in_process(capsys)


def tables(text: str) -> dict[str, list[list[str]]]:
    """The rows of each titled rich table in the printed text (header rows left out)."""
    found: dict[str, list[list[str]]] = {}
    current = ""
    for line in text.splitlines():
        if line.strip() in TITLES:
            current = line.strip()
            found[current] = []
        elif line.startswith("│") and current:
            found[current].append([cell.strip() for cell in line.strip("│").split("│")])
    return found


def pct(part: int, whole: int) -> str:
    return f"{100 * part / whole:.1f}%"


def expected(rows: list[dict[str, str]]) -> dict[str, list[list[str]]]:
    """The four tables, counted from the CSV rows with the country file read as plain YAML."""
    data = load_yaml((ROOT / "config" / "countries.yaml").read_text(encoding="utf-8"), "test")
    assert isinstance(data, dict)
    members = data["countries"]
    lookup = {c["code"]: c for c in members} | {c["name"].casefold(): c for c in members}
    total, states = len(rows), Counter(c["region"] for c in members)
    regions = Counter(r["region"] for r in rows)
    region_rows = []
    for region in DEFINITION.notifications.regions:
        n, ms = regions[region.id], states[region.id]
        gap = round(100 * n / total - 100 * ms / len(members), 1)
        region_rows.append([region.id, region.name, str(n), pct(n, total), str(ms),
                            pct(ms, len(members)), f"{gap:+.1f}" if gap else "0.0"])
    types = Counter(r["stakeholder_type"] for r in rows)
    genders = Counter({"F": "female", "M": "male", "": "not given"}[r["gender"]] for r in rows)
    found = [lookup.get(r["country"]) or lookup.get(r["country"].casefold()) for r in rows]
    development = {
        "developing": sum(1 for c in found if c and c["developing"]),
        "of which least developed": sum(1 for c in found if c and c.get("ldc")),
        "developed": sum(1 for c in found if c and not c["developing"]),
        "unknown country": sum(1 for c in found if c is None)}
    return {
        "By region": region_rows,
        "Stakeholder type": [[t, str(types[t]), pct(types[t], total)]
                             for t in DEFINITION.notifications.stakeholder_types],
        "Gender": [[g, str(genders[g]), pct(genders[g], total)]
                   for g in ("female", "male", "not given")],
        "Developing / least developed": [[g, str(n), pct(n, total)]
                                         for g, n in development.items()]}


def test_balance_of_a_generated_register_matches_an_independent_count(
        run: Run, tmp_path: Path) -> None:
    """240 generated nominations (3 from outside the list), one withdrawn: the table's every
    number is the one counted here from the CSV."""
    countries = load_countries(DEFINITION)
    rows = nomination_rows(2026, 240, countries, DEFINITION.notifications.stakeholder_types,
                           DEFINITION.notifications.languages, unknown=3)
    path = write_csv(tmp_path / "nominations.csv", rows)
    assert run("init", WTPF, "--now", "2024-07-10T10:00Z").code == 0
    imported = run("experts", "import", str(path), "--by", BY, "--now", BEFORE_DEADLINE)
    assert imported.code == 0, imported.err
    gone = rows[7]["email"]
    assert run("experts", "status", gone, "withdrawn", "--by", BY).code == 0

    shown = run("experts", "balance", "wtpf-26")

    assert shown.code == 0, shown.err
    active = [r for r in rows if r["email"] != gone]
    assert "wtpf-26: 239 active experts (1 withdrawn, not counted)" in shown.out
    assert tables(shown.out) == expected(active)
    assert "3 expert(s) name a country not in the list (Kosovo, Palau, Utopia)" in shown.out
    women = sum(r["gender"] == "F" for r in active) / len(active)
    assert 0.25 < women < 0.45  # the generator draws a realistic pool, about a third women


def test_the_other_formats_carry_the_same_numbers(run: Run, tmp_path: Path) -> None:
    """csv, json and md agree with each other on a generated register."""
    rows = nomination_rows(7, 60, load_countries(DEFINITION),
                           DEFINITION.notifications.stakeholder_types, ["en"])
    run("init", WTPF, "--now", "2024-07-10T10:00Z")
    run("experts", "import", str(write_csv(tmp_path / "n.csv", rows)), "--by", BY,
        "--now", BEFORE_DEADLINE)

    as_csv = list(csv.DictReader(run("experts", "balance", "--format", "csv").out.splitlines()))
    as_json = json.loads(run("experts", "balance", "--format", "json").out)
    as_md = run("experts", "balance", "--format", "md").out

    assert as_json["experts"] == 60
    regions = [r for r in as_csv if r["dimension"] == "region"]
    assert [(r["group"], int(r["experts"]), float(r["gap_points"])) for r in regions] == [
        (r["region"], r["experts"], r["gap_points"]) for r in as_json["regions"]]
    assert sum(int(r["experts"]) for r in as_csv if r["dimension"] == "gender") == 60
    for row in as_json["regions"]:
        assert f"| {row['region']} | {row['name']} | {row['experts']} |" in as_md


def test_an_empty_register_says_so_and_succeeds(run: Run) -> None:
    """No experts yet: one sentence saying how to import them, exit 0."""
    run("init", WTPF, "--now", "2024-07-10T10:00Z")
    shown = run("experts", "balance")
    assert shown.code == 0
    assert "wtpf-26: no active experts to balance (the register is empty)" in shown.out
    assert "prepflow experts import" in shown.out


def test_a_definition_of_another_region_scheme_is_refused(run: Run, tmp_path: Path) -> None:
    """A process whose regions are not the country list's: exit 2, both schemes named."""
    text = Path(WTPF).read_text(encoding="utf-8").replace("id: wtpf-26", "id: un-groups-26")
    start, end = text.index("  regions:"), text.index("  stakeholder_types:")
    other = tmp_path / "groups.yaml"
    other.write_text(text[:start] + "  regions: [{id: AFR, name: African States}]\n"
                     + text[end:], encoding="utf-8")
    assert run("init", str(other), "--now", "2024-07-10T10:00Z").code == 0
    shown = run("experts", "balance", "un-groups-26")
    assert shown.code == 2
    assert "uses regions A, B, C, D, E" in shown.err
    assert "has AFR" in shown.err
