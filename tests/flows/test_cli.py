"""The `prepflow` command as secretariat staff use it: exit codes, messages, and the store after.

Most tests call ``flows.cli.main`` in-process (fast); two run ``python -m flows.cli`` in a
subprocess to cover the real entry point end to end.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from icalendar import Calendar

from flows.storage import SqlStore, StoredProcess
from tests.flows.cli_run import Result, Run, fresh_store, in_process

ROOT = Path(__file__).resolve().parents[2]
WTPF = str(ROOT / "config" / "wtpf26.yaml")
BY = "wtpf-secretariat"




@pytest.fixture
def db_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh SQLite store in a temp folder, set as PREPFLOW_DATABASE_URL; wide output."""
    return fresh_store(tmp_path, monkeypatch)


@pytest.fixture
def run(db_url: str, capsys: pytest.CaptureFixture[str]) -> Run:
    """Call ``prepflow ARGS...`` in-process and return its exit status and output."""
    return in_process(capsys)


def snapshot(url: str) -> tuple[list[StoredProcess], list[object]]:
    """Everything the store holds: processes (state, version) and the whole audit log."""
    store = SqlStore(url)
    try:
        return store.list(), list(store.audit())
    finally:
        store.close()


def stored(url: str, process_id: str = "wtpf-26") -> StoredProcess:
    """One stored process, read fresh."""
    store = SqlStore(url)
    try:
        return store.get(process_id)
    finally:
        store.close()


def audit(url: str, process_id: str = "wtpf-26") -> list:
    """The process's audit log, read fresh."""
    store = SqlStore(url)
    try:
        return store.audit(process_id)
    finally:
        store.close()


def ok(result: Result) -> Result:
    """The result, after checking that the command succeeded."""
    assert result.code == 0, f"exit {result.code}\nstdout:\n{result.out}\nstderr:\n{result.err}"
    return result


def one_paragraph(result: Result) -> str:
    """The error text, after checking it is one readable paragraph and no traceback."""
    text = result.err.strip()
    assert text, "no error message on stderr"
    assert "Traceback" not in result.err + result.out
    assert "\n\n" not in text, f"more than one paragraph:\n{text}"
    return " ".join(text.split())


# --- check: rules over the plan, no state touched ---------------------------------------------


def test_check_breaks_six_weeks_when_forum_is_too_close(run: Run, db_url: str) -> None:
    """A forum on 10 May 2026 leaves the final report 27 days ahead: exit 1, latest date shown."""
    result = run("check", WTPF, "--forum-date", "2026-05-10")
    assert result.code == 1
    text = " ".join(result.out.split())
    assert "the final report (13 Apr 2026) is 27 days before the forum (10 May 2026), needs 42" \
        in text
    assert "latest allowed posting date is 29 Mar 2026" in text
    assert "1 broken" in text
    assert not Path(db_url.removeprefix("sqlite:///")).exists(), "check must not touch a store"


def test_check_passes_with_slack_when_forum_is_far_enough(run: Run) -> None:
    """A forum on 2 Jun 2026 leaves 50 days: exit 0 and the slack is shown."""
    result = ok(run("check", WTPF, "--forum-date", "2026-06-02"))
    assert "50 days, 8 days of slack" in result.out
    assert "0 broken" in result.out


def test_check_what_if_moves_the_final_report(run: Run) -> None:
    """--set moves a milestone for the check only: the final report on 29 Mar 2026 passes."""
    result = ok(run("check", WTPF, "--forum-date", "2026-05-10", "--set",
                    "final.posting=2026-03-29"))
    assert "42 days, 0 days of slack" in result.out


def test_check_unknown_milestone_is_bad_input(run: Run) -> None:
    """--set with a milestone the plan does not have exits 2 and lists the valid ones."""
    result = run("check", WTPF, "--set", "ieg9=2025-02-10")
    assert result.code == 2
    text = one_paragraph(result)
    assert "ieg9" in text
    assert "ieg2" in text
    assert "draft3.comments" in text


# --- init and status --------------------------------------------------------------------------


def test_init_is_idempotent(run: Run, db_url: str) -> None:
    """A second init changes nothing and says so; the log keeps its one 'init' entry."""
    assert "created" in ok(run("init", WTPF, "--now", "2024-07-10T08:00Z")).out
    before = snapshot(db_url)
    again = ok(run("init", WTPF, "--now", "2024-07-11T08:00Z"))
    assert "already exists (unchanged)" in again.out
    assert snapshot(db_url) == before
    entries = audit(db_url)
    assert [e.kind for e in entries] == ["init"]
    assert stored(db_url).version == 1


