"""`prepflow rehearse`: the whole WTPF-26 process on a simulated clock, through the real flows.

The command runs in-process (``flows.cli.main``) against the session's temporary Prefect
server; every step is a real flow run, and the transcript is read back from the real store.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pytest

from flows.cli.app import main
from flows.shell import Service
from flows.storage import open_store
from states.instance import Instance

pytestmark = [pytest.mark.usefixtures("prefect_server"), pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
WHAT_IF = "config/scenarios/wtpf26-what-if.yaml"

#: Council Decision 641, Annex 2: each milestone and the Geneva day (or month) it falls on.
ANNEX_2 = [
    ("2024-08-05", "First Draft posted"),
    ("2024-08-26", "First Draft comment window closed"),
    ("2024-10-..", "1st IEG meeting started"),
    ("2024-11-04", "Second Draft posted"),
    ("2024-12-20", "Second Draft comment window closed"),
    ("2025-02-..", "2nd IEG meeting started"),
    ("2025-03-31", "Third Draft posted"),
    ("2025-06-16", "Third Draft comment window closed"),
    ("2025-09-..", "3rd IEG meeting started"),
    ("2025-11-03", "Fourth Draft posted"),
    ("2025-12-19", "Fourth Draft comment window closed"),
    ("2026-02-..", "4th IEG meeting started"),
    ("2026-04-13", "Final report posted"),
]


def rehearse(*args: str) -> None:
    """``prepflow rehearse ARGS`` from the checkout, as a user types it; must exit 0."""
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(ROOT)
        with pytest.raises(SystemExit) as exit_:
            main(["rehearse", *args])
    assert exit_.value.code == 0


def lines_on(transcript: str, day: str, text: str) -> list[str]:
    """Transcript lines on ``day`` (a regex: '2024-10-..' is any day that month) with ``text``."""
    pattern = re.compile(rf"^{day} \S+ +{re.escape(text)}(?: .*)?$", re.MULTILINE)
    return [m.group(0) for m in pattern.finditer(transcript)]


@dataclass(frozen=True)
class TwoRuns:
    """The same rehearsal twice: once keeping its store, once on a temporary one."""

    kept: bytes
    temporary: bytes
    database: str

    @property
    def text(self) -> str:
        """The first run's transcript."""
        return self.kept.decode("utf-8")


@pytest.fixture(scope="module")
def plain(tmp_path_factory: pytest.TempPathFactory) -> TwoRuns:
    """`prepflow rehearse config/wtpf26.yaml` twice, the first with --database."""
    folder = tmp_path_factory.mktemp("rehearsal")
    database = f"sqlite:///{folder / 'kept.db'}"
    rehearse("config/wtpf26.yaml", "--transcript", str(folder / "a.txt"), "--database", database)
    rehearse("config/wtpf26.yaml", "--transcript", str(folder / "b.txt"))
    return TwoRuns((folder / "a.txt").read_bytes(), (folder / "b.txt").read_bytes(), database)


def test_two_rehearsals_give_byte_identical_transcripts(plain: TwoRuns) -> None:
    """Same inputs, same bytes: the transcript depends on nothing but the definition."""
    assert plain.kept
    assert plain.kept == plain.temporary


@pytest.mark.parametrize(("day", "milestone"), ANNEX_2, ids=[m for _, m in ANNEX_2])
def test_transcript_shows_each_annex_2_milestone_on_its_geneva_date(
        plain: TwoRuns, day: str, milestone: str) -> None:
    """Every Annex 2 milestone happens once, on its Geneva day (month, for IEG meetings)."""
    assert len(lines_on(plain.text, day, milestone)) == 1, plain.text


def test_transcript_shows_the_summer_time_nights(plain: TwoRuns) -> None:
    """Both fall-back nights ran their doubled tick."""
    for night in ("2024-10-27", "2025-10-26"):
        assert lines_on(plain.text, night, "summer time ends: the 02:30 tick ran twice"), night
    assert plain.text.splitlines()[0].startswith("# rehearsal of wtpf-26 from config/wtpf26.yaml")


