"""A throwaway PostgreSQL cluster of the test session's own, for tests that stop and restart
the server (issue 10, "PostgreSQL restarted during a tick").

The machine's shared server (tests/conftest.py's ``postgres_url``) serves the other tests and
helpers, so it is never restarted; this cluster is made with ``initdb`` in a temporary folder,
listens on a free port of 127.0.0.1 (and on a socket in that folder only), trusts its local
connections, and is stopped and removed at the end of the session. initdb refuses to run as
root, so as root the cluster belongs to the ``postgres`` account (``runuser``).
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import uuid
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.pool import NullPool

from flows.mail.sink import free_port

#: Where the server programs are; else the newest /usr/lib/postgresql/<version>/bin.
BIN_VARIABLE = "PREPFLOW_TEST_POSTGRES_BIN"


def server_bin() -> Path | None:
    """The folder holding initdb and pg_ctl, or None when there is none on this machine."""
    named = os.environ.get(BIN_VARIABLE)
    found = [named] if named else sorted(glob.glob("/usr/lib/postgresql/*/bin"),
                                         key=lambda p: int(Path(p).parent.name)
                                         if Path(p).parent.name.isdigit() else 0)
    if not named and shutil.which("initdb"):
        found.append(str(Path(str(shutil.which("initdb"))).parent))
    for folder in reversed(found):
        if (Path(folder) / "initdb").exists() and (Path(folder) / "pg_ctl").exists():
            return Path(folder)
    return None


class PrivateCluster:
    """One cluster: ``start``, ``stop`` (``mode`` as pg_ctl's -m), ``restart``, ``database``."""

    def __init__(self, bin_dir: Path) -> None:
        self.bin = bin_dir
        self.port = free_port("127.0.0.1")
        self.home = Path(tempfile.mkdtemp(prefix="prepflow-pg-"))
        self.data = self.home / "data"
        self._as: list[str] = []
        if os.geteuid() == 0:  # initdb: "cannot be run as root"
            account = pwd.getpwnam("postgres")
            os.chown(self.home, account.pw_uid, account.pw_gid)
            self._as = ["runuser", "-u", "postgres", "--"]

    def _run(self, *args: str) -> None:
        done = subprocess.run([*self._as, *args], capture_output=True, text=True, timeout=60,
                              check=False)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(args)} failed: {done.stdout}{done.stderr}")

    def init(self) -> PrivateCluster:
        """initdb: trust for local connections; no fsync (a test cluster, a crash of the
        server process still loses nothing committed: the OS keeps the pages)."""
        self._run(str(self.bin / "initdb"), "-D", str(self.data), "-A", "trust",
                  "-U", "postgres", "-E", "UTF8", "--no-sync")
        return self

    def start(self) -> None:
        """Start and wait until it accepts connections."""
        options = (f"-p {self.port} -k {self.home} -c listen_addresses=127.0.0.1 "
                   "-c fsync=off -c max_connections=40")
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-o", options,
                  "-l", str(self.home / "server.log"), "-w", "-t", "30", "start")

    def stop(self, mode: str = "fast") -> None:
        """Stop: 'fast' ends the sessions and rolls their transactions back; 'immediate'
        is a crash (no checkpoint: the next start recovers from the WAL)."""
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop")

    def restart(self, mode: str = "fast") -> None:
        """Stop in ``mode``, start again."""
        self.stop(mode)
        self.start()

    def url(self, database: str = "postgres") -> str:
        """The SQLAlchemy URL of ``database`` on this cluster."""
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def database(self) -> str:
        """A fresh database's URL (each test its own, as on the shared server)."""
        name = f"prepflow_f_{uuid.uuid4().hex[:12]}"
        admin = sa.create_engine(self.url(), isolation_level="AUTOCOMMIT", poolclass=NullPool)
        try:
            with admin.connect() as conn:
                conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
        finally:
            admin.dispose()
        return self.url(name)

    def remove(self) -> None:
        """Stop (if running) and delete the cluster's folder."""
        with contextlib.suppress(RuntimeError):  # not running
            self.stop("immediate")
        shutil.rmtree(self.home, ignore_errors=True)
