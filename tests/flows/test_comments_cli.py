"""`prepflow comments add|import|list|summary`: records, late flags, refusals and bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from flows.storage import open_store
from tests.flows.cli_run import Result, Run, fresh_store, in_process

WTPF = "config/wtpf26.yaml"
BY = "wtpf-secretariat"
HEADER = "cycle,from,category,kind,title,document,country,region,language,received"




@pytest.fixture
def run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> Run:
    """The CLI on a fresh SQLite store: WTPF-26 created, its First Draft posted 5 Aug 2024."""
    fresh_store(tmp_path, monkeypatch, width=250, name="store.db")
    call = in_process(capsys)

    assert call("init", WTPF, "--now", "2024-07-10T08:00Z").code == 0
    assert call("transition", "wtpf-26", "post_draft1", "--document", "WTPF-26/1", "--by", BY,
                "--now", "2024-08-05T08:00Z").code == 0
    return call


def add(run: Run, *extra: str, now: str = "2024-08-28T08:00Z") -> Result:
    """`comments add` of Brazil's comment on the First Draft, with ``extra`` options."""
    options = {"--cycle": "draft1", "--from": "Brazil", "--category": "member-state",
               "--kind": "draft-comment", "--title": "Comments", "--document": "C-1"}
    given = dict(zip(extra[::2], extra[1::2], strict=True))
    args = [a for k, v in {**options, **given}.items() for a in (k, v)]
    return run("comments", "add", "wtpf-26", *args, "--by", BY, "--now", now)


def stored(tmp_path: Path) -> tuple[list, list]:  # type: ignore[type-arg]
    """(contributions, audit) of the test store."""
    with open_store(f"sqlite:///{tmp_path / 'store.db'}") as store:
        return store.contributions("wtpf-26"), store.audit("wtpf-26")


def test_add_on_time_and_late_then_list_in_geneva_time(run: Run, tmp_path: Path) -> None:
    """Times are taken in Geneva without a zone and shown with the zone named; late flagged."""
    assert add(run, "--received", "2024-08-26 23:59", "--region", "A").code == 0
    result = add(run, "--received", "2024-08-27T00:00+02:00", "--from", "Ghana",
                 "--document", "C-2")
    assert result.code == 0, result.err
    assert "late" in result.out
    register, audit = stored(tmp_path)
    assert [c.late for c in register] == [False, True]
    assert [e.kind for e in audit[-2:]] == ["contribution", "contribution"]
    listing = run("comments", "list", "wtpf-26")
    assert "26 Aug 2024 23:59 CEST" in listing.out
    assert "Europe/Zurich" in listing.out
    late_only = run("comments", "list", "wtpf-26", "--late")
    assert "Ghana" in late_only.out
    assert "Brazil" not in late_only.out


def test_summary_per_window_as_table_and_json(run: Run) -> None:
    """Counts by kind, source and region, on time and late; the close's record once closed."""
    add(run, "--received", "2024-08-20T10:00Z", "--region", "A")
    add(run, "--received", "2024-08-27T10:00Z", "--kind", "opinion-outline", "--region", "D",
        "--document", "C-2")
    assert run("advance", "--now", "2024-08-28T09:00Z").code == 0
    table = run("comments", "summary", "wtpf-26")
    assert "26 Aug 2024, end of day" in table.out
    assert "draft-comment 1" in table.out
    assert "opinion-outline 1" in table.out
    body = json.loads(run("comments", "summary", "wtpf-26", "--cycle", "draft1",
                          "--format", "json").out)
    (window,) = body["windows"]
    assert (window["total"], window["on_time"], window["late"]) == (2, 1, 1)
    assert window["by_region"] == {"A": 1, "D": 1}
    assert window["at_close"]["total"] == 2


def test_a_draft_not_yet_posted_is_refused_and_audited(run: Run, tmp_path: Path) -> None:
    """Exit 1 with the rule and the reason; the refusal is the only thing written."""
    result = add(run, "--cycle", "draft2")
    assert result.code == 1
    assert "Refused by rule 'contribution'" in result.err
    assert "never opened" in result.err
    register, audit = stored(tmp_path)
    assert register == []
    assert audit[-1].kind == "refusal"


def test_public_input_without_consultation_is_refused(run: Run) -> None:
    """The First Draft has no public consultation: the public is refused, exit 1."""
    result = add(run, "--category", "public")
    assert result.code == 1
    assert "no public consultation" in result.err