def test_status_shows_states_countdowns_and_warnings(run: Run) -> None:
    """Status shows both regions, countdowns, the month-only meeting and the missing forum date."""
    ok(run("init", WTPF, "--now", "2024-07-10T08:00Z"))
    ok(run("transition", "wtpf-26", "post_draft1", "--by", BY, "--document", "WTPF-26/1",
           "--now", "2024-08-05T07:00Z"))
    ok(run("advance", "--now", "2024-09-10T08:00Z"))
    result = ok(run("status", "--now", "2024-09-10T08:00Z"))
    text = " ".join(result.out.split())
    assert "as of 10 Sep 2024 10:00 CEST" in text
    assert "main: First Draft: comments closed, awaiting 1st IEG meeting" in text
    assert "consultation: no public consultation open (none)" in text
    # Second Draft posting: start of 4 Nov 2024 (CET) is 54 days and 15 hours away.
    assert "draft2.posting" in text
    assert "in 54 days" in text
    assert "October 2024 (day not fixed)" in text
    assert "DATE NOT FIXED: '1st IEG meeting' is planned only for October 2024" in text
    assert "prepflow amend wtpf-26 ieg1 YYYY-MM-DD" in text
    assert "the forum's opening date is not set" in text
    assert "(version 3, 5 audit entries)" in text  # init, post, notice, close, window summary


def test_status_of_empty_store_says_how_to_start(run: Run) -> None:
    """Status before any init exits 2 and names the init command."""
    result = run("status")
    assert result.code == 2
    assert "prepflow init config/wtpf26.yaml" in one_paragraph(result)


# --- bad input: exit 2, one paragraph, nothing changed -----------------------------------------

WTPF_TEXT = Path(WTPF).read_text(encoding="utf-8")


def _definition(tmp: Path, name: str, text: str) -> str:
    path = tmp / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def _malformed(tmp: Path) -> tuple[list[str], list[str]]:
    path = _definition(tmp, "malformed.yaml", "id: x\nname: [unclosed\n  forum: here\n")
    return ["init", path], ["malformed.yaml", "line 3, column 8", "malformed YAML"]


def _unknown_field(tmp: Path) -> tuple[list[str], list[str]]:
    text = WTPF_TEXT.replace("timezone: Europe/Zurich\n", "timezone: Europe/Zurich\ncolour: blue\n")
    path = _definition(tmp, "typo.yaml", text)
    return ["init", path], ["typo.yaml", "colour = 'blue'", "unknown field"]


def _impossible_date(tmp: Path) -> tuple[list[str], list[str]]:
    text = WTPF_TEXT.replace("posting: 2024-08-05", "posting: 2024-02-30")
    path = _definition(tmp, "feb30.yaml", text)
    return ["init", path], ["feb30.yaml", "cycles[0].posting", "2024-02-30",
                            "February 2024 has days 1 to 29"]


def _several(tmp: Path) -> tuple[list[str], list[str]]:
    text = (WTPF_TEXT.replace("posting: 2024-08-05", "posting: 2024-02-30")
            .replace("email: wtpf@itu.int", "email: wtpf-at-itu")
            .replace("timezone: Europe/Zurich\n", "timezone: Europe/Zurich\ncolour: blue\n"))
    path = _definition(tmp, "several.yaml", text)
    return ["check", path], ["3 problems", "cycles[0].posting", "secretariat[0].email",
                             "'wtpf-at-itu'", "colour"]


def _args(*args: str, expect: list[str]) -> Callable[[Path], tuple[list[str], list[str]]]:
    return lambda _tmp: (list(args), expect)


