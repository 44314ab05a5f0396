"""Reading a process's country list (ITU Member States with region, LDC and developing status)
for the expert group's balance.

The definition names the file (``notifications.countries``, default ``config/countries.yaml``),
relative to the prepflow checkout: like the templates, it is data shipped with the application,
so the CLI and a Prefect worker started elsewhere read the same file. It lives in the
definition, not in the settings, because its region scheme must be the definition's.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import ValidationError

from flows.definition_file import load_yaml
from states.balance import CountryList, check_scheme
from states.definition import ProcessDefinition
from states.errors import DefinitionError, InputError

#: The prepflow checkout: relative country-list paths are read from here.
ROOT = Path(__file__).resolve().parents[1]


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
        raise InputError(f"country list {shown}: {'; '.join(map(str, exc.problems))}.") from None
    except ValidationError as exc:
        problems = [f"{'.'.join(map(str, e['loc'])) or '(top level)'}: {e['msg']}"
                    for e in exc.errors()]
        raise InputError(f"country list {shown}: {len(problems)} problem(s): "
                         + "; ".join(problems) + ".") from None
    try:
        check_scheme(countries, definition.notifications.regions, shown)
    except ValueError as exc:
        raise InputError(f"{exc}.") from None
    return countries
