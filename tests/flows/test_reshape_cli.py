"""Reshaping a running WTPF-26 process through the CLI: split, add, cancel, change, revise."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml
from icalendar import Calendar

from flows.cli import app as cli
from flows.definition_file import load_definition
from flows.mail.outbox_plan import recipients
from flows.mail.render import Renderer
from flows.nominations import acknowledgements, check_row
from flows.storage import OutboxItem, SqlStore
from states.definition import FocalPoint
from tests.flows.test_cli import BY, WTPF, Result, Run, audit, ok, one_paragraph, stored
from tests.flows.test_mail_render import SENDER, parts

PEOPLE = [("Ana", "ana@example.br", "A"), ("Kofi", "kofi@example.gh", "D")]
SPLIT = ["--session", "physical:2026-01-20..2026-01-22@Geneva",
         "--session", "informal virtual:2026-03-10", "--session", "informal virtual:2026-04-02"]


def _experts(url: str) -> None:
    """Two nominated experts, so that invitations have recipients."""
    store = SqlStore(url)
    try:
        definition = load_definition(WTPF)
        now = datetime(2024, 8, 1, tzinfo=UTC)
        drafts = [check_row(definition, {
            "first_name": name, "last_name": "Test", "entity": "Org", "email": email,
            "nominated_by": "State", "country": "XX", "region": region,
            "stakeholder_type": "government", "language": "en"}, now)
            for name, email, region in PEOPLE]
        store.add_experts("wtpf-26", drafts, acknowledgements(definition, "wtpf-26", drafts, now))
    finally:
        store.close()


@pytest.fixture
def db_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh SQLite store, set as PREPFLOW_DATABASE_URL; wide output (as test_cli)."""
    url = f"sqlite:///{tmp_path / 'prepflow.db'}"
    monkeypatch.setenv("PREPFLOW_DATABASE_URL", url)
    monkeypatch.setattr(cli.out, "width", 200)
    monkeypatch.setattr(cli.err, "width", 200)
    return url


@pytest.fixture
def run(db_url: str, capsys: pytest.CaptureFixture[str]) -> Run:
    """Call ``prepflow ARGS...`` in-process: its exit status and output."""

    def call(*args: str) -> Result:
        capsys.readouterr()
        with pytest.raises(SystemExit) as exited:
            cli.main(list(args))
        captured = capsys.readouterr()
        code = exited.value.code if isinstance(exited.value.code, int) else 1
        return Result(code, captured.out, captured.err)

    return call


@pytest.fixture
def running(run: Run, db_url: str) -> Run:
    """WTPF-26 after the Fourth Draft's comments closed, before ieg4 (fixed to 16 Feb 2026,
    virtual); the forum on 26 May 2026 (43 days after the final report: one day of slack)."""
    ok(run("init", WTPF, "--now", "2024-07-10T08:00Z"))
    _experts(db_url)
    for key, span in (("ieg1", "2024-10-07..2024-10-08"), ("ieg2", "2025-02-10..2025-02-12"),
                      ("ieg3", "2025-09-15..2025-09-16"), ("ieg4", "2026-02-16"),
                      ("forum", "2026-05-26")):
        ok(run("amend", "wtpf-26", key, span, "--by", BY, "--reason", "fixed",
               "--now", "2024-07-15T08:00Z"))
    for trigger, day in (("post_draft1", "2024-08-05"), ("post_draft2", "2024-11-04"),
                         ("post_draft3", "2025-03-31"), ("post_draft4", "2025-11-03")):
        ok(run("transition", "wtpf-26", trigger, "--by", BY, "--document", trigger,
               "--now", f"{day}T08:00Z"))
    ok(run("advance", "--now", "2025-12-20T12:00Z"))
    assert stored(db_url).state["regions"]["main"] == "draft4.comments_closed"
    return run


def _outbox(url: str, event: str) -> list[OutboxItem]:
    store = SqlStore(url)
    try:
        return [m for m in store.outbox("wtpf-26") if m.event == event]
    finally:
        store.close()


def _mail(item: OutboxItem) -> tuple[str, Calendar]:
    """The rendered text and the parsed .ics of one outbox row."""
    message = Renderer(SENDER).render(item, "Europe/Zurich", item.created_at)
    text, _ = parts(message)
    (attachment,) = [p for p in message.walk() if p.get_content_type() == "text/calendar"]
    return " ".join(text.split()), Calendar.from_ical(attachment.get_payload(decode=True))


def _verified(run: Run) -> None:
    assert "audit log intact" in ok(run("audit", "--verify")).out


