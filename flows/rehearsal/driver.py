"""Rehearse a whole process on a simulated clock, through the real flows and the real store.

The clock jumps from one instant that matters to the next (a deadline, a meeting day, a
posting day, a scenario event, the night summer time ends), so ~20 months run in about a
minute. A scripted secretariat answers each manual step through the ``secretariat-action`` and
``secretariat-amend`` flows; the ``advance`` flow applies what falls due. The transcript is
read back from the audit log and depends only on the inputs: two runs give identical bytes.
"""

from __future__ import annotations

import functools
import math
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

from prefect import flow
from prefect.artifacts import (
    create_markdown_artifact,
    create_progress_artifact,
    update_progress_artifact,
)
from prefect.context import SyncClientContext

from flows.definition_file import load_definition
from flows.orchestration.advance import advance
from flows.orchestration.artifacts import publish
from flows.orchestration.deliver import deliver_notifications
from flows.orchestration.operator_view import artifact_key
from flows.orchestration.run_context import rename_run, service_for
from flows.orchestration.secretariat import (
    Amendment,
    SecretariatAction,
    secretariat_action,
    secretariat_amend,
)
from flows.rehearsal.mail import MailLog, mail_sink, register
from flows.rehearsal.scenario import Event, Scenario, fixed_span, load_scenario, local
from flows.storage import AuditEntry
from states.dates import describe, end_instant, local_day, zone
from states.definition import ProcessDefinition
from states.engine import engine_for
from states.guards import Context, due_at
from states.instance import Instance
from states.machine import Due, Mode, Spec
from states.notices import reminder_instants
from states.plan import by_key
from states.rules import Status, check, effective_milestones

TICK = timedelta(minutes=15)  # the advance deployment's cron step


@dataclass(order=True)
class Step:
    """One thing to do at one instant; ``rank`` orders things at the same instant."""

    at: datetime
    rank: int
    kind: str = field(compare=False)
    payload: Any = field(compare=False, default=None)


@dataclass
class Rehearsal:
    """The state of one rehearsal run."""

    definition: ProcessDefinition
    scenario: Scenario
    database: str
    start: datetime
    end: datetime
    experts: int
    comments: int
    lines: list[str] = field(default_factory=list)
    seen: int = 0
    runs: int = 0
    done_events: set[int] = field(default_factory=set)
    fixed: set[str] = field(default_factory=set)
    dst_done: set[date] = field(default_factory=set)
    mail: MailLog | None = None
    deliver: bool = False

    @property
    def pid(self) -> str:
        """The process under rehearsal."""
        return self.definition.id

    @property
    def actor(self) -> str:
        """Who the scripted secretariat acts as."""
        return self.scenario.actor or self.definition.secretariat[0].id


def next_step(r: Rehearsal, instance: Instance, now: datetime) -> Step | None:
    """The earliest thing that happens after ``now``, or None when nothing more can."""
    d, tz = r.definition, zone(r.definition.timezone)
    table = engine_for(d).table
    items = by_key(effective_milestones(d, instance))
    steps: list[Step] = []
    for region, state in instance.regions.items():
        for spec in table.outgoing(region, state):
            if spec.mode is Mode.AUTOMATIC:
                when = due_at(Context(d, instance, spec, items, tz, now))
                if when is not None:
                    steps.append(Step(_ceil(max(when, now)), 3, "tick"))
            else:
                steps.extend(_posting(r, spec, items, now, tz))
    nominations = items.get("nominations")
    if nominations is not None and nominations.start is not None and nominations.start.exact \
            and "nominations" not in r.fixed:
        closes = end_instant(nominations.start, tz)
        if closes > now:
            steps.append(Step(closes, 2, "nominations", nominations))
    for when in reminder_instants(d, instance, items):
        if when > now:
            steps.append(Step(_ceil(when), 3, "tick"))
    for item in items.values():
        done = any(s.milestone == item.key and s.trigger in instance.happened
                   for s in table.specs if s.region == "main")
        if item.start is not None and not item.start.exact and not done:
            warn = item.start.first_day() - timedelta(days=d.rules.month_warning_days)
            steps.append(Step(max(now, local(warn, time(9), tz)), 1, "fix", item))
    for number, event in enumerate(r.scenario.events):
        if number not in r.done_events and event.kind != "post-late":
            steps.append(Step(max(now, local(event.on, event.on.at or time(9), tz)), 0,
                              "event", (number, event)))
    for night in _fall_back_nights(tz, now, r.end):
        if night not in r.dst_done:
            steps.append(Step(_local_fold(night, tz, 0), 2, "dst", night))
    return min(steps) if steps else None


