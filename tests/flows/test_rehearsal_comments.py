"""`prepflow rehearse --comments N`: real contributions in every draft's comment window,
summarised in the transcript and in `prepflow comments summary` on the kept store."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

from flows.cli.app import main
from flows.shell import Service
from flows.storage import open_store
from states.forum import OUTCOMES
from states.instance import Instance

pytestmark = [pytest.mark.usefixtures("prefect_server"), pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
N = 5
CYCLES = ("draft1", "draft2", "draft3", "draft4")
NAMES = {"draft1": "First Draft", "draft2": "Second Draft", "draft3": "Third Draft",
         "draft4": "Fourth Draft"}
WINDOW = re.compile(r"(?P<name>.+?) \((?P<cycle>\w+)\): (?P<total>\d+) contributions?, "
                    r"(?P<on_time>\d+) on time, (?P<late>\d+) late; by kind (?P<by_kind>.*); "
                    r"by source (?P<by_category>.*); by region (?P<by_region>.*)$")


@dataclass(frozen=True)
class Run:
    """The rehearsal's transcript and its kept store."""

    text: str
    database: str


@pytest.fixture(scope="module")
def rehearsed(tmp_path_factory: pytest.TempPathFactory) -> Run:
    """`prepflow rehearse config/wtpf26.yaml --comments 5 --database URL`."""
    folder = tmp_path_factory.mktemp("rehearsal-comments")
    database = f"sqlite:///{folder / 'kept.db'}"
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(ROOT)
        with pytest.raises(SystemExit) as exit_:
            main(["rehearse", "config/wtpf26.yaml", "--comments", str(N), "--transcript",
                  str(folder / "t.txt"), "--database", database])
    assert exit_.value.code == 0
    return Run((folder / "t.txt").read_text(encoding="utf-8"), database)


def windows(text: str, prefix: str) -> dict[str, dict[str, object]]:
    """The window summaries on lines starting with ``prefix``, by cycle, counts parsed."""
    found: dict[str, dict[str, object]] = {}
    for line in text.splitlines():
        if line.startswith(prefix):
            match = WINDOW.match(line.removeprefix(prefix))
            assert match is not None, line
            values: dict[str, object] = {k: int(match[k]) for k in ("total", "on_time", "late")}
            for key in ("by_kind", "by_category", "by_region"):
                values[key] = {} if match[key] == "none" else {
                    k: int(v) for k, v in (part.rsplit(" ", 1) for part in match[key].split(", "))}
            found[match["cycle"]] = values
    return found


def batches(text: str, cycle: str) -> tuple[list[int], list[int], int]:
    """Per batch line of a draft: on-time counts, late counts, and how many came from the public."""
    name = NAMES[cycle]
    on_time, late, public = [], [], 0
    for line in text.splitlines():
        if m := re.match(rf"^\S+ register +(\d+) late contributions? on the {name} recorded",
                         line):
            late.append(int(m[1]))
        elif m := re.match(rf"^\S+ register +(\d+) contributions? on the {name} recorded"
                           r"(?: \((\d+) from the public\))?$", line):
            on_time.append(int(m[1]))
            public += int(m[2] or 0)
    return on_time, late, public


def test_each_window_is_summarised_at_its_close_and_at_the_end(rehearsed: Run) -> None:
    """Four windows: N recorded in batches (one line each), the late ones after the close and
    counted apart; the counts by kind, source and region add up to the total."""
    at_close = {c: w for line in rehearsed.text.splitlines()
                if " register     comment window closed: " in line
                for c, w in windows(line.split("comment window closed: ", 1)[1], "").items()}
    at_end = windows(rehearsed.text, "# comments ")
    assert sorted(at_close) == sorted(at_end) == list(CYCLES)
    for cycle in CYCLES:
        on_time, late, public = batches(rehearsed.text, cycle)
        end, close = at_end[cycle], at_close[cycle]
        assert (sum(on_time), sum(late)) == (close["total"], end["late"]) == (N - 1, 1)
        assert (close["on_time"], close["late"]) == (N - 1, 0)  # late ones came after the close
        assert (end["total"], end["on_time"]) == (N, N - 1)
        for key in ("by_kind", "by_category", "by_region"):
            counts = end[key]
            assert isinstance(counts, dict)
            assert sum(counts.values()) == N
        by_source = end["by_category"]
        assert isinstance(by_source, dict)
        assert by_source.get("public", 0) == public
        if cycle in ("draft1", "draft4"):  # no public consultation on these drafts
            assert public == 0


def test_comments_summary_on_the_kept_store_gives_the_transcript_totals(
        rehearsed: Run, capsys: pytest.CaptureFixture[str]) -> None:
    """`prepflow comments summary --format json` on the rehearsal's store: the same four
    windows, the same counts as the transcript's end, the close's summary as recorded."""
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_:
        main(["comments", "summary", "wtpf-26-rehearsal", "--format", "json", "--database",
              rehearsed.database])
    assert exit_.value.code in (0, None)
    body = json.loads(capsys.readouterr().out)
    at_end = windows(rehearsed.text, "# comments ")
    assert [w["cycle"] for w in body["windows"]] == list(CYCLES)
    for window in body["windows"]:
        expected = at_end[window["cycle"]]
        assert {k: window[k] for k in ("total", "on_time", "late")} == {
            k: expected[k] for k in ("total", "on_time", "late")}
        for key in ("by_kind", "by_category", "by_region"):
            assert {k: v for k, v in window[key].items() if v} == expected[key]
        assert window["at_close"]["total"] == N - 1


def test_the_rehearsal_with_comments_closes_with_every_opinion_decided(rehearsed: Run) -> None:
    """The comments change nothing in the process's course: five Opinions, each with the
    forum's outcome, the process closed, every contribution in the audit log."""
    with open_store(rehearsed.database) as store:
        instance = Instance.from_doc(store.get("wtpf-26-rehearsal").state)
        register = store.contributions("wtpf-26-rehearsal")
        log = store.audit("wtpf-26-rehearsal")
        assert Service(store).verify() == []  # chains, definition and whole state
    assert instance.regions["main"] == "closed"
    assert len(instance.opinions) == 5
    assert all(o.history[-1].stage in OUTCOMES for o in instance.opinions.values())
    assert len(register) == 4 * N
    assert sum(e.kind == "contribution" for e in log) == 4 * N
    assert rehearsed.text.splitlines()[-6] == "2026-05-28 system       process closed"
