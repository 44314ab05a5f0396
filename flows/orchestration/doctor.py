"""`prepflow doctor`: check a setup and say, for each fault, what to do about it.

Each check is read-only: the store's schema revision is read, not upgraded; the SMTP server is
greeted (EHLO), never sent to; the Prefect API is asked, never written. Secrets the settings
hold (database and SMTP passwords, the Prefect auth string or key) are masked in every line,
whatever a library put into an error message.

With no PREFECT_API_URL the embedded setup is in use (``prepflow serve`` on a temporary local
server, ``prepflow up`` on a local SQLite one): the API, deployment and worker checks say so
and are skipped; the store, SMTP and time-zone checks apply to every setup.
"""

from __future__ import annotations

import contextlib
import smtplib
import ssl
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import httpx
import sqlalchemy as sa

from flows.orchestration.doctor_api import (
    ApiClient,
    Declared,
    access_problem,
    declared,
    deployment_problem,
    online_workers,
    registered,
)
from flows.settings import Settings, SmtpSettings
from flows.storage import StoreError, open_store
from flows.storage.db import describe, guard, make_engine
from flows.storage.schema import current, head

#: Times are displayed in Geneva time unless a definition says otherwise.
DISPLAY_ZONE = "Europe/Zurich"


@dataclass(frozen=True)
class Finding:
    """One check's result: ok, a fault with its fix, or skipped (with why)."""

    check: str
    status: Literal["ok", "fault", "skip"]
    detail: str
    fix: str | None = None


class Masker:
    """Replaces every secret of the settings in a text with '***'."""

    def __init__(self, secrets: Iterable[str | None]) -> None:
        # Longest first, so a password inside an auth string is not half-masked.
        self.secrets = sorted({s for s in secrets if s and len(s) >= 3}, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, "***")
        return text


def secrets_of(settings: Settings, database: str, api: ApiClient | None) -> list[str | None]:
    """Every secret a doctor run could come across (the parts of an auth string too)."""
    found: list[str | None] = [settings.smtp.password.get_secret_value()
                               if settings.smtp.password else None]
    with contextlib.suppress(sa.exc.ArgumentError):
        password = sa.make_url(database).password
        found.append(str(password) if password is not None else None)
    if api is not None:
        found += [api.api_key, api.auth_string]
        if api.auth_string and ":" in api.auth_string:
            found.append(api.auth_string.split(":", 1)[1])
    return found


def check_store(url: str) -> tuple[Finding, set[str]]:
    """Reachable and at the newest schema revision; the time zones of its processes."""
    shown = describe(url)
    try:
        parsed = sa.make_url(url)
    except sa.exc.ArgumentError:
        return Finding("store", "fault", f"{shown} is not a database URL.",
                       "Set PREPFLOW_DATABASE_URL to e.g. "
                       "postgresql+psycopg://prepflow@db-host:5432/prepflow."), set()
    if (parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:")
            and not Path(str(parsed.database)).exists()):
        return Finding("store", "fault", f"There is no database file at {shown}.",
                       "Create it with 'prepflow db upgrade' (or 'prepflow init DEFINITION'), "
                       "or correct PREPFLOW_DATABASE_URL."), set()
    try:
        engine = make_engine(url)
        try:
            with guard(shown):
                found = current(engine)
        finally:
            engine.dispose()
    except StoreError as exc:
        return Finding("store", "fault", str(exc),
                       "Check that the database server runs and that PREPFLOW_DATABASE_URL "
                       "(host, port, user, password, database) is right."), set()
    if found.revision is None:
        return Finding("store", "fault", f"The store at {shown} has no prepflow schema yet.",
                       "Run 'prepflow db upgrade'."), set()
    if found.legacy or found.revision != head():
        return Finding("store", "fault", f"The store at {shown} is at schema revision "
                       f"{found.revision}{' (prepflow 0.1)' if found.legacy else ''}; this "
                       f"prepflow needs {head()}.",
                       "Run 'prepflow db upgrade', then restart the workers."), set()
    try:
        with open_store(url) as store:  # at the newest revision: opening changes nothing
            rows = store.list()
        zones = {str(p.definition.get("timezone") or DISPLAY_ZONE) for p in rows}
    except (StoreError, ValueError) as exc:
        return Finding("store", "fault", f"The processes in {shown} cannot be read: {exc}",
                       "Run 'prepflow audit --verify' and restore from a backup."), set()
    return Finding("store", "ok", f"{shown}, schema revision {head()} (current), "
                   f"{len(rows)} process{'' if len(rows) == 1 else 'es'}."), zones


def check_api(api: ApiClient | None) -> Finding:
    """The Prefect API answers, and accepts this client's credentials."""
    if api is None:
        return Finding("prefect-api", "skip", "PREFECT_API_URL is not set: the embedded setup "
                       "('prepflow serve' on a temporary local server, 'prepflow up' on a "
                       "local SQLite one). Set PREFECT_API_URL to check a shared server.")
    problem = access_problem(api)
    if problem is not None:
        return Finding("prefect-api", "fault", problem.detail, problem.fix)
    how = "authenticated" if api.auth_string or api.api_key else "no authentication asked"
    return Finding("prefect-api", "ok", f"{api.url} answers ({how}).")


