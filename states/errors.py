"""Errors the core raises: each says what rule, which date, and what would be allowed instead."""

from __future__ import annotations

from dataclasses import dataclass, field


class PrepflowError(Exception):
    """Base of every error meant to be shown to a person, not as a traceback."""

    exit_code = 2


class InputError(PrepflowError):
    """Bad input (unknown name, malformed date, missing field): exit 2, nothing changes."""


@dataclass
class Problem:
    """One validation problem: where, the bad value, and what would be valid."""

    path: str
    value: str
    message: str

    def __str__(self) -> str:
        where = self.path or "(top level)"
        shown = f" = {self.value}" if self.value else ""
        return f"{where}{shown}: {self.message}"


class DefinitionError(InputError):
    """A process definition failed validation; all problems are reported together."""

    def __init__(self, source: str, problems: list[Problem]) -> None:
        self.source = source
        self.problems = problems
        count = len(problems)
        head = f"{source}: {count} problem{'s' if count != 1 else ''} in the process definition:"
        super().__init__("\n".join([head, *(f"  - {p}" for p in problems)]))


@dataclass
class Refused(PrepflowError):
    """A rule refused an action: exit 1, the store keeps its state (the refusal is audited)."""

    rule: str
    message: str
    allowed: str = ""
    overridable: bool = False
    details: dict[str, str] = field(default_factory=dict)
    exit_code = 1

    def __post_init__(self) -> None:
        super().__init__(str(self))

    def __str__(self) -> str:
        text = f"Refused by rule '{self.rule}': {self.message}"
        if self.allowed:
            text += f" Allowed instead: {self.allowed}"
        if self.overridable:
            text += " (This rule can be overridden with --override and a --reason.)"
        return text
