"""The nominations register through the CLI: import, add, late flags, erasure and export."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from flows.storage import open_store
from tests.flows.cli_run import Run, fresh_store, in_process

WTPF = "config/wtpf26.yaml"
BY = "wtpf-secretariat"
HEADER = ("first_name,last_name,entity,email,nominated_by,country,region,stakeholder_type,"
          "gender,language,timezone")
ANA = "Ana,Silva,Anatel,Ana.Silva@Example.br,Brazil,BR,A,government,F,en,America/Sao_Paulo"
KOFI = "Kofi,Mensah,NCA,kofi@example.gh,Ghana,GH,D,government,,fr,"




@pytest.fixture
def run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> Run:
    """The CLI on a fresh SQLite store with WTPF-26 created on 10 Jul 2024."""
    fresh_store(tmp_path, monkeypatch, width=200, name="store.db")
    call = in_process(capsys)

    assert call("init", WTPF, "--now", "2024-07-10T08:00Z").code == 0
    return call


def csv_file(tmp_path: Path, *lines: str) -> str:
    """A nominations CSV with the header and these lines."""
    path = tmp_path / "nominations.csv"
    path.write_text("\n".join([HEADER, *lines]) + "\n", encoding="utf-8")
    return str(path)


def stored(tmp_path: Path) -> tuple[list, list, list]:  # type: ignore[type-arg]
    """(experts, outbox, audit) of the test store."""
    with open_store(f"sqlite:///{tmp_path / 'store.db'}") as store:
        return store.experts("wtpf-26"), store.outbox("wtpf-26"), store.audit("wtpf-26")


def test_import_adds_nominations_queues_acknowledgements_and_audits_counts(
        run: Run, tmp_path: Path) -> None:
    """Valid lines are imported with normalised addresses, acknowledged, audited without them."""
    result = run("experts", "import", csv_file(tmp_path, ANA, KOFI), "--by", BY,
                 "--now", "2024-08-20T10:00Z")
    assert result.code == 0, result.err
    assert "imported 2 nomination(s)" in result.out
    experts, outbox, audit = stored(tmp_path)
    assert [e.email for e in experts] == ["ana.silva@example.br", "kofi@example.gh"]
    assert [m.event for m in outbox] == ["nomination_acknowledged"] * 2
    assert {m.language for m in outbox} == {"en", "fr"}
    assert audit[-1].kind == "nominations"
    assert audit[-1].inputs["added"] == 2
    assert "example" not in json.dumps([dict(e.inputs) for e in audit] +
                                       [e.reason or "" for e in audit])


def test_a_malformed_line_imports_nothing_and_names_its_line(run: Run, tmp_path: Path) -> None:
    """A bad address on line 3 (shown masked) and an unknown region on line 4: exit 2, both
    named, none in."""
    path = csv_file(tmp_path, ANA, "Bo,Li,MIIT,bo.li@not-a-domain,China,CN,E,government,,zh,",
                    "Jo,Doe,X,jo@example.org,Fiji,FJ,Z,government,,en,")
    result = run("experts", "import", path, "--by", BY)
    assert result.code == 2
    assert "line 3" in result.err
    assert "'b***@not-a-domain' is not an email address" in result.err
    assert "bo.li@" not in result.err
    assert "line 4" in result.err
    assert "region 'Z'" in result.err
    assert "Traceback" not in result.err
    assert stored(tmp_path)[0] == []
    assert stored(tmp_path)[1] == []


def test_skip_invalid_imports_the_rest_and_lists_what_it_skipped(run: Run,
                                                                 tmp_path: Path) -> None:
    """--skip-invalid imports the valid lines and reports the skipped line numbers."""
    path = csv_file(tmp_path, ANA, "Bo,Li,MIIT,bo@@x,China,CN,E,government,,zh,", KOFI)
    result = run("experts", "import", path, "--by", BY, "--skip-invalid")
    assert result.code == 0, result.err
    assert "imported 2" in result.out
    assert "skipped: line 3" in result.out
    assert len(stored(tmp_path)[0]) == 2


def test_duplicates_are_found_case_insensitively_in_file_and_register(run: Run,
                                                                      tmp_path: Path) -> None:
    """The same address twice in a file, or again later in any case, is refused."""
    twice = csv_file(tmp_path, ANA, ANA.replace("Ana.Silva@Example.br", "ana.silva@example.BR"))
    result = run("experts", "import", twice, "--by", BY)
    assert result.code == 2
    assert "repeats line 2" in result.err
    assert run("experts", "import", csv_file(tmp_path, ANA), "--by", BY).code == 0
    again = run("experts", "add", "--first-name", "A", "--last-name", "S", "--entity", "E",
                "--email", " ANA.SILVA@example.br ", "--nominated-by", "Brazil", "--country",
                "BR", "--region", "A", "--stakeholder-type", "government", "--by", BY)
    assert again.code == 2
    assert "already" in again.err
    assert len(stored(tmp_path)[0]) == 1


def test_a_nomination_after_the_deadline_is_flagged_late(run: Run, tmp_path: Path) -> None:
    """The deadline is the end of 26 Aug 2024 in Geneva: 22:00Z that day is already late."""
    on_time = run("experts", "import", csv_file(tmp_path, ANA), "--by", BY,
                  "--now", "2024-08-26T21:59Z")
    assert "flagged late" not in on_time.out
    late = run("experts", "add", "--first-name", "Kofi", "--last-name", "Mensah", "--entity",
               "NCA", "--email", "kofi@example.gh", "--nominated-by", "Ghana", "--country", "GH",
               "--region", "D", "--stakeholder-type", "government", "--by", BY,
               "--now", "2024-08-26T22:00Z")
    assert late.code == 0, late.err
    assert "flagged late" in late.out
    assert [e.late for e in stored(tmp_path)[0]] == [False, True]


def test_a_name_with_rich_markup_is_printed_as_typed(run: Run, tmp_path: Path) -> None:
    """Brackets in a name are text, not console markup: added once, said once, exit 0."""
    added = run("experts", "add", "--first-name", "[/]", "--last-name", "Silva[bold]",
                "--entity", "An[/]atel", "--email", "ana@example.br", "--nominated-by", "Brazil",
                "--country", "BR", "--region", "A", "--stakeholder-type", "government",
                "--by", BY)
    assert added.code == 0, added.err
    assert "added [/] Silva[bold]" in added.out
    assert [e.last_name for e in stored(tmp_path)[0]] == ["Silva[bold]"]


def test_only_secretariat_members_may_import(run: Run, tmp_path: Path) -> None:
    """Someone not listed in the definition is refused (exit 1, the attempt audited: issue 10)
    and nothing is imported."""
    result = run("experts", "import", csv_file(tmp_path, ANA), "--by", "mallory")
    assert result.code == 1
    assert "not a secretariat member" in result.err
    assert stored(tmp_path)[0] == []
    last = stored(tmp_path)[2][-1]
    assert (last.kind, last.actor, last.trigger) == ("refusal", "mallory", "experts import")


def test_export_then_erase_keeps_the_audit_chain_valid(run: Run, tmp_path: Path) -> None:
    """Export shows a person's data; erase scrubs register and outbox; audit still verifies."""
    assert run("experts", "import", csv_file(tmp_path, ANA, KOFI), "--by", BY).code == 0
    exported = run("experts", "export", "ana.silva@example.br")
    body = json.loads(exported.out)
    assert body["expert"]["last_name"] == "Silva"
    assert [m["event"] for m in body["messages"]] == ["nomination_acknowledged"]
    erased = run("experts", "erase", "Ana.Silva@example.br", "--by", BY, "--reason", "DSR-1")
    assert erased.code == 0, erased.err
    experts, outbox, _ = stored(tmp_path)
    assert all("Silva" not in f"{e.first_name} {e.last_name} {e.email}" for e in experts)
    assert all("ana.silva" not in m.email and "Silva" not in m.name for m in outbox)
    assert run("audit", "--verify").code == 0
    assert run("experts", "export", "ana.silva@example.br").code == 2