BAD_INPUT = {
    "malformed YAML": _malformed,
    "unknown field": _unknown_field,
    "impossible date": _impossible_date,
    "several errors together": _several,
    "naive --now": _args("advance", "--now", "2024-12-21T00:00",
                         expect=["--now '2024-12-21T00:00' has no time zone",
                                 "2024-12-21T00:00+01:00 (Geneva winter time that day)",
                                 "2024-12-21T00:00Z"]),
    "naive --now in summer": _args("advance", "--now", "2025-06-21T00:00",
                                   expect=["2025-06-21T00:00+02:00 (Geneva summer time"]),
    "unknown process": _args("status", "wtpf-27",
                             expect=["no process called 'wtpf-27'", "wtpf-26"]),
    "advance for an unknown process": _args("advance", "--process", "wtpf-27", "--now",
                                            "2024-12-21T00:00Z",
                                            expect=["no process called 'wtpf-27'", "wtpf-26"]),
    "unknown outbox status": _args("outbox", "--status", "bogus",
                                   expect=["--status 'bogus'", "pending, sending, sent"]),
    "unknown trigger": _args("transition", "wtpf-26", "post_draft9", "--by", BY, "--document",
                             "X", expect=["'post_draft9' is not a trigger of wtpf-26",
                                          "Allowed now: post_draft1"]),
    "automatic trigger given manually": _args(
        "transition", "wtpf-26", "close_comments_draft1", "--by", BY, "--document", "X",
        expect=["is automatic", "prepflow advance"]),
    "missing --document": _args("transition", "wtpf-26", "post_draft1", "--by", BY,
                                expect=["--document", "WTPF-26/2"]),
    "override without reason": _args("transition", "wtpf-26", "post_draft1", "--by", BY,
                                     "--document", "X", "--override",
                                     expect=["--override needs a --reason"]),
    "impossible amended date": _args("amend", "wtpf-26", "ieg2", "2025-02-30", "--by", BY,
                                     "--reason", "x",
                                     expect=["new date for ieg2",
                                             "February 2025 has days 1 to 28"]),
    "unknown command": _args("post", "wtpf-26", expect=["No such command 'post'"]),
    "missing argument": _args("transition", "wtpf-26", expect=["Missing argument"]),
}


@pytest.mark.parametrize("case", BAD_INPUT.values(), ids=BAD_INPUT.keys())
def test_bad_input_exits_2_and_changes_nothing(
    case: Callable[[Path], tuple[list[str], list[str]]], run: Run, db_url: str, tmp_path: Path,
) -> None:
    """Bad input exits 2 with one readable paragraph naming the problem; the store is untouched."""
    ok(run("init", WTPF, "--now", "2024-07-10T08:00Z"))
    args, expected = case(tmp_path)
    before = snapshot(db_url)
    result = run(*args)
    assert result.code == 2, f"exit {result.code}: {result.out}{result.err}"
    text = one_paragraph(result)
    for fragment in expected:
        assert fragment in text, f"{fragment!r} not in: {text}"
    assert snapshot(db_url) == before


def test_corrupted_database_is_a_store_error(run: Run, db_url: str) -> None:
    """A database file full of garbage: exit 2, 'Store error' saying what to do; file untouched."""
    path = Path(db_url.removeprefix("sqlite:///"))
    path.write_bytes(b"this is not SQLite\x00" * 512)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    for args in (["status"], ["init", WTPF], ["advance", "--now", "2024-09-01T00:00Z"]):
        result = run(*args)
        assert result.code == 2
        text = one_paragraph(result)
        assert text.startswith("Store error:")
        assert "not a prepflow database, or it is damaged" in text
        assert "backup" in text
    assert hashlib.sha256(path.read_bytes()).hexdigest() == digest


# --- rule refusals: exit 1, audited, state unchanged -------------------------------------------


def test_posting_second_draft_during_first_is_refused_and_audited(run: Run, db_url: str) -> None:
    """Second Draft while at First Draft: exit 1, a 'refusal' entry, state and version kept."""
    ok(run("init", WTPF, "--now", "2024-07-10T08:00Z"))
    before = stored(db_url)
    result = run("transition", "wtpf-26", "post_draft2", "--by", BY, "--document", "WTPF-26/2",
                 "--now", "2024-08-05T07:00Z")
    assert result.code == 1
    text = one_paragraph(result)
    assert "Refused by rule 'order'" in text
    assert "post_draft1" in text
    after = stored(db_url)
    assert (after.state, after.version) == (before.state, before.version)
    last = audit(db_url)[-1]
    assert (last.kind, last.trigger, last.actor) == ("refusal", "post_draft2", BY)
    assert last.inputs["rule"] == "order"
    assert last.from_state == last.to_state == "draft1.drafting"