def test_splitting_ieg4_updates_the_experts_invitations(running: Run, db_url: str) -> None:
    """Done-when: ieg4 becomes a physical session in Geneva and two informal virtual ones;
    each expert's updated invitation (text and .ics) says the new place and mode."""
    before = stored(db_url).definition_hash
    result = ok(running("meetings", "split", "wtpf-26", "ieg4", *SPLIT, "--by", BY,
                        "--reason", "CWG-WTPF: one physical meeting, two informal sessions",
                        "--now", "2025-12-22T09:00Z"))
    assert "ieg4-2: added to draft4" in result.out
    after = stored(db_url)
    assert after.definition_hash != before
    sessions = {m["id"]: m for m in after.definition["cycles"][3]["meetings"]}
    assert (sessions["ieg4"]["mode"], sessions["ieg4"]["place"]) == ("in-person", "Geneva")
    assert (sessions["ieg4-2"]["informal"], sessions["ieg4-3"]["mode"]) == (True, "virtual")
    updates = _outbox(db_url, "meeting_updated")
    assert sorted(u.email for u in updates) == sorted(p[1] for p in PEOPLE)
    text, ics = _mail(updates[0])
    assert "moved from 16 Feb 2026 to 20 Jan 2026 – 22 Jan 2026 (Geneva time)" in text
    assert "It is now in person, in Geneva (before: virtual (online), no place named)" in text
    assert "Where: Geneva How: in person" in text
    (event,) = ics.walk("VEVENT")
    assert (str(event["LOCATION"]), int(event["SEQUENCE"])) == ("Geneva", 1)
    assert event.decoded("DTSTART").date().isoformat() == "2026-01-20"
    invites = [m for m in _outbox(db_url, "meeting_invitation")
               if m.context.get("meeting") in ("ieg4-2", "ieg4-3")]
    assert len(invites) == 4
    text, ics = _mail(next(m for m in invites if m.context["meeting"] == "ieg4-2"))
    assert "How: virtual (online) Remote participation: offered This is an informal session" \
        in text
    assert "does not change the report" not in text
    (event,) = ics.walk("VEVENT")
    assert event.decoded("DTSTART").date().isoformat() == "2026-03-10"
    (record,) = [e for e in audit(db_url) if e.kind == "revision"]
    assert (record.inputs["from"], record.inputs["to"]) == (before, after.definition_hash)
    assert any("ieg4.mode: virtual → in-person" in c for c in record.inputs["changes"])
    _verified(running)


def test_the_split_machine_keeps_running(running: Run, db_url: str) -> None:
    """After the split, ieg4's physical session starts and ends on its new days; the informal
    sessions are not steps (the Final report is next in preparation)."""
    ok(running("meetings", "split", "wtpf-26", "ieg4", *SPLIT, "--by", BY, "--reason", "r",
               "--now", "2025-12-22T09:00Z"))
    ok(running("advance", "--now", "2026-01-23T12:00Z"))
    state = stored(db_url).state
    assert state["regions"]["main"] == "final.drafting"
    assert {"start_ieg4", "end_ieg4"} <= set(state["happened"])
    assert "start_ieg4-2" not in ok(running("audit", "wtpf-26")).out
    _verified(running)


def test_an_informal_session_after_the_final_report_is_recorded(running: Run,
                                                                 db_url: str) -> None:
    """Added after the final report is out: recorded, invited, and said not to change it."""
    ok(running("advance", "--now", "2026-02-18T12:00Z"))
    ok(running("transition", "wtpf-26", "post_final", "--by", BY, "--document", "WTPF-26/F",
               "--now", "2026-04-13T08:00Z"))
    ok(running("meetings", "add", "wtpf-26", "--cycle", "draft4", "--id", "ieg4-info",
               "--name", "Informal IEG session", "--start", "2026-05-05", "--mode", "virtual",
               "--informal", "--by", BY, "--reason", "questions from Member States",
               "--now", "2026-04-20T08:00Z"))
    (invite,) = {m.context["meeting"]: m for m in _outbox(db_url, "meeting_invitation")
                 if m.context["meeting"] == "ieg4-info"}.values()
    text, _ = _mail(invite)
    assert "held after the final report was posted and does not change the report" in text
    assert stored(db_url).state["regions"]["main"] == "final.posted"
    (row,) = [line for line in ok(running("timeline", "wtpf-26")).out.splitlines()
              if "ieg4-info" in line]
    assert "Informal IEG session (informal; does not change the report)" in row
    _verified(running)


