"""Hostile input to every `prepflow` command: never a traceback, exit 0, 1 or 2, and on exit 2
the store is exactly as it was (issue 9).

The commands are read from the Typer app itself, so a new command is fuzzed without touching
this file. Each example draws arguments for one command (the values it expects, and hostile
ones: rich markup, control characters, huge numbers, dates at the calendar's edges, zoneless
times, files of random bytes, junk YAML or CSV) and runs it through ``flows.cli.app.main``,
the console script's entry point, on a copy of a prepared store (WTPF-26 with experts and
queued messages). A command that changed the store is followed by ``status``: an accepted
change must not break reading the process later. A few subprocess runs of ``python -m
flows.cli`` check that the in-process path is the real one.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import prefect.main  # noqa: F401 (see below)
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from flows.cli import app as cli
from flows.definition_file import load_definition
from states.machine import table_for
from states.plan import milestone_keys
from tests.flows.cli_run import Result, in_process

# Importing prefect.main sets up Prefect's log handlers on the sys.stderr of that moment.
# Done here, that is pytest's session-long capture; done inside an example (outbox deliver
# imports Prefect), it would be one test's capsys stream, closed when that test ends, and a
# later log line would print a '--- Logging error ---' traceback that a real process, with
# one stderr, never shows.
ROOT = Path(__file__).resolve().parents[2]
WTPF = ROOT / "config" / "wtpf26.yaml"
BY = "wtpf-secretariat"
EXPERT = "ana.silva@example.br"

#: Commands not fuzzed, each with the reason: they run until stopped.
LONG_RUNNING = {
    ("serve",): "serves the deployments until stopped (needs a Prefect server)",
    ("up",): "starts a Prefect server and serves until Ctrl-C",
}
#: Commands whose definition argument is always hostile: a valid one starts a whole simulated
#: process through Prefect (seconds an example); tests/flows/test_rehearsal*.py run that.
HOSTILE_DEFINITION_ONLY = {("rehearse",)}

#: Examples per command, fixed (derandomized) so CI is reproducible; a deeper local search:
#: PREPFLOW_FUZZ_EXAMPLES=200 PREPFLOW_FUZZ_RANDOM=1 pytest tests/flows/test_cli_fuzz.py
EXAMPLES = int(os.environ.get("PREPFLOW_FUZZ_EXAMPLES", "12"))
DERANDOMIZE = not os.environ.get("PREPFLOW_FUZZ_RANDOM")


def _commands() -> list[tuple[tuple[str, ...], object]]:
    """Every command and subcommand of the app (groups that run by themselves included)."""
    found: list[tuple[tuple[str, ...], object]] = []

    def walk(command: object, path: tuple[str, ...]) -> None:
        subcommands = getattr(command, "commands", None)
        if subcommands:
            if path and getattr(command, "invoke_without_command", False):
                found.append((path, command))
            for name, sub in subcommands.items():
                walk(sub, (*path, name))
        elif path:
            found.append((path, command))

    walk(cli.command(), ())
    return found


COMMANDS = _commands()
FUZZED = [(path, command) for path, command in COMMANDS if path not in LONG_RUNNING]

# ---- values -------------------------------------------------------------------------------

MARKUP = ["[/]", "[bold]", "[/bold]", "[red]x[/red]", "[link=file:///etc]x", "x[/x]", "[[/]]",
          "\\[/]", "[b", "a]"]
CONTROL = ["\x00", "\x1b[31mred", "line\nbreak", "\r", "\t", "\u202eevil", "\x7f", "\udcff"]
NUMBERS = ["0", "-1", "1", "2", "99999999999999999999999999", "1e309", "nan", "-0", "0x10"]
DATES = ["0001-01-01", "9999-12-31", "1900-01-01", "2999-12-31", "2999-12", "2024-02-30",
         "2024-02-29", "2025-02-29", "0000-01-01", "10000-01-01", "2024-13-01", "2025-02",
         "9999-12", "0001-01", "2024-10",
         "2025-02-10..2025-02-12", "9999-12-30..9999-12-31", "0001-01-01..0001-01-02",
         "2025-02-12..2025-02-10", "2026-03-29T02:30", "2025-10-26T02:30", "2025-02-10T25:00",
         "2026-05-10", "2024-10-07..2024-10-08", ".."]
INSTANTS = ["0001-01-01T00:00+00:00", "0001-01-01T00:00+14:00", "9999-12-31T23:59:59+00:00",
            "9999-12-31T23:59-14:00", "1900-01-01T00:00+14:00", "2999-12-31T23:59-14:00",
            "2024-08-27T00:00", "2024-08-27T00:00Z",
            "2026-03-29T02:30+01:00", "2024-02-30T00:00Z", "2024-08-20T10:00Z",
            "2025-01-15T09:00+01:00", "2026-06-01T12:00+02:00", "today"]
FIXED = [*MARKUP, *CONTROL, *NUMBERS, *DATES, *INSTANTS, "", " ", "-", "--", "x" * 500, "é日本🙂"]


def _names() -> dict[str, list[str]]:
    """Valid values by parameter name, taken from WTPF-26 (so examples get past the first
    check and reach the rules, the store and the printing)."""
    definition = load_definition(WTPF)
    triggers = sorted({s.trigger for s in table_for(definition).specs})
    milestones = list(milestone_keys(definition))
    cycles = [c.id for c in definition.cycles]
    meetings = [m.id for c in definition.cycles for m in c.meetings]
    process = ["wtpf-26", "wtpf-26", "other"]
    return {
        "process": process, "process_option": process, "process_id": ["copy", "wtpf-26"],
        "by": [BY, BY, "nobody"], "trigger": triggers, "milestone": milestones,
        "cycle": cycles, "meeting": meetings, "meeting_id": ["ieg9", "ieg1"],
        "date": DATES, "start": DATES, "end": DATES, "days": ["2026-03-10,2026-03-12", *DATES],
        "forum_date": DATES, "from_": DATES, "to": DATES, "received": [*INSTANTS, *DATES],
        "now": INSTANTS, "email": [EXPERT, EXPERT.upper(), "no@example.org"],
        "status": ["nominated", "confirmed", "withdrawn", "pending", "failed", "sent"],
        "item": ["1", "2", "3"], "stage": ["possible", "annexed", "final"],
        "result": ["adopted", "not-adopted", "withdrawn"], "opinion_id": ["op-1", "op-2"],
        "opinion": ["op-1"], "mode": ["physical", "virtual", "hybrid"],
        "category": ["member-state", "sector-member", "academia", "public"],
        "kind": ["draft-comment", "opinion-outline", "opinion-comment"],
        "format_": ["table", "ics", "json"], "fmt": ["table", "csv", "md", "json"],
        "format": ["table", "json"], "language": ["en", "fr", "xx"], "region": list("ABCDE"),
        "country": ["BR", "GH", "CH"], "stakeholder_type": ["government", "academia"],
        "session": ["physical:2026-01-20..2026-01-22@Geneva", "informal virtual:2026-03-10"],
        "set_": ["final.posting=2026-03-20", "forum=9999-12-31", "ieg2=0001-01-01"],
        "timezone": ["Asia/Tokyo", "Mars/Olympus", "UTC"], "limit": NUMBERS,
        "experts": ["0", "1", "3"], "comments": ["0", "1"], "theme": ["digital-divides"],
        "database": [],  # set in _value: the store's URL, a broken URL, a closed port
    }


NAMES = _names()
PATHS = {"definition", "file", "scenario", "write", "output", "transcript", "mail_sink"}
DEFINITION_TEXT = WTPF.read_text(encoding="utf-8")
NOMINATIONS_HEADER = ("first_name,last_name,entity,email,nominated_by,country,region,"
                      "stakeholder_type,gender,language,timezone")
COMMENTS_HEADER = "cycle,from,category,kind,title,document,country,region,language,received"

hostile = st.one_of(st.sampled_from(FIXED), st.text(max_size=12))


@st.composite
def _file_content(draw: st.DrawFn) -> bytes:
    """What a hostile (or valid) input file holds."""
    kind = draw(st.sampled_from(["definition", "edited", "edited", "bytes", "nested", "large",
                                 "nominations", "comments", "yaml"]))
    if kind == "definition":
        return DEFINITION_TEXT.encode()
    if kind == "edited":  # WTPF-26 with one date (or one value) replaced by a hostile one
        spots = [m.span() for m in re.finditer(r"\b\d{4}-\d{2}(-\d{2})?\b|: [^\n#]+",
                                               DEFINITION_TEXT)]
        start, end = draw(st.sampled_from(spots))
        value = draw(st.sampled_from([*DATES, *MARKUP, "2026-03-29T02:30", "2025-10-26T02:30"]))
        value = f": {value}" if DEFINITION_TEXT[start] == ":" else value
        return (DEFINITION_TEXT[:start] + value + DEFINITION_TEXT[end:]).encode()
    if kind == "bytes":
        return draw(st.binary(max_size=200))
    if kind == "nested":
        depth = draw(st.sampled_from([30, 1000, 100_000]))
        return ("[" * depth + "]" * depth).encode()
    if kind == "large":
        return b"a: " + b"x" * 300_000
    if kind == "yaml":
        return draw(st.sampled_from([b"", b"- 1\n- 2\n", b"id: [/]\n", b"a: &a [*a]\n",
                                     b"x: !!python/object:os.system ls\n", b"\xff\xfe",
                                     b"id: wtpf-26\nname: x\n"]))
    header = NOMINATIONS_HEADER if kind == "nominations" else COMMENTS_HEADER
    cells = draw(st.lists(st.lists(hostile.map(lambda t: t.replace(",", ";")), min_size=1,
                                   max_size=11), max_size=3))
    good = ("Ana,Silva,Anatel,ana@example.br,Brazil,BR,A,government,F,en,"
            if kind == "nominations" else "draft1,Brazil,member-state,draft-comment,T,C-1,,,,")
    lines = [header, good, *(",".join(row) for row in cells)]
    return "\n".join(lines).encode("utf-8", "surrogateescape")


@dataclass
class Sandbox:
    """A working folder with the prepared store copied in, and the store's URL."""

    folder: Path
    template: Path

    @property
    def db(self) -> Path:
        return self.folder / "prepflow.db"

    @property
    def url(self) -> str:
        return f"sqlite:///{self.db}"

    def reset(self) -> None:
        for item in self.folder.iterdir():
            if item.is_dir():
                shutil.rmtree(item)
            else:
                item.unlink()
        shutil.copyfile(self.template, self.db)

    def dump(self) -> list[str]:
        """Every table's every row (sqlite's own dump), for 'nothing written'."""
        with contextlib.closing(sqlite3.connect(self.db)) as connection:
            return list(connection.iterdump())

    def files(self) -> set[str]:
        """The folder's files, but SQLite's own companions of the store (-wal, -shm)."""
        return {str(p.relative_to(self.folder)) for p in self.folder.rglob("*")
                if not p.name.endswith(("-wal", "-shm", "-journal"))}