def check_deployments(api: ApiClient | None, project: Path,
                      reachable: bool) -> tuple[list[Finding], set[str]]:
    """Each deployment of prefect.yaml registered as declared; the work pools they use."""
    if api is None or not reachable:
        why = "no shared Prefect server" if api is None else "the Prefect API check failed"
        return [Finding("deployments", "skip", f"Not checked: {why}.")], set()
    wanted = declared(project)
    try:
        held = registered(api, [want.name for want in wanted])
    except httpx.HTTPError as exc:
        return [Finding("deployments", "fault", f"The API failed ({exc}).",
                        "Check the Prefect server's log.")], set()
    findings, pools = [], set()
    for want in wanted:
        problem = deployment_problem(held, want)
        if problem is None:
            findings.append(Finding("deployments", "ok", f"{want.name} registered as declared."))
            if want.pool:
                pools.add(want.pool)
        else:
            findings.append(Finding("deployments", "fault", f"{want.name}: {problem}.",
                                    f"Run 'prefect deploy --all' in {project}."))
    return findings, pools


def check_workers(api: ApiClient | None, pools: set[str]) -> list[Finding]:
    """Every work pool the deployments use exists and has a worker polling it."""
    if api is None or not pools:
        return []
    findings = []
    for pool in sorted(pools):
        try:
            count = online_workers(api, pool)
        except httpx.HTTPError as exc:
            findings.append(Finding("workers", "fault", f"pool {pool}: the API failed ({exc}).",
                                    "Check the Prefect server's log."))
            continue
        if count is None:
            findings.append(Finding("workers", "fault", f"There is no work pool {pool!r}.",
                                    f"Run 'prefect work-pool create {pool} --type process'."))
        elif count == 0:
            findings.append(Finding("workers", "fault", f"No worker is polling pool {pool!r}.",
                                    f"Start one: 'prefect worker start --pool {pool}'."))
        else:
            findings.append(Finding("workers", "ok", f"pool {pool}: {count} worker(s) online."))
    return findings


def check_smtp(smtp: SmtpSettings, timeout: float = 5.0) -> Finding:
    """The SMTP server greets us (connect, EHLO, STARTTLS when configured); nothing is sent."""
    where = f"{smtp.host}:{smtp.port}"
    context = ssl.create_default_context(cafile=str(smtp.ca_file) if smtp.ca_file else None)
    if not smtp.validate_certs:
        context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    try:
        server: smtplib.SMTP = (smtplib.SMTP_SSL(smtp.host, smtp.port, timeout=timeout,
                                                 context=context) if smtp.use_tls
                                else smtplib.SMTP(smtp.host, smtp.port, timeout=timeout))
        with server:
            code, _ = server.ehlo()
            if code != 250:
                raise smtplib.SMTPResponseException(code, b"EHLO refused")
            if smtp.starttls:
                server.starttls(context=context)
                server.ehlo()
    except (OSError, smtplib.SMTPException) as exc:
        return Finding("smtp", "fault", f"The SMTP server at {where} does not answer "
                       f"({type(exc).__name__}: {exc}); queued messages wait in the outbox.",
                       "Check PREPFLOW_SMTP_HOST, PREPFLOW_SMTP_PORT and the TLS settings "
                       "(PREPFLOW_SMTP_STARTTLS, PREPFLOW_SMTP_USE_TLS, PREPFLOW_SMTP_CA_FILE), "
                       "and that the server "
                       "accepts connections from this machine.")
    return Finding("smtp", "ok", f"{where} answers EHLO"
                   + (" and STARTTLS." if smtp.starttls else "."))


def check_zones(zones: Iterable[str]) -> Finding:
    """Time-zone data is installed for every zone the processes and schedules use."""
    missing = []
    for name in sorted(set(zones)):
        try:
            ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            missing.append(name)
    if missing:
        return Finding("time-zones", "fault", "No time-zone data for " + ", ".join(missing) + ".",
                       "Install the tzdata package ('pip install tzdata' in this environment, "
                       "or the system's tzdata), or correct the zone in the definition.")
    return Finding("time-zones", "ok", ", ".join(sorted(set(zones))) + ".")


def run(settings: Settings, database: str, project: Path,
        api: ApiClient | None) -> list[Finding]:
    """Every check, in the order an operator fixes things."""
    store, zones = check_store(database)
    findings = [store]
    reached = check_api(api)
    findings.append(reached)
    deployed, pools = check_deployments(api, project, reached.status == "ok")
    findings += deployed
    findings += check_workers(api, pools)
    findings.append(check_smtp(settings.smtp))
    schedule_zones = {zone for want in _declared_or_none(project) for _, zone in want.schedules}
    findings.append(check_zones(zones | schedule_zones | {DISPLAY_ZONE}))
    return findings


def _declared_or_none(project: Path) -> list[Declared]:
    return declared(project) if (project / "prefect.yaml").is_file() else []
