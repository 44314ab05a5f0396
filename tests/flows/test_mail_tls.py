"""Real transports (issue 12): STARTTLS and implicit TLS with AUTH, certificate checks, and
internationalised addresses (SMTPUTF8), against aiosmtpd on 127.0.0.1 with a self-signed
certificate made for the test by openssl."""

from __future__ import annotations

import asyncio
import base64
import logging
import shutil
import ssl
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from email import message_from_string
from email.policy import default as default_policy
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from flows.addresses import valid_email
from flows.mail.delivery import DeliveryReport, deliver
from flows.mail.mail_transport import SmtpMailer
from flows.mail.render import Renderer
from flows.mail.sink import RecordingHandler, free_port
from flows.settings import SmtpSettings
from flows.storage.notify_model import OutboxDraft
from flows.storage.testing import throwaway_store

SENDER = "WTPF Secretariat <wtpf@itu.int>"
T0 = datetime(2024, 11, 4, 9, 0, tzinfo=UTC)
USER, PASSWORD = "prepflow", "s3cret-Pa55word!"
CONTEXT = {"process_id": "wtpf-26", "process_name": "WTPF-26 preparation", "forum": "WTPF-26",
           "cycle": "draft2", "cycle_name": "Second Draft", "document": "WTPF26/IEG2-1",
           "deadline": "2024-12-20T23:00:00+00:00", "timezone": "Europe/Zurich"}

pytestmark = [
    pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl makes the certificate"),
    pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS:UserWarning"),
]


@dataclass(frozen=True)
class Cert:
    cert: Path
    key: Path

    def server_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.cert, self.key)
        return context


@pytest.fixture(scope="module")
def cert(tmp_path_factory: pytest.TempPathFactory) -> Cert:
    """A self-signed certificate for 127.0.0.1 (it is its own CA)."""
    folder = tmp_path_factory.mktemp("tls")
    made = Cert(folder / "cert.pem", folder / "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-keyout", str(made.key), "-out", str(made.cert), "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
                   check=True, capture_output=True)
    return made


LOGINS: list[bool] = []


def _authenticator(server: Any, session: Any, envelope: Any, mechanism: str,
                   auth_data: Any) -> AuthResult:
    ok = isinstance(auth_data, LoginPassword) and (auth_data.login, auth_data.password) == (
        USER.encode(), PASSWORD.encode())
    LOGINS.append(ok)
    return AuthResult(success=ok, handled=False)


@pytest.fixture
def starttls(cert: Cert) -> Iterator[tuple[int, RecordingHandler]]:
    """A server that requires STARTTLS before anything, and a login after it."""
    handler, port = RecordingHandler(), free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port,
                            tls_context=cert.server_context(), require_starttls=True,
                            auth_require_tls=True, auth_required=True,
                            auth_exclude_mechanism=["LOGIN"],  # PLAIN: one try per login
                            authenticator=_authenticator, enable_SMTPUTF8=True,
                            decode_data=False)
    controller.start()
    yield port, handler
    controller.stop()


@pytest.fixture
def implicit(cert: Cert) -> Iterator[tuple[int, RecordingHandler]]:
    """A server speaking TLS from the first byte (port 465 style), requiring a login."""
    handler, port = RecordingHandler(), free_port()
    # aiosmtpd's auth_require_tls knows STARTTLS only; here the whole connection is TLS, so
    # its warning about AUTH without TLS (ignored in this module) does not apply.
    controller = Controller(handler, hostname="127.0.0.1", port=port,
                            ssl_context=cert.server_context(), auth_required=True,
                            auth_require_tls=False, authenticator=_authenticator,
                            enable_SMTPUTF8=True, decode_data=False)
    controller.start()
    yield port, handler
    controller.stop()


def drafts(*emails: str) -> list[OutboxDraft]:
    return [OutboxDraft(key=f"wtpf-26:post_draft2:expert:{i}", recipient=f"expert:{i}",
                        email=email, name=f"Expert {i}", process_id="wtpf-26",
                        event="draft_posted", language="en", timezone=None, context=CONTEXT,
                        created_at=T0) for i, email in enumerate(emails)]


def deliver_to(port: int, settings: SmtpSettings, *emails: str) -> tuple[DeliveryReport, Any]:
    """One delivery run of a draft notice to ``emails``; the report and the store."""
    store = throwaway_store()
    store.enqueue(drafts(*emails))

    async def go() -> DeliveryReport:
        mailer = SmtpMailer(settings.model_copy(update={"port": port}))
        try:
            return await deliver(store, mailer, T0, renderer=Renderer(SENDER),
                                 max_attempts=settings.max_attempts)
        finally:
            await mailer.aclose()
    return asyncio.run(go()), store


