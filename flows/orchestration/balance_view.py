"""The expert group's balance at the edge: the process's country list read, the core's Balance
computed from the register, and written out as markdown or CSV rows. One place, so the command
(`prepflow experts balance`) and the Prefect artifact (`<process>-balance`) show the same
numbers. Only counts leave here: no names or addresses (the artifact is in Prefect).

The definition names the country list (``notifications.countries``, default
``config/countries.yaml``), relative to the prepflow checkout: like the templates, it is data
shipped with the application, so the CLI and a Prefect worker started elsewhere read the same
file. It lives in the definition, not in the settings, because its region scheme must be the
definition's.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from pydantic import ValidationError

from flows.definition_file import load_yaml
from flows.storage import Expert
from states.balance import Balance, CountryList, RegionShare, Share, balance, check_scheme
from states.definition import ProcessDefinition
from states.errors import DefinitionError, InputError, first_problems

#: The prepflow checkout: relative country-list paths are read from here.
ROOT = Path(__file__).resolve().parents[2]


def countries_path(definition: ProcessDefinition) -> Path:
    """Where the definition's country list is (absolute paths are kept as they are)."""
    path = Path(definition.notifications.countries)
    return path if path.is_absolute() else ROOT / path


def load_countries(definition: ProcessDefinition) -> CountryList:
    """The validated country list of this process; InputError naming the file and the fix when
    it is missing, malformed, inconsistent, or of another region scheme than the definition's."""
    path = countries_path(definition)
    shown = definition.notifications.countries
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"country list {shown} (notifications.countries of {definition.id}) "
                         f"cannot be read: {exc}.") from None
    try:
        data = load_yaml(text, shown)
        countries = CountryList.model_validate(data)
    except DefinitionError as exc:
        raise InputError(f"country list {shown}: {first_problems(exc.problems)}.") from None
    except ValidationError as exc:
        problems = [f"{'.'.join(map(str, e['loc'])) or '(top level)'}: "
                    + e["msg"].removeprefix("Value error, ") for e in exc.errors()]
        raise InputError(f"country list {shown}: {len(problems)} problem(s): "
                         + first_problems(problems) + ".") from None
    try:
        check_scheme(countries, definition.notifications.regions, shown)
    except ValueError as exc:
        raise InputError(f"{exc}.") from None
    return countries


CSV_COLUMNS = ("dimension", "group", "name", "experts", "share_percent", "member_states",
               "member_share_percent", "gap_points")


def compute(definition: ProcessDefinition, experts: Sequence[Expert]) -> Balance:
    """The balance of ``experts`` (the register's rows) under the process's country list."""
    countries = load_countries(definition)
    settings = definition.notifications
    # load_countries checked the region scheme, so the core's ValueError cannot happen here.
    return balance(experts, countries, settings.regions, settings.stakeholder_types,
                   settings.balance_warnings)


def points(value: float) -> str:
    """A signed gap: '+3.2', '-5.1', '0.0'."""
    return f"{value:+.1f}" if value else "0.0"


def headline(process_id: str, b: Balance) -> str:
    """'wtpf-26: 120 active experts (3 withdrawn, 1 erased, not counted)'."""
    left = [f"{n} {what}" for n, what in ((b.withdrawn, "withdrawn"), (b.erased, "erased")) if n]
    tail = f" ({', '.join(left)}, not counted)" if left else ""
    return f"{process_id}: {b.experts} active expert{'s' if b.experts != 1 else ''}{tail}"


def source_line(definition: ProcessDefinition, b: Balance) -> str:
    """Where the Member States' data came from (the file's own statement of its sources)."""
    return (f"Countries: {definition.notifications.countries}, as of "
            f"{b.countries_as_of.isoformat()} ({b.countries_source})")


def region_cells(row: RegionShare) -> list[str]:
    """A region row as text: id, name, experts, share, Member States, their share, gap."""
    return [row.region, row.name, str(row.experts), f"{row.share:.1f}%",
            str(row.member_states), f"{row.member_share:.1f}%", points(row.gap_points)]


def share_cells(row: Share) -> list[str]:
    """A group row as text: group, experts, share."""
    return [row.group, str(row.experts), f"{row.share:.1f}%"]


REGION_HEADER = ["region", "name", "experts", "share", "Member States", "share of Member States",
                 "gap (points)"]


def sections(b: Balance) -> list[tuple[str, str, list[Share]]]:
    """The share tables: (title, CSV dimension, rows), in the order they are shown."""
    return [("Stakeholder type", "stakeholder_type", b.stakeholder_types),
            ("Gender", "gender", b.genders),
            ("Developing / least developed", "development", b.development)]


def _md_table(header: list[str], rows: list[list[str]]) -> list[str]:
    def line(cells: list[str]) -> str:
        return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"
    return [line(header), "|" + "---|" * len(header), *(line(r) for r in rows)]


def markdown(process_id: str, definition: ProcessDefinition, b: Balance) -> str:
    """The balance as markdown: the CLI's --format md and the Prefect artifact."""
    lines = [f"### Expert group balance — {headline(process_id, b)}", "",
             "No quotas apply (Res. 2 asks for a balanced group); warnings use the definition's "
             "notifications.balance_warnings.", "", "#### By region", ""]
    lines += _md_table(REGION_HEADER, [region_cells(r) for r in b.regions])
    for title, _, rows in sections(b):
        lines += ["", f"#### {title}", ""]
        lines += _md_table(["group", "experts", "share"], [share_cells(r) for r in rows])
    lines += ["", "#### Warnings", ""]
    lines += [f"- {w.text}" for w in b.warnings] or ["- none"]
    lines += ["", source_line(definition, b)]
    return "\n".join(lines) + "\n"


def csv_rows(b: Balance) -> list[list[str]]:
    """One row per group of every dimension (CSV_COLUMNS); numbers unformatted but rounded."""
    rows = [["region", r.region, r.name, str(r.experts), f"{r.share:.1f}", str(r.member_states),
             f"{r.member_share:.1f}", f"{r.gap_points:.1f}"] for r in b.regions]
    for _, dimension, shares in sections(b):
        rows += [[dimension, s.group, "", str(s.experts), f"{s.share:.1f}", "", "", ""]
                 for s in shares]
    return rows
