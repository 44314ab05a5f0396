"""Issue 9: a name that is an RFC 2047 encoded word carrying CR/LF is refused at import, and an
old row holding one fails alone at delivery while every other message goes out."""

from __future__ import annotations

import asyncio
import base64
from datetime import datetime
from email.message import EmailMessage
from pathlib import Path

import pytest

from flows.mail.delivery import DeliveryReport, deliver
from flows.mail.mail_transport import SmtpMailer
from flows.mail.render import Renderable, Renderer
from flows.mail.sink import SmtpServer
from flows.storage.notify_model import OutboxDraft
from flows.storage.testing import throwaway_store
from tests.flows.test_mail_delivery import (
    SENDER,
    T0,
    drafts,
    handler,
    run,
    server,
    settings,
    statuses,
)
from tests.flows.test_register import BY, KOFI, Run, csv_file, stored
from tests.flows.test_register import run as cli

__all__ = ["cli", "server"]  # fixtures, imported to be used here

Q_WORD = "=?utf-8?q?Eve=0D=0ABcc:_evil@evil.example?="
B_WORD = "=?utf-8?b?" + base64.b64encode(b"Eve\r\nBcc: evil@evil.example").decode() + "?="


@pytest.mark.parametrize("word", [Q_WORD, B_WORD])
def test_a_bad_encoded_name_fails_alone_and_the_others_are_sent(server: SmtpServer,
                                                                 word: str) -> None:
    """Good rows around the bad one arrive and are sent; the bad one fails with a reason."""
    store = throwaway_store()
    rows = drafts(7)
    rows[3] = OutboxDraft(**{**rows[3].__dict__, "name": word})  # as an old store might hold
    store.enqueue(rows)
    report = run(store, server.port, T0, concurrency=2)
    assert (report.sent, report.failed, report.uncertain) == (6, 1, 0)
    assert statuses(store) == {"sent": 6, "failed": 1}
    (failed,) = store.outbox(status="failed")
    assert failed.email == "expert3@example.org"
    assert "control character" in (failed.last_error or "")
    assert "expert3@" not in (failed.last_error or "")
    assert sorted(r.rcpt_tos[0] for r in handler(server).received) == sorted(
        f"expert{i}@example.org" for i in range(7) if i != 3)
    assert [p.id for p in report.problems] == [failed.id]


@pytest.mark.parametrize("field", ["first_name", "last_name", "entity", "nominated_by"])
@pytest.mark.parametrize("word", [Q_WORD, B_WORD, "Eve\x00", "x" * 201])
def test_import_refuses_control_characters_decoded_or_absurd_lengths(
        cli: Run, tmp_path: Path, field: str, word: str) -> None:
    """Exit 2 naming the line and field; nothing is written."""
    values = dict(zip(("first_name", "last_name", "entity", "email", "nominated_by"),
                      ("Eve", "Doe", "Evil Corp", "eve@example.org", "Fiji"), strict=True))
    values[field] = word
    line = ",".join(values.values()) + ",FJ,E,government,,en,"
    result = cli("experts", "import", csv_file(tmp_path, KOFI, line), "--by", BY)
    assert result.code == 2, result.out
    assert f"line 3: {field} " in result.err
    assert "Traceback" not in result.err
    assert stored(tmp_path)[0] == []
    assert stored(tmp_path)[1] == []


def test_experts_add_refuses_an_encoded_line_break(cli: Run, tmp_path: Path) -> None:
    """The same rule for one nomination added by hand."""
    result = cli("experts", "add", "--first-name", Q_WORD, "--last-name", "Doe", "--entity",
                 "X", "--email", "eve@example.org", "--nominated-by", "Fiji", "--country", "FJ",
                 "--region", "E", "--stakeholder-type", "government", "--by", BY)
    assert result.code == 2
    assert "first_name contains a control character" in result.err
    assert stored(tmp_path)[0] == []


class _Breaking(Renderer):
    """A renderer that fails unexpectedly on expert 2 and builds an unsendable message (no
    From) for expert 4: the failures a hand-written MIME builder might have."""

    def render(self, item: Renderable, definition_timezone: str,
               now: datetime | None = None) -> EmailMessage:
        if item.recipient == "expert:2":
            raise KeyError("boom")
        message = super().render(item, definition_timezone, now)
        if item.recipient == "expert:4":
            del message["From"]
        return message


def test_any_failure_to_build_one_message_fails_it_alone(server: SmtpServer) -> None:
    """An unexpected error while building or flattening one message fails that row; the run
    goes on and every other message is sent."""
    store = throwaway_store()
    store.enqueue(drafts(6))

    async def go() -> DeliveryReport:
        async with SmtpMailer(settings(server.port)) as mailer:
            return await deliver(store, mailer, T0, renderer=_Breaking(SENDER), concurrency=2)

    report = asyncio.run(go())
    assert (report.sent, report.failed, report.retried, report.uncertain) == (4, 2, 0, 0)
    assert statuses(store) == {"sent": 4, "failed": 2}
    errors = {i.recipient: i.last_error or "" for i in store.outbox(status="failed")}
    assert errors["expert:2"].startswith("not built: KeyError")
    assert errors["expert:4"].startswith("not built: IndexError")
    assert handler(server).count == 4
