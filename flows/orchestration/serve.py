"""Live mode and the main job: serve the deployments, and bring up a local Prefect server.

``prepflow serve`` serves five deployments from this checkout: ``advance`` on a cron schedule in
the process's time zone, ``secretariat-action`` and ``secretariat-amend`` (their Run forms are
the action forms), ``await-secretariat`` (started by ``advance`` when a manual step falls
due) and ``deliver-notifications`` (drains the outbox every two minutes).
``prepflow up`` starts a local server when none is configured, serves, rehearses WTPF-26
so the UI is full of real runs, and stops everything it started on Ctrl-C.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from flows.orchestration.forms import FormChoices


def deployments(cron: str, timezone: str, choices: FormChoices | None = None) -> list[object]:
    """The deployments this checkout serves. None carries a store: a deployment's parameters
    are kept by the Prefect server and shown in its UI, so a database URL (which may hold a
    password) reaches the runs through the settings instead (``use_store``). ``choices``: what
    the action forms offer (forms.py); without, they take free text."""
    from prefect.schedules import Cron

    from flows.orchestration.advance import advance
    from flows.orchestration.deliver import deliver_notifications
    from flows.orchestration.forms import offer_choices
    from flows.orchestration.secretariat import (
        await_secretariat,
        secretariat_action,
        secretariat_amend,
    )

    served = [
        advance.to_deployment(name="advance", schedules=[Cron(cron, timezone=timezone)],
                              description="Applies every automatic transition that is due."),
        secretariat_action.to_deployment(name="secretariat-action",
                                         description="Post a draft or the final report."),
        secretariat_amend.to_deployment(name="secretariat-amend",
                                        description="Move a milestone or the forum date."),
        await_secretariat.to_deployment(name="await-secretariat",
                                        description="Asks for a manual step when it is due."),
        deliver_notifications.to_deployment(
            name="deliver-notifications", schedules=[Cron("*/2 * * * *", timezone=timezone)],
            description="Sends queued messages (SMTP settings: PREPFLOW_SMTP_*)."),
    ]
    if choices is not None:
        offer_choices(served, choices)
    return list(served)


def healthy(api_url: str, timeout: float = 2.0) -> str | None:
    """None when the Prefect API answers; otherwise what went wrong, for a person to read."""
    try:
        with urllib.request.urlopen(f"{api_url.rstrip('/')}/health", timeout=timeout) as reply:
            return None if reply.status == 200 else f"HTTP {reply.status}"
    except (urllib.error.URLError, OSError, TimeoutError) as exc:
        return str(getattr(exc, "reason", exc))


def wait_for_api(api_url: str, say: Callable[[str], None], attempts: int | None = None,
                 first_delay: float = 1.0, max_delay: float = 30.0) -> None:
    """Retry with backoff and a clear message until the API answers (or attempts run out)."""
    delay, tried = first_delay, 0
    while (problem := healthy(api_url)) is not None:
        tried += 1
        if attempts is not None and tried >= attempts:
            raise ConnectionError(f"the Prefect server at {api_url} did not answer after "
                                  f"{tried} tries ({problem}).")
        say(f"Prefect server at {api_url} is unreachable ({problem}); retrying in "
            f"{delay:.0f} s. Start one with 'prefect server start' or set PREFECT_API_URL.")
        time.sleep(delay)
        delay = min(max_delay, delay * 2)


def use_store(database: str | None) -> None:
    """Make ``database`` the store of every run this process serves (None: the settings').

    The one place prepflow writes its own setting to the environment, and why: Prefect's
    runner starts each served run as a child process with a copy of this environment, and the
    environment is where a run's settings come from (PREPFLOW_DATABASE_URL). A parameter would
    be kept, password and all, by the Prefect server (issue 9)."""
    if database:
        os.environ["PREPFLOW_DATABASE_URL"] = database


def serve_forever(cron: str, timezone: str, say: Callable[[str], None],
                  database: str | None = None) -> None:
    """Serve the deployments (``database``: their store, see use_store); if the server goes
    away, say so and retry instead of dying."""
    from prefect import serve
    from prefect.settings import PREFECT_API_URL

    use_store(database)
    api_url = PREFECT_API_URL.value()
    while True:
        if api_url:
            wait_for_api(api_url, say)
            refuse_unauthenticated()
        try:
            say(f"serving advance (cron '{cron}', {timezone}), secretariat-action, "
                "secretariat-amend, await-secretariat and deliver-notifications; Ctrl-C stops.")
            served = deployments(cron, timezone, form_choices(say))
            serve(*served, pause_on_shutdown=False,  # type: ignore[arg-type]
                  print_starting_message=False)
            return
        except KeyboardInterrupt:
            return
        # A supervisor loop: whatever stops serve (the server went away, a network error, a
        # Prefect client error), it reports and retries rather than leave deployments unserved.
        except Exception as exc:  # noqa: BLE001 — supervisor loop, reason above
            if _status(exc) == 401:  # auth switched on while serving: no retry can succeed
                refuse_unauthenticated()
            say(f"serving stopped: {type(exc).__name__}: {exc}; retrying in 5 s.")
            time.sleep(5)


def form_choices(say: Callable[[str], None]) -> FormChoices | None:
    """What the action forms offer, from the served runs' store; None (free text, said) when
    the store cannot be read: serving matters more than drop-downs."""
    from flows.orchestration.forms import store_choices

    try:
        return store_choices()
    except Exception as exc:  # noqa: BLE001 — any store problem: serve without choices
        say(f"the action forms take free text: the store could not be read ({exc}).")
        return None


def refuse_unauthenticated() -> None:
    """Stop (InputError: exit 2) when the server refuses this client's credentials: retrying
    a 401 cannot succeed, and the operator must learn which setting is missing."""
    from flows.orchestration.doctor_api import access_problem, from_prefect_settings
    from states.errors import InputError

    client = from_prefect_settings()
    problem = access_problem(client) if client is not None else None
    if problem is not None and problem.kind == "unauthenticated":
        raise InputError(f"{problem} Nothing was served.")


def _status(exc: BaseException) -> int | None:
    """The HTTP status behind a Prefect client error, if there is one."""
    response = getattr(exc, "response", None)
    return getattr(response, "status_code", None)


def start_server(home: Path, port: int, say: Callable[[str], None]) -> subprocess.Popen[bytes]:
    """A local Prefect server (SQLite under ``home``), healthy before this returns."""
    env = {**os.environ, "PREFECT_HOME": str(home), "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
           "PREFECT_SERVER_API_HOST": "127.0.0.1", "PREFECT_SERVER_API_PORT": str(port),
           "PREFECT_API_URL": f"http://127.0.0.1:{port}/api"}
    home.mkdir(parents=True, exist_ok=True)
    prefect = Path(sys.executable).with_name("prefect")
    with (home / "server.log").open("ab") as log:  # the child keeps its own descriptor
        process = subprocess.Popen([str(prefect), "server", "start", "--host", "127.0.0.1",
                                    "--port", str(port)], env=env, stdout=log, stderr=log,
                                   start_new_session=True)
    say(f"starting a local Prefect server on http://127.0.0.1:{port} (log: {home}/server.log)")
    deadline = time.monotonic() + 120
    while healthy(f"http://127.0.0.1:{port}/api") is not None:
        if process.poll() is not None or time.monotonic() > deadline:
            stop(process)
            raise RuntimeError(f"the Prefect server did not start; see {home}/server.log")
        time.sleep(0.5)
    return process


def stop(process: subprocess.Popen[bytes], grace: float = 15.0) -> None:
    """Stop a child we started: SIGTERM to its group, then SIGKILL after a grace period."""
    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=grace)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
