"""Outbox delivery throughput: the engine vs a bare aiosmtplib client vs a naive smtplib script.

    python bench/notify.py [--messages 5000] [--concurrency 8]

One aiosmtpd sink (``python -m flows.smtp_sink``, counting only) runs in its own process for
all three, so the sink's CPU is not the client's. Measured:

1. engine: ``deliver()`` draining an outbox of N rows in a real SqlStore on SQLite (temp dir):
   claim → render (jinja2 sandbox + email package) → send over a pool of ``concurrency``
   persistent connections → mark sent. (Writing the rows, which happens at transition time,
   is timed separately and not counted.)
2. bare: aiosmtplib with the same number of persistent connections sending the same, already
   rendered bytes: no store, no rendering — the practical ceiling.
3. naive: stdlib smtplib, one connection per message, the same pre-rendered bytes (a quick
   script would also render each message; giving it the bytes only flatters it).

Targets (issue 4): engine ≥ 0.7 × bare, engine ≥ 2.5 × naive.
"""

from __future__ import annotations

import argparse
import asyncio
import smtplib
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import aiosmtplib

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from flows.mail_delivery import MailSettings, SmtpMailer, deliver  # noqa: E402
from flows.mail_render import Renderer  # noqa: E402
from flows.storage import SqlStore  # noqa: E402
from flows.storage.notify_model import OutboxDraft  # noqa: E402

SENDER = "WTPF Secretariat <wtpf@itu.int>"
NOW = datetime(2024, 11, 4, 9, 0, tzinfo=UTC)
CONTEXT = {
    "process_id": "wtpf-26", "process_name": "WTPF-26 preparation", "forum": "WTPF-26",
    "contact": "wtpf@itu.int", "cycle": "draft2", "cycle_name": "Second Draft",
    "document": "WTPF26-IEG2/1", "document_url": "https://www.itu.int/md/S26-WTPF-IEG2-1/en",
    "deadline": "2024-12-20T23:00:00+00:00", "timezone": "Europe/Zurich",
}
ZONES = [None, "America/New_York", "Asia/Kolkata", "Africa/Nairobi"]


def drafts(n: int, run: str) -> list[OutboxDraft]:
    return [OutboxDraft(
        key=f"wtpf-26:post_draft2:{run}:expert:{i}", process_id="wtpf-26", event="draft_posted",
        recipient=f"expert:{i}", email=f"expert{i}@example.org", name=f"Expert Number {i}",
        language="fr" if i % 7 == 0 else "en", timezone=ZONES[i % len(ZONES)],
        context=CONTEXT, created_at=NOW) for i in range(n)]


def start_sink() -> tuple[subprocess.Popen[str], int]:
    proc = subprocess.Popen([sys.executable, "-m", "flows.smtp_sink"], cwd=ROOT,
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()  # "listening on 127.0.0.1:PORT"
    return proc, int(line.rsplit(":", 1)[1])


async def engine(port: int, n: int, concurrency: int, folder: Path) -> tuple[float, str]:
    store = SqlStore(f"sqlite:///{folder / 'bench.db'}")
    started = time.perf_counter()
    store.enqueue(drafts(n, "engine"))
    enqueued = time.perf_counter() - started
    mailer = SmtpMailer(MailSettings(port=port, concurrency=concurrency, sender=SENDER))
    started = time.perf_counter()
    report = await deliver(store, mailer, NOW, limit=n, concurrency=concurrency,
                           renderer=Renderer(SENDER))
    elapsed = time.perf_counter() - started
    await mailer.aclose()
    sent = len(store.outbox(status="sent"))
    store.close()
    if report.sent != n or sent != n:
        raise SystemExit(f"engine: {report}; {sent} rows marked sent of {n}")
    return elapsed, f"(writing the {n} rows first: {enqueued:.2f} s, not counted)"


def payloads(n: int) -> list[tuple[str, bytes]]:
    renderer = Renderer(SENDER)
    return [(d.email, renderer.render(d, "Europe/Zurich", NOW).as_bytes())
            for d in drafts(n, "pre")]


async def bare(port: int, messages: list[tuple[str, bytes]], concurrency: int) -> float:
    queue = list(reversed(messages))

    async def worker() -> None:
        client = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, start_tls=False)
        await client.connect()
        while queue:
            to, data = queue.pop()
            await client.sendmail("wtpf@itu.int", [to], data)
        await client.quit()

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return time.perf_counter() - started


def naive(port: int, messages: list[tuple[str, bytes]]) -> float:
    started = time.perf_counter()
    for to, data in messages:
        with smtplib.SMTP("127.0.0.1", port) as client:
            client.sendmail("wtpf@itu.int", [to], data)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()
    n, c = args.messages, args.concurrency
    sink, port = start_sink()
    try:
        with tempfile.TemporaryDirectory() as folder:
            engine_s, note = asyncio.run(engine(port, n, c, Path(folder)))
        messages = payloads(n)
        bare_s = asyncio.run(bare(port, messages, c))
        naive_s = naive(port, messages)
    finally:
        sink.terminate()
        out, _ = sink.communicate(timeout=10)
    rates = {"engine": n / engine_s, "bare": n / bare_s, "naive": n / naive_s}
    print(f"{n} messages, concurrency {c}, sink: aiosmtpd in its own process "
          f"({out.strip().splitlines()[-1]})")
    print(f"  engine outbox (render + record + send, SqlStore/SQLite): "
          f"{rates['engine']:7.0f} msg/s  {note}")
    print(f"  bare aiosmtplib, {c} connections, pre-rendered:            "
          f"{rates['bare']:7.0f} msg/s")
    print(f"  naive smtplib, one connection per message:                "
          f"{rates['naive']:7.0f} msg/s")
    to_bare, to_naive = rates["engine"] / rates["bare"], rates["engine"] / rates["naive"]
    print(f"  engine / bare  = {to_bare:.2f}  (target ≥ 0.70) "
          f"{'ok' if to_bare >= 0.7 else 'MISSED'}")
    print(f"  engine / naive = {to_naive:.2f}  (target ≥ 2.50) "
          f"{'ok' if to_naive >= 2.5 else 'MISSED'}")


if __name__ == "__main__":
    main()
