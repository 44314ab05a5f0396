"""The Prefect-facing commands of ``prepflow``: rehearse, serve, and up (the main job)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Annotated

import typer

from flows.cli.common import (
    Database,
    app,
    err,
    markup,
    out,
    service,
    write_output,
)
from flows.definition_file import load_definition
from flows.storage import open_store
from states.dates import check_year
from states.errors import InputError


def _day(text: str | None, option: str) -> date | None:
    if text is None:
        return None
    try:
        day = date.fromisoformat(text)
        check_year(day.year, text)
    except ValueError:
        raise InputError(f"{option} '{text}' is not a day between the years 1900 and 2999; "
                         "write e.g. 2024-08-01.") from None
    return day


def run_rehearsal(definition: Path, database: str, start: date | None, end: date | None,
                  experts: int, comments: int, scenario: Path | None,
                  mail_sink: Path | None = None) -> str:
    """The rehearsal flow with heartbeats off: sync runs then cost ~0.1 s, not ~1 s."""
    from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings

    from flows.rehearsal.driver import rehearsal

    with temporary_settings(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}):
        return rehearsal(str(definition), database, start, end, experts, comments,
                         str(scenario) if scenario else None,
                         str(mail_sink) if mail_sink else None)


@app.command("rehearse")
def rehearse_cmd(
    definition: Annotated[Path, typer.Argument(help="Process definition (YAML).")],
    from_: Annotated[str | None, typer.Option("--from", help="First day (default: a week "
                                              "before the first milestone).")] = None,
    to: Annotated[str | None, typer.Option("--to", help="Last day.")] = None,
    experts: Annotated[int, typer.Option(help="Nominated experts to notify.", min=0)] = 0,
    comments: Annotated[int, typer.Option(
        help="Contributions recorded per draft comment window through the register (one or "
        "two of them late); keep them with --database.", min=0)] = 0,
    scenario: Annotated[Path | None, typer.Option(help="What-if events (YAML).")] = None,
    transcript: Annotated[Path | None, typer.Option(help="Write the transcript here "
                                                    "(default: standard output).")] = None,
    mail_sink: Annotated[Path | None, typer.Option(
        help="Send every message for real to a local SMTP server that writes each one as an "
             ".eml file in this folder.")] = None,
    database: Database = None,
) -> None:
    """Run the whole process on a simulated clock through the real flows and store.

    The transcript (what happened on which Geneva day, rule checks, messages) is the same,
    byte for byte, for the same inputs. Without --database a fresh temporary store is used.

    Examples:
      prepflow rehearse config/wtpf26.yaml --transcript rehearsal.txt
      prepflow rehearse config/wtpf26.yaml --experts 300 --mail-sink mail/
      prepflow rehearse config/wtpf26.yaml --scenario config/scenarios/wtpf26-what-if.yaml \\
          --database sqlite:///rehearsal.db
    """
    spec = load_definition(definition)
    start, end = _day(from_, "--from"), _day(to, "--to")
    if scenario is not None:
        from flows.rehearsal.scenario import load_scenario

        load_scenario(scenario)
    with tempfile.TemporaryDirectory(prefix="prepflow-rehearsal-") as folder:
        url = database or f"sqlite:///{Path(folder) / 'rehearsal.db'}"
        if database:
            from flows.rehearsal.driver import rehearsal_id

            with open_store(database) as store:  # a bad URL fails here, before any run
                if rehearsal_id(spec.id) in [p.process_id for p in store.list()]:
                    raise InputError(f"{database} already holds process {rehearsal_id(spec.id)}: "
                                     "a rehearsal needs a fresh store; give another --database.")
        text = run_rehearsal(definition, url, start, end, experts, comments, scenario,
                             mail_sink)
    if transcript is None:
        out.file.write(text)
    else:
        write_output(transcript, text, "--transcript")
        out.print(markup("wrote the transcript to {}", transcript))


@app.command("serve")
def serve_cmd(
    cron: Annotated[str, typer.Option(help="How often advance ticks.")] = "*/15 * * * *",
    timezone: Annotated[str, typer.Option(help="Time zone of the schedule.")] = "Europe/Zurich",
    database: Database = None,
) -> None:
    """Live mode: serve the advance, secretariat-action, secretariat-amend and
    await-secretariat deployments against the configured Prefect server.

    Example: PREFECT_API_URL=http://127.0.0.1:4200/api prepflow serve
    """
    from flows.orchestration.serve import serve_forever

    service(database).store.close()  # a broken store fails now, clearly, not in every run
    serve_forever(cron, timezone, lambda text: err.print(text, soft_wrap=True), database)


@app.command("up")
def up_cmd(
    definition: Annotated[Path, typer.Argument(help="Process definition.")] = Path(
        "config/wtpf26.yaml"),
    port: Annotated[int, typer.Option(help="Port of the local Prefect server.")] = 4200,
    mail_dir: Annotated[Path, typer.Option(
        help="Without PREPFLOW_SMTP_HOST, a local mail catcher writes every message as an .eml "
             "file here.")] = Path("mail"),
    database: Database = None,
) -> None:
    """The main job: a local Prefect server (unless PREFECT_API_URL is set), the deployments
    served, a rehearsal so the UI shows real runs and artifacts; Ctrl-C stops all of it.

    The rehearsal runs as its own process (<id>-rehearsal: its runs tagged 'rehearsal', its
    artifacts under its own keys) and replaces the previous start's. Without
    PREPFLOW_SMTP_HOST the mail goes to a local catcher writing .eml files in --mail-dir.

    Example: prepflow up
    """
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from flows.orchestration.serve import start_server, stop

    spec = load_definition(definition)
    started: list[subprocess.Popen[bytes]] = []

    def say(text: str) -> None:
        err.print(text, soft_wrap=True)

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt  # SIGTERM (e.g. from a supervisor) stops cleanly like Ctrl-C

    signal.signal(signal.SIGTERM, interrupt)
    stack = contextlib.ExitStack()  # the in-process Prefect settings, until the very end
    try:
        api = os.environ.get("PREFECT_API_URL")
        if not api:
            started.append(start_server(Path(".prefect").resolve(), port, say))
            api = f"http://127.0.0.1:{port}/api"
        svc = service(database)
        svc.init(spec)
        svc.store.close()
        mail = _mail_catcher(mail_dir, started, say)
        command = [sys.executable, "-m", "flows.cli", "serve"]
        # Prefect's own setting, handed to the child and to this process's client directly:
        # nothing here is configured by writing os.environ. The store goes to the child in
        # its environment, not its command line (which any user can read, password and all).
        store = {"PREPFLOW_DATABASE_URL": database} if database else {}
        started.append(subprocess.Popen(command, start_new_session=True, env={
            **os.environ, "PREFECT_API_URL": api, **store, **mail}))
        rehearsal_db = Path("rehearsal.db").resolve()
        rehearsal_db.unlink(missing_ok=True)
        stack.enter_context(temporary_settings(updates={PREFECT_API_URL: api}))
        from flows.rehearsal.driver import rehearsal_id
        from flows.rehearsal.replace import clear_rehearsal

        rid = rehearsal_id(spec.id)
        runs, artifacts = clear_rehearsal(rid)
        if runs or artifacts:
            say(f"removed the previous rehearsal from the Prefect server ({runs} runs, "
                f"{artifacts} artifacts)")
        say(f"rehearsing {spec.id} as {rid} (store: {rehearsal_db}) …")
        text = run_rehearsal(definition, f"sqlite:///{rehearsal_db}", None, None, 300, 12, None)
        Path("rehearsal.txt").write_text(text, encoding="utf-8")
        ui = api.removesuffix("/api")
        where = (f"mail: every message is written to {mail_dir.resolve()}/ (a local catcher on "
                 f"{mail['PREPFLOW_SMTP_HOST']}:{mail['PREPFLOW_SMTP_PORT']}; set "
                 "PREPFLOW_SMTP_HOST to send for real)" if mail else
                 f"mail: sent through {os.environ.get('PREPFLOW_SMTP_HOST')} (PREPFLOW_SMTP_*)")
        out.print(markup("\nPrefect UI: {}  (runs, deployments; the artifacts with their mermaid "
                         "charts: {}/v2/artifacts; the live process {}, the rehearsal {}, its "
                         "runs tagged 'rehearsal')\nrehearsal transcript: rehearsal.txt; its "
                         "store: prepflow status {} --database sqlite:///{}\n{}\n"
                         "serving; press Ctrl-C to stop.", ui, ui, spec.id, rid, rid,
                         rehearsal_db, where), soft_wrap=True)
        while all(p.poll() is None for p in started):
            time.sleep(1)
        err.print("a child process stopped; shutting down.")
    except KeyboardInterrupt:
        err.print("stopping …")
    finally:
        _drain_prefect()  # while the server still answers: at exit it would retry a dead one
        for process in reversed(started):
            stop(process)
        stack.close()


def _mail_catcher(folder: Path, started: list[subprocess.Popen[bytes]],
                  say: Callable[[str], None]) -> dict[str, str]:
    """Unless PREPFLOW_SMTP_HOST says where mail goes, a local SMTP catcher writing each
    message as an .eml file in ``folder``; returns the settings that point the served flows
    at it (given to the child, not written to this process's environment)."""
    if os.environ.get("PREPFLOW_SMTP_HOST"):
        return {}
    from flows.mail.sink import HOST, free_port

    port = free_port()
    started.append(subprocess.Popen(
        [sys.executable, "-m", "flows.mail.sink", "--dir", str(folder), "--port", str(port)],
        start_new_session=True, stdout=subprocess.DEVNULL))
    say(f"no PREPFLOW_SMTP_HOST: a local mail catcher on {HOST}:{port} writes every message "
        f"to {folder.resolve()}/")
    return {"PREPFLOW_SMTP_HOST": HOST, "PREPFLOW_SMTP_PORT": str(port)}


def _drain_prefect(timeout: float = 10.0) -> None:
    """Send the run logs and events this process still holds to the Prefect API now."""
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker

    for worker in (APILogWorker, EventsWorker):
        try:
            worker.drain_all(timeout=timeout)
        # Best effort while shutting down: nothing to drain, or the API is gone: say so, go on.
        except Exception as exc:  # noqa: BLE001 — a failed flush must not block the shutdown
            err.print(markup("could not flush Prefect {}: {}", worker.__name__, exc),
                      soft_wrap=True)
