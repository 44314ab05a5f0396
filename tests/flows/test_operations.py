"""docs/operations.md, run: the Prefect server on PostgreSQL with basic auth, the store on
PostgreSQL, a process work pool with two workers, and `prepflow doctor` on it, whole and broken.

The commands are the ones in docs/operations.md: each ```bash block marked ``step:`` is run
with ``bash -c`` from the checkout, with the ``settings:`` blocks' variables given this test's
values (a free port, databases and a role of its own, fresh passwords). Long-running steps
(the server, the workers) run as process groups, stopped at the end; the databases and the
role are dropped. The slow integration test of the suite (about a minute and a half).
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.pool import NullPool

from flows.mail.sink import RecordingHandler, SmtpServer, free_port
from flows.orchestration.serve import stop
from flows.storage import SqlStore
from flows.storage.schema import head, revisions
from flows.storage.schema.names import VERSION_TABLE
from tests.conftest import PG_ADMIN_URL

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "operations.md"
BIN = Path(sys.executable).parent
_BLOCK = re.compile(r"<!-- (step|settings): ([^>]*?) -->\s*```bash\n(.*?)```", re.S)


def blocks(kind: str) -> dict[str, str]:
    """The doc's blocks of one kind by name ('server (runs until stopped)' → 'server')."""
    return {name.split(" ")[0]: body for k, name, body in _BLOCK.findall(DOC.read_text())
            if k == kind}


def settings(name: str, values: dict[str, str]) -> dict[str, str]:
    """A settings block's variables with this test's values; the doc must name exactly them."""
    found: dict[str, str] = {}
    for line in blocks("settings")[name].splitlines():
        if line.startswith("export "):
            for word in shlex.split(line.removeprefix("export "), comments=True):
                key, _, value = word.partition("=")
                found[key] = value
    assert set(found) == set(values), f"settings: {name} names {sorted(found)}"
    return values