def _closed_port() -> int:
    """A loopback port nothing listens on (bound, then released): SMTP there is refused."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """WTPF-26 created, two experts nominated (their acknowledgements queued), draft 1 posted."""
    folder = tmp_path_factory.mktemp("template")
    url = f"sqlite:///{folder / 'prepflow.db'}"
    nominations = folder / "nominations.csv"
    nominations.write_text(NOMINATIONS_HEADER + "\n"
                           "Ana,Silva,Anatel,Ana.Silva@Example.br,Brazil,BR,A,government,F,en,\n"
                           "Kofi,Mensah,NCA,kofi@example.gh,Ghana,GH,D,government,,fr,\n",
                           encoding="utf-8")
    steps = [["init", str(WTPF), "--now", "2024-07-10T08:00Z"],
             ["experts", "import", str(nominations), "--by", BY, "--now", "2024-08-20T10:00Z"],
             ["transition", "wtpf-26", "post_draft1", "--by", BY, "--document", "WTPF-26/1",
              "--now", "2024-08-05T09:00Z"]]
    shown = io.StringIO()
    for argv in steps:
        with contextlib.redirect_stdout(shown), contextlib.redirect_stderr(shown), \
                pytest.raises(SystemExit) as stopped:
            cli.main([*argv, "--database", url])
        assert stopped.value.code == 0, (argv, shown.getvalue())
    return folder / "prepflow.db"


@pytest.fixture
def sandbox(template: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Sandbox:
    """The prepared store in a folder of its own, which is the working directory; mail goes
    to a closed loopback port (delivery fails fast, as when the server is down)."""
    folder = tmp_path / "work"
    folder.mkdir()
    box = Sandbox(folder, template)
    box.reset()
    monkeypatch.chdir(folder)
    monkeypatch.setenv("PREPFLOW_DATABASE_URL", box.url)
    monkeypatch.setenv("PREPFLOW_SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("PREPFLOW_SMTP_PORT", str(_closed_port()))
    monkeypatch.setenv("PREPFLOW_SMTP_TIMEOUT", "2")
    monkeypatch.setenv("PREPFLOW_SMTP_MAX_ATTEMPTS", "1")
    monkeypatch.setenv("COLUMNS", "120")
    return box


#: Valid files for a tame example, by parameter (and command): their text is still hostile.
TAME_FILES = {
    "definition": DEFINITION_TEXT,
    ("experts", "import"): NOMINATIONS_HEADER + "\n[/],[bold]x,Anatel [red],new@example.org,"
                           "Brazil,BR,A,government,F,en,\n",
    ("comments", "import"): COMMENTS_HEADER + "\ndraft1,[/] Brazil,member-state,draft-comment,"
                            "[bold]T,C-[/]9,BR,A,en,2024-08-20T10:00Z\n",
    "write": "# README\n<!-- diagram:start -->\n<!-- diagram:end -->\n",
}


def _path(draw: st.DrawFn, name: str, command: tuple[str, ...], inputs: Path,
          tame: bool) -> str:
    """A file for a path parameter: valid (tame), or missing, a folder, or hostile bytes."""
    choice = "tame" if tame else draw(st.sampled_from(
        ["file", "file", "file", "missing", "folder", "markup"]))
    if choice == "missing":
        return str(inputs / "missing.yaml")
    if choice == "folder":
        return str(inputs)
    number = draw(st.integers(0, 10**6))
    # '<inputs>/[/]7.txt' (a folder named '['): the path, echoed, holds rich markup.
    path = inputs / f"[/]{number}.txt" if choice != "file" else inputs / f"in{number}.yaml"
    path.parent.mkdir(exist_ok=True)
    content = TAME_FILES.get(command if name == "file" else name) if tame else None
    if content is not None:
        path.write_text(content, encoding="utf-8")
    elif not tame:
        path.write_bytes(draw(_file_content()))
    return str(path)  # tame output paths (--output, --transcript …) do not exist yet


def _value(draw: st.DrawFn, name: str, command: tuple[str, ...], box: Sandbox, inputs: Path,
           tame: bool) -> str:
    """One value for the parameter called ``name``: a valid one when ``tame`` (free text is
    still hostile: '[/]' is a fine reason), else often hostile."""
    if name == "database":
        return box.url if tame else draw(st.sampled_from([
            box.url, box.url, "nonsense://", "sqlite:///" + "x/" * 3,
            "postgresql+psycopg://u@127.0.0.1:1/none", "[/]"]))
    if name in PATHS:
        return _path(draw, name, command, inputs, tame)
    known = NAMES.get(name, [])
    if known and (tame or draw(st.booleans())):
        return draw(st.sampled_from(known))
    return draw(hostile)


@st.composite
def _argv(draw: st.DrawFn, path: tuple[str, ...], command: object, box: Sandbox,
          inputs: Path) -> list[str]:
    """A command line for ``command``: its required parameters always, others sometimes.
    Tame examples (half) draw valid values, so they reach the rules, the store and what is
    printed after a change; the others draw hostile ones, and now and then an unknown option
    or a stray argument."""
    tame = draw(st.booleans(), label="tame")
    argv = list(path)
    positional: list[str] = []
    for param in getattr(command, "params", []):
        name = str(param.name)
        if not param.required and not draw(st.integers(0, 2)):
            continue
        if param.param_type_name == "argument":
            if name == "definition" and path in HOSTILE_DEFINITION_ONLY:
                inputs.joinpath("hostile.yaml").write_bytes(draw(_file_content().filter(
                    lambda data: data != DEFINITION_TEXT.encode())))
                positional.append(str(inputs / "hostile.yaml"))
            else:
                positional.append(_value(draw, name, path, box, inputs, tame))
            continue
        flag = draw(st.sampled_from([*param.opts, *param.secondary_opts]))
        if getattr(param, "is_flag", False):
            argv.append(flag)
            continue
        for _ in range(draw(st.integers(1, 2)) if param.multiple else 1):
            argv += [flag, _value(draw, name, path, box, inputs, tame)]
    argv += ["--"] * any(p.startswith("-") for p in positional) + positional
    if not tame and not draw(st.integers(0, 4)):
        argv.insert(draw(st.integers(0, len(argv))), draw(st.sampled_from(
            ["--bogus", "--help", "extra", "-x", "--now"])))
    return argv


def _check(result: Result, before: list[str], files: set[str], box: Sandbox,
           argv: list[str]) -> None:
    shown = f"prepflow {argv!r}\nexit {result.code}\n{result.out[-3000:]}\n{result.err[-3000:]}"
    assert result.code in (0, 1, 2), shown
    assert "Traceback" not in result.err + result.out, shown
    assert cli.INTERNAL not in result.err, shown
    if result.code == 2:
        assert box.dump() == before, f"exit 2 yet the store changed:\n{shown}"
        assert box.files() == files, f"exit 2 yet files were written:\n{shown}"


def test_every_command_is_enumerated() -> None:
    """The enumeration sees the app's commands and subcommands, not a handful."""
    paths = {path for path, _ in COMMANDS}
    assert len(paths) >= 40, paths
    assert {("status",), ("amend",), ("experts", "add"), ("outbox",), ("outbox", "deliver"),
            ("comments", "import"), ("db", "current"), ("meetings", "split")} <= paths
    assert set(LONG_RUNNING) <= paths


