"""The SMTP seam: ``Mailer`` with the aiosmtplib sender (``SmtpMailer``) and its recording
double (``RecordingMailer``). Knows messages and servers, nothing of the outbox."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from email.errors import MessageError
from email.headerregistry import AddressHeader
from email.message import EmailMessage
from email.policy import EmailPolicy
from typing import Literal, Protocol, cast

import aiosmtplib
from aiosmtplib.response import SMTPResponse
from aiosmtplib.typing import Default

from flows.settings import SmtpSettings


@dataclass(frozen=True)
class SendResult:
    """What the server said: accepted (250), or refused for good (5xx) or for now.

    ``maybe_delivered``: not accepted as far as we know, but the connection was lost or timed
    out during DATA, so the server may have kept the message (RFC 1047); sent again, it may
    arrive twice (same Message-ID)."""

    accepted: bool
    permanent: bool
    reply: str
    maybe_delivered: bool = False


class Mailer(Protocol):
    """The seam: SmtpMailer sends, RecordingMailer records (tests, dry runs)."""

    async def send(self, message: EmailMessage) -> SendResult: ...


def _addresses(message: EmailMessage, name: str) -> list[str]:
    header = cast(AddressHeader | None, message[name])
    return [] if header is None else [a.addr_spec for a in header.addresses]


def envelope(message: EmailMessage) -> tuple[str, list[str], bytes]:
    """Sender, recipients and the bytes, flattened once (aiosmtplib's send_message would
    flatten with a cloned policy, which defeats the renderer's header caches).

    An internationalised address (non-ASCII, RFC 6531) is written in the headers as UTF-8
    (RFC 6532), as the server that accepts it with SMTPUTF8 expects: the email package's
    default would put RFC 2047 encoded words inside the address, which no one can reply to."""
    sender = _addresses(message, "From")[0]
    recipients = _addresses(message, "To") + _addresses(message, "Cc")
    if needs_smtputf8(sender, recipients):
        utf8 = cast(EmailPolicy, message.policy).clone(utf8=True)
        return sender, recipients, message.as_bytes(policy=utf8)
    return sender, recipients, message.as_bytes()


def needs_smtputf8(sender: str, recipients: list[str]) -> bool:
    """Whether the envelope holds an internationalised address (only SMTPUTF8 carries it)."""
    return not (sender.isascii() and all(r.isascii() for r in recipients))


#: Why a message to an internationalised address was not sent (the others still are).
NO_SMTPUTF8 = ("refused before sending: the server does not accept internationalised "
               "addresses (SMTPUTF8), and this address has non-ASCII characters; ask the mail "
               "administrator to enable SMTPUTF8, or record an ASCII address for this expert")


class RecordingMailer:
    """Test double: records what would be sent; ``respond`` may script other answers."""

    def __init__(self,
                 respond: Callable[[EmailMessage], SendResult | None] | None = None) -> None:
        self.respond = respond
        self.sent: list[EmailMessage] = []
        self.attempts = 0

    async def send(self, message: EmailMessage) -> SendResult:
        """Record the message (if the scripted answer accepts it)."""
        self.attempts += 1
        result = (self.respond(message) if self.respond else None) or SendResult(
            True, False, "250 recorded")
        if result.accepted:
            self.sent.append(message)
        return result

    def keys(self) -> list[str]:
        """The X-Prepflow-Key of every recorded message, in order."""
        return [str(m["X-Prepflow-Key"]) for m in self.sent]


class _Client(aiosmtplib.SMTP):
    """aiosmtplib's client, noting when a message's DATA began: a connection lost after that
    may have left the message with the server. Conservative: a loss between DATA and the 354
    counts too (aiosmtplib does not say which of its two reads failed)."""

    in_data = False

    async def data(self, message: str | bytes, /, *,
                   timeout: float | Literal[Default.token] | None = Default.token
                   ) -> SMTPResponse:
        self.in_data = True
        return await super().data(message, timeout=timeout)


class _LoginRefused(aiosmtplib.SMTPException):
    """The login was refused earlier in this run; not tried again until the next run."""


def _untrusted(exc: BaseException | None) -> bool:
    """Whether a certificate check failed somewhere in the chain of causes."""
    seen = 0
    while exc is not None and seen < 8:
        if isinstance(exc, ssl.SSLCertVerificationError) or "CERTIFICATE_VERIFY_FAILED" in str(
                exc):
            return True
        exc, seen = exc.__cause__ or exc.__context__, seen + 1
    return False


def _reply(code: int, text: str) -> str:
    return f"{code} {' '.join(str(text).split())}"


class SmtpMailer:
    """aiosmtplib over a pool of ``size`` persistent connections, opened on first use.

    A connection that failed in any way is closed and replaced by a fresh one on its next use;
    after a refused recipient or a 4xx/5xx on DATA aiosmtplib has already sent RSET, so the
    connection is reused if it is still up.
    """

    def __init__(self, settings: SmtpSettings, size: int | None = None) -> None:
        self.settings = settings
        self.size = size or settings.concurrency
        self._idle: asyncio.Queue[_Client | None] = asyncio.Queue()
        for _ in range(self.size):
            self._idle.put_nowait(None)
        self._password: str | None = None
        self._password_loaded = False
        self._login_refused: str | None = None
        """Set by a refused login: the rest of this run fails at once with the same reason
        (retried next run), rather than trying the password once per message — which can
        lock the account. Until one login succeeded, connections log in one at a time."""
        self._login_lock = asyncio.Lock()
        self._login_ok = False

    async def _connect(self) -> _Client:
        if not self.settings.username or self._login_ok:
            return await self._open()
        async with self._login_lock:
            if self._login_refused is not None:
                raise _LoginRefused(self._login_refused)
            try:
                client = await self._open()
            except aiosmtplib.SMTPAuthenticationError as exc:
                self._login_refused = self._problem(exc)
                raise
            self._login_ok = True
            return client

    async def _open(self) -> _Client:
        s = self.settings
        # STARTTLS (PREPFLOW_SMTP_STARTTLS) or TLS from the first byte (PREPFLOW_SMTP_USE_TLS);
        # the certificate checked against the system's CAs, or PREPFLOW_SMTP_CA_FILE's.
        client = _Client(hostname=s.host, port=s.port, timeout=s.timeout,
                         use_tls=s.use_tls, start_tls=s.starttls,
                         validate_certs=s.validate_certs,
                         cert_bundle=str(s.ca_file) if s.ca_file else None)
        try:
            await client.connect()
            if s.username:
                if not self._password_loaded:
                    self._password = await asyncio.to_thread(s.secret)
                    self._password_loaded = True
                await client.login(s.username, self._password or "")
        except BaseException:
            client.close()  # a failed handshake or login must not leave its socket open
            raise
        return client

    async def _sendmail(self, client: _Client, sender: str, recipients: list[str],
                        data: bytes) -> tuple[SendResult, bool]:
        """The server's answer, and whether the connection may be reused."""
        client.in_data = False
        utf8 = needs_smtputf8(sender, recipients)
        try:
            refused, response = await client.sendmail(
                sender, recipients, data, mail_options=["SMTPUTF8"] if utf8 else None)
        except aiosmtplib.SMTPNotSupported:  # SMTPUTF8 not offered: nothing was sent
            return SendResult(False, True, NO_SMTPUTF8), True
        except aiosmtplib.SMTPRecipientsRefused as exc:
            codes = [r.code for r in exc.recipients]
            reply = "; ".join(_reply(r.code, r.message) for r in exc.recipients)
            return SendResult(False, all(500 <= c < 600 for c in codes), reply), True
        except (aiosmtplib.SMTPAuthenticationError, aiosmtplib.SMTPConnectResponseError) as exc:
            # Our configuration or the server's state, not the recipient: retry, then fail.
            return SendResult(False, False, _reply(exc.code, exc.message)), False
        except aiosmtplib.SMTPResponseException as exc:  # SMTPDataError, SMTPSenderRefused…
            return SendResult(False, 500 <= exc.code < 600, _reply(exc.code, exc.message)), True
        except ValueError as exc:  # aiosmtplib refuses an address it cannot send safely
            return SendResult(False, True, f"address refused before sending: {exc}"), True
        if refused:  # some recipients refused, the others accepted: do not resend
            notes = "; ".join(_reply(r.code, r.message) for r in refused.values())
            return SendResult(True, False, f"250 {response} (refused: {notes})"), True
        return SendResult(True, False, f"250 {' '.join(response.split())}"), True

    async def send(self, message: EmailMessage) -> SendResult:
        """Send over an idle pooled connection (opened if needed); never raises for SMTP, nor
        for a message that cannot be flattened (refused for good, before any connection)."""
        try:
            sender, recipients, data = envelope(message)
        except (ValueError, TypeError, LookupError, IndexError, MessageError) as exc:
            return SendResult(False, True, f"not built: {type(exc).__name__}: {exc}")
        client = await self._idle.get()
        if client is not None:
            client.in_data = False  # this message's DATA has not begun
        keep = False
        try:
            if client is None or not client.is_connected:
                client = await self._connect()
            result, keep = await self._sendmail(client, sender, recipients, data)
            return result
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            # Refused or dropped connections, timeouts (SMTPServerDisconnected,
            # SMTPConnectError, SMTPTimeoutError…), failed logins: temporary by nature.
            text = self._problem(exc)
            # Lost during DATA: the server may have kept it (RFC 1047).
            maybe = isinstance(client, _Client) and client.in_data and isinstance(
                exc, (aiosmtplib.SMTPServerDisconnected, aiosmtplib.SMTPTimeoutError, OSError))
            return SendResult(False, False, text, maybe_delivered=maybe)
        finally:
            if client is not None and not (keep and client.is_connected):
                client.close()
                client = None
            self._idle.put_nowait(client)

    def _problem(self, exc: BaseException) -> str:
        """What went wrong with the connection, saying which setting fixes it when one does.
        Never the password: aiosmtplib's texts hold the server's reply, not what was sent."""
        code = getattr(exc, "code", None)
        said = _reply(code, str(getattr(exc, "message", exc))) if code else \
            f"{type(exc).__name__}: {exc}"
        if isinstance(exc, _LoginRefused):
            return exc.message
        if isinstance(exc, aiosmtplib.SMTPAuthenticationError):
            source = ("PREPFLOW_SMTP_PASSWORD" if self.settings.password is not None else
                      f"the Prefect Secret block {self.settings.password_block!r}"
                      if self.settings.password_block else "no password set")
            return (f"the SMTP server refused the login of {self.settings.username!r} "
                    f"({said}); check PREPFLOW_SMTP_USERNAME and the password ({source})")
        if "AUTH extension" in said and "not supported" in said:
            return (f"the SMTP server offers no login (AUTH) on this connection ({said}); "
                    "most servers offer it only after STARTTLS (PREPFLOW_SMTP_STARTTLS=true) "
                    "or over TLS (PREPFLOW_SMTP_USE_TLS=true)")
        if _untrusted(exc):
            return (f"the SMTP server's TLS certificate is not trusted ({said}); name the CA "
                    "that signed it in PREPFLOW_SMTP_CA_FILE (only for a test server: "
                    "PREPFLOW_SMTP_VALIDATE_CERTS=false)")
        return said

    async def aclose(self) -> None:
        """QUIT every open connection."""
        while not self._idle.empty():
            client = self._idle.get_nowait()
            if client is not None and client.is_connected:
                try:
                    await client.quit()
                except (aiosmtplib.SMTPException, OSError):
                    client.close()
        for _ in range(self.size):
            self._idle.put_nowait(None)

    async def __aenter__(self) -> SmtpMailer:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
