"""Docs that run: the README's commands, its state diagram and the CLI's help stay true."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from flows.cli import app as cli
from flows.cli import process_cmds
from flows.definition_file import load_definition

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")
#: Every command the CLI registers (new ones included: each must show an example too).
COMMANDS = sorted(c.name or "" for c in cli.app.registered_commands)
GROUPS = sorted(g.name or "" for g in cli.app.registered_groups)
SUBCOMMANDS = [(g.name or "", c.name or "") for g in cli.app.registered_groups
               for c in g.typer_instance.registered_commands]


def _bash_block(heading: str) -> str:
    """The single command in the ```bash block under a README heading."""
    section = README.split(f"\n{heading}\n", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```bash\n(.*?)```", section, flags=re.DOTALL)
    assert len(blocks) == 1, f"expected one ```bash block under {heading!r}, found {len(blocks)}"
    lines = [line for line in blocks[0].splitlines() if line.strip()]
    assert len(lines) == 1, f"the command under {heading!r} should be one line: {lines}"
    return lines[0].strip()


def test_readme_run_command_installs_and_brings_up_the_main_job() -> None:
    """'Run it' installs prepflow into .venv and runs the main job, `prepflow up`."""
    command = _bash_block("## Run it")
    assert command.startswith("python3 -m venv .venv && .venv/bin/pip install -q -e . ")
    assert command.endswith(".venv/bin/prepflow up")
    assert (ROOT / "config" / "wtpf26.yaml").is_file()


def test_ci_runs_the_readme_test_command_verbatim() -> None:
    """.ci/run contains the README's 'Test it' command exactly, so the two cannot drift."""
    command = _bash_block("## Test it")
    assert "pytest" in command
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert command in ci.splitlines(), f".ci/run must run this line verbatim:\n{command}"


def test_readme_diagram_is_current() -> None:
    """The mermaid diagram in the README is the one the machine generates today."""
    start, end = process_cmds.DIAGRAM_START, process_cmds.DIAGRAM_END
    assert start in README, "README lost its diagram start marker"
    assert end in README, "README lost its diagram end marker"
    shown = README.split(start, 1)[1].split(end, 1)[0].strip("\n")
    wtpf26 = load_definition(ROOT / "config" / "wtpf26.yaml")
    expected = process_cmds.diagram_markdown(wtpf26).strip("\n")
    assert shown == expected, (
        "the README's state diagram is stale; regenerate it with "
        "'prepflow diagram config/wtpf26.yaml --write README.md'"
    )


def _help(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
          *args: str) -> str:
    monkeypatch.setenv("COLUMNS", "200")
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        cli.main([*args, "--help"])
    captured = capsys.readouterr()
    assert exit_info.value.code == 0, captured.err
    assert "Traceback" not in captured.out + captured.err
    return captured.out


def test_top_level_help_lists_every_command_with_an_example(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    """prepflow --help exits 0, names every command and shows an example."""
    text = _help(capsys, monkeypatch)
    assert "Example" in text
    for command in COMMANDS:
        assert re.search(rf"\b{command}\b", text), f"{command} missing from --help"


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_help_shows_an_example(
    command: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Each subcommand's --help exits 0 and shows an example invocation of that command."""
    text = _help(capsys, monkeypatch, command)
    assert "Example" in text
    assert f"prepflow {command}" in text


def test_readme_command_table_names_real_commands() -> None:
    """Every command in the README's table exists in the CLI."""
    documented = set(re.findall(r"^\| `prepflow (\w+)", README, flags=re.MULTILINE))
    assert {"check", "init", "status", "timeline", "advance", "transition", "amend",
            "audit"} <= documented
    assert documented == set(COMMANDS) | set(GROUPS), "README's table and the CLI differ"


@pytest.mark.parametrize(("group", "command"), SUBCOMMANDS)
def test_every_grouped_command_help_shows_an_example(
    group: str, command: str, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`prepflow experts import --help` and the like exit 0 and show an example."""
    text = _help(capsys, monkeypatch, group, command)
    assert "Example" in text
    assert f"prepflow {group} {command}" in text or f"prepflow {group}" in text
