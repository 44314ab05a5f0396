"""The meeting-updated mail says what changed (old → new days), also for rows queued before."""

from __future__ import annotations

from typing import Any

from flows.mail.render import Renderer
from states.engine import amend, apply
from states.messages import MeetingUpdated
from tests.flows.test_mail_render import COMMON, IEG1, NOW, SENDER, Row, parts
from tests.states.helpers import SEC, fix_meetings, new, utc, wtpf

MOVED = {**COMMON, **IEG1, "start": "2024-10-14", "end": "2024-10-15", "sequence": 1}


def _text(context: dict[str, Any]) -> str:
    message = Renderer(SENDER).render(Row("meeting_updated", context), "Europe/Zurich", NOW)
    return parts(message)[0]


def test_an_update_says_the_old_and_the_new_days() -> None:
    """Moved from 7–8 to 14–15 October 2024: the mail says both, in Geneva time."""
    text = _text({**MOVED, "previous_start": "2024-10-07", "previous_end": "2024-10-08"})
    assert ("has changed: moved from 7 Oct 2024 – 8 Oct 2024 to 14 Oct 2024 – 15 Oct 2024 "
            "(Geneva time).") in " ".join(text.split())


def test_a_row_queued_without_the_old_days_still_renders() -> None:
    """A row of the previous version (no previous days, no 'changes') says it has changed."""
    text = _text(MOVED)
    assert "The 1st IEG meeting (First Draft) has changed.\nIt now takes place:" in text
    assert "When: 14 Oct 2024 – 15 Oct 2024 (Geneva)" in text


def test_moving_a_meeting_queues_its_previous_days() -> None:
    """The core's update carries the days the last invitation named."""
    definition = wtpf()
    instance = fix_meetings(definition, new(definition))
    posted = apply(definition, instance, "post_draft1", SEC, utc(2024, 8, 5, 8), document="D")
    moved = amend(definition, posted.after, "ieg1", "2024-10-14..2024-10-15", SEC, "room",
                  utc(2024, 8, 7))
    (update,) = [e for e in moved.effects if e.event == "meeting_updated"]
    assert isinstance(update.message, MeetingUpdated)
    assert (update.message.previous_start, update.message.previous_end) == (
        "2024-10-07", "2024-10-08")
    assert (update.message.start, update.message.end) == ("2024-10-14", "2024-10-15")