def _posting(r: Rehearsal, spec: Spec, items: dict[str, Any], now: datetime,
             tz: Any) -> list[Step]:
    item = items[spec.milestone or ""]
    if item.start is None or not item.start.exact:
        return []
    at = local(item.start, r.scenario.posting_clock(), tz)
    at += timedelta(days=r.scenario.delay(spec.trigger))
    if at <= now:
        at = local(local_day(now, tz) + timedelta(days=1), r.scenario.posting_clock(), tz)
    return [Step(at, 4, "post", spec)]


def perform(r: Rehearsal, step: Step) -> None:
    """Do one step through the real flows, then append what the audit log now says."""
    now = step.at.astimezone(UTC)
    if step.kind == "tick":
        _run(r, advance, now=now, database=r.database)
    elif step.kind == "dst":
        r.dst_done.add(step.payload)
        tz = zone(r.definition.timezone)
        for fold in (0, 1):
            _run(r, advance, now=_local_fold(step.payload, tz, fold), database=r.database)
        r.lines.append(f"{step.payload.isoformat()} system       summer time ends: the 02:30 "
                       "tick ran twice (CEST and CET); nothing was applied twice")
    elif step.kind == "fix":
        span = fixed_span(step.payload, r.scenario)
        _amend(r, now, step.payload.key, str(span), f"date fixed: {step.payload.label}")
    elif step.kind == "event":
        number, event = step.payload
        r.done_events.add(number)
        _event(r, now, event)
    elif step.kind == "post":
        _post(r, now, step.payload)
    elif step.kind == "nominations":
        r.fixed.add("nominations")
        with service_for(r.database) as service:
            nominated = service.store.experts(r.pid)
        late = sum(e.late for e in nominated)
        r.lines.append(f"{step.payload.start.first_day().isoformat()} register     "
                       f"nominations deadline passed: {len(nominated)} expert(s) nominated"
                       + (f", {late} late" if late else ""))
    _read_back(r)
    _mail(r, now)


def _mail(r: Rehearsal, now: datetime) -> None:
    """Say what was queued; with a sink, deliver it through the real delivery flow."""
    if r.mail is None:
        return
    day = local_day(now, zone(r.definition.timezone)).isoformat()
    queued = r.mail.queued(day)
    r.lines.extend(queued)
    if r.deliver and queued:
        state = _run(r, deliver_notifications, now=now, database=r.database, smtp=r.mail.sink)
        result = state.result() if state.is_completed() else {}
        sent, failed = result.get("sent", 0), result.get("failed", 0)
        r.mail.delivered += sent
        r.lines.append(f"{day} mail         delivered {sent}" +
                       (f", {failed} failed" if failed else ""))


def _run(r: Rehearsal, flow_fn: Any, **kwargs: Any) -> Any:
    """One real flow run. Views are published once at the end, not by every step, and no
    await-secretariat run is requested: the scripted secretariat answers instead."""
    r.runs += 1
    if flow_fn is advance:
        kwargs["ask_secretariat"] = False
    if flow_fn is deliver_notifications:
        kwargs["limit"] = 100_000
    return flow_fn(return_state=True, publish_artifacts=False, **kwargs)  # type: ignore[no-any-return]


def _amend(r: Rehearsal, now: datetime, key: str, value: str, reason: str,
           override: bool = False) -> bool:
    change = Amendment(process=r.pid, milestone=key, date=value, actor=r.actor, reason=reason,
                       override=override)
    state = _run(r, secretariat_amend, change=change, now=now, database=r.database)
    return bool(state.is_completed())


