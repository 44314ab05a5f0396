"""The fast way to build a message: the one module that leans on the email package's header
machinery (policy hooks, the header registry, a header class with its own ``fold``).

Why: a fan-out repeats most headers (From, Subject, Date, MIME-Version, the parts'
Content-Type…) for hundreds of messages, and the email package re-parses and re-folds each
one — about half the cost of a message. Everything else in prepflow builds with the public API
(``EmailMessage``, ``email.policy.SMTP``); ``build_public`` here is that build, and
tests/flows/test_mail_render.py checks, for every template × language, that both builds parse
to the same structure, header values and decoded contents. (Not the same bytes: binascii's
quoted-printable wraps lines differently from email.quoprimime, set_content orders a part's
headers its own way and adds MIME-Version to the parts it makes; Message-ID and Date are the
same in both.)

Hand-written because no kept library builds MIME faster than the stdlib; delete this module
and call ``build_public`` if it ever costs more than it saves (bench/notify.py tells).
"""

from __future__ import annotations

import binascii
from collections.abc import Sequence
from dataclasses import dataclass
from email.headerregistry import Address, BaseHeader, Group, HeaderRegistry
from email.message import EmailMessage, MIMEPart
from email.policy import SMTP, EmailPolicy, Policy
from functools import lru_cache


@dataclass(frozen=True)
class Calendar:
    """An iTIP calendar to attach: the .ics bytes and its method (REQUEST, CANCEL)."""

    ics: bytes
    method: str


@dataclass(frozen=True)
class Parts:
    """Everything a message is made of, already checked and rendered.

    ``headers`` are (name, one-line value) in order, From first; ``to`` goes second.
    """

    headers: Sequence[tuple[str, str]]
    to: Address
    text: str
    html: str
    language: str
    calendar: Calendar | None = None


class _Registry(HeaderRegistry):
    """The stdlib registry builds a new class on every lookup; once per header name is enough."""

    @lru_cache(maxsize=128)  # noqa: B019 - one registry for the whole process, never freed
    def __getitem__(self, name: str) -> type[BaseHeader]:
        return super().__getitem__(name)


class _Policy(EmailPolicy):
    """email.policy.SMTP, with the parsing and folding of repeated header values memoised.

    The results depend only on the policy, the name and the text, so they are cached; the
    checks (CR/LF refused in a value) still run the first time a text is seen, and every time
    for values that are not plain strings.
    """

    def header_store_parse(self, name: str, value: object) -> tuple[str, str]:
        if type(value) is str:
            return _parsed(self, name, value)
        stored: tuple[str, str] = super().header_store_parse(name, value)
        return stored

    def header_fetch_parse(self, name: str, value: str) -> str:
        # Headers stored in source form (see put) are parsed when read; the generator reads
        # every part's Content-Type, the deliverer reads From and To. Keyed by the header
        # factory, not the policy: the generator flattens each part with a clone of the
        # policy, and the parse depends only on the factory and the text.
        if type(value) is str:
            key = (self.header_factory, name, value)
            header = _FETCHED.get(key)
            if header is None:
                fetched: str = super().header_fetch_parse(name, value)  # a header object
                header = fetched
                if len(_FETCHED) >= 4096:
                    _FETCHED.clear()  # per-recipient values (To) must not pile up
                _FETCHED[key] = header
            return header
        other: str = super().header_fetch_parse(name, value)
        return other

    def fold_binary(self, name: str, value: str) -> bytes:
        if hasattr(value, "name"):  # a header object made by header_store_parse
            key = (self, name, str(value))
            folded = _FOLDED.get(key)
            if folded is None:
                folded = super().fold_binary(name, value)
                if len(_FOLDED) < 4096:
                    _FOLDED[key] = folded
            return folded
        return super().fold_binary(name, value)


@lru_cache(maxsize=4096)
def _parsed(policy: EmailPolicy, name: str, value: str) -> tuple[str, str]:
    stored: tuple[str, str] = EmailPolicy.header_store_parse(policy, name, value)
    return stored


_FOLDED: dict[tuple[EmailPolicy, str, str], bytes] = {}
_FETCHED: dict[tuple[object, str, str], str] = {}
_REGISTRY = _Registry()
#: email.policy.SMTP (CRLF line ends, RFC 5322 headers), made faster; see _Policy.
POLICY = _Policy(linesep=SMTP.linesep, header_factory=_REGISTRY)


def _plain(name: str, value: str) -> bool:
    """True if ``name: value`` is one short line of printable ASCII with nothing to encode."""
    return (len(name) + len(value) <= 76 and value.isascii() and value.isprintable()
            and "=?" not in value)


def _put(message: MIMEPart, name: str, value: str) -> None:
    """Set a header, skipping the email package's parse-and-refold when it would change nothing.

    A short value of printable ASCII (no CR/LF or other control, no "=?" that could read as an
    RFC 2047 encoded word) is already its own folded, encoded form: it is stored as a parser
    would store it (``set_raw``) and written out as is; it is parsed, with the same header
    classes, only if someone reads it. Anything else goes through ``message[name] = value``:
    RFC 2047 encoding, folding, and the email package's refusal of CR/LF.
    """
    if _plain(name, value):
        message.set_raw(name, value)
    else:
        message[name] = value