@pytest.mark.parametrize(("options", "named"), [
    (("--category", "ngo"), "--category 'ngo': must be one of member-state"),
    (("--cycle", "draft9"), "cycle: 'draft9' is not a draft of wtpf-26"),
    (("--language", "de"), "--language 'de': must be one of ar, zh, en"),
    (("--received", "2024-13-01"), "--received: '2024-13-01' is not a date"),
    (("--received", "2024-10-27 02:30"), "happens twice in Europe/Zurich"),
])
def test_bad_input_exits_2_naming_the_field(run: Run, tmp_path: Path, options: tuple[str, str],
                                            named: str) -> None:
    """Unknown category, draft or language, a bad or ambiguous time: exit 2, nothing written."""
    result = add(run, *options, now="2024-12-01T08:00Z")
    assert result.code == 2
    assert named in result.err
    assert "Traceback" not in result.err
    register, audit = stored(tmp_path)
    assert register == []
    assert audit[-1].kind == "transition"


def write(tmp_path: Path, text: str, encoding: str = "utf-8") -> str:
    """An import file with ``text``."""
    path = tmp_path / "comments.csv"
    path.write_bytes(text.encode(encoding))
    return str(path)


ROW = "draft1,Brazil,member-state,draft-comment,Comments,C-1,BR,A,pt,2024-08-20 10:00"


def test_import_reads_utf8_with_bom_and_commas(run: Run, tmp_path: Path) -> None:
    """A UTF-8-BOM CSV (Excel's 'CSV UTF-8') with a late row: all imported, the late counted."""
    late = "draft1,Côte d'Ivoire,member-state,opinion-outline,Avis,C-2,CI,D,fr,2024-08-27 09:00"
    text = "\n".join([HEADER, ROW.replace(",pt,", ",es,"), late]) + "\n"
    result = run("comments", "import", "wtpf-26", write(tmp_path, text, "utf-8-sig"),
                 "--by", BY, "--now", "2024-08-28T08:00Z")
    assert result.code == 0, result.err
    assert "imported 2 contribution(s)" in result.out
    assert "1 after the comment deadline" in result.out
    register, _ = stored(tmp_path)
    assert [c.submitter for c in register] == ["Brazil", "Côte d'Ivoire"]


def test_import_detects_semicolons(run: Run, tmp_path: Path) -> None:
    """A semicolon-separated file (European Excel) reads the same, commas inside fields kept."""
    row = "draft1;Brazil;member-state;draft-comment;Comments, part 1;C-1;BR;A;es;2024-08-20"
    result = run("comments", "import", "wtpf-26",
                 write(tmp_path, HEADER.replace(",", ";") + "\n" + row + "\n"),
                 "--by", BY, "--now", "2024-08-28T08:00Z")
    assert result.code == 0, result.err
    register, _ = stored(tmp_path)
    assert [c.title for c in register] == ["Comments, part 1"]


def test_import_with_bad_rows_writes_nothing_and_lists_every_one(run: Run,
                                                                 tmp_path: Path) -> None:
    """Two bad rows among good ones: exit 2, each named by line and field, nothing written."""
    good = ROW.replace(",pt,", ",en,")
    text = "\n".join([HEADER, good, good.replace("member-state", "ngo"),
                      good.replace("C-1", "C-4"), good.replace(",A,", ",Q,")]) + "\n"
    result = run("comments", "import", "wtpf-26", write(tmp_path, text), "--by", BY,
                 "--now", "2024-08-28T08:00Z")
    assert result.code == 2
    assert "line 3: category 'ngo'" in result.err
    assert "line 5: region: 'Q'" in result.err
    assert "Traceback" not in result.err
    register, audit = stored(tmp_path)
    assert register == []
    assert audit[-1].kind == "transition"


def test_import_in_another_encoding_names_line_and_field(run: Run, tmp_path: Path) -> None:
    """A Latin-1 file: exit 2 naming the line and column of the first byte that is not UTF-8."""
    text = "\n".join([HEADER, ROW.replace(",pt,", ",en,"),
                      ROW.replace("Brazil", "Côte d'Ivoire").replace(",pt,", ",fr,")]) + "\n"
    result = run("comments", "import", "wtpf-26", write(tmp_path, text, "latin-1"), "--by", BY,
                 "--now", "2024-08-28T08:00Z")
    assert result.code == 2
    assert "line 3, field 'from'" in result.err
    assert "UTF-8" in result.err
    assert stored(tmp_path)[0] == []


def test_import_with_an_unknown_separator_says_what_is_expected(run: Run,
                                                                tmp_path: Path) -> None:
    """A tab-separated file is one column to us: exit 2 naming the header line."""
    result = run("comments", "import", "wtpf-26",
                 write(tmp_path, HEADER.replace(",", "\t") + "\n" + ROW.replace(",", "\t")),
                 "--by", BY, "--now", "2024-08-28T08:00Z")
    assert result.code == 2
    assert "line 1 (header) is one field" in result.err
    assert "commas or semicolons" in result.err


