"""The operator's pictures and tables (issue 11): diagrams and gantts one per cycle with their
own colours, days in whole days, rules as a table, 'SMTP not configured' said, and a rehearsal
that replaces its previous one on the Prefect server and nothing else."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import pytest

from flows.definition_file import load_definition
from flows.mail.delivery import DeliveryReport
from flows.orchestration.deliver import unconfigured
from flows.orchestration.operator_view import diagram, gantt, rules_rows, status_rows
from flows.rehearsal.driver import rehearsal_id, rehearsal_tags
from flows.settings import SmtpSettings
from states.engine import apply, start

ROOT = Path(__file__).resolve().parents[2]
WTPF = load_definition(ROOT / "config" / "wtpf26.yaml")
BY = "wtpf-secretariat"


def posted() -> tuple[object, datetime]:
    """WTPF-26 with the First Draft posted on 5 August 2024."""
    at = datetime(2024, 8, 5, 7, tzinfo=UTC)
    instance = apply(WTPF, start(WTPF, datetime(2024, 7, 10, tzinfo=UTC)).after, "post_draft1",
                     BY, at, document="WTPF-26/1").after
    return instance, at


def blocks(markdown: str) -> list[str]:
    return re.findall(r"```mermaid\n(.*?)```", markdown, re.S)


def test_diagram_is_one_top_to_bottom_block_per_cycle_and_side_region() -> None:
    """Each cycle, the consultations and the agenda get their own TB diagram with its theme;
    the current state is marked in its cycle's block."""
    instance, _ = posted()
    text = diagram(WTPF, instance)  # type: ignore[arg-type]
    found = blocks(text)
    headings = re.findall(r"^#### (.*)$", text, re.M)
    assert headings == [f"{c.name} — states" for c in WTPF.cycles] + [
        "Public consultations — states", "Forum agenda — states"]
    assert len(found) == len(headings)
    for block in found:
        assert block.startswith("stateDiagram-v2\n%%{init: ")
        assert "direction TB" in block
        assert '"fontFamily":"Arial' in block  # mermaid keeps no value with a '-' in it
    first = found[0]
    assert "(now)" in first
    assert "class draft1_comment_window current" in first
    assert "(now)" not in found[2]


def test_gantt_is_one_chart_per_cycle_with_few_ticks() -> None:
    """A chart per cycle (and nominations), each with its theme and a tick interval."""
    instance, _ = posted()
    text = gantt(WTPF, instance)  # type: ignore[arg-type]
    headings = re.findall(r"^#### (.*)$", text, re.M)
    assert headings[0] == "Nominations — plan vs actual"
    assert "First Draft — plan vs actual" in headings
    for block in blocks(text):
        assert block.startswith("gantt\n%%{init: ")
        assert re.search(r"tickInterval \d+(week|month)", block)
    assert "First Draft posted (actual) :done, milestone, 2024-08-05, 0d" in text


def test_status_days_left_are_whole_days_and_rules_a_table() -> None:
    """'days left' is an int (cut toward zero, as `prepflow status` counts), never -846.4;
    the rules are rows, six-week line first."""
    instance, _ = posted()
    rows = status_rows(WTPF, instance, datetime(2026, 11, 29, 15, tzinfo=UTC))  # type: ignore[arg-type]
    days = [r["days left"] for r in rows if r["days left"] != "—"]
    assert days
    assert all(isinstance(d, int) for d in days)
    rules = rules_rows(WTPF, instance)  # type: ignore[arg-type]
    assert rules[0]["rule"] == "six-weeks"
    assert set(rules[0]) == {"rule", "verdict", "slack (days)", "detail"}


def test_smtp_not_configured_is_said_only_when_it_is_the_cause() -> None:
    """No PREPFLOW_SMTP_HOST and nothing sent: the cause is named; a host set, or a message
    sent, or nothing to send: not."""
    waiting = DeliveryReport(retried=2)
    text = unconfigured(SmtpSettings(), waiting)
    assert text is not None
    assert text.startswith("SMTP not configured (PREPFLOW_SMTP_HOST is unset")
    assert unconfigured(SmtpSettings(host="mail.example.org"), waiting) is None
    assert unconfigured(SmtpSettings(), DeliveryReport(sent=1, retried=2)) is None
    assert unconfigured(SmtpSettings(), DeliveryReport()) is None


def test_rehearsal_has_its_own_id_and_tags() -> None:
    """A rehearsal of wtpf-26 is wtpf-26-rehearsal, tagged 'rehearsal' and by that id."""
    assert rehearsal_id("wtpf-26") == "wtpf-26-rehearsal"
    assert rehearsal_tags("wtpf-26-rehearsal") == ["rehearsal", "process:wtpf-26-rehearsal"]


@pytest.mark.slow
def test_clearing_a_rehearsal_removes_its_runs_and_artifacts_only(prefect_server: str) -> None:
    """clear_rehearsal deletes the rehearsal's tagged runs and keyed artifacts; the live
    process's run and artifacts under 'wtpf-26-…' stay."""
    from prefect import flow, tags
    from prefect.artifacts import create_markdown_artifact
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    from flows.rehearsal.replace import clear_rehearsal

    @flow(name="pictures-probe")
    def probe(key: str) -> None:
        create_markdown_artifact("x", key=key)

    with tags(*rehearsal_tags("wtpf-26-rehearsal")):
        probe("wtpf-26-rehearsal-status")
        probe("wtpf-26-rehearsal-diagram")
    probe("wtpf-26-status")

    runs, artifacts = clear_rehearsal("wtpf-26-rehearsal")

    assert (runs, artifacts) == (2, 2)
    with get_client(sync_client=True) as client:
        left = {a.key for a in client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(like_="wtpf-26")))}
    assert "wtpf-26-status" in left
    assert not {k for k in left if k and k.startswith("wtpf-26-rehearsal-")}
    assert clear_rehearsal("wtpf-26-rehearsal") == (0, 0)