def _event(r: Rehearsal, now: datetime, event: Event) -> None:
    if event.kind == "amend" and event.milestone and event.date:
        if not _amend(r, now, event.milestone, event.date, event.reason, event.override):
            _read_back(r)
            _amend(r, now, event.milestone, event.date,
                   f"{event.reason} (accepted although it breaks a rule)", True)
    elif event.kind == "attempt" and event.trigger:
        action = SecretariatAction(process=r.pid, trigger=event.trigger, actor=r.actor,
                                   document="attempt", reason=event.reason)
        _run(r, secretariat_action, action=action, now=now, database=r.database)


def _post(r: Rehearsal, now: datetime, spec: Spec) -> None:
    d = r.definition
    number = [c.id for c in d.cycles].index(spec.cycle or "") + 1
    cycle = d.cycle(spec.cycle or "")
    document = f"{d.forum.name}/{'FINAL' if cycle.kind == 'final' else number}"
    with service_for(r.database) as service:
        _, _, instance = service.load(r.pid)
    forum_unset = by_key(effective_milestones(d, instance))["forum"].start is None
    action = SecretariatAction(
        process=r.pid, trigger=spec.trigger, actor=r.actor, document=document,
        override=cycle.kind == "final" and forum_unset,
        reason="the forum's dates are not yet set by Council" if forum_unset else None)
    state = _run(r, secretariat_action, action=action, now=now, database=r.database)
    if state.is_completed():
        return
    _read_back(r)
    message = state.message or ""
    if "comment-window" in message:
        new = local_day(now, zone(d.timezone)) + timedelta(days=42)
        _amend(r, now, f"{cycle.id}.comments", new.isoformat(), "posting slipped: six weeks "
               "for comments from the actual posting")
        if cycle.public_consultation:
            _read_back(r)
            _amend(r, now, f"{cycle.id}.consultation", new.isoformat(), "follows the comments")
        _read_back(r)
        _run(r, secretariat_action, action=action, now=now, database=r.database)
    elif "six-weeks" in message:
        late = action.model_copy(update={"override": True, "reason": "posted late; the "
                                         "secretariat records the override"})
        _run(r, secretariat_action, action=late, now=now, database=r.database)


def _read_back(r: Rehearsal) -> None:
    """Turn the audit entries written since last time into transcript lines."""
    with service_for(r.database) as service:
        entries = [e for e in service.store.audit(r.pid) if e.seq > r.seen]
        _, _, instance = service.load(r.pid)
    for entry in entries:
        r.seen = entry.seq
        r.lines.extend(_describe(r, entry, instance))