def test_brackets_in_typed_text_are_shown_not_read_as_markup(run: Run) -> None:
    """A reason or id with [brackets] is printed verbatim by every command, never a traceback."""
    ok(run("init", WTPF, "--now", "2024-07-10T08:00Z"))
    reason = "[/x] per [Council] decision"
    ok(run("amend", "wtpf-26", "forum", "2026-06-02", "--by", BY, "--reason", reason,
           "--now", "2024-08-01T08:00Z"))
    assert reason in ok(run("audit", "wtpf-26")).out
    ok(run("status", "--now", "2024-08-01T08:00Z"))
    ok(run("timeline"))
    for args in (["status", "[bold]wtpf"], ["advance", "--now", "[/now]"]):
        result = run(*args)
        assert result.code == 2
        assert args[-1] in one_paragraph(result)


# --- a whole WTPF-26 run ----------------------------------------------------------------------

#: Each step: (args, text the output must contain). Times are chosen at or just before deadlines.
CYCLES: list[tuple[list[str], str]] = [
    (["init", WTPF, "--now", "2024-07-10T08:00Z"], "created"),
    (["amend", "wtpf-26", "ieg1", "2024-10-07..2024-10-08", "--by", BY, "--reason", "CL-24/44",
      "--now", "2024-07-15T08:00Z"], "ieg1: October 2024 → 7 Oct 2024 – 8 Oct 2024"),
    (["transition", "wtpf-26", "post_draft1", "--by", BY, "--document", "WTPF-26/1",
      "--now", "2024-08-05T07:00Z"], "draft1.drafting → draft1.comment_window"),
    # End of 26 Aug 2024 in Geneva (CEST, UTC+2) is 22:00 UTC.
    (["advance", "--now", "2024-08-26T21:59:59Z"], "nothing due."),
    (["advance", "--now", "2024-08-26T22:00Z"], "draft1.comment_window → draft1.comments_closed"),
    (["advance", "--now", "2024-10-06T22:00Z"], "draft1.comments_closed → draft1.ieg1"),
    (["advance", "--now", "2024-10-08T22:00Z"], "draft1.ieg1 → draft2.drafting"),
    (["transition", "wtpf-26", "post_draft2", "--by", BY, "--document", "WTPF-26/2",
      "--now", "2024-11-04T08:00+01:00"], "none → draft2.consultation_open"),
    # After the DST change: end of 20 Dec 2024 in Geneva (CET, UTC+1) is 23:00 UTC, not 22:00.
    (["advance", "--now", "2024-12-20T22:59:59Z"], "nothing due."),
    (["advance", "--now", "2024-12-20T23:00Z"], "draft2.comment_window → draft2.comments_closed"),
    (["amend", "wtpf-26", "ieg2", "2025-02-10..2025-02-12", "--by", BY, "--reason", "CL-24/80",
      "--now", "2025-01-06T08:00Z"], "ieg2: February 2025 → 10 Feb 2025 – 12 Feb 2025"),
    # A tick that runs late catches up in order: the meeting starts and ends in one run.
    (["advance", "--now", "2025-02-14T09:00Z"], "draft2.ieg2 → draft3.drafting"),
    (["transition", "wtpf-26", "post_draft3", "--by", BY, "--document", "WTPF-26/3",
      "--now", "2025-03-31T07:00Z"], "draft3.drafting → draft3.comment_window"),
    (["advance", "--now", "2025-06-16T22:00Z"], "draft3.comment_window → draft3.comments_closed"),
    (["amend", "wtpf-26", "ieg3", "2025-09-15..2025-09-17", "--by", BY, "--reason", "CWG",
      "--now", "2025-07-01T08:00Z"], "ieg3: September 2025"),
    (["advance", "--now", "2025-09-17T22:00Z"], "draft3.ieg3 → draft4.drafting"),
    (["transition", "wtpf-26", "post_draft4", "--by", BY, "--document", "WTPF-26/4",
      "--now", "2025-11-03T08:00Z"], "draft4.drafting → draft4.comment_window"),
    (["advance", "--now", "2025-12-19T23:00Z"], "draft4.comment_window → draft4.comments_closed"),
    (["amend", "wtpf-26", "ieg4", "2026-02-16..2026-02-17", "--by", BY, "--reason", "virtual",
      "--now", "2026-01-05T08:00Z"], "ieg4: February 2026"),
    (["advance", "--now", "2026-02-17T23:00Z"], "draft4.ieg4 → final.drafting"),
]


