"""Message payloads: every notify effect the core makes carries its event's typed model, and
the model says what the mail says (the facts turned into it in one place, states/notices.py)."""

from __future__ import annotations

from dataclasses import replace

from states.decision import Decision, Effect
from states.definition import ProcessDefinition
from states.engine import advance, apply
from states.messages import (
    MODELS,
    CommentReminder,
    DraftPosted,
    MeetingInvitation,
    parse_message,
)
from states.notices import with_message
from tests.states.helpers import SEC, fix_meetings, new, utc, wtpf


def _posted() -> tuple[ProcessDefinition, Decision]:
    definition = wtpf()
    instance = fix_meetings(definition, new(definition))
    return definition, apply(definition, instance, "post_draft1", SEC, utc(2024, 8, 5, 8),
                             document="WTPF-26/1")


def _draft_posted(decision: Decision) -> Effect:
    (effect,) = [e for e in decision.effects if e.event == "draft_posted"]
    return effect


def test_a_transition_effect_carries_its_typed_payload() -> None:
    """Posting a draft: the effect's message is a DraftPosted with the document, its link and
    the comment deadline as an aware instant."""
    _, decision = _posted()
    effect = _draft_posted(decision)
    assert isinstance(effect.message, DraftPosted)
    assert effect.message.document == "WTPF-26/1"
    assert effect.message.deadline == utc(2024, 8, 26, 22)
    assert effect.message.document_url
    assert "WTPF-26/1" in effect.message.document_url


def test_notices_carry_reminders_and_invitations_with_their_sequence() -> None:
    """A reminder knows its days before the deadline; an invitation its RFC 5545 sequence."""
    definition, decision = _posted()
    week = advance(definition, decision.after, utc(2024, 8, 19, 22))
    messages = [e.message for e in decision.effects + week.effects if e.message]
    reminders = [m for m in messages if isinstance(m, CommentReminder)]
    assert [(r.days_before, r.deadline) for r in reminders] == [(7, utc(2024, 8, 26, 22))]
    invitations = [m for m in messages if isinstance(m, MeetingInvitation)]
    assert invitations
    assert all(m.sequence == 0 for m in invitations)


def test_every_payload_survives_the_outbox_json() -> None:
    """model_dump(mode="json") validates back into an equal model of the same event."""
    definition, decision = _posted()
    week = advance(definition, decision.after, utc(2024, 8, 19, 22))
    for effect in decision.effects + week.effects:
        if effect.message is not None:
            stored = effect.message.model_dump(mode="json")
            assert parse_message(effect.event, stored) == effect.message
            assert isinstance(effect.message, MODELS[effect.event])


def test_an_effect_the_model_refuses_keeps_no_payload_rather_than_failing() -> None:
    """A reminder without its deadline is left without a message (the edge queues the facts and
    that one row fails visibly), never an exception inside a decision."""
    definition, decision = _posted()
    effect = _draft_posted(decision)
    broken = replace(effect, event="comment_reminder", message=None,
                     data={"audience": "experts"})
    assert with_message(definition, broken).message is None