#: The registry's class for To (an address header, at most one per message).
_TO_CLASS = _REGISTRY["to"]


class _ToHeader(_TO_CLASS):  # type: ignore[misc,valid-type]  # made by the registry at run time
    """A To header made from an Address the renderer has checked, not parsed from text.

    The email package's address parser costs ~0.2 ms a header, and every message has its own
    To. Built only for a plain value (see _plain), whose folded form is the value itself.
    """

    def fold(self, *, policy: Policy) -> str:
        line = f"{self.name}: {self}"
        limit = policy.max_line_length
        if limit and len(line) > limit:
            return str(_TO_CLASS(self.name, str(self)).fold(policy=policy))
        return line + policy.linesep

    def __reduce__(self) -> tuple[object, ...]:
        # The registry's base class is made at run time and cannot be pickled by name.
        return _parsed_to, (str(self),)


def _parsed_to(text: str) -> object:
    return _TO_CLASS("To", text)


def _to_header(address: Address) -> object:
    text = str(address)
    if not _plain("To", text):
        return text  # parsed, encoded (RFC 2047) and folded by the email package
    header = str.__new__(_ToHeader, text)
    header.init("To", parse_tree=None, defects=[], groups=[Group(None, [address])])
    return header


def _text_part(subtype: str, text: str) -> MIMEPart:
    """What ``set_content(text, subtype=..., cte="quoted-printable")`` makes, made directly.

    Same content: the lines as set_content splits them (CR, LF, CRLF), each ended by one LF
    (the generator writes CRLF). binascii's quoted-printable encoder is C code; its output
    decodes to the same bytes as email.quoprimime's, at a fraction of the cost.
    """
    data = b"\n".join(text.encode("utf-8").splitlines()) + b"\n"
    part = MIMEPart(policy=POLICY)
    part.set_raw("Content-Type", f'text/{subtype}; charset="utf-8"')
    part.set_raw("Content-Transfer-Encoding", "quoted-printable")
    part.set_payload(binascii.b2a_qp(data, istext=True).decode("ascii"))
    return part


def _multipart(container: MIMEPart, subtype: str, boundary: str,
               parts: list[MIMEPart]) -> MIMEPart:
    container.set_raw("Content-Type", f'multipart/{subtype}; boundary="{boundary}"')
    for part in parts:
        container.attach(part)
    return container


def build_fast(parts: Parts) -> EmailMessage:
    """The message for ``parts``, built with the memoised policy and pre-folded headers."""
    message = EmailMessage(policy=POLICY)
    (first, value), *rest = parts.headers
    _put(message, first, value)
    message["To"] = _to_header(parts.to)
    for name, value in rest:
        _put(message, name, value)
    message.set_raw("MIME-Version", "1.0")
    # "=_" never occurs in quoted-printable or base64 text, so a fixed boundary cannot collide
    # with a part's content (RFC 2045 §6.7); fixed, the generator skips its per-message regex
    # search for a free one.
    alternative = [_text_part("plain", parts.text), _text_part("html", parts.html)]
    if parts.calendar is None:
        _multipart(message, "alternative", "=_prepflow_0", alternative)
    else:
        ics, method = parts.calendar.ics, parts.calendar.method
        # As calendar servers send it: an alternative that clients act on, and the same data
        # as a file people can open.
        calendar = MIMEPart(policy=POLICY)
        calendar.set_content(ics.decode("utf-8"), subtype="calendar", charset="utf-8",
                             cte="base64", params={"method": method})
        attachment = MIMEPart(policy=POLICY)
        attachment.set_content(ics, maintype="application", subtype="ics",
                               disposition="attachment", filename="invite.ics")
        body = _multipart(MIMEPart(policy=POLICY), "alternative", "=_prepflow_1",
                          [*alternative, calendar])
        _multipart(message, "mixed", "=_prepflow_0", [body, attachment])
    _put(message, "Content-Language", parts.language)
    return message


def build_public(parts: Parts) -> EmailMessage:
    """The same message with the public API only (email.policy.SMTP): the reference."""
    message = EmailMessage(policy=SMTP)
    (first, value), *rest = parts.headers
    message[first] = value
    message["To"] = parts.to
    for name, value in rest:
        message[name] = value
    message["MIME-Version"] = "1.0"
    message.set_content(parts.text, subtype="plain", cte="quoted-printable")
    message.add_alternative(parts.html, subtype="html", cte="quoted-printable")
    if parts.calendar is None:
        message.set_boundary("=_prepflow_0")
    else:
        ics, method = parts.calendar.ics, parts.calendar.method
        # text/calendar; charset=utf-8; method=…: clients act on the method (RFC 6047), and
        # read a place like 'Genève' right only with the charset.
        message.add_alternative(ics.decode("utf-8"), subtype="calendar", charset="utf-8",
                                cte="base64", params={"method": method})
        message.set_boundary("=_prepflow_1")
        message.make_mixed()  # the alternative becomes the first part of a multipart/mixed
        message.add_attachment(ics, maintype="application", subtype="ics",
                               filename="invite.ics")
        message.set_boundary("=_prepflow_0")
    message["Content-Language"] = parts.language
    return message
