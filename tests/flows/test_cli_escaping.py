"""Every value the CLI prints through rich is escaped (issue 9): a name, reason or path typed
by a person, or read from a file, must not be read as markup. '[/]' in a first name once
made `experts add` commit and then crash while printing."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from flows.cli.common import markup

CLI = Path(__file__).resolve().parents[2] / "flows" / "cli"
#: Calls whose text arguments rich reads as markup.
RICH_CALLS = {"print", "add_row", "Table"}
#: What escapes: rich's escape() and the CLI's one helper, markup().
ESCAPERS = {"escape", "markup"}


def _name(func: ast.expr) -> str:
    return func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")


def _unescaped(node: ast.AST) -> list[ast.AST]:
    """The f-string placeholders under ``node`` that reach rich without escape()/markup()."""
    if isinstance(node, ast.Call) and _name(node.func) in ESCAPERS:
        return []
    if isinstance(node, ast.JoinedStr):
        return [v for v in node.values if isinstance(v, ast.FormattedValue)
                and not (isinstance(v.value, ast.Call) and _name(v.value.func) in ESCAPERS)]
    return [bad for child in ast.iter_child_nodes(node) for bad in _unescaped(child)]


def _violations(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if not (isinstance(node, ast.Call) and _name(node.func) in RICH_CALLS):
            continue
        if any(k.arg == "markup" and isinstance(k.value, ast.Constant) and k.value.value is False
               for k in node.keywords):
            continue  # printed as plain text: nothing is read as markup
        texts = [*node.args, *(k.value for k in node.keywords if k.arg == "title")]
        found += [f"{path.name}:{bad.lineno}: {ast.unparse(bad)}"
                  for text in texts for bad in _unescaped(text)]
    return found


@pytest.mark.parametrize("path", sorted(CLI.glob("*.py")), ids=lambda p: p.name)
def test_no_value_reaches_rich_unescaped(path: Path) -> None:
    """In flows/cli, an f-string printed through rich escapes each of its values (or the
    text is formatted with markup(), or printed with markup=False)."""
    assert _violations(path) == []


def test_markup_escapes_the_values_and_keeps_the_template() -> None:
    """markup() keeps our tags and escapes what fills them in, format specs included."""
    assert markup("[bold]{}[/] {:>3}", "[/]x", 5) == "[bold]\\[/]x[/]   5"