def smtp(cert: Cert | None = None, **changes: Any) -> SmtpSettings:
    base: dict[str, Any] = {"sender": SENDER, "timeout": 5, "username": USER,
                            "password": PASSWORD, "max_attempts": 1}
    if cert is not None:
        base["ca_file"] = cert.cert
    return SmtpSettings(**(base | changes))


def replies(store: Any) -> list[str]:
    """Each row's recorded reason (a failure's is its last error)."""
    return [str(item.last_error or item.reply) for item in store.outbox()]


def test_starttls_with_login_delivers(cert: Cert, starttls: tuple[int, RecordingHandler]
                                      ) -> None:
    """STARTTLS, the certificate checked against PREPFLOW_SMTP_CA_FILE, then AUTH: delivered."""
    port, handler = starttls
    report, _ = deliver_to(port, smtp(cert, starttls=True), "a@example.org", "b@example.org")
    assert (report.sent, report.failed) == (2, 0)
    assert sorted(r.rcpt_tos[0] for r in handler.received) == ["a@example.org", "b@example.org"]


def test_implicit_tls_with_login_delivers(cert: Cert, implicit: tuple[int, RecordingHandler]
                                          ) -> None:
    """TLS from the first byte (PREPFLOW_SMTP_USE_TLS), then AUTH: delivered."""
    port, handler = implicit
    report, _ = deliver_to(port, smtp(cert, use_tls=True), "a@example.org")
    assert (report.sent, report.failed) == (1, 0)
    assert handler.count == 1


def test_a_wrong_password_fails_with_a_clear_reason_and_is_never_logged(
        cert: Cert, starttls: tuple[int, RecordingHandler],
        caplog: pytest.LogCaptureFixture) -> None:
    """A refused login fails the messages saying which settings to check, after one try per
    run; neither the wrong password nor the right one appears in a log record or the outbox."""
    port, handler = starttls
    wrong = "wr0ng-Pa55word!"
    LOGINS.clear()
    with caplog.at_level(logging.DEBUG):
        report, store = deliver_to(port, smtp(cert, starttls=True, password=wrong),
                                   "a@example.org", "b@example.org", "c@example.org")
    assert (report.sent, report.failed) == (0, 3)
    assert handler.count == 0
    assert LOGINS == [False]  # tried once per run, not once per message (account lockout)
    reply = replies(store)[0]
    assert len(set(replies(store))) == 1
    assert "refused the login of 'prepflow'" in reply
    assert "535" in reply
    assert "PREPFLOW_SMTP_PASSWORD" in reply
    # The test server's own protocol log ("mail.log") sees what a client sends; ours must not.
    ours = "\n".join(r.getMessage() for r in caplog.records if r.name != "mail.log")
    texts = [ours, *replies(store)]
    for secret in (wrong, PASSWORD):
        encoded = base64.b64encode(f"\0{USER}\0{secret}".encode()).decode()
        assert not any(secret in t or encoded in t for t in texts)


def test_a_login_without_tls_says_to_turn_on_starttls(
        starttls: tuple[int, RecordingHandler]) -> None:
    """A server that offers AUTH only after STARTTLS: the reason names the setting to set."""
    port, _ = starttls
    report, store = deliver_to(port, smtp(), "a@example.org")
    assert report.failed == 1
    assert "PREPFLOW_SMTP_STARTTLS=true" in replies(store)[0]


def test_a_self_signed_certificate_is_refused_unless_trusted(
        cert: Cert, starttls: tuple[int, RecordingHandler]) -> None:
    """Certificates are checked by default: an unknown CA is refused, naming
    PREPFLOW_SMTP_CA_FILE; with PREPFLOW_SMTP_VALIDATE_CERTS=false the same server is used."""
    port, handler = starttls
    report, store = deliver_to(port, smtp(starttls=True), "a@example.org")
    assert (report.sent, report.failed) == (0, 1)
    assert "certificate is not trusted" in replies(store)[0]
    assert "PREPFLOW_SMTP_CA_FILE" in replies(store)[0]
    report, _ = deliver_to(port, smtp(starttls=True, validate_certs=False), "a@example.org")
    assert report.sent == 1
    assert handler.count == 1


