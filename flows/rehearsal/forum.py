"""The forum's date in a rehearsal, when the plan leaves it undated (WTPF-26's: Council sets it).

Without a date the forum never opens, and a rehearsal would stop at the final report. So,
just before the scripted secretariat posts the final report, this stage action sets the forum
through the real path (an audited ``amend forum`` by the rehearsal's actor, rules re-checked):
on the scenario's date when it gives one (``fix_dates: {forum: ...}``), else on the earliest day
the six-week rule allows after the final report as planned (``states.forum_opening``). The
transcript says which. A scenario that amends the forum itself (an ``amend`` event) is left to
do so: nothing is assumed then.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from flows.rehearsal.runs import amend, current
from flows.rehearsal.scenario import local
from flows.rehearsal.stepping import Rehearsal
from states.dates import PlanDate, days, human_day, local_day, zone
from states.forum_opening import earliest_forum_opening
from states.instance import Instance
from states.machine import MAIN, table_for
from states.plan import Span, by_key
from states.rules import effective_milestones


@dataclass
class ForumDateAssumption:
    """Set an undated forum's opening just before the final report is posted, once."""

    name: str = "forum date"
    done: bool = False

    def next_at(self, r: Rehearsal, instance: Instance, now: datetime) -> datetime | None:
        """Just before the final report's posting, while it is the next posting, the forum is
        still undated and no scenario event will date it."""
        d = r.definition
        final = f"post_{d.cycles[-1].id}"
        if self.done or final in instance.happened or any(
                e.kind == "amend" and e.milestone == "forum" for e in r.scenario.events):
            return None
        items = by_key(effective_milestones(d, instance))
        posting = items[f"{d.cycles[-1].id}.posting"].start
        if items["forum"].start is not None or posting is None or not posting.exact:
            return None
        if instance.regions[MAIN] != table_for(d).by_trigger[final].source:
            return None  # the final report is not the next posting yet
        # An hour before the posting: a posting step at the instant just used is put off a day.
        return local(posting, r.scenario.posting_clock(), zone(d.timezone)) - timedelta(hours=1)

    def perform(self, r: Rehearsal, now: datetime) -> None:
        """Say what is assumed, then amend the forum through the secretariat-amend flow."""
        self.done = True
        choice = forum_date(r, current(r))
        if choice is None:
            return
        day = local_day(now, zone(r.definition.timezone)).isoformat()
        r.lines.append(f"{day} {'rehearsal':<12} {choice.says}")
        amend(r, now, "forum", str(choice.span), choice.reason)


@dataclass(frozen=True)
class ForumDate:
    """The date a rehearsal gives an undated forum, what the transcript says, and the
    amendment's reason."""

    span: Span
    says: str
    reason: str


def forum_date(r: Rehearsal, instance: Instance) -> ForumDate | None:
    """The scenario's date for the forum if it gives one, else the earliest the six-week rule
    allows after the final report as planned (None when the final report has no date)."""
    given = r.scenario.fix_dates.get("forum")
    if given is not None:
        span = Span.parse(given)
        return ForumDate(span, f"Forum undated in the plan: the scenario ({r.scenario.name}) "
                         f"has it open on {span.start.human()}",
                         "rehearsal: the plan leaves the forum undated; the scenario's date")
    earliest = earliest_forum_opening(r.definition, instance)
    if earliest is None:
        return None
    opens = earliest.opens
    return ForumDate(
        Span(PlanDate(opens.year, opens.month, opens.day)),
        f"Forum undated in the plan: assuming it opens on {human_day(opens)} (earliest the "
        f"six-week rule allows after the final report planned for {human_day(earliest.final)})",
        f"rehearsal assumption: the plan leaves the forum undated; the earliest opening the "
        f"six-week rule ({days(earliest.lead_days)}) allows")