def test_import_refused_row_refuses_all_and_is_audited(run: Run, tmp_path: Path) -> None:
    """One row on an unposted draft: exit 1, the row named, nothing but the refusal written."""
    text = "\n".join([HEADER, ROW.replace(",pt,", ",en,"),
                      ROW.replace("draft1", "draft2").replace(",pt,", ",en,")]) + "\n"
    result = run("comments", "import", "wtpf-26", write(tmp_path, text), "--by", BY,
                 "--now", "2024-08-28T08:00Z")
    assert result.code == 1
    assert "line 3: the Second Draft" in result.err
    register, audit = stored(tmp_path)
    assert register == []
    assert audit[-1].kind == "refusal"


def test_list_and_summary_refuse_an_unknown_cycle(run: Run) -> None:
    """--cycle must be a draft with a comment window: exit 2 listing them."""
    for command in ("list", "summary"):
        result = run("comments", command, "wtpf-26", "--cycle", "final")
        assert result.code == 2
        assert "draft1, draft2, draft3, draft4" in result.err


def test_a_comment_on_an_unknown_opinion_is_bad_input(run: Run, tmp_path: Path) -> None:
    """--opinion op-99 with no such Opinion: exit 2 naming --opinion (or the line), listing
    the known Opinions; nothing written."""
    result = add(run, "--kind", "opinion-comment", "--opinion", "op-99")
    assert result.code == 2
    assert "--opinion 'op-99' is not a draft Opinion of wtpf-26; Opinions: none yet" \
        in result.err
    header = HEADER + ",opinion"
    text = "\n".join([header, ROW.replace(",pt,", ",en,").replace("draft-comment",
                                                                    "opinion-comment") + ",op-99"])
    result = run("comments", "import", "wtpf-26", write(tmp_path, text + "\n"), "--by", BY,
                 "--now", "2024-08-28T08:00Z")
    assert result.code == 2
    assert "line 2: opinion: 'op-99'" in result.err
    assert stored(tmp_path)[0] == []


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-32"])
def test_import_of_a_utf16_file_says_so(run: Run, tmp_path: Path, encoding: str) -> None:
    """Excel's 'Unicode text' (with or without a BOM): exit 2 saying which encoding it is."""
    text = "\n".join([HEADER, ROW.replace(",pt,", ",en,")]) + "\n"
    result = run("comments", "import", "wtpf-26", write(tmp_path, text, encoding), "--by", BY,
                 "--now", "2024-08-28T08:00Z")
    assert result.code == 2
    wide = "UTF-32" if encoding == "utf-32" else "UTF-16"
    assert f"the file is {wide}; save it as UTF-8 (in Excel: 'CSV UTF-8')" in result.err
    assert "0xff" not in result.err
    assert stored(tmp_path)[0] == []


def test_the_same_contributions_are_not_recorded_twice(run: Run, tmp_path: Path) -> None:
    """A BOM copy then a semicolon copy of one file: the second names its line and the
    earlier record and writes nothing; `add` of the same reference names --document."""
    rows = [ROW.replace(",pt,", ",en,"), ROW.replace(",pt,", ",en,").replace("C-1", "C-2")]
    first = write(tmp_path, "\n".join([HEADER, *rows]) + "\n", "utf-8-sig")
    assert run("comments", "import", "wtpf-26", first, "--by", BY,
               "--now", "2024-08-28T08:00Z").code == 0
    register, audit = stored(tmp_path)
    copy = "\n".join([HEADER.replace(",", ";"), rows[1].replace(",", ";").replace("C-2", "c-2")])
    result = run("comments", "import", "wtpf-26", write(tmp_path, copy + "\n"), "--by", BY,
                 "--now", "2024-08-29T08:00Z")
    assert result.code == 2
    assert f"line 2: document: 'c-2' on draft1 is already in the register as " \
        f"#{register[1].id}" in result.err
    result = add(run, "--document", "C-1")
    assert result.code == 2
    assert f"--document 'C-1' on draft1 is already in the register as #{register[0].id}" \
        in result.err
    assert stored(tmp_path) == (register, audit)


def test_a_public_name_is_masked_in_the_audit_log(run: Run, tmp_path: Path) -> None:
    """A refused public contribution is audited with the name masked and its source cited."""
    result = add(run, "--category", "public", "--from", "Jane Doe")
    assert result.code == 1
    assert "(source: " in result.err
    refusal = stored(tmp_path)[1][-1]
    assert refusal.kind == "refusal"
    assert "Jane" not in f"{refusal.reason} {refusal.inputs}"
    assert refusal.inputs["contributions"][0]["submitter"] == "J***"
