"""`prepflow opinions` and `prepflow forum` as the secretariat uses them: exit codes, messages,
and the store after (a real SQLite store, the CLI run in-process)."""

from __future__ import annotations

import json

from states.forum import Opinion
from states.instance import Instance
from tests.flows import test_cli
from tests.flows.test_cli import (
    BY,
    WTPF,
    Run,
    audit,
    drive_to_final,
    ok,
    one_paragraph,
    snapshot,
    stored,
)

db_url = test_cli.db_url  # the CLI tests' fixtures: a fresh SQLite store, prepflow in-process
run = test_cli.run


def add(run: Run, opinion: str, now: str, theme: str = "space") -> None:
    """Present an Opinion at ``now``."""
    ok(run("opinions", "add", "wtpf-26", opinion, "--title", f"Opinion {opinion}", "--theme",
           theme, "--by", BY, "--now", now))


def to_final_posted(run: Run) -> None:
    """WTPF-26 through the CLI to its final report posted, the forum set for 2 June 2026."""
    drive_to_final(run)
    ok(run("amend", "wtpf-26", "forum", "2026-06-02", "--by", BY, "--reason", "Council",
           "--now", "2026-03-02T08:00Z"))
    ok(run("transition", "wtpf-26", "post_final", "--by", BY, "--document", "WTPF-26/F",
           "--now", "2026-04-13T07:00Z"))


def test_new_opinion_after_the_final_report_is_refused_and_only_audited(
        run: Run, db_url: str) -> None:
    """After the final report is posted, `opinions add` exits 1 citing Resolution 2, resolves
    10, and the store is unchanged but for the audited refusal."""
    to_final_posted(run)
    before_processes, before_log = snapshot(db_url)
    result = run("opinions", "add", "wtpf-26", "op-late", "--title", "Too late", "--theme",
                 "space", "--by", BY, "--now", "2026-04-20T08:00Z")
    assert result.code == 1
    text = one_paragraph(result)
    assert "Refused by rule 'no-new-opinions'" in text
    assert "Resolution 2 (Rev. Bucharest, 2022), resolves 10" in text
    after_processes, after_log = snapshot(db_url)
    assert [(p.state, p.version) for p in after_processes] == \
        [(p.state, p.version) for p in before_processes]
    assert after_log[:-1] == before_log
    (refusal,) = after_log[len(before_log):]
    assert (refusal.kind, refusal.trigger, refusal.inputs["rule"]) == (
        "refusal", "opinions add op-late", "no-new-opinions")
    assert refusal.inputs["opinion"] == "op-late"


def test_opinion_lifecycle_through_the_cli_to_the_forum(run: Run, db_url: str) -> None:
    """Added, moved (once without consensus), adopted at the forum during item 8; the process
    closes after the agenda; each change's audit record rebuilds the Opinion."""
    ok(run("init", WTPF, "--now", "2024-07-10T08:00Z"))
    add(run, "op-1", "2024-08-20T08:00Z", "digital-divides")
    moved = ok(run("opinions", "move", "wtpf-26", "op-1", "possible", "--no-consensus",
                   "--by", BY, "--now", "2024-08-21T08:00Z"))
    assert "possible draft Opinion (no IEG consensus)" in moved.out
    listed = json.loads(ok(run("opinions", "list", "wtpf-26", "--format", "json")).out)
    assert [(o["id"], o["stage"], o["consensus"]) for o in listed] == [("op-1", "possible",
                                                                        False)]
    early = run("opinions", "outcome", "wtpf-26", "op-1", "adopted", "--by", BY,
                "--now", "2024-08-22T08:00Z")
    assert early.code == 1
    assert "Refused by rule 'forum-not-open'" in one_paragraph(early)
    ok(run("opinions", "move", "wtpf-26", "op-1", "annexed", "--by", BY,
           "--now", "2024-08-23T08:00Z"))
    again = run("opinions", "add", "wtpf-26", "op-1", "--title", "Twice", "--theme", "space",
                "--by", BY, "--now", "2024-08-24T08:00Z")
    assert again.code == 2
    assert "already used" in one_paragraph(again)
    log = [e for e in audit(db_url) if e.kind == "opinion"]
    assert [e.trigger for e in log] == ["opinion add", "opinion move", "opinion move"]
    rebuilt = Opinion.model_validate(log[-1].inputs["opinion"])
    assert rebuilt == Instance.from_doc(stored(db_url).state).opinions["op-1"]


