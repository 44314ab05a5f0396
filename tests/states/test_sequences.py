"""Hypothesis drives random sequences of steps through the pure core and checks the invariants.

Steps: the clock moves to random later instants (some right around the nights summer time
begins and ends, 27 Oct 2024 and 30 Mar 2025), postings (the next one, or any trigger, valid or
not, with or without an override) and amendments (valid, refused, or bad input). After each:
(a) the records so far rebuild the instance (``states.replay``), (b) no transition fires twice,
(c) states only move forward in table order, (d) the final report never goes out less than
``final_min_lead_days`` before a fixed forum opening without a recorded override.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from hypothesis import event, example, given, settings
from hypothesis import strategies as st

from states import (
    Decision,
    InputError,
    Instance,
    ProcessDefinition,
    Refused,
    advance,
    amend,
    apply,
    build_table,
    effective_milestones,
    parse_definition,
    refusal_record,
    start,
)
from states.dates import local_day, zone
from states.machine import Mode
from states.plan import milestone_keys
from states.replay import rebuild

SEC = "sec-a"
LEAD = 42
#: When clocks change in Geneva: 03:00 CEST → 02:00 CET, and 02:00 CET → 03:00 CEST (01:00 UTC).
DST = (datetime(2024, 10, 27, 1, tzinfo=UTC), datetime(2025, 3, 30, 1, tzinfo=UTC))
BEGIN = datetime(2024, 9, 20, 8, tzinfo=UTC)
FINAL_DAY = date(2025, 4, 14)
#: The fields a record carries; invitations are kept in the state alone (see states.replay).
REBUILT = tuple(name for name in Instance.model_fields if name != "invitations")


def definition(forum_gap: int | None) -> ProcessDefinition:
    """Three rounds across both summer-time changes, one meeting month-only, a public
    consultation; the forum ``forum_gap`` days after the final report, or undated."""
    forum: dict[str, Any] = {"name": "The Forum", "days": 3}
    if forum_gap is not None:
        forum["opens"] = (FINAL_DAY + timedelta(days=forum_gap)).isoformat()
    return parse_definition({
        "id": "seq", "name": "Sequences", "timezone": "Europe/Zurich", "forum": forum,
        "nominations_deadline": "2024-10-07",
        "secretariat": [{"id": SEC, "name": "A", "email": "a@example.org"}],
        "rules": {"final_min_lead_days": LEAD, "reminder_days": [7, 1]},
        "notifications": {"forum_reminder_days": [14, 1]},
        "cycles": [
            {"id": "d1", "name": "First Draft", "posting": "2024-10-01",
             "comment_deadline": "2024-10-25", "public_consultation": True,
             "meetings": [{"id": "m1", "name": "Meeting 1", "start": "2024-10-28",
                           "end": "2024-10-29"}]},
            {"id": "d2", "name": "Second Draft", "posting": "2024-11-15",
             "comment_deadline": "2025-01-10",
             "meetings": [{"id": "m2", "name": "Meeting 2", "start": "2025-03",
                           "mode": "virtual"}]},
            {"id": "final", "name": "Final report", "kind": "final",
             "posting": FINAL_DAY.isoformat()},
        ],
    }, "sequences")


DEFINITIONS = {gap: definition(gap) for gap in (None, 20, LEAD, 60)}
TRIGGERS = [s.trigger for s in build_table(DEFINITIONS[None]).specs] + ["nonsense"]
KEYS = milestone_keys(DEFINITIONS[None])
NEXT_COMMENTS = "<next draft's comments>"
REASON = "a test says so"


@dataclass(frozen=True)
class Move:
    """The clock moves on by ``minutes``, or to ``minutes`` around a summer-time change."""

    minutes: int
    dst: int | None = None


@dataclass(frozen=True)
class Post:
    """A posting: the next one due (``trigger`` None) or any trigger; with an override."""

    trigger: str | None
    override: bool
    on_plan: bool = False
    """Wait for the next posting's planned day (10:00) first, if it is still ahead."""


@dataclass(frozen=True)
class Amend:
    """A milestone moved to ``days`` after today, as a day (maybe with a time), a month, a
    span, or bad text; or ("fix") the month-only meeting fixed to a day of its month."""

    key: str
    days: int
    form: str
    override: bool


