"""The random sequences of tests/states/test_sequences.py, through the shell and a real store.

After each sequence the store's hash chains and state verify, and the stored state equals the
replay of the store's own audit log (``states.replay``): nothing the shell records is lost,
and nothing is in the state that the log does not say.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from flows.shell import Service
from flows.storage.testing import throwaway_store
from states.errors import InputError, Refused
from states.replay import rebuild
from tests.states.test_sequences import (
    BEGIN,
    DEFINITIONS,
    REASON,
    SEC,
    STEPS,
    Move,
    Post,
    Step,
    amending,
    moved,
    planned,
    posting_of,
    rebuilt_fields,
)


@settings(max_examples=12, deadline=None)
@given(gap=st.sampled_from(list(DEFINITIONS)), steps=st.lists(STEPS, min_size=15, max_size=40))
def test_stored_state_is_the_replay_of_the_stored_audit_log(gap: int | None,
                                                            steps: list[Step]) -> None:
    """Random moves, postings and amendments through Service on SQLite: verify() finds
    nothing, and replaying the audit entries rebuilds the stored state."""
    d = DEFINITIONS[gap]
    with throwaway_store() as store:
        service = Service(store)
        service.init(d, BEGIN)
        now = BEGIN
        for step in steps:
            instance = service.load(d.id)[2]
            try:
                if isinstance(step, Move):
                    now = moved(now, step)
                    service.advance(now)
                elif isinstance(step, Post):
                    if step.on_plan:
                        now = max(now, planned(d, instance))
                    service.transition(d.id, posting_of(d, instance, step), SEC, "DOC",
                                       REASON if step.override else None, step.override, now)
                else:
                    key, value = amending(d, instance, step, now)
                    service.amend(d.id, key, value, SEC, REASON, step.override, now)
            except (Refused, InputError):
                pass  # a refusal is audited (and replays as nothing); bad input writes nothing
        assert service.verify() == []
        stored = service.load(d.id)[2]
        assert rebuilt_fields(rebuild(d, store.audit(d.id), d.id)) == rebuilt_fields(stored)
