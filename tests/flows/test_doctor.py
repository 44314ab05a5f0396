"""`prepflow doctor` in the embedded default and on faults that need no Prefect server (the
PostgreSQL + work-pool setup is tests/flows/test_operations.py)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from prefect.settings import PREFECT_API_AUTH_STRING, PREFECT_API_URL, temporary_settings

from flows.mail.sink import RecordingHandler, SmtpServer, free_port
from flows.orchestration.doctor import check_zones
from flows.orchestration.doctor_api import Declared, deployment_problem
from flows.orchestration.serve import refuse_unauthenticated
from states.errors import InputError
from tests.flows.cli_run import Run, fresh_store, in_process

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> Iterator[Run]:
    """The CLI on a fresh SQLite store, an SMTP server on loopback, no Prefect server set."""
    fresh_store(tmp_path, monkeypatch)
    with SmtpServer(RecordingHandler()) as smtp, \
            temporary_settings(restore_defaults={PREFECT_API_URL, PREFECT_API_AUTH_STRING}):
        monkeypatch.setenv("PREPFLOW_SMTP_PORT", str(smtp.port))
        yield in_process(capsys)


def test_embedded_default_passes_with_the_prefect_checks_skipped(run: Run) -> None:
    """With no PREFECT_API_URL the store, SMTP and zone checks run, the Prefect ones say skip."""
    assert run("init", str(ROOT / "config" / "wtpf26.yaml")).code == 0
    result = run("doctor")
    assert result.code == 0, result.out
    assert "skip   prefect-api  PREFECT_API_URL is not set: the embedded setup" in result.out
    assert "ok     store" in result.out
    assert "1 process." in result.out
    assert "ok     smtp" in result.out
    assert "ok     time-zones   Europe/Zurich." in result.out
    assert result.out.rstrip().endswith("All checks passed.")


def test_missing_store_file_is_a_fault_and_is_not_created(run: Run, tmp_path: Path) -> None:
    """A SQLite store that does not exist yet: fault, fix 'prepflow db upgrade', no file."""
    result = run("doctor")
    assert result.code == 1
    assert "FAULT  store        There is no database file at" in result.out
    assert "fix: Create it with 'prepflow db upgrade'" in result.out
    assert not (tmp_path / "prepflow.db").exists()


def test_secrets_are_masked_in_every_fault(run: Run, monkeypatch: pytest.MonkeyPatch) -> None:
    """Unreachable store, API and SMTP server: faults named, no password or auth string."""
    closed = free_port()
    monkeypatch.setenv("PREPFLOW_DATABASE_URL",
                       f"postgresql+psycopg://prepflow:db-s3cret@127.0.0.1:{closed}/prepflow")
    monkeypatch.setenv("PREPFLOW_SMTP_PORT", str(closed))
    monkeypatch.setenv("PREPFLOW_SMTP_PASSWORD", "smtp-s3cret")
    with temporary_settings(updates={PREFECT_API_URL: f"http://127.0.0.1:{closed}/api",
                                     PREFECT_API_AUTH_STRING: "admin:api-s3cret"}):
        result = run("doctor")
    assert result.code == 1
    assert "FAULT  store" in result.out
    assert "prepflow:***@127.0.0.1" in result.out
    assert "FAULT  prefect-api  The Prefect API at" in result.out
    assert "FAULT  smtp" in result.out
    assert "3 faults found." in result.out
    for secret in ("db-s3cret", "smtp-s3cret", "api-s3cret"):
        assert secret not in result.out + result.err


def test_project_without_prefect_yaml_is_bad_input(run: Run, tmp_path: Path) -> None:
    """--project naming a folder without prefect.yaml: exit 2, one paragraph, no checks."""
    result = run("doctor", "--project", str(tmp_path))
    assert result.code == 2
    assert "has no prefect.yaml" in result.err
    assert "store" not in result.out


def test_zone_without_data_is_a_fault_naming_it() -> None:
    """A zone with no time-zone data is named, with tzdata as the fix."""
    finding = check_zones(["Europe/Zurich", "Mars/Olympus_Mons"])
    assert finding.status == "fault"
    assert finding.detail == "No time-zone data for Mars/Olympus_Mons."
    assert finding.fix is not None
    assert "tzdata" in finding.fix


ADVANCE = Declared("advance", "flows/orchestration/advance.py:advance", "prepflow",
                   (("*/15 * * * *", "Europe/Zurich"),))


def _held(entrypoint: str = ADVANCE.entrypoint, pool: str | None = "prepflow",
          cron: str = "*/15 * * * *") -> list[dict[str, object]]:
    return [{"name": "advance", "entrypoint": entrypoint, "work_pool_name": pool,
             "schedules": [{"active": True,
                            "schedule": {"cron": cron, "timezone": "Europe/Zurich"}}]}]


@pytest.mark.parametrize(("held", "problem"), [
    (_held(), None),
    ([], "not registered"),
    (_held(entrypoint="flows/old.py:advance"),
     "entrypoint 'flows/old.py:advance', not 'flows/orchestration/advance.py:advance'"),
    (_held(pool="other"), "work pool 'other', not 'prepflow'"),
    (_held(cron="0 * * * *"), "schedules [('0 * * * *', 'Europe/Zurich')], not "
                              "[('*/15 * * * *', 'Europe/Zurich')]"),
    (_held(pool=None, cron="*/5 * * * *"), None),  # served by `prepflow serve --cron`
])
def test_deployment_differences(held: list[dict[str, object]], problem: str | None) -> None:
    """A registered deployment is compared with prefect.yaml on entrypoint, pool, schedules."""
    assert deployment_problem(held, ADVANCE) == problem  # type: ignore[arg-type]


class _AuthOnly(BaseHTTPRequestHandler):
    """A server that, like Prefect's with PREFECT_SERVER_API_AUTH_STRING, lets /api/health
    through and answers 401 to everything else."""

    def do_GET(self) -> None:
        self.send_response(200 if self.path == "/api/health" else 401)
        self.end_headers()
        self.wfile.write(b"true")

    def log_message(self, *args: object) -> None:
        """Quiet: the test reads the replies, not the log."""


@pytest.fixture
def auth_only() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _AuthOnly)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/api"
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize(("auth", "says"), [
    (None, "requires authentication and PREFECT_API_AUTH_STRING is not set"),
    ("admin:wrong-s3cret", "refused PREFECT_API_AUTH_STRING"),
])
def test_serve_stops_on_a_401_naming_the_setting(auth_only: str, auth: str | None,
                                                 says: str) -> None:
    """Before serving, a 401 stops `prepflow serve` (bad input) naming the setting to fix."""
    with temporary_settings(updates={PREFECT_API_URL: auth_only, PREFECT_API_AUTH_STRING: auth}),\
            pytest.raises(InputError) as refused:
        refuse_unauthenticated()
    assert says in str(refused.value)
    assert "PREFECT_SERVER_API_AUTH_STRING" in str(refused.value)
    assert "s3cret" not in str(refused.value)
