"""The Prefect API as an operator's checks see it: reachable, authenticated, deployments in place.

Plain HTTP (httpx, Prefect's own client library) rather than Prefect's client: a check must
tell "no answer" from "401" from "404", where the client raises one exception for all of them.
``prepflow serve`` asks the same question before serving, so a missing auth string stops it
with the setting to fix instead of a 401 retried forever.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import httpx
import yaml

#: Prefect's basic-auth middleware lets GET /health through unauthenticated (for probes);
#: /admin/version is the cheapest path behind it.
_AUTHENTICATED_PATH = "/admin/version"


@dataclass(frozen=True)
class ApiClient:
    """Where the Prefect API is and what this process sends it (from Prefect's settings)."""

    url: str
    auth_string: str | None = None
    api_key: str | None = None

    def headers(self) -> dict[str, str]:
        """The Authorization header Prefect's own client would send (auth string first)."""
        if self.auth_string:
            token = base64.b64encode(self.auth_string.encode("utf-8")).decode("ascii")
            return {"Authorization": f"Basic {token}"}
        if self.api_key:
            return {"Authorization": f"Bearer {self.api_key}"}
        return {}

    def get(self, path: str, timeout: float = 5.0) -> httpx.Response:
        return httpx.get(self.url.rstrip("/") + path, headers=self.headers(), timeout=timeout)

    def post(self, path: str, body: dict[str, Any], timeout: float = 5.0) -> httpx.Response:
        return httpx.post(self.url.rstrip("/") + path, json=body, headers=self.headers(),
                          timeout=timeout)


def from_prefect_settings() -> ApiClient | None:
    """The API this process is configured for (PREFECT_API_URL …); None: no server set."""
    from prefect.settings import get_current_settings

    api = get_current_settings().api
    if not api.url:
        return None
    return ApiClient(api.url,
                     api.auth_string.get_secret_value() if api.auth_string else None,
                     api.key.get_secret_value() if api.key else None)


@dataclass(frozen=True)
class Problem:
    """What is wrong, and what to do about it (never quoting a secret)."""

    detail: str
    fix: str
    kind: Literal["unreachable", "unauthenticated", "refused"] = "unreachable"

    def __str__(self) -> str:
        return f"{self.detail} {self.fix}"


def access_problem(client: ApiClient) -> Problem | None:
    """None when the API answers this client; otherwise what is wrong and which setting fixes
    it (never the auth string itself)."""
    try:
        client.get("/health").raise_for_status()
    except httpx.HTTPError as exc:
        return Problem(f"The Prefect API at {client.url} does not answer ({_reason(exc)}).",
                       "Start the server ('prefect server start') or correct PREFECT_API_URL.")
    try:
        reply = client.get(_AUTHENTICATED_PATH)
    except httpx.HTTPError as exc:
        return Problem(f"The Prefect API at {client.url} stopped answering ({_reason(exc)}).",
                       "Check the server's log and PREFECT_API_URL.")
    same = "Set it to the server's PREFECT_SERVER_API_AUTH_STRING ('user:password')."
    if reply.status_code == 401 and client.auth_string is None:
        return Problem(f"The Prefect server at {client.url} requires authentication and "
                       "PREFECT_API_AUTH_STRING is not set.",
                       "Set PREFECT_API_AUTH_STRING to the server's "
                       "PREFECT_SERVER_API_AUTH_STRING ('user:password').", "unauthenticated")
    if reply.status_code == 401:
        return Problem(f"The Prefect server at {client.url} refused PREFECT_API_AUTH_STRING.",
                       same, "unauthenticated")
    if reply.status_code >= 400:
        return Problem(f"The Prefect API at {client.url} answered HTTP {reply.status_code}.",
                       "Check the server's log and PREFECT_API_URL.", "refused")
    return None


def _reason(exc: httpx.HTTPError) -> str:
    if isinstance(exc, httpx.HTTPStatusError):
        return f"HTTP {exc.response.status_code}"
    return type(exc).__name__ + (f": {exc}" if str(exc) else "")


@dataclass(frozen=True)
class Declared:
    """One deployment of prefect.yaml, as the server should hold it."""

    name: str
    entrypoint: str
    pool: str | None
    schedules: tuple[tuple[str, str], ...]  # (cron, timezone), sorted


def declared(project: Path) -> list[Declared]:
    """The deployments prefect.yaml in ``project`` declares (read, not imported: importing
    the flows would double the doctor's time)."""
    document = yaml.safe_load((project / "prefect.yaml").read_text(encoding="utf-8"))
    return [Declared(name=str(item["name"]), entrypoint=str(item["entrypoint"]),
                     pool=(item.get("work_pool") or {}).get("name"),
                     schedules=tuple(sorted((str(s["cron"]), str(s.get("timezone", "UTC")))
                                            for s in item.get("schedules") or [])))
            for item in document.get("deployments") or []]


def registered(client: ApiClient, names: list[str]) -> list[dict[str, Any]]:
    """The server's deployments of these names (of any flow)."""
    reply = client.post("/deployments/filter", {"deployments": {"name": {"any_": names}}})
    reply.raise_for_status()
    return list(reply.json())


def deployment_problem(held: list[dict[str, Any]], want: Declared) -> str | None:
    """None when ``held`` (the server's deployments) has ``want`` as declared; otherwise the
    difference."""
    named = [d for d in held if d.get("name") == want.name]
    if not named:
        return "not registered"
    same = [d for d in named if d.get("entrypoint") == want.entrypoint]
    if not same:
        return f"entrypoint {named[0].get('entrypoint')!r}, not {want.entrypoint!r}"
    found = same[0]
    differences = []
    pool = found.get("work_pool_name")
    if pool is not None and want.pool is not None and pool != want.pool:
        differences.append(f"work pool {pool!r}, not {want.pool!r}")
    # Schedules are compared for work-pool deployments only: `prepflow serve` registers the
    # same deployments without a pool, on the cron its --cron option gives.
    if pool is not None:
        schedules = tuple(sorted(
            (str(s["schedule"].get("cron")), str(s["schedule"].get("timezone") or "UTC"))
            for s in found.get("schedules") or [] if s.get("active", True)))
        if schedules != want.schedules:
            differences.append(f"schedules {list(schedules)}, not {list(want.schedules)}")
    return "; ".join(differences) or None


def online_workers(client: ApiClient, pool: str) -> int | None:
    """How many workers poll ``pool`` now (None: there is no such pool)."""
    reply = client.get(f"/work_pools/{pool}")
    if reply.status_code == 404:
        return None
    reply.raise_for_status()
    workers = client.post(f"/work_pools/{pool}/workers/filter", {})
    workers.raise_for_status()
    return sum(1 for w in workers.json() if w.get("status") == "ONLINE")
