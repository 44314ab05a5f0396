"""A real, temporary Prefect server for the flow tests: one per session, started on demand.

Tests that run flows ask for ``prefect_server`` (it yields the API URL). The server is
``prefect_test_harness`` with two changes that keep the suite fast:

- Flow-run heartbeats are off. A sync flow otherwise waits ~1 s at its end for the heartbeat
  thread; heartbeats cannot be turned off through an env var, only in code, and the setting
  must be in place *before* the harness copies the settings into the process-global context.
- The server's SQLite database starts as a copy of an already migrated template (built once per
  Prefect version under the temp dir), which cuts start-up from ~10 s to ~4 s. This reaches
  into the harness (it hard-codes ``<mkdtemp()>/prefect-test.db``), so it is guarded: if the
  harness changes shape or the template cannot be built, the plain harness runs instead.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from unittest import mock

import pytest

# No internet on the test machines: the server must not try to send analytics.
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")

TEMPLATE_DIR = Path(tempfile.gettempdir()) / "prefect-db-templates"


def _template() -> Path | None:
    """A migrated Prefect database for this Prefect version, or None if it cannot be made."""
    import prefect

    template = TEMPLATE_DIR / f"prefect-{prefect.__version__}.db"
    if template.exists():
        return template
    TEMPLATE_DIR.mkdir(parents=True, exist_ok=True)
    building = template.with_suffix(f".building-{os.getpid()}")  # parallel sessions don't clash
    building.unlink(missing_ok=True)
    env = {**os.environ, "PREFECT_SERVER_DATABASE_CONNECTION_URL": f"sqlite+aiosqlite:///{building}",
           "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    prefect_cli = Path(sys.executable).with_name("prefect")
    try:
        subprocess.run([str(prefect_cli), "server", "database", "upgrade", "-y"], env=env,
                       check=True, capture_output=True, timeout=120)
        building.replace(template)  # atomic: a reader never sees a half-built template
    except (OSError, subprocess.SubprocessError):
        building.unlink(missing_ok=True)
        return None
    return template


@contextlib.contextmanager
def _from_template(harness_module: Any) -> Iterator[None]:
    """Make the harness start from the template database (no-op when that is not possible)."""
    real_mkdtemp = getattr(harness_module, "mkdtemp", None)
    template = _template() if real_mkdtemp is not None else None
    if real_mkdtemp is None or template is None:
        yield
        return

    def mkdtemp_with_template(*args: Any, **kwargs: Any) -> str:
        folder = real_mkdtemp(*args, **kwargs)
        shutil.copyfile(template, Path(folder) / "prefect-test.db")
        return folder

    with mock.patch.object(harness_module, "mkdtemp", mkdtemp_with_template):
        yield


@pytest.fixture(scope="session")
def prefect_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The API URL of a temporary Prefect server that flows in this session run against."""
    import prefect.testing.utilities as harness
    from prefect.settings import (
        PREFECT_API_URL,
        PREFECT_FLOWS_HEARTBEAT_FREQUENCY,
        PREFECT_HOME,
        PREFECT_LOCAL_STORAGE_PATH,
        temporary_settings,
    )

    home = tmp_path_factory.mktemp("prefect-home")
    settings = {
        PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None,
        # Persisted results, profiles and logs stay out of the developer's ~/.prefect.
        PREFECT_HOME: str(home),
        PREFECT_LOCAL_STORAGE_PATH: str(home / "storage"),
    }
    with (temporary_settings(updates=settings), _from_template(harness),
          harness.prefect_test_harness(server_startup_timeout=60)):
        url = PREFECT_API_URL.value()
        assert url, "the harness did not set PREFECT_API_URL"
        yield str(url)