def test_outbox_deliver_dry_run_lists_each_message_and_sends_nothing(run: Run,
                                                                    tmp_path: Path) -> None:
    """--dry-run shows every message that would go out (masked address, subject, key)."""
    assert run("experts", "import", csv_file(tmp_path, ANA, KOFI), "--by", BY).code == 0
    shown = run("outbox", "deliver", "--dry-run")
    assert shown.code == 0, shown.err
    assert "2 message(s) would go out now" in shown.out
    assert "a***@example.br" in shown.out
    assert "ana.silva@example.br" not in shown.out
    assert "wtpf-26:nomination:" in shown.out
    assert {m.status for m in stored(tmp_path)[1]} == {"pending"}


def test_outbox_retry_needs_a_member_and_is_audited(run: Run, tmp_path: Path) -> None:
    """Re-queueing a message names who and why in the audit log; others are refused."""
    assert run("experts", "import", csv_file(tmp_path, ANA), "--by", BY,
               "--now", "2024-07-20T08:00Z").code == 0
    with open_store(f"sqlite:///{tmp_path / 'store.db'}") as store:
        (item,) = store.outbox("wtpf-26")
        from datetime import UTC, datetime

        assert [c.id for c in store.claim(datetime(2024, 8, 1, tzinfo=UTC), 1)] == [item.id]
        assert store.mark_failed(item.id, "550 mailbox unavailable",
                                 datetime(2024, 8, 1, tzinfo=UTC))
    assert run("outbox", "retry", str(item.id), "--by", "mallory", "--reason", "x").code == 1
    assert stored(tmp_path)[2][-1].kind == "refusal"  # audited (issue 10)
    again = run("outbox", "retry", str(item.id), "--by", BY, "--reason", "mailbox fixed")
    assert again.code == 0, again.err
    audit = stored(tmp_path)[2]
    assert (audit[-1].kind, audit[-1].reason) == ("outbox-retry", "mailbox fixed")
    assert stored(tmp_path)[1][0].status == "pending"


