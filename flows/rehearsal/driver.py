"""Rehearse a whole process on a simulated clock, through the real flows and the real store.

The clock jumps from one instant that matters to the next (a deadline, a meeting day, a
posting day, a scenario event, the night summer time ends), so ~20 months run in about a
minute. A scripted secretariat answers each manual step through the ``secretariat-action`` and
``secretariat-amend`` flows; the ``advance`` flow applies what falls due. What it does at a
stage beyond the postings (dating an undated forum before the final report, ...) are stage
actions, registered in ``flows.rehearsal.stages``. The transcript is read back from the audit
log and depends only on the inputs: two runs give identical bytes.
"""

from __future__ import annotations

from contextlib import ExitStack
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from uuid import UUID

from prefect.artifacts import (
    create_markdown_artifact,
    create_progress_artifact,
    update_progress_artifact,
)
from prefect.context import SyncClientContext

from flows.definition_file import load_definition
from flows.identity.members import issue_token
from flows.orchestration.advance import advance
from flows.orchestration.artifacts import publish
from flows.orchestration.deliver import deliver_notifications
from flows.orchestration.operator_view import artifact_key
from flows.orchestration.run_context import rename_run, service_for, store_flow
from flows.orchestration.secretariat import SecretariatAction, secretariat_action
from flows.rehearsal.mail import MailLog, mail_sink, register
from flows.rehearsal.runs import amend, comment_windows, read_back, run_flow
from flows.rehearsal.scenario import Event, fixed_span, load_scenario, local
from flows.rehearsal.stages import stage_actions
from flows.rehearsal.stepping import (
    Rehearsal,
    StageAction,
    Step,
    local_fold,
    more_ahead,
    next_step,
)
from states.dates import describe, local_day, zone
from states.definition import ProcessDefinition
from states.errors import RuleId
from states.machine import Spec
from states.plan import Milestone, by_key
from states.roles import Role, granted
from states.rules import effective_milestones

#: Steps in a row at one instant that change nothing before the rehearsal stops as stuck.
STUCK = 20


def perform(r: Rehearsal, step: Step) -> None:
    """Do one step through the real flows, then append what the audit log now says."""
    now = step.at.astimezone(UTC)
    payload = step.payload
    if step.kind == "tick":
        run_flow(r, advance, now=now, database=r.database)
    elif step.kind == "dst" and isinstance(payload, date):
        _summer_time_ends(r, payload)
    elif step.kind == "fix" and isinstance(payload, Milestone):
        span = fixed_span(payload, r.scenario)
        amend(r, now, payload.key, str(span), f"date fixed: {payload.label}")
    elif step.kind == "event" and isinstance(payload, tuple):
        number, event = payload
        r.done_events.add(number)
        _event(r, now, event)
    elif step.kind == "post" and isinstance(payload, Spec):
        _post(r, now, payload)
    elif step.kind == "nominations" and isinstance(payload, Milestone):
        _nominations(r, payload)
    elif step.kind == "stage" and isinstance(payload, StageAction):
        payload.perform(r, now)
    read_back(r)
    _mail(r, now)


def _summer_time_ends(r: Rehearsal, night: date) -> None:
    """Run the 02:30 tick twice, as cron does on the night clocks go back (habit 3)."""
    r.dst_done.add(night)
    tz = zone(r.definition.timezone)
    for fold in (0, 1):
        run_flow(r, advance, now=local_fold(night, tz, fold), database=r.database)
    r.lines.append(f"{night.isoformat()} system       summer time ends: the 02:30 "
                   "tick ran twice (CEST and CET); nothing was applied twice")


def _nominations(r: Rehearsal, item: Milestone) -> None:
    """Say how many experts the register holds when the nominations deadline passes."""
    r.fixed.add("nominations")
    with service_for(r.database) as service:
        nominated = service.store.experts(r.pid)
    late = sum(e.late for e in nominated)
    first = item.start.first_day().isoformat() if item.start else ""
    r.lines.append(f"{first} register     nominations deadline passed: {len(nominated)} "
                   "expert(s) nominated" + (f", {late} late" if late else ""))


def _mail(r: Rehearsal, now: datetime) -> None:
    """Say what was queued; with a sink, deliver it through the real delivery flow."""
    if r.mail is None:
        return
    day = local_day(now, zone(r.definition.timezone)).isoformat()
    queued = r.mail.queued(day)
    r.lines.extend(queued)
    if r.deliver and queued:
        state = run_flow(r, deliver_notifications, now=now, database=r.database, smtp=r.mail.sink)
        result = state.result() if state.is_completed() else {}
        sent, failed = result.get("sent", 0), result.get("failed", 0)
        r.mail.delivered += sent
        r.lines.append(f"{day} mail         delivered {sent}" +
                       (f", {failed} failed" if failed else ""))