def test_a_missing_ca_file_is_refused_when_the_settings_are_read(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """PREPFLOW_SMTP_CA_FILE must name a file: bad input at start, naming the variable."""
    from flows.settings import load_settings
    from states.errors import InputError

    monkeypatch.setenv("PREPFLOW_SMTP_CA_FILE", str(tmp_path / "nowhere.pem"))
    with pytest.raises(InputError, match="PREPFLOW_SMTP_CA_FILE"):
        load_settings()


@pytest.mark.usefixtures("prefect_server")
def test_the_password_may_come_from_a_prefect_secret_block(
        cert: Cert, implicit: tuple[int, RecordingHandler]) -> None:
    """PREPFLOW_SMTP_PASSWORD_BLOCK names a Prefect Secret block; the login uses its value."""
    from prefect.blocks.system import Secret

    Secret(value=PASSWORD).save("prepflow-smtp-password", overwrite=True)
    port, handler = implicit
    settings = smtp(cert, use_tls=True, password=None, password_block="prepflow-smtp-password")
    report, _ = deliver_to(port, settings, "a@example.org")
    assert report.sent == 1
    assert handler.count == 1


INTERNATIONAL = ("josé@example.org", "用户@例子.广告")


def test_internationalised_addresses_are_valid_for_the_register() -> None:
    """The one address validator (email-validator) accepts internationalised addresses."""
    assert [valid_email(a) for a in INTERNATIONAL] == list(INTERNATIONAL)


def test_internationalised_addresses_go_with_smtputf8(
        cert: Cert, starttls: tuple[int, RecordingHandler]) -> None:
    """A server offering SMTPUTF8 gets the address in the envelope and in To as UTF-8 (RFC
    6532), not as RFC 2047 encoded words inside the address."""
    port, handler = starttls
    report, _ = deliver_to(port, smtp(cert, starttls=True), *INTERNATIONAL)
    assert report.sent == 2
    assert sorted(r.rcpt_tos[0] for r in handler.received) == sorted(INTERNATIONAL)
    for received in handler.received:
        message = message_from_string(received.data.decode("utf-8"), policy=default_policy)
        assert message["To"].addresses[0].addr_spec == received.rcpt_tos[0]
        assert b"=?utf-8?" not in received.data.split(b"\r\n\r\n")[0].split(b"To:")[1][:80]


def test_without_smtputf8_only_internationalised_addresses_are_refused() -> None:
    """A server without SMTPUTF8: the internationalised address fails alone, with the reason;
    the ASCII ones are delivered in the same run."""
    handler, port = RecordingHandler(), free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port,
                            enable_SMTPUTF8=False, decode_data=False)
    controller.start()
    try:
        report, store = deliver_to(port, smtp(username=None, password=None),
                                   "a@example.org", "josé@example.org", "b@example.org")
    finally:
        controller.stop()
    assert (report.sent, report.failed) == (2, 1)
    assert sorted(r.rcpt_tos[0] for r in handler.received) == ["a@example.org", "b@example.org"]
    [refused] = [i for i in store.outbox() if i.status == "failed"]
    assert "does not accept internationalised addresses (SMTPUTF8)" in str(refused.last_error)


def test_an_ascii_mailbox_at_an_internationalised_domain_needs_no_smtputf8() -> None:
    """jose@exämple.org goes as jose@xn--exmple-cua.org (IDNA), also where SMTPUTF8 is not
    offered."""
    handler, port = RecordingHandler(), free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port,
                            enable_SMTPUTF8=False, decode_data=False)
    controller.start()
    try:
        report, _ = deliver_to(port, smtp(username=None, password=None), "jose@exämple.org")
    finally:
        controller.stop()
    assert report.sent == 1
    [received] = handler.received
    assert received.rcpt_tos == ["jose@xn--exmple-cua.org"]
    assert b"To: Expert 0 <jose@xn--exmple-cua.org>" in received.data


def test_doctor_trusts_the_ca_file_too(cert: Cert, starttls: tuple[int, RecordingHandler]
                                       ) -> None:
    """`prepflow doctor`'s SMTP check uses PREPFLOW_SMTP_CA_FILE as delivery does; without it
    the self-signed server is a fault naming the setting."""
    from flows.orchestration.doctor import check_smtp

    port, _ = starttls
    trusted = check_smtp(smtp(cert, starttls=True, port=port))
    assert (trusted.status, trusted.detail) == ("ok", f"127.0.0.1:{port} answers EHLO and "
                                                       "STARTTLS.")
    refused = check_smtp(smtp(starttls=True, port=port))
    assert refused.status == "fault"
    assert "PREPFLOW_SMTP_CA_FILE" in str(refused.fix)