def _describe(r: Rehearsal, e: AuditEntry, instance: Instance) -> list[str]:
    d = r.definition
    tz = zone(d.timezone)
    spec = engine_for(d).table.by_trigger.get(e.trigger or "")
    day = local_day(e.at, tz)
    who = f"{e.actor:<12}"
    if e.kind == "transition" and spec is not None:
        due = e.inputs.get("due")
        if due:
            instant = datetime.fromisoformat(str(due))
            day = local_day(instant - timedelta(microseconds=1) if spec.due is Due.END
                            else instant, tz)
        text = f"{day.isoformat()} {who} {spec.label}"
        if e.inputs.get("document"):
            text += f" (document {e.inputs['document']})"
        if due:
            text += f" — due {describe(datetime.fromisoformat(str(due)), tz)}"
        overridden = sorted({o.rule for o in instance.overrides if o.what == spec.trigger})
        if spec.guards and overridden:  # a refusal set aside is not a check passed
            text += (f" [checks: {', '.join(spec.guards)}; set aside by override: "
                     f"{', '.join(overridden)}]")
        elif spec.guards:
            text += f" [checks passed: {', '.join(spec.guards)}]"
        lines = [text]
        if spec.trigger.startswith("post_") and spec.cycle == d.cycles[-1].id:
            six = [x for x in check(d, effective_milestones(d, instance)) if x.rule == "six-weeks"]
            lines += [f"{day.isoformat()} rules        six-weeks: {x.status.value} — {x.message}"
                      for x in six]
        if spec.event == "comments_closed" and r.comments:
            lines.append(f"{day.isoformat()} register     {r.comments} comments on the "
                         f"{d.cycle(spec.cycle or '').name} counted as received (simulated)")
        return lines
    if e.kind == "amendment":
        results = check(d, effective_milestones(d, instance))
        broken = sum(x.status is Status.FAIL for x in results)
        return [f"{day.isoformat()} {who} amended {e.inputs.get('milestone')}: "
                f"{e.inputs.get('from')} → {e.inputs.get('to')} ({e.reason}); rules re-checked: "
                f"{len(results)}, {broken} broken"]
    if e.kind == "override":
        return [f"{day.isoformat()} {who} OVERRIDE {e.inputs.get('rule')}: {e.reason}"]
    if e.kind == "refusal":
        return [f"{day.isoformat()} {who} REFUSED {e.trigger}: {e.reason}"]
    if e.kind == "init":
        return [f"{day.isoformat()} {who} process {r.pid} created"]
    if e.kind == "notice":
        return [f"{day.isoformat()} {who} message decided: {e.inputs.get('event')} to "
                f"{e.inputs.get('audience')}"]
    return [f"{day.isoformat()} {who} {e.kind} {e.trigger or ''}".rstrip()]


def _ceil(instant: datetime) -> datetime:
    """The first cron tick at or after an instant."""
    seconds = instant.timestamp()
    step = TICK.total_seconds()
    return datetime.fromtimestamp(math.ceil(seconds / step) * step, UTC)


def _fall_back_nights(tz: Any, start: datetime, end: datetime) -> list[date]:
    """Days in (start, end] when clocks go back, so a 02:30 cron tick happens twice."""
    years = range(local_day(start, tz).year, local_day(end, tz).year + 1)
    return [n for year in years for n in _nights(tz, year)
            if start < _local_fold(n, tz, 0) and local(n, time(12), tz) <= end]


@functools.lru_cache(maxsize=32)
def _nights(tz: Any, year: int) -> tuple[date, ...]:
    """The year's fall-back days in a zone (none where there is no summer time)."""
    nights = []
    day = date(year, 1, 1)
    while day.year == year:
        early = datetime.combine(day, time(2, 30), tzinfo=tz)
        offsets = early.utcoffset(), early.replace(fold=1).utcoffset()
        if offsets[0] is not None and offsets[1] is not None and offsets[0] > offsets[1]:
            nights.append(day)
        day += timedelta(days=1)
    return tuple(nights)


def _local_fold(day: date, tz: Any, fold: int) -> datetime:
    return datetime.combine(day, time(2, 30), tzinfo=tz).replace(fold=fold).astimezone(UTC)


def _more(r: Rehearsal, instance: Instance, now: datetime) -> bool:
    """Whether anything but summer-time nights is still ahead."""
    probe = Rehearsal(r.definition, r.scenario, r.database, r.start, r.end, 0, 0,
                      done_events=r.done_events, dst_done=set(_fall_back_nights(
                          zone(r.definition.timezone), now, r.end)))
    return next_step(probe, instance, now) is not None


