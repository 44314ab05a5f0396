"""Errors the core raises: each says what rule, which date, and what would be allowed instead."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from enum import StrEnum


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


#: A definition's problems printed at most: the rest are counted (a junk file has thousands).
SHOWN_PROBLEMS = 20


def first_problems(problems: Sequence[object]) -> str:
    """The first SHOWN_PROBLEMS problems joined with '; ', and how many more there are: a junk
    import of 100,000 lines must still be one readable paragraph (issue 9)."""
    shown = "; ".join(str(p) for p in problems[:SHOWN_PROBLEMS])
    rest = len(problems) - SHOWN_PROBLEMS
    return shown + (f"; … and {rest} more (mend these first)" if rest > 0 else "")


class DefinitionError(InputError):
    """A process definition failed validation; all problems are reported together."""

    def __init__(self, source: str, problems: list[Problem]) -> None:
        self.source = source
        self.problems = problems
        count = len(problems)
        head = f"{source}: {count} problem{'s' if count != 1 else ''} in the process definition:"
        lines = [head, *(f"  - {p}" for p in problems[:SHOWN_PROBLEMS])]
        if count > SHOWN_PROBLEMS:
            lines.append(f"  … and {count - SHOWN_PROBLEMS} more (mend these first)")
        super().__init__("\n".join(lines))


class RuleId(StrEnum):
    """Every rule that can refuse an action; ``Refused.rule`` and ``RuleResult.rule`` are one
    of these, so the edge compares ids, never the text of a message."""

    SIX_WEEKS = "six-weeks"
    """Decision 641 decides 6 d: the final report ≥ six weeks before the forum opens."""
    SEQUENCE = "sequence"
    NOMINATIONS = "nominations"
    DATE_FIXED = "date-fixed"
    DUE = "due"
    POSTED = "posted"
    COMMENT_WINDOW = "comment-window"
    HISTORY = "history"
    ONCE = "once"
    ORDER = "order"
    PAST = "past"
    CONCURRENT = "concurrent"
    NEW_OPINION = "no-new-opinions"
    """Resolution 2, resolves 10: no draft Opinion not presented during the preparation."""
    OUTCOME_BEFORE_FORUM = "forum-not-open"
    """An Opinion's outcome, or an agenda item, only while the forum is in session."""
    OPINION_STAGE = "opinion-stage"
    """An Opinion's stages move forward, and an outcome is final."""
    AGENDA = "agenda"
    """The forum's agenda is taken in order; what an item decides is recorded with it."""
    DRAFT_VERSION = "draft-version"
    """A further version is of the current draft: after its posting, before the next one's."""
    MEMBER = "member"
    """Issue 10: only a secretariat member, named by id, acts on a process."""
    ROLE = "role"
    """Issue 10: a member acts in the roles the definition gives them."""
    TOKEN = "token"
    """Issue 10: where tokens are in use, each act carries its member's own token."""
    CONTRIBUTION = "contribution"
    """Res. 2 / CL-24/44: comments while a draft's window opened; the public only while a
    public consultation on it is open."""


class Refused(PrepflowError):
    """A rule refused an action: exit 1, the store keeps its state (the refusal is audited).

    Typed fields for the edge (which rule, its source, the dates involved, what is allowed
    now); ``str()`` is the message people read. The citation comes from the process definition
    (``ProcessDefinition.citation``): another forum's process does not cite WTPF-26's texts.
    """

    exit_code = 1

    def __init__(self, rule: RuleId | str, message: str, allowed: str = "",
                 overridable: bool = False, *, dates: tuple[date, ...] = (),
                 allowed_date: date | None = None,
                 allowed_triggers: tuple[str, ...] = (), citation: str = "") -> None:
        self.rule = RuleId(rule)
        self.citation = citation
        """Where the rule comes from, e.g. 'Council Decision 641, decides 6 d'."""
        self.message = message
        self.allowed = allowed
        """What would be allowed instead, as people read it."""
        self.overridable = overridable
        self.dates = dates
        """The dates involved, as the message names them (e.g. today and the forum's opening)."""
        self.allowed_date = allowed_date
        """The date that would be allowed instead, when there is one (e.g. the earliest forum
        opening the six-week rule accepts for a posting today)."""
        self.allowed_triggers = allowed_triggers
        """The manual triggers allowed now, when the refusal is about which step comes next."""
        super().__init__(str(self))

    def __str__(self) -> str:
        text = f"Refused by rule '{self.rule}': {self.message}"
        if self.allowed:
            text += f" Allowed instead: {self.allowed}"
        if self.overridable:
            text += " (This rule can be overridden with --override and a --reason.)"
        if self.citation:
            text += f" (source: {self.citation})"
        return text

    def __repr__(self) -> str:
        return f"Refused({self.rule.value!r}, {self.message!r})"

    def __reduce__(self) -> tuple[object, ...]:
        """Picklable with its fields (a flow run may carry it across processes)."""
        return (_refused, (self.rule.value, self.message, self.allowed, self.overridable,
                           self.dates, self.allowed_date, self.allowed_triggers,
                           self.citation))


def _refused(rule: str, message: str, allowed: str, overridable: bool,
             dates: tuple[date, ...], allowed_date: date | None,
             allowed_triggers: tuple[str, ...], citation: str = "") -> Refused:
    return Refused(rule, message, allowed, overridable, dates=dates, allowed_date=allowed_date,
                   allowed_triggers=allowed_triggers, citation=citation)
