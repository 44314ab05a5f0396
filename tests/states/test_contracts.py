"""What crosses from core to edge is typed (STYLE habit 13): refusals and status warnings carry
fields the edge reads, and their text stays exactly what people read."""

from __future__ import annotations

import pickle
from datetime import date

import pytest

from states import Refused, RuleId, StatusWarning, WarningKind


def test_a_refusal_reads_as_before_and_carries_its_fields() -> None:
    """The message is unchanged; rule, dates and what is allowed are fields, not text to parse."""
    refused = Refused("six-weeks", "too late.", "move the forum.", overridable=True,
                      dates=(date(2026, 4, 24),), allowed_date=date(2026, 6, 5))
    assert str(refused) == ("Refused by rule 'six-weeks': too late. Allowed instead: move the "
                            "forum. (This rule can be overridden with --override and a "
                            "--reason.)")
    assert refused.rule is RuleId.SIX_WEEKS
    assert refused.rule == "six-weeks"  # an audit record's stored id compares equal
    assert (refused.dates, refused.allowed_date) == ((date(2026, 4, 24),), date(2026, 6, 5))


def test_a_refusal_survives_pickling_with_its_fields() -> None:
    """A refusal crossing a process boundary keeps its typed fields and its text."""
    refused = Refused(RuleId.ORDER, "not yet.", "post_draft2.", allowed_triggers=("post_x",))
    back = pickle.loads(pickle.dumps(refused))
    assert (back.rule, back.allowed_triggers, str(back)) == (RuleId.ORDER, ("post_x",),
                                                             str(refused))


def test_an_unknown_rule_id_is_refused_at_once() -> None:
    """A misspelt rule id fails where it is written, not when the edge compares it."""
    with pytest.raises(ValueError, match="six-week"):
        Refused("six-week", "typo")


@pytest.mark.parametrize(("kind", "urgent"), [
    (WarningKind.OVERDUE, True),
    (WarningKind.MONTH_PASSED, True),
    (WarningKind.RULE_BROKEN, True),
    (WarningKind.DATE_NOT_FIXED, False),
    (WarningKind.RULE_AT_RISK, False),
])
def test_urgent_warnings_are_chosen_by_kind(kind: WarningKind, urgent: bool) -> None:
    """The tick logs and alerts the urgent kinds; the others show in status only."""
    warning = StatusWarning(kind=kind, text="TEXT as shown")
    assert warning.urgent is urgent
    assert str(warning) == "TEXT as shown"
