"""README command 1's main job, end to end: a real Prefect server, served deployments, a
rehearsal's runs and artifacts in the API the UI reads, and a clean stop."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _api(port: int, path: str, body: dict[str, object] | None = None) -> object:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/api{path}", method="POST" if body is not None else "GET",
        data=json.dumps(body).encode() if body is not None else None,
        headers={"content-type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as reply:
        return json.load(reply)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _up(tmp_path: Path, port: int, env: dict[str, str], log_name: str) -> subprocess.Popen[bytes]:
    """Start `prepflow up` in tmp_path; returns once its rehearsal is done and it serves."""
    with (tmp_path / log_name).open("wb") as log:
        up = subprocess.Popen([sys.executable, "-m", "flows.cli", "up", "--port", str(port)],
                              cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 300
    while b"press Ctrl-C" not in (tmp_path / log_name).read_bytes():
        assert up.poll() is None, (tmp_path / log_name).read_text(errors="replace")[-3000:]
        assert time.monotonic() < deadline, "prepflow up did not finish its rehearsal"
        time.sleep(1)
    return up


def _stop(up: subprocess.Popen[bytes], log: Path) -> str:
    up.send_signal(signal.SIGTERM)
    code = up.wait(timeout=60)
    output = log.read_text(errors="replace")
    assert code == 0, output[-3000:]
    assert "Traceback" not in output
    return output


def _rehearsal_runs(port: int) -> int:
    count = _api(port, "/flow_runs/count", {"flow_runs": {
        "tags": {"all_": ["rehearsal", "process:wtpf-26-rehearsal"]}}})
    assert isinstance(count, int)
    return count


@pytest.mark.slow
def test_up_serves_deployments_rehearses_and_stops_cleanly(tmp_path: Path) -> None:
    """`prepflow up` serves deployments with runs and artifacts in the API; SIGTERM stops all;
    a second `up` replaces the first one's rehearsal, which stays apart from the live process
    (issue 11), and mail goes to a local catcher's folder."""
    shutil.copytree(ROOT / "config", tmp_path / "config")
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "PREPFLOW_"))}
    env.update(PYTHONPATH=str(ROOT), PREFECT_SERVER_ANALYTICS_ENABLED="false",
               PREFECT_HOME=str(tmp_path / "prefect-home"))
    up = _up(tmp_path, port, env, "up.log")
    try:
        names = set()
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and len(names) < 5:  # serve registers them
            names = {d["name"] for d in _api(port, "/deployments/filter", {})}  # type: ignore[attr-defined, index]
            time.sleep(1)
        assert names == {"advance", "secretariat-action", "secretariat-amend",
                         "await-secretariat", "deliver-notifications"}
        runs = _api(port, "/flow_runs/filter", {"limit": 200})
        assert isinstance(runs, list)
        assert len(runs) >= 20
        assert any("comment window closed" in r["name"] for r in runs)
        keys = {a["key"] for a in _api(port, "/artifacts/filter", {"limit": 200})  # type: ignore[union-attr]
                if a["key"]}
        assert {"wtpf-26-rehearsal-status", "wtpf-26-rehearsal-timeline",
                "wtpf-26-rehearsal-diagram", "wtpf-26-rehearsal-rules",
                "wtpf-26-rehearsal-transcript"} <= keys
        assert not {k for k in keys if k.startswith("wtpf-26-") and
                    not k.startswith("wtpf-26-rehearsal-")}  # nothing of the live process's
        first = _rehearsal_runs(port)
        assert first >= 20
        transcript = (tmp_path / "rehearsal.txt").read_text()
        assert "2026-04-13" in transcript
        assert (tmp_path / "prepflow.db").is_file()
    finally:
        output = _stop(up, tmp_path / "up.log")
    assert f"{tmp_path / 'mail'}/" in output.replace("\n", "")  # where the catcher writes
    with pytest.raises(OSError, match=r"refused|Connection"):  # the server it started is gone
        _api(port, "/health")

    again = _up(tmp_path, port, env, "up-again.log")
    try:
        assert _rehearsal_runs(port) == first  # replaced, not piled up
        versions = _api(port, "/artifacts/filter", {
            "artifacts": {"key": {"any_": ["wtpf-26-rehearsal-status"]}}})
        assert isinstance(versions, list)
        assert len(versions) == 1
    finally:
        output = _stop(again, tmp_path / "up-again.log")
    assert "removed the previous rehearsal" in output