@dataclass
class Setup:
    """The running setup: environments per role, the processes, what they wrote."""

    base: dict[str, str]
    db: dict[str, str]
    server: dict[str, str]
    clients: dict[str, str]
    tmp: Path
    secrets: list[str]
    smtp_port: int
    store_url: str
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    printed: list[str] = field(default_factory=list)  # every command's output, for the last test

    def env(self, *roles: dict[str, str], **extra: str) -> dict[str, str]:
        merged = dict(self.base)
        for role in roles:
            merged.update(role)
        merged.update(extra)
        return merged

    def run(self, step: str, env: dict[str, str] | None = None,
            timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """A step of the doc, run to its end."""
        done = subprocess.run(["bash", "-euo", "pipefail", "-c", blocks("step")[step]],
                              cwd=ROOT, env=env or self.env(self.clients), capture_output=True,
                              text=True, timeout=timeout, check=False)
        self.printed.append(done.stdout + done.stderr)
        return done

    def start(self, step: str, env: dict[str, str]) -> None:
        """A long-running step of the doc, as a process group logging to tmp/<step>.log."""
        with (self.tmp / f"{step}.log").open("wb") as log:  # the child keeps its own copy
            self.processes[step] = subprocess.Popen(
                ["bash", "-euo", "pipefail", "-c", "exec " + blocks("step")[step].strip()],
                cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

    def api(self, path: str, body: dict[str, object] | None = None) -> httpx.Response:
        """The Prefect API, authenticated."""
        url = self.clients["PREFECT_API_URL"] + path
        auth = tuple(self.server["PREFECT_SERVER_API_AUTH_STRING"].split(":", 1))
        if body is None:
            return httpx.get(url, auth=auth, timeout=10)  # type: ignore[arg-type]
        return httpx.post(url, json=body, auth=auth, timeout=10)  # type: ignore[arg-type]

    def doctor(self, **extra: str) -> subprocess.CompletedProcess[str]:
        return self.run("doctor", self.env(self.clients, **extra), timeout=60)

    def logs(self) -> str:
        return "\n".join(p.read_text(errors="replace") for p in self.tmp.glob("*.log"))


def _wait(what: str, done: object, setup: Setup, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while not done():  # type: ignore[operator]
        for step, process in setup.processes.items():
            assert process.poll() is None, f"{step} stopped:\n{setup.logs()[-3000:]}"
        assert time.monotonic() < deadline, f"{what}: not in {timeout} s\n{setup.logs()[-3000:]}"
        time.sleep(0.5)


def _online(setup: Setup) -> int:
    reply = setup.api("/work_pools/prepflow/workers/filter", {})
    return sum(1 for w in reply.json() if w.get("status") == "ONLINE") if reply.is_success else 0


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    """docs/operations.md steps 1–3 run: server, schema, pool, deployments, two workers."""
    tag = uuid.uuid4().hex[:10]
    admin = sa.make_url(PG_ADMIN_URL)
    role, password = f"prepflow_t_{tag}", f"dbpw-{uuid.uuid4().hex}"
    prefect_db, store_db = f"prepflow_t_{tag}_prefect", f"prepflow_t_{tag}_store"
    api_password = f"apipw-{uuid.uuid4().hex}"
    port, tmp = free_port(), tmp_path_factory.mktemp("operations")
    pg = f"{role}:{password}@{admin.host}:{admin.port or 5432}"
    store_url = f"postgresql+psycopg://{pg}/{store_db}"
    base = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "PREPFLOW_"))}
    base.update(PATH=f"{BIN}:{base.get('PATH', '')}", PREFECT_HOME=str(tmp / "prefect-home"),
                # Speed only: workers poll every 2 s instead of 15 (Prefect's default).
                PREFECT_WORKER_QUERY_SECONDS="2", PREFECT_SERVER_ANALYTICS_ENABLED="false")
    with SmtpServer(RecordingHandler()) as smtp:
        made = Setup(
            base=base,
            db=settings("database", {
                "PGHOST": str(admin.host), "PGPORT": str(admin.port or 5432),
                "PGUSER": str(admin.username), "DB_ROLE": role, "DB_PASSWORD": password,
                "PREFECT_DB": prefect_db, "PREPFLOW_DB": store_db}),
            server=settings("server", {
                "PREFECT_API_DATABASE_CONNECTION_URL": f"postgresql+asyncpg://{pg}/{prefect_db}",
                "PREFECT_SERVER_API_AUTH_STRING": f"admin:{api_password}",
                "PREFECT_SERVER_API_HOST": "127.0.0.1", "PREFECT_SERVER_API_PORT": str(port),
                "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}),
            clients=settings("clients", {
                "PREFECT_API_URL": f"http://127.0.0.1:{port}/api",
                "PREFECT_API_AUTH_STRING": f"admin:{api_password}",
                "PREPFLOW_DATABASE_URL": store_url, "PREPFLOW_SMTP_HOST": "127.0.0.1",
                "PREPFLOW_SMTP_PORT": str(smtp.port)}),
            tmp=tmp, secrets=[password, api_password], smtp_port=smtp.port, store_url=store_url)
        try:
            done = made.run("databases", made.env(made.db))
            assert done.returncode == 0, done.stderr
            made.start("server", made.env(made.server))
            done = made.run("schema")  # the store needs no server: meanwhile it starts
            assert done.returncode == 0, f"schema: {done.stdout}\n{done.stderr}"
            _wait("the Prefect server", lambda: _healthy(made), made, timeout=120)
            done = made.run("deploy")
            assert done.returncode == 0, f"deploy: {done.stdout}\n{done.stderr}"
            made.start("worker-1", made.env(made.clients))
            made.start("worker-2", made.env(made.clients))
            _wait("two workers online", lambda: _online(made) == 2, made)
            yield made
        finally:
            for process in made.processes.values():  # all asked to stop at once, then waited for
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGTERM)
            for process in made.processes.values():
                stop(process, grace=10)
            _drop(role, prefect_db, store_db)


def _healthy(setup: Setup) -> bool:
    try:
        return httpx.get(setup.clients["PREFECT_API_URL"] + "/health", timeout=2).is_success
    except httpx.HTTPError:
        return False


def _drop(role: str, *databases: str) -> None:
    admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    try:
        with admin.connect() as conn:
            for name in databases:
                conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            conn.exec_driver_sql(f'DROP ROLE IF EXISTS "{role}"')
    finally:
        admin.dispose()


def test_the_api_refuses_requests_without_the_auth_string(setup: Setup) -> None:
    """With PREFECT_SERVER_API_AUTH_STRING set, the doc's curl gets 401; the password, 200."""
    refused = setup.run("refused")
    assert refused.returncode == 0, refused.stderr
    assert refused.stdout.strip() == "401"
    assert setup.api("/admin/version").status_code == 200


def test_doctor_passes_on_the_documented_setup(setup: Setup) -> None:
    """Every check of `prepflow doctor` is ok on the setup of docs/operations.md: exit 0."""
    done = setup.doctor()
    assert done.returncode == 0, done.stdout + done.stderr
    assert "FAULT" not in done.stdout
    for check in ("store", "prefect-api", "deployments", "workers", "smtp", "time-zones"):
        assert re.search(rf"^ok\s+{check}\b", done.stdout, re.M), check
    assert "pool prepflow: 2 worker(s) online" in done.stdout
    assert "All checks passed." in done.stdout


def test_a_tick_runs_on_a_worker_and_is_audited(setup: Setup) -> None:
    """The doc's `prefect deployment run advance/advance --watch` completes on a worker and
    the store records the transition it applied, by the system."""
    posted = subprocess.run(
        ["prepflow", "transition", "wtpf-26", "post_draft1", "--by", "wtpf-secretariat",
         "--document", "WTPF26/1", "--now", "2024-08-05T10:00+02:00"],
        cwd=ROOT, env=setup.env(setup.clients), capture_output=True, text=True, check=False)
    assert posted.returncode == 0, posted.stderr
    tick = setup.run("tick", timeout=120)
    assert tick.returncode == 0, tick.stdout + tick.stderr
    assert "Completed" in tick.stdout
    with SqlStore(setup.store_url) as store:
        closed = [e for e in store.audit("wtpf-26") if e.trigger == "close_comments_draft1"]
    assert [e.actor for e in closed] == ["system"]
    runs = setup.api("/flow_runs/filter", {"flow_runs": {"state": {"type": {
        "any_": ["COMPLETED"]}}}}).json()
    assert any(r["work_pool_name"] == "prepflow" for r in runs)


def test_serve_stops_naming_the_missing_auth_setting(setup: Setup) -> None:
    """`prepflow serve` against the auth server, without or with a wrong auth string: exit 2,
    the setting named, no endless 401 retries, no secret printed."""
    missing = {k: v for k, v in setup.env(setup.clients).items()
               if k != "PREFECT_API_AUTH_STRING"}
    wrong = setup.env(setup.clients, PREFECT_API_AUTH_STRING="admin:not-the-password")
    for env, says in ((missing, "PREFECT_API_AUTH_STRING is not set"),
                      (wrong, "refused PREFECT_API_AUTH_STRING")):
        done = subprocess.run(["prepflow", "serve"], cwd=ROOT, env=env, capture_output=True,
                              text=True, timeout=90, check=False)
        setup.printed.append(done.stdout + done.stderr)
        assert done.returncode == 2, done.stdout + done.stderr
        assert says in done.stderr
        assert "PREFECT_SERVER_API_AUTH_STRING" in done.stderr
        assert "Traceback" not in done.stderr
        assert "not-the-password" not in done.stdout + done.stderr


def test_doctor_names_each_fault_with_its_fix(setup: Setup) -> None:
    """Broken one way at a time, `prepflow doctor` exits 1 naming the check and its fix."""
    wrong = setup.doctor(PREFECT_API_AUTH_STRING="admin:not-the-password")
    assert wrong.returncode == 1
    assert re.search(r"^FAULT\s+prefect-api .*refused PREFECT_API_AUTH_STRING", wrong.stdout,
                     re.M), wrong.stdout
    assert "fix: Set it to the server's PREFECT_SERVER_API_AUTH_STRING" in wrong.stdout
    assert "not-the-password" not in wrong.stdout

    closed = setup.doctor(PREPFLOW_SMTP_PORT=str(free_port()))
    assert closed.returncode == 1
    assert re.search(r"^FAULT\s+smtp .*does not answer", closed.stdout, re.M), closed.stdout
    assert "fix: Check PREPFLOW_SMTP_HOST, PREPFLOW_SMTP_PORT" in closed.stdout

    _set_revision(setup.store_url, revisions()[-2])  # as if a release's upgrade were missed
    try:
        behind = setup.doctor()
    finally:
        _set_revision(setup.store_url, head())
    assert behind.returncode == 1
    assert re.search(rf"^FAULT\s+store .*at schema revision {revisions()[-2]}; this prepflow "
                     rf"needs {head()}", behind.stdout, re.M), behind.stdout
    assert "fix: Run 'prepflow db upgrade'" in behind.stdout

    amend = setup.api("/deployments/name/secretariat-amend/secretariat-amend").json()
    assert httpx.delete(f"{setup.clients['PREFECT_API_URL']}/deployments/{amend['id']}",
                        auth=tuple(setup.clients["PREFECT_API_AUTH_STRING"].split(":", 1)),  # type: ignore[arg-type]
                        timeout=10).is_success
    gone = setup.doctor()
    assert gone.returncode == 1
    assert re.search(r"^FAULT\s+deployments\s+secretariat-amend: not registered", gone.stdout,
                     re.M), gone.stdout
    assert "fix: Run 'prefect deploy --all' in" in gone.stdout
    for output in (wrong, closed, behind, gone):  # one fault each: the others stay ok
        assert output.stdout.count("FAULT") == 1, output.stdout
    # Left without that deployment: only the secrets test, which reads what was printed, follows.


def test_no_secret_in_logs_parameters_artifacts_or_doctor_output(setup: Setup) -> None:
    """Neither the database password nor the API password appears in what the server, the
    workers and the doctor printed, nor in flow-run parameters or artifacts."""
    assert len(setup.printed) >= 8  # the doc's steps, and the doctor whole and broken
    seen = [setup.logs(), *setup.printed]
    (setup.tmp / "printed.txt").write_text("\n".join(setup.printed))  # kept for a failure's reader
    seen.append(setup.api("/flow_runs/filter", {}).text)
    seen.append(setup.api("/deployments/filter", {}).text)
    seen.append(setup.api("/artifacts/filter", {}).text)
    for text in seen:
        for secret in setup.secrets:
            assert secret not in text


def _set_revision(url: str, revision: str) -> None:
    """Write the store's schema revision by hand (the test's way to fake a missed upgrade)."""
    engine = sa.create_engine(url, poolclass=NullPool)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text(f"UPDATE {VERSION_TABLE} SET version_num = :r"), {"r": revision})
    finally:
        engine.dispose()
