"""The process as it really runs, through the CLI: the timeline and the gantt show every change
of a milestone, and `prepflow drafts version` records a revised draft and tells the experts."""

from __future__ import annotations

from datetime import UTC, datetime

from flows.definition_file import load_definition
from flows.mail.render import Renderer
from flows.nominations import acknowledgements, check_row
from flows.orchestration.operator_view import gantt
from flows.shell import Service
from flows.storage import SqlStore
from tests.flows import test_cli
from tests.flows.test_cli import BY, WTPF, Run, audit, ok, one_paragraph, stored
from tests.flows.test_mail_render import COMMON, NOW, SENDER, Row, parts

db_url, run = test_cli.db_url, test_cli.run  # the CLI tests' fixtures: a fresh store, main()

SLIPS = [("2025-02-10..2025-02-12", "CWG cluster dates", "2024-09-01T08:00Z"),
         ("2025-02-17..2025-02-19", "room not free", "2024-10-01T08:00Z"),
         ("2025-02-24", "one day only", "2024-11-01T08:00Z")]


def test_timeline_and_gantt_show_plan_each_slip_and_the_actual(run: Run, db_url: str) -> None:
    """Three slips of the 2nd IEG meeting: each with its date, author and reason, in order."""
    ok(run("init", WTPF, "--now", "2024-07-10T08:00Z"))
    for span, reason, at in SLIPS:
        ok(run("amend", "wtpf-26", "ieg2", span, "--by", BY, "--reason", reason, "--now", at))
    text = ok(run("timeline", "wtpf-26")).out
    block = text[text.index("Changes (plan → each change → actual)"):]
    lines = [" ".join(line.split()) for line in block.splitlines()]
    at = lines.index("ieg2 2nd IEG meeting")
    assert lines[at + 1:at + 6] == [
        "plan February 2025",
        "change 1 10 Feb 2025 – 12 Feb 2025 (1 Sep 2024 10:00 CEST, by wtpf-secretariat: "
        "CWG cluster dates)",
        "change 2 17 Feb 2025 – 19 Feb 2025 (1 Oct 2024 10:00 CEST, by wtpf-secretariat: "
        "room not free)",
        "change 3 24 Feb 2025 (1 Nov 2024 09:00 CET, by wtpf-secretariat: one day only)",
        "actual not yet"]
    store = SqlStore(db_url)
    try:
        _, definition, instance = Service(store).load("wtpf-26")
    finally:
        store.close()
    chart = gantt(definition, instance).splitlines()
    bars = [line.strip() for line in chart if line.strip().startswith("2nd IEG meeting")]
    assert bars == ["2nd IEG meeting (plan) :2025-02-01, 28d",
                    "2nd IEG meeting (change 1) :2025-02-10, 3d",
                    "2nd IEG meeting (change 2) :2025-02-17, 3d",
                    "2nd IEG meeting (change 3) :active, 2025-02-24, 1d"]


def with_experts(db_url: str) -> None:
    """WTPF-26 in the store with two experts (one reads French), the First Draft posted."""
    store = SqlStore(db_url)
    try:
        now = datetime(2024, 8, 1, tzinfo=UTC)
        service = Service(store)
        definition = load_definition(WTPF)
        service.init(definition, datetime(2024, 7, 10, tzinfo=UTC))
        drafts = [check_row(definition, {
            "first_name": name, "last_name": "Test", "entity": "Org", "email": email,
            "nominated_by": "State", "country": "XX", "region": "B",
            "stakeholder_type": "government", "language": language}, now)
            for name, email, language in [("Ana", "ana@example.org", "fr"),
                                          ("Kofi", "kofi@example.org", "en")]]
        store.add_experts("wtpf-26", drafts, acknowledgements(definition, "wtpf-26", drafts, now))
        service.transition("wtpf-26", "post_draft1", BY, "WTPF-26/1",
                           now=datetime(2024, 8, 5, 8, tzinfo=UTC))
    finally:
        store.close()


