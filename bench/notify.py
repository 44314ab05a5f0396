"""Outbox delivery throughput: the engine vs a bare aiosmtplib client vs a naive smtplib script.

    python bench/notify.py [--messages 5000] [--concurrency 8]

One aiosmtpd sink (``python -m flows.mail.sink``, counting only) runs in its own process for
all three, so the sink's CPU is not the client's. Measured:

1. engine: ``deliver()`` draining an outbox of N rows in a real SqlStore on SQLite (temp dir):
   claim → render (jinja2 sandbox + email package) → send over a pool of ``concurrency``
   persistent connections → mark sent. (Writing the rows, which happens at transition time,
   is timed separately and not counted.)
2. bare: aiosmtplib with the same number of persistent connections sending the same, already
   rendered bytes: no store, no rendering — the practical ceiling.
3. naive script: what a quick script does — per message, a jinja2 template, an EmailMessage,
   and stdlib smtplib opening one connection; the target's reference.
4. naive bytes: smtplib, one connection per message, the pre-rendered bytes (transport cost
   only; shown so the connection cost alone is visible too).

Engine and bare alternate ``--rounds`` times and the best of each counts: the machine may be
shared, and alternating spreads its noise over both.
Targets (issue 4): engine ≥ 0.7 × bare, engine ≥ 2.5 × the naive script.
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
from email.message import EmailMessage
from pathlib import Path

import aiosmtplib
import jinja2

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from flows.mail.delivery import deliver  # noqa: E402 - after the sys.path line above
from flows.mail.mail_transport import SmtpMailer  # noqa: E402 - after the sys.path line above
from flows.mail.render import Renderer  # noqa: E402 - after the sys.path line above
from flows.settings import SmtpSettings  # noqa: E402 - after the sys.path line above
from flows.storage import SqlStore  # noqa: E402 - after the sys.path line above
from flows.storage.notify_model import OutboxDraft  # noqa: E402 - after the sys.path line above

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
    proc = subprocess.Popen([sys.executable, "-m", "flows.mail.sink"], cwd=ROOT,
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()  # "listening on 127.0.0.1:PORT"
    return proc, int(line.rsplit(":", 1)[1])


async def engine(port: int, n: int, concurrency: int, folder: Path) -> tuple[float, str]:
    store = SqlStore(f"sqlite:///{folder / 'bench.db'}")
    started = time.perf_counter()
    store.enqueue(drafts(n, "engine"))
    enqueued = time.perf_counter() - started
    mailer = SmtpMailer(SmtpSettings(port=port, concurrency=concurrency, sender=SENDER))
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
    """One connection per message, the bytes already made (transport cost only)."""
    started = time.perf_counter()
    for to, data in messages:
        with smtplib.SMTP("127.0.0.1", port) as client:
            client.sendmail("wtpf@itu.int", [to], data)
    return time.perf_counter() - started


SCRIPT_TEXT = jinja2.Template(
    "Dear {{ name }},\n\nThe {{ cycle_name }} ({{ document }}) has been posted: {{ url }}\n"
    "Please send your comments by {{ deadline }} (Geneva time).\n")
SCRIPT_HTML = jinja2.Template(
    "<p>Dear {{ name }},</p><p>The {{ cycle_name }} ({{ document }}) has been posted: "
    "<a href=\"{{ url }}\">{{ url }}</a></p><p>Please send your comments by {{ deadline }}"
    " (Geneva time).</p>", autoescape=True)


def naive_script(port: int, n: int) -> float:
    """What a quick script does: render, build with the email package, connect, send."""
    started = time.perf_counter()
    for d in drafts(n, "script"):
        values = {"name": d.name, "cycle_name": CONTEXT["cycle_name"], "url":
                  CONTEXT["document_url"], "document": CONTEXT["document"],
                  "deadline": "20 Dec 2024, 24:00 CET"}
        message = EmailMessage()
        message["From"], message["To"] = SENDER, f"{d.name} <{d.email}>"
        message["Subject"] = f"WTPF-26: Second Draft posted for comments ({CONTEXT['document']})"
        message.set_content(SCRIPT_TEXT.render(values))
        message.add_alternative(SCRIPT_HTML.render(values), subtype="html")
        with smtplib.SMTP("127.0.0.1", port) as client:
            client.send_message(message)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3,
                        help="engine and bare alternate this many times; the best of each "
                             "counts (the machine is shared: alternating spreads the noise)")
    args = parser.parse_args()
    n, c = args.messages, args.concurrency
    sink, port = start_sink()
    engine_s: list[float] = []
    bare_s: list[float] = []
    try:
        messages = payloads(n)
        for _ in range(args.rounds):
            with tempfile.TemporaryDirectory() as folder:
                seconds, note = asyncio.run(engine(port, n, c, Path(folder)))
            engine_s.append(seconds)
            bare_s.append(asyncio.run(bare(port, messages, c)))
        script_s = naive_script(port, n)
        naive_s = naive(port, messages)
    finally:
        sink.terminate()
        out, _ = sink.communicate(timeout=10)
    rate = {"engine": n / min(engine_s), "bare": n / min(bare_s), "script": n / script_s,
            "naive": n / naive_s}

    def rounds(seconds: list[float]) -> str:
        return ", ".join(f"{n / x:.0f}" for x in seconds)

    print(f"{n} messages, concurrency {c}, sink: aiosmtpd in its own process "
          f"({out.strip().splitlines()[-1]}); best of {args.rounds} rounds")
    print(f"  engine outbox (render + record + send, SqlStore/SQLite): "
          f"{rate['engine']:6.0f} msg/s  [{rounds(engine_s)}]  {note}")
    print(f"  bare aiosmtplib, {c} connections, pre-rendered bytes:     "
          f"{rate['bare']:6.0f} msg/s  [{rounds(bare_s)}]")
    print(f"  naive script: jinja2 + email + smtplib, 1 conn/message:   "
          f"{rate['script']:6.0f} msg/s")
    print(f"  naive smtplib, 1 conn/message, pre-rendered bytes:        "
          f"{rate['naive']:6.0f} msg/s")
    for label, other, target in (("bare", "bare", 0.7), ("naive script", "script", 2.5),
                                 ("naive bytes", "naive", 2.5)):
        ratio = rate["engine"] / rate[other]
        verdict = "ok" if ratio >= target else "MISSED"
        print(f"  engine / {label:<12} = {ratio:5.2f}  (target ≥ {target:.2f}) {verdict}")


if __name__ == "__main__":
    main()