def test_forum_agenda_and_outcomes_through_the_cli(run: Run, db_url: str) -> None:
    """The forum takes its agenda item by item, the chair named, op-1 adopted during the
    consideration of draft opinions; the process closes at its end; status shows it."""
    drive_to_final(run)
    add(run, "op-1", "2026-03-01T08:00Z")
    for stage in ("possible", "annexed", "final"):
        ok(run("opinions", "move", "wtpf-26", "op-1", stage, "--by", BY,
               "--now", "2026-03-01T09:00Z"))
    ok(run("amend", "wtpf-26", "forum", "2026-06-02", "--by", BY, "--reason", "Council",
           "--now", "2026-03-02T08:00Z"))
    ok(run("transition", "wtpf-26", "post_final", "--by", BY, "--document", "WTPF-26/F",
           "--now", "2026-04-13T07:00Z"))
    ok(run("advance", "--now", "2026-06-01T22:00Z"))
    for step in range(1, 3):
        ok(run("forum", "next", "wtpf-26", "--by", BY, "--now", f"2026-06-02T0{step + 6}:00Z"))
    no_chair = run("forum", "next", "wtpf-26", "--by", BY, "--now", "2026-06-02T09:00Z")
    assert no_chair.code == 2
    assert "--chair NAME" in one_paragraph(no_chair)
    ok(run("forum", "next", "wtpf-26", "--chair", "Ms A. Chair", "--by", BY,
           "--now", "2026-06-02T09:00Z"))
    for step in range(4, 9):
        ok(run("forum", "next", "wtpf-26", "--by", BY, "--now", f"2026-06-02T{step + 6:02d}:00Z"))
    status = " ".join(ok(run("forum", "status", "wtpf-26")).out.split())
    assert "WTPF-26 agenda item 8: Consideration of draft opinions" in status
    assert "chair: Ms A. Chair" in status
    assert "working groups: op-1" in status
    ok(run("opinions", "outcome", "wtpf-26", "op-1", "adopted", "--by", BY,
           "--now", "2026-06-03T08:00Z"))
    for step, extra in ((9, []), (10, ["--document", "WTPF-26/CR"]), (11, [])):
        ok(run("forum", "next", "wtpf-26", "--by", BY, "--now", f"2026-06-03T{step:02d}:00Z",
               *extra))
    assert "forum → closed" in ok(run("advance", "--now", "2026-06-04T22:00Z")).out
    instance = Instance.from_doc(stored(db_url).state)
    assert (instance.forum.chair, instance.forum.report, instance.forum.non_binding) == (
        "Ms A. Chair", "WTPF-26/CR", True)
    assert instance.opinions["op-1"].stage == "adopted"
    forum_log = [e for e in audit(db_url) if e.kind == "forum"]
    assert forum_log[-1].inputs["forum"] == instance.forum.model_dump(mode="json")
    shown = " ".join(ok(run("status", "wtpf-26", "--now", "2026-06-05T08:00Z")).out.split())
    assert "forum: WTPF-26 agenda completed (chair: Ms A. Chair)" in shown
    assert "draft Opinions: 1 adopted by consensus" in shown


def test_walking_the_agenda_before_the_forum_is_refused(run: Run, db_url: str) -> None:
    """`forum next` before the forum opens exits 1 (audited), naming the rule."""
    ok(run("init", WTPF, "--now", "2024-07-10T08:00Z"))
    result = run("forum", "next", "wtpf-26", "--by", BY, "--now", "2024-07-11T08:00Z")
    assert result.code == 1
    assert "Refused by rule 'forum-not-open'" in one_paragraph(result)
    assert audit(db_url)[-1].kind == "refusal"