def test_a_revised_draft_is_recorded_listed_and_mailed(run: Run, db_url: str) -> None:
    """`drafts version` records the revised First Draft; each expert gets the mail, in French
    for one; `drafts list` shows both versions."""
    with_experts(db_url)
    result = ok(run("drafts", "version", "wtpf-26", "draft1", "--document", "WTPF-26/1(Rev.1)",
                    "--label", "revised", "--by", BY, "--reason", "annex corrected",
                    "--now", "2024-08-12T08:00Z"))
    shown = " ".join(result.out.split())
    assert "draft1: version 'revised' (WTPF-26/1(Rev.1)) recorded; message decided: " \
        "draft_revised to experts." in shown
    timeline = " ".join(ok(run("timeline", "wtpf-26")).out.split())
    assert "5 Aug 2024 10:00 CEST (WTPF-26/1); revised: 12 Aug 2024 10:00 CEST " \
        "(WTPF-26/1(Rev.1))" in timeline
    entry = audit(db_url)[-1]
    assert (entry.kind, entry.inputs["cycle"], entry.inputs["version"]["document"]) == (
        "draft_version", "draft1", "WTPF-26/1(Rev.1)")
    store = SqlStore(db_url)
    try:
        rows = [r for r in store.outbox("wtpf-26") if r.event == "draft_revised"]
    finally:
        store.close()
    assert sorted(r.language for r in rows) == ["en", "fr"]
    renderer = Renderer(SENDER)
    texts = {r.language: " ".join(parts(renderer.render(
        Row(r.event, dict(r.context), language=r.language), "Europe/Zurich",
        r.created_at))[0].split()) for r in rows}
    assert "A new version of the First Draft of the report has been posted: revised " \
        "(WTPF-26/1(Rev.1)). It replaces the previous version (WTPF-26/1). " \
        "Why: annex corrected" in texts["en"]
    assert "Deadline: 26 Aug 2024, 24:00 CEST (Geneva time)" in texts["en"]
    assert "Une nouvelle version du document « First Draft »" in texts["fr"]
    store = SqlStore(db_url)
    try:
        _, definition, instance = Service(store).load("wtpf-26")
    finally:
        store.close()
    assert "First Draft posted (revised) :done, milestone, 2024-08-12, 0d" in gantt(
        definition, instance)
    listed = [" ".join(line.split()) for line in ok(run("drafts", "list", "wtpf-26")).out
              .splitlines()]
    assert any("draft1 │ posted │ WTPF-26/1 │ 5 Aug 2024 10:00 CEST" in line for line in listed)
    assert any("draft1 │ revised │ WTPF-26/1(Rev.1) │ 12 Aug 2024 10:00 CEST" in line
               for line in listed)


def test_a_version_of_an_unposted_draft_is_refused_and_audited(run: Run, db_url: str) -> None:
    """The Second Draft is not posted: exit 1, the rule and what to do; only the refusal lands."""
    with_experts(db_url)
    before = stored(db_url)
    refused = run("drafts", "version", "wtpf-26", "draft2", "--document", "WTPF-26/2",
                  "--label", "revised", "--by", BY, "--now", "2024-08-12T08:00Z")
    assert refused.code == 1
    text = one_paragraph(refused)
    assert "Refused by rule 'draft-version'" in text
    assert "has not been posted yet" in text
    assert "post_draft2" in text
    after = stored(db_url)
    assert (after.state, after.version) == (before.state, before.version)
    last = audit(db_url)[-1]
    assert (last.kind, last.trigger, last.inputs["rule"]) == ("refusal", "version draft2",
                                                              "draft-version")
    bad = run("drafts", "version", "wtpf-26", "draft9", "--document", "D", "--label", "x",
              "--by", BY)
    assert bad.code == 2
    assert "not a draft cycle of wtpf-26" in one_paragraph(bad)


def test_a_draft_without_a_comment_window_asks_for_no_comments() -> None:
    """The posting mail of a round without a window: no 'for comments', no deadline; French too."""
    context = {**COMMON, "cycle": "draft2", "cycle_name": "Second Draft", "document": "D2",
               "comments": False}
    renderer = Renderer(SENDER)
    english = renderer.render(Row("draft_posted", context), "Europe/Zurich", NOW)
    text = " ".join(parts(english)[0].split())
    assert english["Subject"] == "WTPF-26: Second Draft posted (D2)"
    assert "This round has no comment window" in text
    assert "Deadline" not in text
    french = renderer.render(Row("draft_posted", context, language="fr"), "Europe/Zurich", NOW)
    assert french["Subject"] == "WTPF-26 : Second Draft publié (D2)"
    assert "pas de période de commentaires" in parts(french)[0]