def _event(r: Rehearsal, now: datetime, event: Event) -> None:
    if event.kind == "amend" and event.milestone and event.date:
        if not amend(r, now, event.milestone, event.date, event.reason, event.override):
            read_back(r)
            amend(r, now, event.milestone, event.date,
                   f"{event.reason} (accepted although it breaks a rule)", True)
    elif event.kind == "attempt" and event.trigger:
        action = SecretariatAction(process=r.pid, trigger=event.trigger, actor=r.actor,
                                   token=r.secret, document="attempt", reason=event.reason)
        run_flow(r, secretariat_action, action=action, now=now, database=r.database)


def _post(r: Rehearsal, now: datetime, spec: Spec) -> None:
    d = r.definition
    number = [c.id for c in d.cycles].index(spec.cycle or "") + 1
    cycle = d.cycle(spec.cycle or "")
    document = f"{d.forum.name}/{'FINAL' if cycle.kind == 'final' else number}"
    with service_for(r.database) as service:
        _, _, instance = service.load(r.pid)
    forum_unset = by_key(effective_milestones(d, instance))["forum"].start is None
    action = SecretariatAction(
        process=r.pid, trigger=spec.trigger, actor=r.actor, token=r.secret, document=document,
        override=cycle.kind == "final" and forum_unset,
        reason="the forum's dates are not yet set by Council" if forum_unset else None)
    state = run_flow(r, secretariat_action, action=action, now=now, database=r.database)
    if state.is_completed():
        return
    refused = [e.inputs.get("rule") for e in read_back(r) if e.kind == "refusal"]
    rule = refused[-1] if refused else None  # the refusal's typed rule id, not its text
    if rule == RuleId.COMMENT_WINDOW:
        new = local_day(now, zone(d.timezone)) + timedelta(days=42)
        amend(r, now, f"{cycle.id}.comments", new.isoformat(), "posting slipped: six weeks "
               "for comments from the actual posting")
        if cycle.public_consultation:
            read_back(r)
            amend(r, now, f"{cycle.id}.consultation", new.isoformat(), "follows the comments")
        read_back(r)
        run_flow(r, secretariat_action, action=action, now=now, database=r.database)
    elif rule == RuleId.SIX_WEEKS:
        late = action.model_copy(update={"override": True, "reason": "posted late; the "
                                         "secretariat records the override"})
        run_flow(r, secretariat_action, action=late, now=now, database=r.database)


def rehearsal_id(process_id: str) -> str:
    """A rehearsal's own process id: its runs, tags and artifact keys never meet the live
    process's (issue 11: a live tick overwrote a rehearsal's status under one key)."""
    return f"{process_id}-rehearsal"


def rehearsal_tags(process_id: str) -> list[str]:
    """The Prefect tags of every run of a rehearsal (``prepflow up`` clears them by these)."""
    return ["rehearsal", f"process:{process_id}"]


def rehearsal(definition_path: str, database: str, start: date | None = None,
              end: date | None = None, experts: int = 0, comments: int = 0,
              scenario_path: str | None = None, mail_dir: str | None = None,
              process_id: str | None = None) -> str:
    """Run the whole process on a simulated clock; returns the transcript.

    A driver, not a flow: each step is a top-level flow run of its own (subflows cost about
    twice as much to create, measured), and the progress and transcript are artifacts. The
    process is rehearsed as ``process_id`` (default: ``rehearsal_id`` of the definition's),
    its runs tagged ``rehearsal_tags``.
    """
    from prefect import tags

    d = load_definition(definition_path)
    pid = process_id or rehearsal_id(d.id)
    with tags(*rehearsal_tags(pid)):
        return _rehearse(d, definition_path, database, start, end, experts, comments,
                         scenario_path, mail_dir, pid)