Step = Move | Post | Amend

MOVES = st.builds(Move, st.integers(1, 60 * 24 * 12)) | st.builds(
    Move, st.integers(1, 60 * 24 * 40)) | st.builds(
    Move, st.integers(-180, 180), st.sampled_from([0, 1]))
POSTS = st.builds(Post, st.none() | st.sampled_from(TRIGGERS), st.booleans()) | st.builds(
    Post, st.none(), st.booleans(), st.just(True))
FORMS = st.sampled_from(["day", "day", "time", "month", "span", "bad"])
AMENDS = st.builds(Amend, st.sampled_from([*KEYS, "nowhere"]), st.integers(-10, 240), FORMS,
                   st.booleans()) | \
    st.builds(Amend, st.just("m2"), st.integers(0, 27), st.just("fix"), st.just(False)) | \
    st.builds(Amend, st.just(NEXT_COMMENTS), st.integers(1, 40), st.just("day"), st.booleans())
STEPS = st.one_of(MOVES, POSTS, AMENDS)


def moved(now: datetime, step: Move) -> datetime:
    """The later instant a move goes to (a summer-time instant already past: a minute on)."""
    if step.dst is None:
        return now + timedelta(minutes=step.minutes)
    return max(now + timedelta(minutes=1), DST[step.dst] + timedelta(minutes=step.minutes))


def next_posting(d: ProcessDefinition, instance: Instance) -> str:
    """The first manual trigger that has not happened (the last one once all have)."""
    manual = [s.trigger for s in build_table(d).specs if s.mode is Mode.MANUAL
              and s.region == "main"]  # the forum's agenda items are not postings
    return next((t for t in manual if t not in instance.happened), manual[-1])


def planned(d: ProcessDefinition, instance: Instance) -> datetime:
    """10:00 on the next posting's planned (or amended) day; a month's first day."""
    cycle = next_posting(d, instance).removeprefix("post_")
    day = {m.key: m for m in effective_milestones(d, instance)}[f"{cycle}.posting"].start
    assert day is not None
    return datetime.combine(day.first_day(), time(10), zone(d.timezone)).astimezone(UTC)


def amend_value(d: ProcessDefinition, now: datetime, step: Amend) -> str:
    """The text ``prepflow amend`` would be given."""
    day = local_day(now, zone(d.timezone)) + timedelta(days=step.days)
    if step.form == "fix":
        return (date(2025, 3, 1) + timedelta(days=step.days)).isoformat()
    if step.form == "month":
        return day.isoformat()[:7]
    if step.form == "span":
        return f"{day.isoformat()}..{(day + timedelta(days=1)).isoformat()}"
    if step.form == "time":
        return f"{day.isoformat()} 14:30"
    return "2025-13-45" if step.form == "bad" else day.isoformat()


def posting_of(d: ProcessDefinition, instance: Instance, step: Post) -> str:
    """The trigger a posting step fires."""
    return step.trigger or next_posting(d, instance)


def amending(d: ProcessDefinition, instance: Instance, step: Amend,
             now: datetime) -> tuple[str, str]:
    """The milestone and the new date an amendment step gives."""
    key = step.key
    if key == NEXT_COMMENTS:  # a late draft: a new deadline before posting it
        key = f"{next_posting(d, instance).removeprefix('post_')}.comments"
        key = key if key in KEYS else "forum"
    return key, amend_value(d, now, step)


def decide(d: ProcessDefinition, instance: Instance, step: Post | Amend,
           now: datetime) -> Decision:
    """The core's decision for a posting or an amendment (may raise Refused or InputError)."""
    if isinstance(step, Post):
        return apply(d, instance, posting_of(d, instance, step), SEC, now, document="DOC",
                     reason=REASON if step.override else None, override=step.override)
    key, value = amending(d, instance, step, now)
    return amend(d, instance, key, value, SEC, REASON, now, override=step.override)


def rebuilt_fields(instance: Instance) -> dict[str, Any]:
    """The fields a replay of the records must reproduce."""
    return {name: getattr(instance, name) for name in REBUILT}