def test_non_contiguous_days_are_listed_in_mail_and_ics(running: Run, db_url: str) -> None:
    """A meeting on 10, 12 and 17 Mar 2026: the mail names the days, the .ics has RDATEs."""
    ok(running("meetings", "add", "wtpf-26", "--cycle", "draft4", "--id", "ieg4b",
               "--name", "IEG drafting group", "--start", "2026-03-10",
               "--days", "2026-03-10,2026-03-12,2026-03-17", "--informal", "--mode", "virtual",
               "--by", BY, "--reason", "drafting", "--now", "2025-12-22T09:00Z"))
    (invite, *_) = [m for m in _outbox(db_url, "meeting_invitation")
                    if m.context.get("meeting") == "ieg4b"]
    text, ics = _mail(invite)
    assert "When: 10 Mar 2026, 12 Mar 2026 and 17 Mar 2026 (Geneva)" in text
    (event,) = ics.walk("VEVENT")
    rdates = [d.dt.date().isoformat() for r in [event["RDATE"]] for d in r.dts]
    assert rdates == ["2026-03-12", "2026-03-17"]


def test_cancelling_a_started_meeting_is_refused(running: Run, db_url: str) -> None:
    """ieg4 in session: cancelling it would rewrite history (exit 1, audited, nothing else)."""
    ok(running("advance", "--now", "2026-02-16T12:00Z"))
    before = stored(db_url)
    result = running("meetings", "cancel", "wtpf-26", "ieg4", "--by", BY, "--reason", "x",
                     "--now", "2026-02-16T13:00Z")
    assert result.code == 1
    assert "'4th IEG meeting' has already started; it cannot be removed or cancelled" in \
        one_paragraph(result)
    after = stored(db_url)
    assert (after.state, after.definition_hash) == (before.state, before.definition_hash)
    assert audit(db_url)[-1].kind == "refusal"


def test_cancelling_a_meeting_ahead_sends_cancellations(running: Run, db_url: str) -> None:
    """An informal session not yet held is cancelled: its invitees get METHOD:CANCEL."""
    ok(running("meetings", "split", "wtpf-26", "ieg4", *SPLIT, "--by", BY, "--reason", "r",
               "--now", "2025-12-22T09:00Z"))
    ok(running("meetings", "cancel", "wtpf-26", "ieg4-3", "--by", BY, "--reason",
               "not needed", "--now", "2026-01-05T09:00Z"))
    cancelled = _outbox(db_url, "meeting_cancelled")
    assert sorted(m.context["meeting"] for m in cancelled) == ["ieg4-3", "ieg4-3"]
    text, ics = _mail(cancelled[0])
    assert "is cancelled: not needed" in text
    assert str(ics["METHOD"]) == "CANCEL"
    _verified(running)


def test_adding_a_meeting_before_the_current_position_is_refused(running: Run,
                                                                 db_url: str) -> None:
    """A meeting added to the Third Draft's cycle, long done: refused with the rule."""
    before = stored(db_url)
    result = running("meetings", "add", "wtpf-26", "--cycle", "draft3", "--id", "ieg3b",
                     "--name", "3rd IEG meeting, part 2", "--start", "2026-01-12",
                     "--by", BY, "--reason", "late idea", "--now", "2025-12-22T09:00Z")
    assert result.code == 1
    text = one_paragraph(result)
    assert "before where the process stands" in text
    assert stored(db_url).definition_hash == before.definition_hash


def test_a_revision_breaking_six_weeks_needs_an_override(running: Run, db_url: str,
                                                         tmp_path: Path) -> None:
    """A new version posting the final report on 20 Apr 2026 (36 days before the forum):
    refused; with --override and a reason, accepted and recorded as an override."""
    data = yaml.safe_load(Path(WTPF).read_text(encoding="utf-8"))
    data["cycles"][-1]["posting"] = "2026-04-20"
    path = tmp_path / "wtpf26-v2.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    args = ["revise", "wtpf-26", str(path), "--by", BY, "--reason", "Council asked",
            "--now", "2025-12-22T09:00Z"]
    refused = running(*args)
    assert refused.code == 1
    assert "six weeks" in one_paragraph(refused).lower() or "needs 42" in refused.err
    ok(running(*args, "--override"))
    kinds = [e.kind for e in audit(db_url)]
    at = kinds.index("revision")
    assert kinds[at:at + 2] == ["revision", "override"]
    assert stored(db_url).definition["cycles"][-1]["posting"] == "2026-04-20"
    _verified(running)


