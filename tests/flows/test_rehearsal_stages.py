"""Stage actions: the one hook through which a rehearsal acts at a stage of the process, and
the first of them, dating an undated forum just before the final report (no flows run here)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from flows.rehearsal.comment_steps import LATE, batch_times, drafts_for
from flows.rehearsal.forum import ForumDateAssumption, forum_date
from flows.rehearsal.scenario import Event, Scenario
from flows.rehearsal.stages import stage_actions
from flows.rehearsal.stepping import Rehearsal, StageAction, next_step
from states.contributions import SubmitterCategory, receive
from states.dates import PlanDate
from states.definition import ProcessDefinition
from states.instance import Instance
from states.plan import Span
from tests.states.helpers import wtpf, wtpf_at_final

#: 09:00 Geneva (CEST) on 13 Apr 2026: an hour before the final report's 10:00 posting.
BEFORE_FINAL = datetime(2026, 4, 13, 7, tzinfo=UTC)


def rehearsal(definition: ProcessDefinition, scenario: Scenario | None = None) -> Rehearsal:
    """A rehearsal's state without a store: enough to ask what it does next."""
    r = Rehearsal(definition, scenario or Scenario(), "sqlite://", datetime(2024, 7, 1, tzinfo=UTC),
                  datetime(2027, 7, 1, tzinfo=UTC), 0, 0)
    r.stages = stage_actions(r)
    return r


def test_an_undated_forum_is_dated_an_hour_before_the_final_report_is_posted() -> None:
    """Once the final report is the next posting, the next step is the forum's date, first."""
    definition, instance, _ = wtpf_at_final()
    r = rehearsal(definition)
    step = next_step(r, instance, datetime(2026, 3, 1, tzinfo=UTC))
    assert step is not None
    assert (step.kind, step.at) == ("stage", BEFORE_FINAL)
    assert isinstance(step.payload, ForumDateAssumption)


def test_nothing_is_assumed_before_the_final_report_is_next_or_once_done() -> None:
    """Earlier stages, a dated forum, a scenario that amends the forum, or done: no step."""
    definition, instance, _ = wtpf_at_final()
    action, now = ForumDateAssumption(), datetime(2026, 3, 1, tzinfo=UTC)
    assert action.next_at(rehearsal(wtpf()), Instance(process_id="wtpf-26",
                                                      regions={"main": "draft1.drafting",
                                                               "consultation": "none"}),
                          now) is None
    dated = definition.model_copy(update={"forum": definition.forum.model_copy(
        update={"opens": PlanDate(2026, 6, 2)})})
    assert action.next_at(rehearsal(dated), instance, now) is None
    council = Scenario(events=[Event(on=PlanDate(2026, 4, 20), kind="amend", milestone="forum",
                                     date="2026-06-16")])
    assert action.next_at(rehearsal(definition, council), instance, now) is None
    assert action.next_at(rehearsal(definition), instance, now) == BEFORE_FINAL
    action.done = True
    assert action.next_at(rehearsal(definition), instance, now) is None


def test_the_date_is_the_earliest_six_week_day_unless_the_scenario_gives_one() -> None:
    """25 May 2026 (13 Apr + 42 days), said so; a scenario's fix_dates.forum wins."""
    definition, instance, _ = wtpf_at_final()
    assumed = forum_date(rehearsal(definition), instance)
    assert assumed is not None
    assert assumed.span == Span(PlanDate(2026, 5, 25))
    assert assumed.says == ("Forum undated in the plan: assuming it opens on 25 May 2026 "
                            "(earliest the six-week rule allows after the final report planned "
                            "for 13 Apr 2026)")
    assert assumed.reason.startswith("rehearsal assumption:")
    given = forum_date(rehearsal(definition, Scenario(name="later", fix_dates={
        "forum": "2026-06-16"})), instance)
    assert given is not None
    assert given.span == Span(PlanDate(2026, 6, 16))
    assert given.says == ("Forum undated in the plan: the scenario (later) has it open on "
                          "16 Jun 2026")


@dataclass
class Knock:
    """A stage action for the test: acts once, at a fixed instant."""

    at: datetime
    name: str = "knock"
    done: list[datetime] = field(default_factory=list)

    def next_at(self, r: Rehearsal, instance: Instance, now: datetime) -> datetime | None:
        return None if self.done else self.at

    def perform(self, r: Rehearsal, now: datetime) -> None:
        self.done.append(now)


def test_a_registered_stage_action_is_stepped_at_its_instant() -> None:
    """The hook: an action's instant competes with the plan's own steps and the other
    actions'; the earliest step wins."""
    definition, instance, _ = wtpf_at_final()
    r = rehearsal(definition)
    knock = Knock(BEFORE_FINAL - timedelta(days=1))
    assert isinstance(knock, StageAction)
    r.stages = [knock, *r.stages]
    step = next_step(r, instance, datetime(2026, 3, 1, tzinfo=UTC))
    assert step is not None
    assert (step.kind, step.payload, step.at) == ("stage", knock, knock.at)
    knock.done.append(knock.at)
    step = next_step(r, instance, knock.at)
    assert step is not None
    assert isinstance(step.payload, ForumDateAssumption)


def test_comment_batches_are_seeded_and_the_core_takes_them_as_planned() -> None:
    """N per window in three batches, the same each time: the register's core takes each one,
    late exactly in the batch after the deadline, the public only while a consultation is open."""
    definition, instance, _ = wtpf_at_final()
    r = rehearsal(definition)
    r.comments = 20
    public: dict[str, int] = {}
    for cycle in [c for c in definition.cycles if c.comment_deadline is not None]:
        times = batch_times(r, instance, cycle)
        batches = {b: drafts_for(r, definition, instance, cycle, b, at) for b, at in times.items()}
        assert batches == {b: drafts_for(r, definition, instance, cycle, b, at)
                           for b, at in times.items()}
        assert sum(len(d) for d in batches.values()) == 20
        assert 1 <= len(batches[LATE]) <= 2
        for batch, drafts in batches.items():
            for _, draft in drafts:
                receipt = receive(definition, instance, draft, times[batch])
                assert receipt.late == (batch == LATE)
        public[cycle.id] = sum(d.category is SubmitterCategory.PUBLIC
                               for drafts in batches.values() for _, d in drafts)
    assert public["draft1"] == public["draft4"] == 0
    assert public["draft2"] > 0
    assert public["draft3"] > 0
