"""`prepflow serve` against an unreachable Prefect server: clear messages and retries."""

from __future__ import annotations

import socket

import pytest

from flows.orchestration.serve import healthy, wait_for_api


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])  # closed again when the block ends


def test_an_unreachable_server_is_retried_with_a_message_each_time() -> None:
    """Each failed try says where, why and what to do, and the wait grows before giving up."""
    url = f"http://127.0.0.1:{_closed_port()}/api"
    said: list[str] = []
    with pytest.raises(ConnectionError, match="did not answer after 3 tries"):
        wait_for_api(url, said.append, attempts=3, first_delay=0.01, max_delay=0.02)
    assert len(said) == 2
    assert all(url in line and "retrying" in line for line in said)
    assert "PREFECT_API_URL" in said[0]
    assert healthy(url) is not None