def rehearsal(definition_path: str, database: str, start: date | None = None,
              end: date | None = None, experts: int = 0, comments: int = 0,
              scenario_path: str | None = None, mail_dir: str | None = None) -> str:
    """Run the whole process on a simulated clock; returns the transcript.

    A driver, not a flow: each step is a top-level flow run of its own (subflows cost about
    twice as much to create, measured), and the progress and transcript are artifacts.
    """
    d = load_definition(definition_path)
    scenario = load_scenario(Path(scenario_path) if scenario_path else None)
    tz = zone(d.timezone)
    items = effective_milestones(d)
    first = min(m.start.first_day() for m in items if m.start is not None)
    last = max((m.last or m.start).last_day() for m in items if m.start is not None)
    begin = local(start or first - timedelta(days=7), time(0), tz)
    finish = local(end or last + timedelta(days=365), time(0), tz)
    r = Rehearsal(d, scenario, database, begin.astimezone(UTC), finish.astimezone(UTC), experts,
                  comments)
    r.lines.append(f"# rehearsal of {d.id} from {definition_path} ({scenario.name}); "
                   f"{begin.date().isoformat()} to {finish.date().isoformat()}, {tz.key}")
    with service_for(database) as service:
        service.init(d, r.start)
    _read_back(r)
    if experts or mail_dir:
        r.mail, r.deliver = MailLog(database, d.id), mail_dir is not None
        if experts:
            register(d, database, experts, r.start)
            r.lines.append(f"{begin.date().isoformat()} secretariat  registered {experts} "
                           "nominated experts (synthetic)")
        with ExitStack() as stack:
            if mail_dir:
                r.mail.sink = stack.enter_context(mail_sink(Path(mail_dir)))
            return _drive(r, begin, finish)
    return _drive(r, begin, finish)


def _drive(r: Rehearsal, begin: datetime, finish: datetime) -> str:
    """Step the simulated clock until the process closes or nothing more can happen."""
    d, database, tz = r.definition, r.database, zone(r.definition.timezone)
    _mail(r, r.start)
    progress = UUID(_run(r, rehearsal_report, process=d.id, database=database,
                         now=r.start).result())
    now, shown = r.start, 0.0
    while True:
        with service_for(database) as service:
            _, _, instance = service.load(d.id)
        if instance.regions["main"] == "closed":
            r.lines.append(f"{local_day(now, tz).isoformat()} system       process closed")
            break
        step = next_step(r, instance, now)
        if step is None or step.at > r.end or (step.kind == "dst" and not _more(r, instance, now)):
            r.lines.append(f"{local_day(now, tz).isoformat()} system       stopped: nothing "
                           f"more can happen before {finish.date().isoformat()} "
                           f"(state: {instance.regions['main']})")
            forum = d.forum
            if forum.opens is None and "forum" not in instance.amendments:
                r.lines.append(f"{local_day(now, tz).isoformat()} system       the forum "
                               f"({forum.name}, {forum.expected or 'date to be set'}) has no "
                               f"date: set it with 'prepflow amend {d.id} forum YYYY-MM-DD'")
            break
        now = step.at
        perform(r, step)
        share = (now - r.start) / (r.end - r.start)
        if share - shown >= 0.25:  # a quarter at a time: progress is one API call
            shown = share
            # Outside a run Prefect would open a client for the call and never close it.
            with SyncClientContext.get_or_create():
                update_progress_artifact(progress, min(100.0, round(100 * share, 1)))
    r.runs += 1  # the report below
    if r.mail is not None and r.deliver:
        r.lines.append(f"# {r.mail.delivered} messages delivered to the mail sink")
    r.lines.append(f"# {r.runs} flow runs")
    transcript = "\n".join(r.lines) + "\n"
    rehearsal_report(process=d.id, database=database, now=now, transcript=transcript,
                     progress_id=str(progress))
    return transcript


@flow(name="rehearsal-report", log_prints=False, persist_result=True)
def rehearsal_report(process: str, database: str, now: datetime, transcript: str = "",
                     progress_id: str = "", publish_artifacts: bool = False) -> str:
    """Open a rehearsal (its progress artifact) or close it (views, transcript, 100 %)."""
    if not transcript:
        rename_run(f"{process}: rehearsal started")
        return str(create_progress_artifact(
            0.0, key=artifact_key(process, "rehearsal-progress"),
            description=f"{process}: rehearsal, share of simulated time done"))
    with service_for(database) as service:
        publish(service, process, now)
    create_markdown_artifact(f"```\n{transcript}```", key=artifact_key(process, "rehearsal"),
                             description=f"{process}: rehearsal transcript")
    if progress_id:
        update_progress_artifact(UUID(progress_id), 100.0)
    rename_run(f"{process}: rehearsal finished")
    return ""