@pytest.mark.slow
@pytest.mark.parametrize(("path", "command"), FUZZED, ids=[" ".join(p) for p, _ in FUZZED])
def test_hostile_arguments_never_crash_and_bad_input_writes_nothing(
        path: tuple[str, ...], command: object, sandbox: Sandbox,
        capsys: pytest.CaptureFixture[str]) -> None:
    """Random arguments and files to one command: exit 0, 1 or 2, no traceback, and exit 2
    leaves the store (every row of every table) and the folder untouched; a command that
    changed the store leaves a process `status` can still show."""
    run = in_process(capsys)

    # No shrinking: a failure prints its command line as drawn, without minutes of search.
    @settings(max_examples=EXAMPLES, deadline=None, derandomize=DERANDOMIZE, database=None,
              phases=[Phase.explicit, Phase.generate],
              suppress_health_check=[HealthCheck.function_scoped_fixture,
                                     HealthCheck.too_slow, HealthCheck.filter_too_much])
    @given(data=st.data())
    def example(data: st.DataObject) -> None:
        sandbox.reset()
        with tempfile.TemporaryDirectory(prefix="fuzz-in-") as folder:
            inputs = Path(folder)
            argv = data.draw(_argv(path, command, sandbox, inputs), label="argv")
            if not data.draw(st.integers(0, 14), label="bad setting"):
                os.environ["PREPFLOW_SMTP_PORT"] = "twenty-five"
            before, files = sandbox.dump(), sandbox.files()
            port = os.environ["PREPFLOW_SMTP_PORT"]
            try:
                result = run(*argv)
            finally:
                os.environ["PREPFLOW_SMTP_PORT"] = port if port.isdigit() else "1"
            _check(result, before, files, sandbox, argv)
            if result.code != 2 and sandbox.dump() != before:
                _check(run("status"), [], set(), sandbox, ["status"])

    example()


