"""Every count of days a mail or the console shows reads '1 day' / 'N days' (issue 8)."""

from __future__ import annotations

from typing import Any

import pytest

from flows.cli.console import countdown
from flows.mail.render import Renderer
from flows.mail.wording import days_text
from tests.flows.test_mail_render import NOW, SENDER, parts, row


def _all_text(event: str, **context: Any) -> str:
    message = Renderer(SENDER).render(row(event, context=context), "Europe/Zurich", NOW)
    return " ".join(" ".join([str(message["Subject"]), *parts(message)]).split())


@pytest.mark.parametrize(("event", "context", "said"), [
    ("comment_reminder", {"days_before": 1}, "close in 1 day."),
    ("forum_reminder", {"days_before": 1}, "opens in 1 day"),
    ("rule_at_risk", {"slack_days": 1}, "Slack: 1 day."),
    ("step_overdue", {"overdue_days": 1}, "is 1 day overdue."),
    ("step_overdue", {"overdue_days": 0.96}, "is 1 day overdue."),
    ("step_overdue", {"overdue_days": 2}, "is 2 days overdue."),
])
def test_one_day_is_singular_in_every_mail_that_counts_days(
        event: str, context: dict[str, Any], said: str) -> None:
    """Subject and both bodies say '1 day', never '1 days' or '1.0 days'."""
    text = _all_text(event, **context)
    assert said in text
    assert "1 days" not in text
    assert ".0 day" not in text


def test_day_counts_in_english_and_french() -> None:
    """'1 day', '2.5 days'; French '1 jour', '1,5 jour', '3 jours'."""
    assert [days_text(n, "en") for n in (1, 0.96, 2.5, 7)] == [
        "1 day", "1 day", "2.5 days", "7 days"]
    assert [days_text(n, "fr") for n in (1, 1.5, 3)] == ["1 jour", "1,5 jour", "3 jours"]


def test_the_console_countdown_says_one_day() -> None:
    """The status table's countdown: 'in 1 day', '1 day ago', 'in 3 days'."""
    assert [countdown(n) for n in (1.4, -1.2, 3.0)] == ["in 1 day", "1 day ago", "in 3 days"]
