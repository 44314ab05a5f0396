"""Local SMTP servers (aiosmtpd on 127.0.0.1): a sink for rehearsals, a scriptable one for tests.

- ``EmlHandler`` writes each message it receives as one ``.eml`` file named after its
  X-Prepflow-Key header (``prepflow rehearse --mail-sink DIR``); a second message with the
  same key is kept as ``<name>.dup<N>.eml``, so a duplicate is visible, never overwritten.
- ``RecordingHandler`` keeps what it receives in memory and can be told to answer
  421/451/550 per recipient (at RCPT or at DATA), or to drop the connection mid-DATA
  (before its reply, so the client never sees a 250).
- ``SmtpServer`` runs either in a background thread (aiosmtpd's Controller) on a free port
  picked first (``Controller(port=0)`` does not work).

``python -m flows.mail.sink [--dir DIR] [--port N]`` serves until Ctrl-C / SIGTERM; without
--dir it only counts (the benchmark's sink).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import re
import signal
import socket
import sys
import threading
from collections import Counter
from dataclasses import dataclass, field
from email.parser import BytesHeaderParser
from email.policy import SMTP as SMTP_POLICY
from pathlib import Path
from types import TracebackType
from typing import Protocol

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP as SmtpSession
from aiosmtpd.smtp import Envelope, Session

HOST = "127.0.0.1"
KEY_HEADER = "X-Prepflow-Key"
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_HEADERS = BytesHeaderParser(policy=SMTP_POLICY)


def free_port(host: str = HOST) -> int:
    """A port nobody listens on right now (bind to 0, read it, release it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _data(envelope: Envelope) -> bytes:
    """The message as received (decode_data=False: bytes, never text)."""
    data = envelope.original_content or envelope.content
    return data if isinstance(data, bytes) else (data or "").encode()


def message_key(data: bytes) -> str | None:
    """The X-Prepflow-Key of a raw message (headers only are parsed).

    Stripped: a key too long for one line is folded right after the colon, and the parser
    keeps the fold's leading space ("X-Prepflow-Key:\\r\\n wtpf-26:rule:…")."""
    head = data.split(b"\r\n\r\n", 1)[0]
    value = _HEADERS.parsebytes(head + b"\r\n\r\n").get(KEY_HEADER)
    return str(value).strip() if value is not None else None


def file_name(key: str) -> str:
    """A readable, unique file name for a key ('wtpf-26_post_draft2_expert_7-1a2b3c4d')."""
    digest = hashlib.sha256(key.encode()).hexdigest()[:8]
    return f"{_UNSAFE.sub('_', key)[:150]}-{digest}"


class EmlHandler:
    """Writes every message as DIR/<key>.eml (duplicates as .dup<N>.eml)."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.count = 0
        self._lock = threading.Lock()

    async def handle_DATA(self, server: SmtpSession, session: Session, envelope: Envelope) -> str:
        data = _data(envelope)
        key = message_key(data)
        base = file_name(key) if key else f"no-key-{hashlib.sha256(data).hexdigest()[:16]}"
        with self._lock:
            path, n = self.directory / f"{base}.eml", 0
            while path.exists():
                n += 1
                path = self.directory / f"{base}.dup{n}.eml"
            path.write_bytes(data)
            self.count += 1
        return "250 Message accepted for delivery"


@dataclass
class Received:
    """One message as the server took it."""

    key: str | None
    mail_from: str
    rcpt_tos: list[str]
    data: bytes


@dataclass
class _Rule:
    stage: str  # "rcpt" | "data" | "drop"
    reply: str
    times: int | None  # None: always


@dataclass
class RecordingHandler:
    """Keeps messages (or only counts them) and answers as scripted per recipient."""

    keep_data: bool = True
    received: list[Received] = field(default_factory=list)
    keys: Counter[str] = field(default_factory=Counter)
    attempts: Counter[str] = field(default_factory=Counter)
    drops: int = 0
    _rules: dict[str, list[_Rule]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def fail(self, address: str, reply: str, *, times: int | None = None,
             stage: str = "rcpt") -> None:
        """Answer ``reply`` (e.g. '451 4.3.0 try later', '550 5.1.1 no such user') for this
        recipient at RCPT or DATA, ``times`` times (None: always)."""
        if stage not in ("rcpt", "data"):
            raise ValueError(f"stage {stage!r}: use 'rcpt' or 'data'")
        with self._lock:
            self._rules.setdefault(address.lower(), []).append(_Rule(stage, reply, times))

    def drop(self, address: str, *, times: int | None = 1) -> None:
        """Close the connection once the message's data is in, before replying to it."""
        with self._lock:
            self._rules.setdefault(address.lower(), []).append(_Rule("drop", "", times))

    def _take(self, address: str, stages: tuple[str, ...]) -> _Rule | None:
        with self._lock:
            for rule in self._rules.get(address.lower(), []):
                if rule.stage in stages and rule.times != 0:
                    if rule.times is not None:
                        rule.times -= 1
                    return rule
        return None

    async def handle_RCPT(self, server: SmtpSession, session: Session, envelope: Envelope,
                          address: str, rcpt_options: list[str]) -> str:
        with self._lock:
            self.attempts[address.lower()] += 1
        rule = self._take(address, ("rcpt",))
        if rule is not None:
            return rule.reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SmtpSession, session: Session, envelope: Envelope) -> str:
        for address in envelope.rcpt_tos:
            rule = self._take(address, ("data", "drop"))
            if rule is not None and rule.stage == "drop":
                with self._lock:
                    self.drops += 1
                assert isinstance(server.transport, asyncio.Transport)  # a live connection
                server.transport.abort()  # mid-DATA from the client's view: no reply at all
                return "421 4.4.2 connection dropped"
            if rule is not None:
                return rule.reply
        data = _data(envelope)
        key = message_key(data)
        with self._lock:
            if key is not None:
                self.keys[key] += 1
            if self.keep_data:
                self.received.append(Received(key, envelope.mail_from or "",
                                              list(envelope.rcpt_tos), data))
            else:
                self.received.append(Received(key, "", [], b""))
        return "250 2.0.0 OK queued"

    @property
    def count(self) -> int:
        return len(self.received)


class Handler(Protocol):
    """What SmtpServer needs of a handler (aiosmtpd calls its handle_* hooks by name)."""

    @property
    def count(self) -> int: ...


class SmtpServer:
    """An aiosmtpd server on 127.0.0.1 in a background thread; use as a context manager."""

    def __init__(self, handler: Handler, host: str = HOST, port: int | None = None) -> None:
        self.handler = handler
        self.host = host
        self.port = port or free_port(host)
        # 8BITMIME/SMTPUTF8 as a real relay announces them; decode_data=False keeps bytes.
        self._controller = Controller(handler, hostname=host, port=self.port,
                                      enable_SMTPUTF8=True, decode_data=False)

    def start(self) -> SmtpServer:
        self._controller.start()
        return self

    def stop(self) -> None:
        self._controller.stop()

    def __enter__(self) -> SmtpServer:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> int:
    """Serve until interrupted; prints 'listening on HOST:PORT' once ready."""
    parser = argparse.ArgumentParser(prog="python -m flows.mail.sink", description=__doc__)
    parser.add_argument("--dir", type=Path, help="write each message as an .eml file here")
    parser.add_argument("--port", type=int, default=None)
    args = parser.parse_args(argv)
    handler: Handler = EmlHandler(args.dir) if args.dir else RecordingHandler(keep_data=False)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with SmtpServer(handler, port=args.port) as server:
        print(f"listening on {server.host}:{server.port}", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            stop.wait()
    print(f"received {handler.count} messages", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
