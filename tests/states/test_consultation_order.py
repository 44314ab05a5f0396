"""A draft posted before the previous public consultation has closed: its own consultation opens
when that one closes, and the audit says so (found by the Hypothesis run in test_invariants)."""

from __future__ import annotations

from states import advance, apply, parse_definition, start
from tests.states.helpers import utc

SEC = "sec-a"
DEFINITION = {
    "id": "overlap", "name": "Overlapping consultations", "timezone": "Europe/Zurich",
    "forum": {"name": "The Forum", "days": 1},
    "secretariat": [{"id": SEC, "name": "A", "email": "a@example.org"}],
    "cycles": [
        {"id": "d1", "name": "Draft 1", "posting": "2024-01-01", "comment_deadline": "2024-01-06",
         "public_consultation": True, "consultation_deadline": "2024-01-07"},
        {"id": "d2", "name": "Draft 2", "posting": "2024-01-08", "comment_deadline": "2024-01-09",
         "public_consultation": True},
        {"id": "final", "name": "Final report", "kind": "final", "posting": "2024-01-10"},
    ],
}


def test_an_early_draft_consultation_opens_when_the_previous_one_closes() -> None:
    """Draft 2 posted at 22:00 on 7 Jan (Geneva), before Draft 1's consultation ends that
    midnight: the tick closes Draft 1's first, then opens Draft 2's, due at that close."""
    d = parse_definition(DEFINITION, "test")
    instance = start(d, utc(2023, 12, 31, 12)).after
    instance = apply(d, instance, "post_d1", SEC, utc(2024, 1, 1, 9), document="D/1").after
    early = apply(d, instance, "post_d2", SEC, utc(2024, 1, 7, 21), document="D/2").after
    assert early.regions["consultation"] == "d1.consultation_open"
    tick = advance(d, early, utc(2024, 1, 8, 6))
    fired = [(r.trigger, r.inputs["due"]) for r in tick.transitions if "consultation" in
             str(r.trigger)]
    assert fired == [("close_consultation_d1", "2024-01-07T23:00:00+00:00"),
                     ("open_consultation_d2", "2024-01-07T23:00:00+00:00")]
    assert tick.after.regions["consultation"] == "d2.consultation_open"
