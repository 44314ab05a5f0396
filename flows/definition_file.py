"""Reading process definition files (YAML) into validated definitions; ``load_yaml`` is the
one YAML reader of prepflow (rehearsal scenarios use it too)."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from states.definition import ProcessDefinition, parse_definition
from states.errors import DefinitionError, InputError, Problem


class _Loader(yaml.SafeLoader):
    """SafeLoader for prepflow's YAML (definitions and rehearsal scenarios), with two changes.

    - An impossible date (2024-02-30) stays text: PyYAML turns date-looking scalars into
      ``date`` objects and raises a bare ValueError (a traceback, no field, no line) for
      impossible ones; as text, validation reports it with the field's path, together with
      every other problem.
    - Only true/false are booleans (YAML 1.2), not on/off/yes/no: under YAML 1.1 rules a
      scenario event's ``on:`` key, or a country code NO, would arrive as a boolean.
    """


def _timestamp(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> object:
    try:
        return yaml.SafeLoader.construct_yaml_timestamp(loader, node)
    except ValueError:
        return loader.construct_scalar(node)


_Loader.add_constructor("tag:yaml.org,2002:timestamp", _timestamp)
_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver("tag:yaml.org,2002:bool",
                              re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF"))


#: Bounds on hostile input: WTPF-26's definition is 5 kB and 5 levels deep.
MAX_BYTES = 256_000
MAX_DEPTH = 20


def load_yaml(text: str, source: str) -> object:
    """Parse prepflow YAML (safe: no arbitrary objects); malformed YAML is a DefinitionError
    that names ``source`` and the line and column. Text over ``MAX_BYTES`` or nested deeper
    than ``MAX_DEPTH`` is refused before it can cost minutes, gigabytes or a RecursionError."""
    if len(text) > MAX_BYTES:
        raise DefinitionError(source, [Problem("", "", f"the file is {len(text):,} characters; "
                                               f"prepflow reads at most {MAX_BYTES:,} (a "
                                               "definition or scenario is a few kB)")])
    try:
        data = yaml.load(text, Loader=_Loader)  # _Loader is a SafeLoader: no arbitrary objects
    except RecursionError:
        data = None
        deep = True
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "somewhere"
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise DefinitionError(source, [Problem(where, "", f"malformed YAML: {problem}")]) from None
    else:
        deep = _depth(data) > MAX_DEPTH
    if deep:
        raise DefinitionError(source, [Problem("", "", f"nested more than {MAX_DEPTH} levels "
                                               "deep; a definition needs about five")])
    return data


def _depth(data: object) -> int:
    """How deeply lists and mappings nest (iterative: no recursion on hostile input)."""
    deepest, stack = 0, [(data, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict | list):
            deepest = max(deepest, level)
            if level > MAX_DEPTH:
                break
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, level + 1) for child in children)
    return deepest


def load_definition(path: str | Path) -> ProcessDefinition:
    """Read and validate a definition; every error names the file, field, value and fix."""
    source = str(path)
    file = Path(path)
    if not file.is_file():
        raise InputError(f"{source}: no such file. Give the path of a process definition, "
                         "e.g. config/wtpf26.yaml.")
    if file.stat().st_size > MAX_BYTES:
        raise InputError(f"{source}: {file.stat().st_size:,} bytes; a process definition is a "
                         f"few kB and prepflow reads at most {MAX_BYTES:,}.")
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{source}: cannot be read as UTF-8 text ({exc}).") from None
    return definition_from_text(text, source)


def definition_from_text(text: str, source: str) -> ProcessDefinition:
    """Validate YAML text; malformed YAML is reported with its line and column."""
    return parse_definition(load_yaml(text, source), source)