def drive_to_final(run: Run) -> None:
    """Run WTPF-26 from init to 'Final report: in preparation' through the CLI."""
    for args, expected in CYCLES:
        result = ok(run(*args))
        assert expected in " ".join(result.out.split()), f"{args}: {result.out}"


def test_final_report_needs_forum_date_or_override(run: Run, db_url: str) -> None:
    """No forum date: posting the final report is refused (audited); with --override it goes."""
    drive_to_final(run)
    before = stored(db_url)
    post = ["transition", "wtpf-26", "post_final", "--by", BY, "--document", "WTPF-26/F",
            "--now", "2026-04-13T07:00Z"]
    refused = run(*post)
    assert refused.code == 1
    text = one_paragraph(refused)
    assert "Refused by rule 'six-weeks'" in text
    assert "forum's opening date is not set" in text
    assert "--override" in text
    after = stored(db_url)
    assert (after.state, after.version) == (before.state, before.version)
    last = audit(db_url)[-1]
    assert (last.kind, last.trigger, last.inputs["rule"]) == ("refusal", "post_final",
                                                              "six-weeks")

    reason = "Council has not set the forum date yet"
    ok(run(*post, "--override", "--reason", reason))
    assert stored(db_url).version == before.version + 1
    kinds = [(e.kind, e.trigger) for e in audit(db_url)[-2:]]
    assert kinds == [("transition", "post_final"), ("override", "post_final")]
    status = " ".join(ok(run("status", "--now", "2026-04-14T08:00Z")).out.split())
    assert "main: Final report posted; forum ahead" in status
    assert f"six-weeks on 'post_final' by {BY}, 13 Apr 2026 09:00 CEST: {reason}" in status


def walk_forum(run: Run, day: str) -> None:
    """The forum takes its ten agenda items and ends its agenda: the chair is named when its
    election ends (the 3rd step), the chair's report given when its adoption ends (the 10th)."""
    for step in range(1, 12):
        extra = {3: ["--chair", "Ms A. Chair"], 10: ["--document", "WTPF-26/CR"]}.get(step, [])
        ok(run("forum", "next", "wtpf-26", "--by", BY, "--now", f"{day}T{step + 6:02d}:00Z",
               *extra))