def test_changing_mode_and_place_only_sends_an_update(running: Run, db_url: str) -> None:
    """ieg4 becomes hybrid in Geneva on the same day: the update says so, not a move."""
    ok(running("meetings", "change", "wtpf-26", "ieg4", "--mode", "hybrid", "--place",
               "Geneva", "--by", BY, "--reason", "room found", "--now", "2025-12-22T09:00Z"))
    (update, _) = _outbox(db_url, "meeting_updated")
    text, _ = _mail(update)
    assert "moved from" not in text
    assert "It is now hybrid (in person and online), in Geneva" in text


def test_changing_the_forum_place_and_mode(running: Run, db_url: str) -> None:
    """The forum's mode and place are part of the definition in force."""
    ok(running("meetings", "change", "wtpf-26", "--forum", "--mode", "hybrid", "--place",
               "Geneva", "--by", BY, "--reason", "Council", "--now", "2025-12-22T09:00Z"))
    forum = stored(db_url).definition["forum"]
    assert (forum["mode"], forum["place"]) == ("hybrid", "Geneva")


def test_bad_session_is_bad_input(running: Run, db_url: str) -> None:
    """A session written wrongly: exit 2, the form explained, nothing changed."""
    before = audit(db_url)
    result: Result = running("meetings", "split", "wtpf-26", "ieg4", "--session",
                             "in a room on Tuesday", "--session", "virtual:2026-03-10",
                             "--by", BY, "--reason", "r")
    assert result.code == 2
    assert "MODE:DATES" in one_paragraph(result)
    assert len(audit(db_url)) == len(before)


@pytest.fixture
def changed_file(tmp_path: Path) -> Path:
    """WTPF-26's file with the forum held in Geneva."""
    data = yaml.safe_load(Path(WTPF).read_text(encoding="utf-8"))
    data["forum"]["place"] = "Geneva"
    path = tmp_path / "changed.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def test_init_with_another_version_points_to_revise(run: Run, changed_file: Path) -> None:
    """Init of an existing process from a changed file: exit 2, naming 'prepflow revise'."""
    ok(run("init", WTPF, "--now", "2024-07-10T08:00Z"))
    result = run("init", str(changed_file), "--now", "2024-07-11T08:00Z")
    assert result.code == 2
    assert "prepflow revise wtpf-26 FILE.yaml --by NAME --reason WHY" in one_paragraph(result)


def test_the_timeline_shows_the_plan_then_the_split(running: Run, db_url: str) -> None:
    """After the split, ieg4 reads plan (February 2026) → fixed → split, with the split's
    days, mode and place, by whom and why; the definition in force keeps the plan."""
    ok(running("meetings", "split", "wtpf-26", "ieg4", "--session",
               "physical:2026-02-09..2026-02-10@Geneva", "--session",
               "informal virtual:2026-03-10", "--session", "informal virtual:2026-03-24",
               "--by", BY, "--reason", "CWG-WTPF decision", "--now", "2025-12-22T09:00Z"))
    assert stored(db_url).definition["cycles"][3]["meetings"][0]["start"] == "2026-02"
    out = ok(running("timeline", "wtpf-26")).out
    story = out[out.index("ieg4 4th IEG meeting"):].splitlines()
    assert story[1].split() == ["plan", "February", "2026"]
    assert "change 1  16 Feb 2026" in story[2]
    assert "fixed" in story[2]
    assert "change 2  9 Feb 2026 – 10 Feb 2026; mode virtual → in-person, place — → Geneva" \
        in story[3]
    assert "CWG-WTPF decision" in story[3]
    assert story[4].split()[0] == "actual"
    _verified(running)


def test_the_updated_invitation_says_why_and_lists_the_sessions(running: Run,
                                                                db_url: str) -> None:
    """The experts read the split's reason and all three sessions (text and html)."""
    ok(running("meetings", "split", "wtpf-26", "ieg4", *SPLIT, "--by", BY,
               "--reason", "CWG-WTPF decision", "--now", "2025-12-22T09:00Z"))
    update = _outbox(db_url, "meeting_updated")[0]
    text, _ = _mail(update)
    assert "Why: CWG-WTPF decision" in text
    assert ("held in 3 sessions: - 4th IEG meeting: 20 Jan 2026 – 22 Jan 2026, in person, "
            "Geneva - 4th IEG meeting, informal session 2: 10 Mar 2026, virtual (online) "
            "(informal session) - 4th IEG meeting, informal session 3: 2 Apr 2026") in text
    _, html = parts(Renderer(SENDER).render(update, "Europe/Zurich", update.created_at))
    assert "<li>4th IEG meeting, informal session 3: 2 Apr 2026" in html


