"""The one YAML reader: definitions and rehearsal scenarios parse the same way and report
malformed YAML with its line and column."""

from __future__ import annotations

from pathlib import Path

import pytest

from flows.definition_file import load_yaml
from flows.rehearsal.scenario import load_scenario
from states.errors import DefinitionError


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