SUBPROCESS_CASES = [
    ["experts", "add", "--first-name", "[/]", "--last-name", "[bold]", "--entity", "x",
     "--email", "z@example.org", "--nominated-by", "[/]", "--country", "CH", "--region", "B",
     "--stakeholder-type", "academia", "--by", BY],
    ["outbox", "--status", "[/]"],
    ["amend", "wtpf-26", "ieg1", "9999-12-31", "--by", BY, "--reason", "[/]"],
    ["status", "wtpf-26", "--now", "0001-01-01T00:00+14:00"],
    ["init", "missing.yaml", "--id", "[/]"],
    ["experts", "list", "--process", "\udcff"],
    ["bogus-command"],
]


@pytest.mark.slow
@pytest.mark.parametrize("argv", SUBPROCESS_CASES, ids=[" ".join(a[:2]) for a in SUBPROCESS_CASES])
def test_the_console_script_agrees_with_the_in_process_runner(
        argv: list[str], sandbox: Sandbox, capsys: pytest.CaptureFixture[str]) -> None:
    """`python -m flows.cli` exits as main() does in-process, without a traceback, on the same
    store: the fuzzed path is the real one."""
    inside = in_process(capsys)(*argv)
    sandbox.reset()
    outside = subprocess.run([sys.executable, "-m", "flows.cli", *argv], cwd=sandbox.folder,
                             env=dict(os.environ), capture_output=True, text=True, timeout=120)
    assert "Traceback" not in outside.stderr + outside.stdout, outside.stderr
    assert outside.returncode == inside.code, (inside, outside.stdout, outside.stderr)


@pytest.mark.parametrize(("variable", "value"), [("PREPFLOW_SMTP_PORT", "twenty-five"),
                                                  ("PREPFLOW_SMTP_CONCURRENCY", "0")])
def test_a_bad_setting_stops_every_command_with_one_paragraph(
        variable: str, value: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """Every command (the long-running ones too) refuses a bad environment setting before it
    does anything: exit 2, the variable named, no traceback, no store created."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(variable, value)
    monkeypatch.setenv("PREPFLOW_DATABASE_URL", f"sqlite:///{tmp_path / 'prepflow.db'}")
    run = in_process(capsys)
    for path, _ in COMMANDS:
        result = run(*path, "--database", f"sqlite:///{tmp_path / 'other.db'}")
        assert (result.code, variable in result.err) == (2, True), (path, result)
        assert "Traceback" not in result.err, (path, result)
    assert list(tmp_path.iterdir()) == []
