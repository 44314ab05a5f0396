"""Reading process definition files (YAML) into validated definitions."""

from __future__ import annotations

from pathlib import Path

import yaml

from states.definition import ProcessDefinition, parse_definition
from states.errors import DefinitionError, InputError, Problem


def load_definition(path: str | Path) -> ProcessDefinition:
    """Read and validate a definition; every error names the file, field, value and fix."""
    source = str(path)
    file = Path(path)
    if not file.is_file():
        raise InputError(f"{source}: no such file. Give the path of a process definition, "
                         "e.g. config/wtpf26.yaml.")
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{source}: cannot be read as UTF-8 text ({exc}).") from None
    return definition_from_text(text, source)


def definition_from_text(text: str, source: str) -> ProcessDefinition:
    """Validate YAML text; malformed YAML is reported with its line and column."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "somewhere"
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise DefinitionError(source, [Problem(where, "", f"malformed YAML: {problem}")]) from None
    return parse_definition(data, source)