def test_each_problem_with_an_address_names_the_line_and_masks_it(tmp_path: Path) -> None:
    """read_csv reports malformed and repeated addresses by line, never spelling them out."""
    from flows.definition_file import load_definition
    from flows.nominations import read_csv

    definition = load_definition(WTPF)
    path = Path(csv_file(tmp_path, ANA, "Bo,Li,MIIT,bo li@example.cn,China,CN,E,government,,zh,",
                    ANA.replace("Ana.Silva@Example.br", "ana.silva@example.br")))
    checked = read_csv(definition, path, datetime(2024, 7, 20, 8, tzinfo=UTC))
    assert [d.email for d in checked.drafts] == ["ana.silva@example.br"]
    assert checked.lines == [3, 4]
    assert checked.problems[0].startswith("line 3: 'b***@example.cn' is not an email address")
    assert checked.problems[1] == "line 4: a***@example.br repeats line 2"
    assert "bo li" not in " ".join(checked.problems)


def test_outbox_masks_addresses_unless_the_secretariat_asks(run: Run, tmp_path: Path) -> None:
    """`prepflow outbox` shows a***@example.br; --show-addresses shows the full address."""
    assert run("experts", "import", csv_file(tmp_path, ANA), "--by", BY).code == 0
    listed = run("outbox")
    assert listed.code == 0, listed.err
    assert "a***@example.br" in listed.out
    assert "ana.silva@example.br" not in listed.out
    full = run("outbox", "--show-addresses")
    assert full.code == 0, full.err
    assert "ana.silva@example.br" in full.out


def test_an_address_in_any_column_of_an_import_is_masked(run: Run, tmp_path: Path) -> None:
    """An address that landed in the region or zone column is named masked, as is one in
    `experts add`; nothing is imported."""
    path = csv_file(tmp_path, ANA.replace("America/Sao_Paulo", "tz.ana@example.br"),
                    KOFI.replace(",D,", ",kofi.region@example.gh,"))
    result = run("experts", "import", path, "--by", BY)
    assert result.code == 2
    assert "line 2" in result.err
    assert "line 3" in result.err
    assert "***@example.br" in result.err
    assert "***@example.gh" in result.err
    assert "tz.ana@" not in result.err
    assert "kofi.region@" not in result.err
    added = run("experts", "add", "--first-name", "A", "--last-name", "S", "--entity", "E",
                "--email", "ana@example.br", "--nominated-by", "Brazil", "--country", "BR",
                "--region", "jo.doe@example.org", "--stakeholder-type", "government",
                "--by", BY)
    assert added.code == 2
    assert "***@example.org" in added.err
    assert "jo.doe@" not in added.err
    assert stored(tmp_path)[0] == []


def test_retrying_a_pending_message_is_bad_input_and_writes_nothing(run: Run,
                                                                    tmp_path: Path) -> None:
    """A pending message is already in line: retry exits 2 and no retry is audited."""
    assert run("experts", "import", csv_file(tmp_path, ANA), "--by", BY).code == 0
    _, (item,), before = stored(tmp_path)
    result = run("outbox", "retry", str(item.id), "--by", BY, "--reason", "again")
    assert result.code == 2
    assert (f"message {item.id} is pending; only failed or uncertain messages can be retried"
            in result.err)
    _, outbox, after = stored(tmp_path)
    assert after == before
    assert [(m.status, m.attempts) for m in outbox] == [("pending", item.attempts)]


def test_a_file_of_many_bad_lines_lists_twenty_and_counts_the_rest(run: Run,
                                                                  tmp_path: Path) -> None:
    """500 bad lines: one paragraph naming the first 20 and '… and 480 more', nothing in."""
    bad = [f"X{i},Y,Z,x{i}@example.org,Fiji,FJ,Q,government,,en," for i in range(500)]
    result = run("experts", "import", csv_file(tmp_path, *bad), "--by", BY)
    assert result.code == 2, result.out
    assert "500 bad line(s)" in result.err
    assert "line 21:" in result.err
    assert "line 22:" not in result.err
    assert "… and 480 more" in result.err
    assert stored(tmp_path)[0] == []


@pytest.mark.parametrize("command", [("experts", "import"),
                                     ("comments", "import", "wtpf-26")])
def test_an_import_file_over_the_limit_is_refused_unread(run: Run, tmp_path: Path,
                                                          command: tuple[str, ...]) -> None:
    """A 10 MB+ file is bad input naming its size and the limit; nothing is written."""
    path = tmp_path / "huge.csv"
    with path.open("w", encoding="utf-8") as handle:
        handle.write(HEADER + "\n")
        handle.truncate(10_000_001)
    before = stored(tmp_path)
    result = run(*command, str(path), "--by", BY)
    assert result.code == 2, result.out
    assert "10,000,001 bytes" in result.err
    assert "at most 10,000,000" in result.err
    assert stored(tmp_path) == before