def test_whole_run_timeline_and_calendar(run: Run, db_url: str, tmp_path: Path) -> None:
    """A full run via the CLI: forum set, report posted, forum held; timeline and ICS agree."""
    drive_to_final(run)
    ok(run("amend", "wtpf-26", "forum", "2026-06-02", "--by", BY, "--reason", "Council",
           "--now", "2026-03-02T08:00Z"))
    ok(run("transition", "wtpf-26", "post_final", "--by", BY, "--document", "WTPF-26/F",
           "--now", "2026-04-13T07:00Z"))
    # The forum opens at the start of 2 Jun and closes after its 3 days (end of 4 Jun, CEST).
    assert "nothing due." in ok(run("advance", "--now", "2026-06-01T21:59Z")).out
    assert "final.posted → forum" in ok(run("advance", "--now", "2026-06-01T22:00Z")).out
    walk_forum(run, "2026-06-03")  # the process closes at the forum's end once its agenda is done
    assert "forum → closed" in ok(run("advance", "--now", "2026-06-04T22:00Z")).out
    assert "nothing due." in ok(run("advance", "--now", "2026-06-05T08:00Z")).out

    status = ok(run("status", "--now", "2026-06-05T08:00Z")).out
    assert "main: Process closed (closed)" in status
    assert "Overrides" not in status

    rows = {line.split("│")[1].strip(): [c.strip() for c in line.split("│")[2:-1]]
            for line in ok(run("timeline", "--now", "2026-06-05T08:00Z")).out.splitlines()
            if line.startswith("│") and line.split("│")[1].strip()}
    assert rows["draft1.posting"][1:] == ["5 Aug 2024", "5 Aug 2024",
                                          "5 Aug 2024 09:00 CEST (WTPF-26/1)"]
    assert rows["ieg1"][1:] == ["October 2024", "7 Oct 2024 – 8 Oct 2024",
                                "7 Oct 2024 00:00 CEST; 9 Oct 2024 00:00 CEST"]
    assert rows["draft2.comments"][1:] == ["20 Dec 2024", "=", "21 Dec 2024 00:00 CET"]
    assert rows["forum"][1:] == ["not set", "2 Jun 2026 – 4 Jun 2026",
                                 "2 Jun 2026 00:00 CEST; 5 Jun 2026 00:00 CEST"]

    ics = tmp_path / "wtpf26.ics"
    written = ok(run("timeline", "--format", "ics", "-o", str(ics), "--now",
                     "2026-06-05T08:00Z"))
    assert f"wrote {ics}" in " ".join(written.out.split())
    calendar = Calendar.from_ical(ics.read_bytes())
    events = {str(e["UID"]): e for e in calendar.walk("VEVENT")}
    assert set(events) >= {"wtpf-26.ieg1@prepflow", "wtpf-26.draft2.comments@prepflow",
                           "wtpf-26.final.posting@prepflow", "wtpf-26.forum@prepflow"}
    ieg1 = events["wtpf-26.ieg1@prepflow"]
    assert (ieg1.decoded("DTSTART"), ieg1.decoded("DTEND")) == (date(2024, 10, 7),
                                                                 date(2024, 10, 9))
    assert str(ieg1["LOCATION"]) == "Geneva"
    comments = events["wtpf-26.draft2.comments@prepflow"]
    assert comments.decoded("DTSTART") == date(2024, 12, 20)
    assert "2024-12-20 23:00 UTC" in str(comments["DESCRIPTION"])
    forum = events["wtpf-26.forum@prepflow"]
    assert (forum.decoded("DTSTART"), forum.decoded("DTEND")) == (date(2026, 6, 2),
                                                                   date(2026, 6, 5))
    assert events["wtpf-26.final.posting@prepflow"].decoded("DTSTART") == date(2026, 4, 13)

    entries = audit(db_url)
    assert [e.seq for e in entries] == list(range(1, len(entries) + 1))
    assert not [e for e in entries if e.kind == "refusal"]
    transitions = [e.trigger for e in entries if e.kind == "transition"]
    assert len(transitions) == len(set(transitions)), "a transition fired twice"
    by_trigger = {e.trigger: e for e in entries if e.kind == "transition"}
    assert by_trigger["close_comments_draft2"].at == datetime(2024, 12, 20, 23, tzinfo=UTC)
    assert by_trigger["close_comments_draft1"].at == datetime(2024, 8, 26, 22, tzinfo=UTC)
    assert ok(run("audit", "--verify")).out.strip() == \
        f"audit log intact: {len(entries)} entries verified."


# --- audit --verify on SQLite and PostgreSQL ---------------------------------------------------


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def any_url(request: pytest.FixtureRequest, db_url: str) -> str:
    """The SQLite store, or a fresh PostgreSQL database."""
    return db_url if request.param == "sqlite" else request.getfixturevalue("postgres_url")


def test_audit_verify_detects_tampering(run: Run, any_url: str) -> None:
    """audit --verify passes on an intact log and exits 1 once a reason was edited in the DB."""
    ok(run("init", WTPF, "--database", any_url, "--now", "2024-07-10T08:00Z"))
    ok(run("amend", "wtpf-26", "ieg1", "2024-10-07..2024-10-08", "--by", BY, "--reason",
           "CL-24/44", "--database", any_url, "--now", "2024-07-15T08:00Z"))
    intact = ok(run("audit", "--verify", "--database", any_url))
    assert "audit log intact: 3 entries verified." in intact.out  # init, amend, notice
    shown = ok(run("audit", "wtpf-26", "--database", any_url)).out
    assert "CL-24/44" in shown

    engine = sa.create_engine(any_url)
    try:
        with engine.begin() as conn:
            changed = conn.execute(sa.text(
                "UPDATE audit_log SET reason = 'CL-24/99' WHERE process_id = 'wtpf-26' "
                "AND seq = 2"))
            assert changed.rowcount == 1
    finally:
        engine.dispose()

    tampered = run("audit", "--verify", "--database", any_url)
    assert tampered.code == 1
    assert "The audit log has been tampered with" in tampered.err
    assert "wtpf-26" in tampered.err
    assert "Traceback" not in tampered.err
    assert run("audit", "wtpf-26", "--verify", "--database", any_url).code == 1


# --- the installed entry point, end to end ----------------------------------------------------