def _rehearse(d: ProcessDefinition, definition_path: str, database: str, start: date | None,
              end: date | None, experts: int, comments: int, scenario_path: str | None,
              mail_dir: str | None, pid: str) -> str:
    scenario = load_scenario(Path(scenario_path) if scenario_path else None)
    tz = zone(d.timezone)
    items = effective_milestones(d)
    first = min(m.start.first_day() for m in items if m.start is not None)
    last = max((m.last or m.start).last_day() for m in items if m.start is not None)
    begin = local(start or first - timedelta(days=7), time(0), tz)
    finish = local(end or last + timedelta(days=365), time(0), tz)
    r = Rehearsal(d, scenario, database, begin.astimezone(UTC), finish.astimezone(UTC), experts,
                  comments, process_id=pid)
    r.stages = stage_actions(r)
    r.lines.append(f"# rehearsal of {d.id} from {definition_path} ({scenario.name}); "
                   f"{begin.date().isoformat()} to {finish.date().isoformat()}, {tz.key}")
    with service_for(database) as service:
        service.init(d, r.start, process_id=pid)
        if d.require_tokens:  # the scripted secretariat issues its own (issue 10)
            issuer = next((m.id for m in d.secretariat if Role.REGISTER in granted(m.roles)),
                          r.actor)
            _, r.token = issue_token(service, pid, r.actor, issuer, r.start)
    read_back(r)
    if experts or mail_dir:
        r.mail, r.deliver = MailLog(database, pid), mail_dir is not None
        if experts:
            register(d, database, experts, r.start, pid)
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
    progress = UUID(run_flow(r, rehearsal_report, process=r.pid, database=database,
                         now=r.start).result())
    now, shown, idle = r.start, 0.0, 0
    while True:
        with service_for(database) as service:
            _, _, instance = service.load(r.pid)
        if instance.regions["main"] == "closed":
            r.lines.append(f"{local_day(now, tz).isoformat()} system       process closed")
            break
        step = next_step(r, instance, now)
        if step is None or step.at > r.end or (step.kind == "dst"
                                               and not more_ahead(r, instance, now)):
            r.lines.append(f"{local_day(now, tz).isoformat()} system       stopped: nothing "
                           f"more can happen before {finish.date().isoformat()} "
                           f"(state: {instance.regions['main']})")
            forum = d.forum
            if forum.opens is None and "forum" not in instance.amendments:
                r.lines.append(f"{local_day(now, tz).isoformat()} system       the forum "
                               f"({forum.name}, {forum.expected or 'date to be set'}) has no "
                               f"date: set it with 'prepflow amend {r.pid} forum YYYY-MM-DD'")
            break
        before, repeated = (r.seen, len(r.lines)), step.at == now
        now = step.at
        perform(r, step)
        idle = idle + 1 if repeated and (r.seen, len(r.lines)) == before else 0
        if idle >= STUCK:  # e.g. a due transition a guard holds back, asked for again and again
            r.lines.append(f"{local_day(now, tz).isoformat()} system       stopped: stuck at "
                           f"{describe(now, tz)}: a '{step.kind}' step keeps falling due and "
                           f"changes nothing (state: {instance.regions['main']})")
            break
        share = (now - r.start) / (r.end - r.start)
        if share - shown >= 0.25:  # a quarter at a time: progress is one API call
            shown = share
            # Outside a run Prefect would open a client for the call and never close it.
            with SyncClientContext.get_or_create():
                update_progress_artifact(progress, min(100.0, round(100 * share, 1)))
    r.runs += 1  # the report below
    if r.comments:
        r.lines.extend(comment_windows(r))
    if r.mail is not None and r.deliver:
        r.lines.append(f"# {r.mail.delivered} messages delivered to the mail sink")
    r.lines.append(f"# {r.runs} flow runs")
    transcript = "\n".join(r.lines) + "\n"
    rehearsal_report(process=r.pid, database=database, now=now, transcript=transcript,
                     progress_id=str(progress))
    return transcript


@store_flow(name="rehearsal-report", log_prints=False, persist_result=True)
def rehearsal_report(process: str, database: str, now: datetime, transcript: str = "",
                     progress_id: str = "", publish_artifacts: bool = False) -> str:
    """Open a rehearsal (its progress artifact) or close it (views, transcript, 100 %)."""
    if not transcript:
        rename_run(f"{process}: rehearsal started")
        return str(create_progress_artifact(
            0.0, key=artifact_key(process, "progress"),
            description=f"{process}: rehearsal, share of simulated time done"))
    with service_for(database) as service:
        publish(service, process, now)
    create_markdown_artifact(f"```\n{transcript}```", key=artifact_key(process, "transcript"),
                             description=f"{process}: rehearsal transcript")
    if progress_id:
        update_progress_artifact(UUID(progress_id), 100.0)
    rename_run(f"{process}: rehearsal finished")
    return ""