def test_undated_forum_is_assumed_at_the_earliest_six_week_opening(plain: TwoRuns) -> None:
    """The plan leaves WTPF-26 undated: the rehearsal says what it assumes (13 Apr 2026 + 42
    days), amends the forum through the audited path, and the final report then passes."""
    [said] = lines_on(plain.text, "2026-04-13", "Forum undated in the plan:")
    assert said.endswith("assuming it opens on 25 May 2026 (earliest the six-week rule allows "
                         "after the final report planned for 13 Apr 2026)")
    [amended] = lines_on(plain.text, "2026-04-13", "amended forum:")
    assert "not set → 25 May 2026 (rehearsal assumption:" in amended
    assert "rules re-checked: 16, 0 broken" in amended
    assert plain.text.index(said) < plain.text.index(amended)
    final = lines_on(plain.text, "2026-04-13", "Final report posted")[0]
    assert plain.text.index(amended) < plain.text.index(final)
    assert "[checks passed: six_weeks]" in final
    [six] = lines_on(plain.text, "2026-04-13", "six-weeks: pass")
    assert "42 days, 0 days of slack" in six
    assert "OVERRIDE" not in plain.text


def test_plain_rehearsal_ends_with_the_forum_closed(plain: TwoRuns) -> None:
    """The forum opens and closes on the assumed days; the transcript ends there."""
    assert len(lines_on(plain.text, "2026-05-25", "WTPF-26 opened")) == 1
    assert len(lines_on(plain.text, "2026-05-27", "WTPF-26 closed")) == 1
    events = [line for line in plain.text.splitlines() if not line.startswith("#")]
    assert events[-2:] == [lines_on(plain.text, "2026-05-27", "WTPF-26 closed")[0],
                           "2026-05-28 system       process closed"]
    assert "stopped" not in plain.text


def test_plain_rehearsal_takes_one_opinion_per_theme_through_the_forum(plain: TwoRuns) -> None:
    """Five draft Opinions (one per WTPF-26 theme) move with the drafts and are each adopted
    at the forum, whose agenda is done, chair and report recorded, before the process closes."""
    with open_store(plain.database) as store:
        instance = Instance.from_doc(store.get("wtpf-26-rehearsal").state)
    assert sorted(o.theme or "" for o in instance.opinions.values()) == sorted(
        ["digital-divides", "green", "resilience", "space", "innovation"])
    for opinion in instance.opinions.values():
        assert [c.stage.value for c in opinion.history] == [
            "outline", "possible", "annexed", "final", "adopted"]
    assert instance.regions["agenda"] == "agenda.done"
    assert (instance.forum.chair, instance.forum.report) == (
        "Chair of the forum (rehearsal)", "WTPF-26/CHAIR-REPORT")
    assert lines_on(plain.text, "2024-11-04", "Opinion op-1 (digital-divides): possible draft "
                    "Opinion [cycle draft2, IEG meeting ieg1]")
    assert len(lines_on(plain.text, "2026-05-25", "Opinion op-5 (innovation): adopted by "
                        "consensus [cycle —, IEG meeting ieg4] (non-binding)")) == 1
    assert lines_on(plain.text, "2026-05-2.", "forum record: agenda completed, chair Chair of "
                    "the forum (rehearsal), chair's report WTPF-26/CHAIR-REPORT")
    assert "agenda item 11" not in plain.text


def test_rehearse_with_database_keeps_a_store_whose_audit_log_verifies(plain: TwoRuns) -> None:
    """--database keeps the rehearsed store: state where the transcript ends, chain intact."""
    with open_store(plain.database) as store:
        assert Service(store).verify() == []  # chains, definition and whole state
        [process] = store.list()
        assert process.process_id == "wtpf-26-rehearsal"  # its own id (issue 11)
        assert Instance.from_doc(process.state).regions["main"] == "closed"
        log = store.audit("wtpf-26-rehearsal")
    posted = [e for e in log if e.kind == "transition" and e.trigger == "post_final"]
    assert len(posted) == 1
    assert posted[0].actor == "wtpf-secretariat"
    [forum] = [e for e in log if e.kind == "amendment"
               and e.inputs["milestone"] == "forum"]  # the assumption, audited as any other
    assert forum.actor == "wtpf-secretariat"
    assert str(forum.reason).startswith("rehearsal assumption:")
    transitions = sum(1 for e in log if e.kind == "transition")
    transcript_transitions = sum(
        1 for line in plain.text.splitlines()
        if re.match(r"^\d{4}-\d\d-\d\d (system|wtpf-secretariat) +\S", line)
        and ("[checks" in line or "(document" in line))
    assert transitions == transcript_transitions


