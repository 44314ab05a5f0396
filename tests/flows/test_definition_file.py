"""The one YAML reader: definitions and rehearsal scenarios parse the same way and report
malformed YAML with its line and column."""

from __future__ import annotations

from pathlib import Path

import pytest

from flows.definition_file import definition_from_text, load_definition, load_yaml
from flows.rehearsal.scenario import load_scenario
from states.errors import DefinitionError, InputError


def test_malformed_yaml_names_the_line_and_column() -> None:
    """A stray colon on line 2 is reported there, with the source's name."""
    with pytest.raises(DefinitionError) as err:
        load_yaml("name: a\nevents: [on: x: y\n", "what-if.yaml")
    assert "what-if.yaml" in str(err.value)
    assert "line 2" in str(err.value)
    assert "malformed YAML" in str(err.value)


def test_only_true_and_false_are_booleans_and_impossible_dates_stay_text() -> None:
    """YAML 1.2 booleans (on/no stay text) and 2024-02-30 kept as text for validation."""
    data = load_yaml("on: 2024-10-07\nNO: no\nday: 2024-02-30\nflag: true\n", "x.yaml")
    assert isinstance(data, dict)
    assert data["on"].isoformat() == "2024-10-07"
    assert data["NO"] == "no"
    assert data["day"] == "2024-02-30"
    assert data["flag"] is True


def test_a_malformed_scenario_is_reported_with_its_line(tmp_path: Path) -> None:
    """Scenarios go through the same reader, so their errors name the line too."""
    path = tmp_path / "scenario.yaml"
    path.write_text("name: what if\nevents:\n  - on: 2025-10-15\n   kind: amend\n",
                    encoding="utf-8")
    with pytest.raises(DefinitionError, match=r"line \d+, column \d+"):
        load_scenario(path)


@pytest.mark.parametrize("text", ["[" * 5000 + "]" * 5000, "a:\n" + "".join(
    f"{'  ' * n}b{n}:\n" for n in range(1, 40)) + "  " * 40 + "x: 1\n"])
def test_deeply_nested_yaml_is_refused_without_a_recursion_error(text: str) -> None:
    """Lists 5,000 deep (PyYAML's recursion) or mappings 40 deep: one clear problem."""
    with pytest.raises(DefinitionError, match="nested more than 20 levels deep"):
        load_yaml(text, "deep.yaml")


def test_an_oversized_definition_file_is_refused_before_it_is_read(tmp_path: Path) -> None:
    """A 300 kB file is not parsed: bad input saying the limit."""
    junk = tmp_path / "junk.yaml"
    junk.write_text("x: " + "y" * 300_000 + "\n", encoding="utf-8")
    with pytest.raises(InputError, match="reads at most 256,000"):
        load_definition(junk)
    with pytest.raises(DefinitionError, match="reads at most 256,000"):
        load_yaml(junk.read_text(encoding="utf-8"), "junk.yaml")


def test_at_most_twenty_problems_are_listed_with_a_count_of_the_rest() -> None:
    """A definition with 30 unknown fields lists 20 of them and says 10 more."""
    text = "".join(f"field{n}: {n}\n" for n in range(30))
    with pytest.raises(DefinitionError) as raised:
        definition_from_text(text, "many.yaml")
    message = str(raised.value)
    assert message.count("\n  - ") == 20
    assert "… and " in message
    assert "more (mend these first)" in message
