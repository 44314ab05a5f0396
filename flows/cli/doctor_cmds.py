"""`prepflow doctor`: is this setup ready to run? Each check's result, each fault with its fix.

Exit 0 when every check passes (skipped ones included), 1 when any finds a fault, 2 for bad
input (settings that do not parse, a --project without prefect.yaml). The checks themselves
live in flows.orchestration.doctor; this module prints them, masked.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from flows.cli.common import Database, app, out
from flows.settings import load_settings
from states.errors import InputError

#: The checkout this prepflow runs from: prefect.yaml is at its root.
CHECKOUT = Path(__file__).resolve().parents[2]
_MARK = {"ok": "ok   ", "fault": "FAULT", "skip": "skip "}


@app.command("doctor")
def doctor_cmd(
    database: Database = None,
    project: Annotated[Path, typer.Option(
        help="Folder of prefect.yaml, whose deployments should be registered.")] = CHECKOUT,
) -> None:
    """Check this setup: the store (reachable, schema current), the Prefect API (reachable,
    authenticated), the deployments of prefect.yaml and their workers, the SMTP server, and
    the time-zone data. Changes nothing; secrets are masked.

    Example: prepflow doctor
    """
    from flows.orchestration.doctor import Masker, run, secrets_of
    from flows.orchestration.doctor_api import from_prefect_settings

    settings = load_settings()
    if not (project / "prefect.yaml").is_file():
        raise InputError(f"--project {project} has no prefect.yaml; give the folder of the "
                         f"prepflow checkout (default: {CHECKOUT}).")
    url = database or settings.database.url
    api = from_prefect_settings()
    mask = Masker(secrets_of(settings, url, api))
    findings = run(settings, url, project, api)
    for finding in findings:
        say(f"{_MARK[finding.status]}  {finding.check:<12} {mask(finding.detail)}")
        if finding.fix:
            say(f"{'':7}{'':12} fix: {mask(finding.fix)}")
    faults = sum(1 for f in findings if f.status == "fault")
    say("All checks passed." if not faults else
        f"{faults} fault{'' if faults == 1 else 's'} found.")
    if faults:
        raise typer.Exit(1)


def say(text: str) -> None:
    """One line as it is: no markup (details quote URLs and server replies)."""
    out.print(text, soft_wrap=True, markup=False, highlight=False)
