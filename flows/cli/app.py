"""The `prepflow` command: what secretariat staff and operators type.

Every error is one readable paragraph and an exit status: 2 for bad input (nothing changed),
1 for a rule's refusal (recorded in the audit log, state unchanged), 0 for success. The
commands live in their modules by subject; importing them here registers them on the app.
"""

from __future__ import annotations

import functools
import os
import sys
from typing import cast

import typer
import typer.main
from rich.markup import escape
from typer.core import TyperGroup

import flows.cli.balance_cmds
import flows.cli.comments_cmds
import flows.cli.db_cmds
import flows.cli.doctor_cmds
import flows.cli.drafts_cmds
import flows.cli.forum_cmds
import flows.cli.meetings_cmds
import flows.cli.members_cmds
import flows.cli.notify_cmds
import flows.cli.opinions_cmds
import flows.cli.orchestration_cmds
import flows.cli.process_cmds  # noqa: F401 (each import registers its commands)
from flows.cli.common import _opened, app, err, markup, out
from flows.storage import StoreError
from states.errors import InputError, PrepflowError


@functools.cache
def command() -> TyperGroup:
    """The click command typer builds from the app, built once: typer's ``app()`` rebuilds it
    from the signatures at every call (~0.2 s), and tests call main() thousands of times. The
    fuzz test enumerates the commands from it."""
    return cast(TyperGroup, typer.main.get_command(app))  # an app of several commands


#: How main() names an error that is a bug of prepflow (the tests look for it).
INTERNAL = "Internal error"


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the CLI, turning known errors into a paragraph and an exit status."""
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    _tolerant_streams()
    try:
        _check_text(sys.argv[1:] if argv is None else argv)
        code = command()(args=argv, standalone_mode=False)
    except PrepflowError as exc:
        # Escaped: messages quote what was typed, and '[/x]' would be read as markup.
        err.print(f"[bold red]Error:[/] {escape(str(exc))}", soft_wrap=True, highlight=False)
        sys.exit(exc.exit_code)
    except StoreError as exc:
        err.print(f"[bold red]Store error:[/] {escape(str(exc))}", soft_wrap=True,
                  highlight=False)
        sys.exit(2)
    except typer.TyperException as exc:
        # typer 0.29 vendors click (typer._click): its usage errors (no such command, missing
        # argument) derive from TyperException, not click.ClickException, and its Exit and
        # Abort are typer's own, so catching click's classes let them out as tracebacks.
        # One paragraph like every other error (click prints usage, a hint and the error).
        ctx = getattr(exc, "ctx", None)
        if type(exc).__name__ == "NoArgsIsHelpError" and ctx is not None:
            out.print(ctx.get_help(), markup=False, highlight=False)
        else:
            hint = f" See '{ctx.command_path} --help'." if ctx is not None else ""
            err.print(f"[bold red]Error:[/] {escape(exc.format_message())}{escape(hint)}",
                      soft_wrap=True, highlight=False)
        sys.exit(2 if exc.exit_code not in (0, 1) else exc.exit_code)
    except typer.Abort:
        err.print("Aborted.")
        sys.exit(130)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except Exception as exc:  # noqa: BLE001 — the last resort: a paragraph, never a traceback
        # A bug, not the user's doing; what was committed before it stays (exit 1, not 2: we
        # cannot promise that nothing was written). The fuzz test fails on this text.
        err.print(markup("[bold red]{}:[/] prepflow stopped on an unexpected {} ({}). What was "
                         "recorded before it stays recorded: see 'prepflow status' and "
                         "'prepflow audit'. Please report this with the command you ran.",
                         INTERNAL, type(exc).__name__, exc), soft_wrap=True, highlight=False)
        sys.exit(1)
    finally:
        while _opened:
            _opened.pop().close()
    sys.exit(code if isinstance(code, int) else 0)


def _check_text(args: list[str]) -> None:
    """Refuse an argument that is not text: bytes that are not UTF-8 (typed in another
    encoding) arrive as lone surrogates (PEP 383), which no store, hash or terminal takes."""
    for number, arg in enumerate(args, start=1):
        try:
            arg.encode("utf-8")
        except UnicodeEncodeError:
            raise InputError(f"argument {number} ({arg!a}) is not UTF-8 text; type it "
                             "again in a terminal set to UTF-8.") from None


def _tolerant_streams() -> None:
    """Output that cannot be encoded is shown escaped, not raised: echoing odd text must not
    fail a command after its work is done."""
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            reconfigure(errors="backslashreplace")
