"""What `prepflow forum` and `prepflow opinions` say to a person: another forum's agenda names
no WTPF, a forum not open names its date, a wrong outcome lists only the outcomes."""

from __future__ import annotations

from pathlib import Path

from tests.flows import test_cli
from tests.flows.test_cli import BY, WTPF, Run, ok, one_paragraph

db_url = test_cli.db_url  # the CLI tests' fixtures: a fresh SQLite store, prepflow in-process
run = test_cli.run

OTHER = str(Path(__file__).resolve().parents[1] / "definitions" / "other_forum.yaml")


def test_another_forums_status_and_diagram_name_no_wtpf(run: Run) -> None:
    """RPD-27 gives no agenda: its forum status and diagram use the generic Annex 1 items."""
    ok(run("init", OTHER, "--now", "2026-01-01T08:00Z"))
    status = " ".join(ok(run("forum", "status", "rpd-27")).out.split())
    diagram = ok(run("diagram", OTHER)).out
    for shown in (status, diagram):
        assert "Inauguration of the Forum" in shown
        assert "Organization of the work of the Forum" in shown
        assert "WTPF" not in shown
        assert "World Telecommunication" not in shown
    wtpf = ok(run("diagram", WTPF)).out
    assert "Inauguration of the seventh World Telecommunication/ICT Policy Forum" in wtpf


def test_forum_next_before_the_forum_names_its_opening(run: Run) -> None:
    """RPD-27's forum is set for 16 Nov 2026: the refusal says so, in New York time."""
    ok(run("init", OTHER, "--now", "2026-01-01T08:00Z"))
    result = run("forum", "next", "rpd-27", "--by", "ana", "--now", "2026-01-02T08:00Z")
    assert result.code == 1
    text = one_paragraph(result)
    assert "Refused by rule 'forum-not-open'" in text
    assert "the forum opens on 16 Nov 2026 (New York time)" in text


def test_an_unknown_outcome_lists_only_the_outcomes(run: Run) -> None:
    """`opinions outcome … maybe` exits 2 naming adopted | not-adopted | withdrawn only."""
    ok(run("init", WTPF, "--now", "2024-07-10T08:00Z"))
    ok(run("opinions", "add", "wtpf-26", "op-1", "--title", "T", "--theme", "space", "--by", BY,
           "--now", "2024-08-20T08:00Z"))
    result = run("opinions", "outcome", "wtpf-26", "op-1", "maybe", "--by", BY,
                 "--now", "2024-08-21T08:00Z")
    assert result.code == 2
    text = one_paragraph(result)
    assert "adopted | not-adopted | withdrawn" in text
    assert "outline" not in text
    assert "final" not in text
    skip = run("opinions", "move", "wtpf-26", "op-1", "final", "--by", BY,
               "--now", "2024-08-21T08:00Z")
    assert skip.code == 1
    assert "'possible' (possible draft Opinion)" in one_paragraph(skip)
