"""Comments in a rehearsal: ``--comments N`` contributions per draft, through the real register.

For each draft with a comment window, the scripted secretariat records what came in: half of
the on-time contributions mid-window, the rest on the deadline day, then one or two late ones
two days after the deadline (accepted, flagged late, counted apart). Senders are mostly Member
States, then Sector Members, Academia and Associates, from the definition's regions; kinds are
mixed (comments on the draft, contributions on outlines of possible draft Opinions until they
are annexed, comments on a draft Opinion once there is one); the public only on a draft with an
open public consultation, received while it is open. Each batch is one transaction of
``flows.contributions.record`` (as ``prepflow comments import``), seeded by process and cycle,
so the transcript is stable. The window's summary is recorded by the close itself
(``states.contributions``).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta

from flows.contributions import record
from flows.orchestration.run_context import service_for
from flows.rehearsal.scenario import local
from flows.rehearsal.stepping import Rehearsal
from states.contributions import (
    ContributionDraft,
    ContributionKind,
    SubmitterCategory,
    comment_deadline,
)
from states.dates import PlanDate, end_instant, local_day, zone
from states.definition import CycleDef, ProcessDefinition
from states.errors import Refused
from states.forum import Stage
from states.instance import Instance
from states.plan import by_key
from states.rules import effective_milestones

#: Who comments on a draft, by weight: mostly the membership's Member States.
CATEGORY_WEIGHTS = {SubmitterCategory.MEMBER_STATE: 50, SubmitterCategory.SECTOR_MEMBER: 25,
                    SubmitterCategory.ACADEMIA: 15, SubmitterCategory.ASSOCIATE: 10}
#: Share of on-time contributions from the public while a consultation is open.
PUBLIC_SHARE = 0.2
#: Member States by ITU region (invented content; real names, ISO codes).
COUNTRIES = {"A": (("Brazil", "BR"), ("Canada", "CA"), ("Mexico", "MX")),
             "B": (("France", "FR"), ("Germany", "DE"), ("Switzerland", "CH")),
             "C": (("Kazakhstan", "KZ"), ("Armenia", "AM"), ("Uzbekistan", "UZ")),
             "D": (("Kenya", "KE"), ("Nigeria", "NG"), ("Senegal", "SN")),
             "E": (("India", "IN"), ("Japan", "JP"), ("Indonesia", "ID"))}
LANGUAGES = {"A": "es", "B": "fr", "C": "ru", "D": "fr", "E": "en"}
#: The batches of a window: mid-window, on the deadline day, late (after the deadline).
MID, LAST, LATE = 0, 1, 2


@dataclass
class CommentWindows:
    """Record ``r.comments`` contributions per draft comment window, in three batches."""

    name: str = "comments"
    done: set[tuple[str, int]] = field(default_factory=set)
    refused: bool = False
    """A batch was refused (audited, in the transcript): the action stops asking."""

    def next_at(self, r: Rehearsal, instance: Instance, now: datetime) -> datetime | None:
        """The earliest batch not yet recorded of a draft already posted."""
        if self.refused or r.comments <= 0:
            return None
        due = [at for cycle in _windows(r.definition) if instance.posted_at(cycle.id)
               for batch, at in batch_times(r, instance, cycle).items()
               if (cycle.id, batch) not in self.done]
        return min(due, default=None)

    def perform(self, r: Rehearsal, now: datetime) -> None:
        """Record every batch due by ``now`` (one transaction each)."""
        with service_for(r.database, r.caller) as service:
            _, definition, instance = service.load(r.pid)
            for cycle in _windows(definition):
                if not instance.posted_at(cycle.id):
                    continue
                for batch, at in batch_times(r, instance, cycle).items():
                    if (cycle.id, batch) in self.done or at > now:
                        continue
                    self.done.add((cycle.id, batch))
                    drafts = drafts_for(r, definition, instance, cycle, batch, now)
                    try:
                        record(service, r.pid, drafts, r.actor, now)
                    except Refused:
                        self.refused = True
                        return


def _windows(definition: ProcessDefinition) -> list[CycleDef]:
    return [c for c in definition.cycles if c.comment_deadline is not None]


def _sizes(r: Rehearsal, cycle: str) -> dict[int, int]:
    """How many contributions each batch holds: N in all, one or two of them late."""
    late = 0 if r.comments < 3 else 1 if r.comments < 20 else _rng(r, cycle).choice((1, 2))
    on_time = r.comments - late
    return {MID: on_time // 2, LAST: on_time - on_time // 2, LATE: late}


def batch_times(r: Rehearsal, instance: Instance, cycle: CycleDef) -> dict[int, datetime]:
    """When each non-empty batch is recorded: mid-window and on the deadline day at 17:00,
    two days after the deadline at 10:00 (the process's zone)."""
    tz = zone(r.definition.timezone)
    posted = instance.posted_at(cycle.id)
    assert posted is not None
    deadline = comment_deadline(r.definition, instance, cycle.id)
    last_day = local_day(deadline - timedelta(microseconds=1), tz)
    middle = local_day(posted + (deadline - posted) / 2, tz)
    times = {MID: local(middle, time(17), tz), LAST: local(last_day, time(17), tz),
             LATE: local(last_day + timedelta(days=2), time(10), tz)}
    return {batch: at for batch, at in times.items() if _sizes(r, cycle.id)[batch] > 0}


def _rng(r: Rehearsal, cycle: str, batch: int = 0) -> random.Random:
    return random.Random(f"{r.pid}:{cycle}:{batch}")


def drafts_for(r: Rehearsal, definition: ProcessDefinition, instance: Instance, cycle: CycleDef,
            batch: int, now: datetime) -> list[tuple[str, ContributionDraft]]:
    """One batch's contributions, received spread over its part of the window."""
    rng = _rng(r, cycle.id, batch)
    posted = instance.posted_at(cycle.id)
    assert posted is not None
    deadline = comment_deadline(definition, instance, cycle.id)
    batches = batch_times(r, instance, cycle)
    if batch == LATE:
        start, end = deadline, now
    else:
        start = posted if batch == MID else max(posted, batches.get(MID, posted))
        end = min(now, deadline - timedelta(minutes=1))
    consultation = _consultation_end(definition, instance, cycle)
    regions = [x.id for x in definition.notifications.regions]
    opinions = sorted(instance.opinions)
    # Outlines of possible draft Opinions are contributed on until the Opinions are annexed.
    outlines = all(o.stage in (Stage.OUTLINE, Stage.POSSIBLE) for o in instance.opinions.values())
    size = _sizes(r, cycle.id)[batch]
    first = 1 + sum(n for b, n in _sizes(r, cycle.id).items() if b < batch)
    drafts = []
    for offset in range(size):
        number = first + offset
        received = start + (end - start) * (offset + 1) / (size + 1)
        received = max(start, received.replace(second=0, microsecond=0))
        public = (batch != LATE and consultation is not None and received < consultation
                  and rng.random() < PUBLIC_SHARE)
        category = SubmitterCategory.PUBLIC if public else rng.choices(
            list(CATEGORY_WEIGHTS), weights=list(CATEGORY_WEIGHTS.values()))[0]
        kinds = [ContributionKind.DRAFT_COMMENT] + (
            [ContributionKind.OPINION_OUTLINE] if outlines else []) + (
            [ContributionKind.OPINION_COMMENT] if opinions else [])
        kind = rng.choice(kinds)
        region = rng.choice(regions) if regions and not public else None
        submitter, country = _sender(rng, category, region, number)
        drafts.append((f"{cycle.id} #{number}", ContributionDraft(
            process_id=r.pid, cycle=cycle.id, submitter=submitter, category=category,
            country=country, region=region, received_at=received, kind=kind,
            title=f"{kind.value.replace('-', ' ').capitalize()} on the {cycle.name}",
            document=f"{cycle.id.upper()}-C{number:03d}",
            language=LANGUAGES.get(region or "", "en") if rng.random() < 0.3 else "en",
            opinion=rng.choice(opinions) if kind is ContributionKind.OPINION_COMMENT else None)))
    return drafts


def _sender(rng: random.Random, category: SubmitterCategory, region: str | None,
            number: int) -> tuple[str, str | None]:
    """An invented sender of a category in a region, and its country when it is a State."""
    if category is SubmitterCategory.PUBLIC:
        return f"Member of the public {number}", None
    if category is SubmitterCategory.MEMBER_STATE:
        name, code = rng.choice(COUNTRIES.get(region or "", ((f"Member State {number}", ""),)))
        return name, code or None
    label = {SubmitterCategory.SECTOR_MEMBER: "Sector Member",
             SubmitterCategory.ACADEMIA: "University", SubmitterCategory.ASSOCIATE: "Associate"}
    return f"{label[category]} {number} ({region or 'no region'})", None


def _consultation_end(definition: ProcessDefinition, instance: Instance,
                      cycle: CycleDef) -> datetime | None:
    """When the public consultation on the draft closes (None: none is held on it)."""
    if not cycle.public_consultation:
        return None
    closes = by_key(effective_milestones(definition, instance))[f"{cycle.id}.consultation"].start
    if closes is None:
        return None
    if not closes.exact:
        closes = PlanDate(closes.year, closes.month, closes.last_day().day)
    return end_instant(closes, zone(definition.timezone))