def test_a_new_forum_mode_and_place_is_mailed(running: Run, db_url: str) -> None:
    """'forum_updated' goes to each expert and focal point: old → new mode and place, why."""
    ok(running("meetings", "change", "wtpf-26", "--forum", "--mode", "hybrid", "--place",
               "Geneva", "--by", BY, "--reason", "Council", "--now", "2025-12-22T09:00Z"))
    mails = _outbox(db_url, "forum_updated")
    focal = load_definition(WTPF).notifications.focal_points
    assert len(mails) == len(PEOPLE) + len(focal)
    message = Renderer(SENDER).render(mails[0], "Europe/Zurich", mails[0].created_at)
    text = " ".join(parts(message)[0].split())
    assert "How: not yet announced → hybrid (in person and online)" in text
    assert "→ Geneva" in text
    assert "Why: Council" in text
    assert "forum" in ok(running("timeline", "wtpf-26")).out.split("Changes")[1]
    _verified(running)


def test_an_end_before_the_start_is_said_in_the_commands_terms(running: Run,
                                                                db_url: str) -> None:
    """--end before --start: exit 2 naming both options, no internal path, nothing changed."""
    before = audit(db_url)
    result = running("meetings", "add", "wtpf-26", "--cycle", "draft4", "--id", "ieg4b",
                     "--name", "IEG 4b", "--start", "2026-05-05", "--end", "2026-05-01",
                     "--by", BY, "--reason", "r", "--now", "2025-12-22T09:00Z")
    assert result.code == 2
    text = one_paragraph(result)
    assert "--end 2026-05-01 is before --start 2026-05-05" in text
    assert "cycles[" not in text
    assert len(audit(db_url)) == len(before)


def test_change_names_the_forum_one_way_and_needs_by_and_reason(running: Run) -> None:
    """'forum' as the meeting argument points to --forum; --by and --reason are required."""
    result = running("meetings", "change", "wtpf-26", "forum", "--mode", "hybrid",
                     "--by", BY, "--reason", "r")
    assert result.code == 2
    assert "--forum" in one_paragraph(result)
    missing = running("meetings", "change", "wtpf-26", "ieg4", "--mode", "hybrid",
                      "--reason", "r")
    assert missing.code == 2
    assert "--by" in one_paragraph(missing)
    missing = running("meetings", "change", "wtpf-26", "ieg4", "--mode", "hybrid", "--by", BY)
    assert missing.code == 2
    assert "--reason" in one_paragraph(missing)


def test_forum_updated_also_goes_to_the_focal_points() -> None:
    """As other forum mails: the experts and each Member State's focal point."""
    definition = load_definition(WTPF)
    focal = FocalPoint(member_state="CH", name="OFCOM", email="focal@example.ch")
    definition = definition.model_copy(update={"notifications": definition.notifications
                                               .model_copy(update={"focal_points": [focal]})})
    found = recipients(definition, "experts", "forum_updated", lambda: [])
    assert [r.ref for r in found] == ["focal:CH"]


def test_a_join_link_set_by_an_amendment_sends_an_update_carrying_it(running: Run,
                                                                    db_url: str) -> None:
    """`meetings change --join-url` (issue 12): the experts' update names the link in the text
    and in the .ics; the definition in force keeps it; the audit chain holds."""
    link = "https://itu.zoom.us/j/987654321"
    ok(running("meetings", "change", "wtpf-26", "ieg4", "--join-url", link, "--by", BY,
               "--reason", "link issued", "--now", "2025-12-22T09:00Z"))
    updates = _outbox(db_url, "meeting_updated")
    assert len(updates) == len(PEOPLE)
    text, calendar = _mail(updates[0])
    assert f"Join online: {link}" in text
    (event,) = calendar.walk("VEVENT")
    assert (str(event["URL"]), str(event["LOCATION"])) == (link, link)  # ieg4 is virtual
    meetings = stored(db_url).definition["cycles"][-2]["meetings"]
    assert [m.get("join_url") for m in meetings if m["id"] == "ieg4"] == [link]
    _verified(running)


def test_a_plain_http_join_link_is_refused_by_the_amendment(running: Run, db_url: str) -> None:
    """An http link: bad input (exit 2) naming the meeting and what is allowed; nothing sent."""
    result = running("meetings", "change", "wtpf-26", "ieg4", "--join-url",
                     "http://itu.zoom.us/j/1", "--by", BY, "--reason", "link",
                     "--now", "2025-12-22T09:00Z")
    assert result.code == 2
    said = one_paragraph(result)
    assert "meeting 'ieg4'.join_url" in said
    assert "is not an https link" in said
    assert _outbox(db_url, "meeting_updated") == []