def six_weeks_kept(d: ProcessDefinition, instance: Instance) -> bool:
    """(d): the final out ≥ LEAD days before a fixed opening, or a six-weeks override."""
    final = instance.happened.get(f"post_{d.cycles[-1].id}")
    if final is None or any(o.rule == "six-weeks" for o in instance.overrides):
        return True
    forum = {m.key: m for m in effective_milestones(d, instance)}["forum"].start
    if forum is None:
        return False  # the guard refuses a final report to an undated forum without override
    # a forum known by its month only opens on its first day at the earliest (the worst case)
    return (forum.first_day() - local_day(final.at, zone(d.timezone))).days >= LEAD


class Run:
    """A process driven step by step through the core, its records kept as the shell keeps
    them (a refusal is audited and changes nothing else; bad input records nothing)."""

    def __init__(self, d: ProcessDefinition) -> None:
        self.d, self.now = d, BEGIN
        decision = start(d, self.now)
        self.instance, self.records = decision.after, list(decision.records)

    def step(self, step: Step) -> None:
        """One step, then every invariant."""
        if isinstance(step, Move):
            self.now = moved(self.now, step)
            self.accept(advance(self.d, self.instance, self.now))
        elif isinstance(step, Post) and step.on_plan:
            self.now = max(self.now, planned(self.d, self.instance))
            self.act(step)
        else:
            self.act(step)
        self.check()

    def act(self, step: Post | Amend) -> None:
        try:
            decision = decide(self.d, self.instance, step, self.now)
        except InputError:
            event(f"{type(step).__name__}: bad input")
            return
        except Refused as refused:
            event(f"{type(step).__name__}: refused by {refused.rule}")
            self.records.append(refusal_record(self.d, self.instance, "act", SEC, self.now,
                                               refused, {}))
            return
        event(f"{type(step).__name__}: accepted")
        self.accept(decision)

    def accept(self, decision: Decision) -> None:
        """Record a decision; (c) each transition moves its region forward in table order."""
        assert decision.before == self.instance
        table = build_table(self.d)
        for record in decision.transitions:
            names = table.states[record.inputs["region"]]
            assert names.index(str(record.to_state)) > names.index(str(record.from_state))
        for region, names in table.states.items():
            assert names.index(decision.after.regions[region]) >= names.index(
                self.instance.regions[region])
        self.instance = decision.after
        self.records += decision.records

    def check(self) -> None:
        """(a) replay rebuilds the instance, (b) nothing fires twice, (d) six weeks or why."""
        again = rebuild(self.d, self.records, self.instance.process_id)
        assert rebuilt_fields(again) == rebuilt_fields(self.instance)
        # a log written before amendment records carried their JSON rebuilds them as well
        older = [replace(r, inputs={k: v for k, v in r.inputs.items() if k != "amendment"})
                 for r in self.records]
        assert rebuild(self.d, older).amendments == self.instance.amendments
        fired = [r.trigger for r in self.records if r.kind == "transition"]
        assert len(fired) == len(set(fired))
        assert set(fired) == set(self.instance.happened)
        assert six_weeks_kept(self.d, self.instance), self.instance.overrides


@settings(max_examples=120, deadline=None)
@example(gap=None, steps=[Post(None, False, True), Post(None, False, True),
                          Amend("m2", 0, "fix", False), Post(None, False, True),
                          Amend("forum", 48, "month", False), Post(None, False)])
@given(gap=st.sampled_from(list(DEFINITIONS)), steps=st.lists(STEPS, min_size=30, max_size=80))
def test_random_sequences_keep_the_invariants(gap: int | None, steps: list[Step]) -> None:
    """Random moves, postings and amendments: the records always rebuild the state, nothing
    fires twice or goes back, and the six-week rule holds or its override is on record."""
    run = Run(DEFINITIONS[gap])
    for step in steps:
        run.step(step)  # each step checks (a)-(d) as it goes (Run.accept, Run.check)
    event(f"ended at: {run.instance.regions['main']}")  # --hypothesis-show-statistics
    # and at the end, the whole log still rebuilds the whole state
    rebuilt = rebuild(run.d, run.records, run.instance.process_id)
    assert rebuilt_fields(rebuilt) == rebuilt_fields(run.instance)