def test_rehearse_refuses_a_database_that_already_holds_the_process(plain: TwoRuns) -> None:
    """A kept store is not rehearsed over: the command refuses instead of mixing two runs."""
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(ROOT)
        with pytest.raises(SystemExit) as exit_:
            main(["rehearse", "config/wtpf26.yaml", "--database", plain.database])
    assert exit_.value.code == 2


@pytest.fixture(scope="module")
def what_if(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    """The what-if scenario rehearsed: (transcript, database)."""
    folder = tmp_path_factory.mktemp("what-if")
    database = f"sqlite:///{folder / 'what-if.db'}"
    rehearse("config/wtpf26.yaml", "--scenario", WHAT_IF, "--transcript",
             str(folder / "t.txt"), "--database", database)
    return (folder / "t.txt").read_text(encoding="utf-8"), database


def test_what_if_scenario_is_labelled_hypothetical(what_if: tuple[str, str]) -> None:
    """The scenario's invented events are labelled as such, in the file and the transcript."""
    text, _ = what_if
    assert "hypothetical" in text.splitlines()[0]
    assert "HYPOTHETICAL" in (ROOT / WHAT_IF).read_text(encoding="utf-8")


def test_what_if_early_attempt_is_refused_and_recorded(what_if: tuple[str, str]) -> None:
    """Posting the Third Draft in January 2025 is refused by the order rule, on that day."""
    text, _ = what_if
    [refused] = lines_on(text, "2025-01-15", "REFUSED post_draft3:")
    assert "Refused by rule 'order'" in refused
    assert len(lines_on(text, "2025-03-31", "Third Draft posted")) == 1  # later, on its day


def test_what_if_amendments_move_the_meeting_and_set_the_forum(what_if: tuple[str, str]) -> None:
    """The 3rd IEG slips two weeks and Council's (hypothetical) forum date is recorded."""
    text, _ = what_if
    [slip] = lines_on(text, "2025-08-20", "amended ieg3:")
    assert "8 Sep 2025 – 9 Sep 2025 → 22 Sep 2025 – 23 Sep 2025" in slip
    assert "rules re-checked: 16, 0 broken" in slip
    assert lines_on(text, "2025-09-22", "3rd IEG meeting started")
    [forum] = lines_on(text, "2025-10-15", "amended forum:")
    assert "not set → 2 Jun 2026" in forum


def test_what_if_late_draft_and_six_weeks_pass_with_slack(what_if: tuple[str, str]) -> None:
    """The Fourth Draft goes online a week late; the final meets six weeks with 8 days spare."""
    text, _ = what_if
    assert lines_on(text, "2025-11-10", "Fourth Draft posted")
    assert not lines_on(text, "2025-11-03", "Fourth Draft posted")
    [six] = lines_on(text, "2026-04-13", "six-weeks: pass")
    assert "50 days, 8 days of slack" in six
    assert "OVERRIDE" not in text
    assert "Forum undated" not in text  # the scenario dates the forum: nothing is assumed


def test_what_if_process_reaches_closed(what_if: tuple[str, str]) -> None:
    """With a forum date the process runs to the end: forum opens, closes, process closed."""
    text, database = what_if
    assert lines_on(text, "2026-06-02", "WTPF-26 opened")
    assert lines_on(text, r"2026-06-0\d", "process closed")
    with open_store(database) as store:
        assert Service(store).verify() == []  # chains, definition and whole state
        assert Instance.from_doc(store.get("wtpf-26-rehearsal").state).regions["main"] == "closed"