def _subprocess(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PREPFLOW_DATABASE_URL": f"sqlite:///{tmp_path / 'e2e.db'}",
           "COLUMNS": "200"}
    return subprocess.run([sys.executable, "-m", "flows.cli", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60, check=False)


def test_entry_point_check_exit_status(tmp_path: Path) -> None:
    """python -m flows.cli check: exit 1 on a broken rule and 0 when every rule holds."""
    broken = _subprocess(tmp_path, "check", "config/wtpf26.yaml", "--forum-date", "2026-05-10")
    assert broken.returncode == 1, broken.stderr
    assert "latest allowed posting date is 29 Mar 2026" in broken.stdout
    fine = _subprocess(tmp_path, "check", "config/wtpf26.yaml", "--forum-date", "2026-06-02")
    assert fine.returncode == 0, fine.stderr


def test_entry_point_init_status_and_bad_input(tmp_path: Path) -> None:
    """python -m flows.cli: init then status work; a usage error is a paragraph, exit 2."""
    assert _subprocess(tmp_path, "init", "config/wtpf26.yaml").returncode == 0
    status = _subprocess(tmp_path, "status", "wtpf-26", "--now", "2024-07-10T08:00Z")
    assert status.returncode == 0, status.stderr
    assert "First Draft: in preparation" in status.stdout
    bad = _subprocess(tmp_path, "advance", "--now", "yesterday")
    assert bad.returncode == 2
    assert "Traceback" not in bad.stderr
    assert "--now 'yesterday' is not a date and time" in " ".join(bad.stderr.split())


def test_state_files_are_where_the_url_says(tmp_path: Path, run: Run, db_url: str) -> None:
    """The store is the file PREPFLOW_DATABASE_URL names, and --database overrides it."""
    other = tmp_path / "other.db"
    ok(run("init", WTPF, "--database", f"sqlite:///{other}"))
    assert other.exists()
    assert run("status").code == 2  # the default store has no process
    ok(run("status", "--database", f"sqlite:///{other}", "--now", "2024-07-10T08:00Z"))


def test_audit_verify_detects_a_state_edited_behind_the_log(run: Run, tmp_path: Path) -> None:
    """Jumping the stored state ahead (no audit entry for it) is reported: exit 1."""
    url = f"sqlite:///{tmp_path / 'state.db'}"
    ok(run("init", WTPF, "--database", url, "--now", "2024-07-10T08:00Z"))
    ok(run("transition", "wtpf-26", "post_draft1", "--by", BY, "--document", "D",
           "--database", url, "--now", "2024-08-05T07:00Z"))
    assert run("audit", "--verify", "--database", url).code == 0
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.exec_driver_sql(
            "UPDATE processes SET state = replace(state, "
            "'\"main\":\"draft1.comment_window\"', '\"main\":\"final.drafting\"')")
    engine.dispose()
    tampered = run("audit", "--verify", "--database", url)
    assert tampered.code == 1
    assert "does not match its audit log" in tampered.err



def test_status_warnings_name_the_process_not_its_definition(run: Run) -> None:
    """A process created under its own id: the fixes its warnings suggest name that id."""
    assert run("init", WTPF, "--id", "wtpf-26-copy", "--now", "2024-09-15T08:00Z").code == 0
    result = run("status", "wtpf-26-copy", "--now", "2024-09-20T08:00Z")
    assert result.code == 0, result.err
    assert "prepflow amend wtpf-26-copy ieg1 YYYY-MM-DD" in result.out
    assert "prepflow amend wtpf-26-copy forum YYYY-MM-DD" in result.out
    assert "prepflow amend wtpf-26 " not in result.out


def test_a_date_at_the_calendars_edge_is_bad_input_and_status_still_works(
        run: Run, db_url: str) -> None:
    """Amending to 9999-12-31 (once accepted, then status crashed) is refused, nothing written."""
    assert run("init", WTPF, "--now", "2024-07-10T08:00Z").code == 0
    before = snapshot(db_url)
    result = run("amend", "wtpf-26", "final.posting", "9999-12-31", "--by", BY, "--reason", "x")
    assert result.code == 2, result.out
    assert "between 1900 and 2999" in result.err
    assert snapshot(db_url) == before
    assert run("status", "--now", "0001-01-01T00:00+14:00").code == 2
    assert run("status").code == 0
