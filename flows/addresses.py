"""Email addresses: how they are checked, stored, and shown.

Expert addresses are personal data. Everything that writes one into an artifact or an error
message masks it with ``mask_email``; log records from ``prepflow.*`` loggers are masked once,
by ``MaskingFilter`` (on every logger made by ``get_logger``), so a log call cannot leak one by
forgetting. The full address stays with the store and with the secretariat member who typed it.

One validator (``valid_email``): pydantic's ``EmailStr`` (email-validator), the checker the
ecosystem keeps up to date, rather than a hand-written pattern.

Names beside an address go into a header too: ``text_problem`` refuses a control character
(CR, LF, NUL…) in one as given *or* once its RFC 2047 encoded words are decoded — the email
package decodes ``=?utf-8?q?Eve=0D=0ABcc:...?=`` when it parses the header (issue 9) — and
absurd lengths.
"""

from __future__ import annotations

import logging
import re
import unicodedata
from email.errors import HeaderParseError
from email.header import decode_header, make_header

from pydantic import EmailStr, TypeAdapter, ValidationError

_EMAIL: TypeAdapter[str] = TypeAdapter(EmailStr)

#: An addr-spec as it appears in server replies and exception texts, bare or inside <...>:
#: a dot-atom or quoted local part, '@', a domain or [literal]. The local part is taken
#: generously (any run of characters that cannot delimit an address, so UTF-8 mailboxes too):
#: masking a little more than an address is harmless, missing part of one is not.
_ADDRESS = re.compile(
    r'(?:"(?:[^"\\\r\n]|\\.)*"|[^\s<>()\[\]\\,;:@"]+)'
    r"@(?:\[[^\]\s]*\]|[^\s<>()\[\]\\,;:@\"']*)"
)


def normalise_email(email: str) -> str:
    """The stored spelling of an address: stripped and lower-cased (unique per process)."""
    return email.strip().lower()


def mask_email(email: str) -> str:
    """``j***@itu.int``: enough for a secretariat to recognise, no more (logs, messages).

    Split at the last '@' (a quoted local part may hold one); text without '@' shows nothing.
    """
    local, at, domain = email.strip().rpartition("@")
    return f"{local[:1]}***{at}{domain}" if local else "***"


def mask_addresses(text: str) -> str:
    """``text`` with every email address in it masked: '550 5.1.1 <a***@example.br>: …'."""
    return _ADDRESS.sub(lambda m: mask_email(m.group(0)), text)


def valid_email(raw: str) -> str:
    """The address, checked by email-validator (via pydantic's EmailStr), else ValueError.

    The error masks the address (it may reach a log or a terminal) and keeps the reason.
    """
    text = unicodedata.normalize("NFKC", raw).strip()
    try:
        return _EMAIL.validate_python(text)
    except ValidationError as exc:
        reason = str(exc.errors()[0].get("ctx", {}).get("reason", "not an address"))
        raise ValueError(f"'{mask_email(text)}' is not an email address like "
                         f"name@example.org ({mask_addresses(reason)})") from None


class MaskingFilter(logging.Filter):
    """Masks every address in a record's text, before any handler sees it.

    The message is rendered once with its arguments (whatever their type: an exception, an
    outbox row), masked, and stored without arguments, so no handler formats an address back in.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        """Rewrite the record in place; never drops it."""
        try:
            text = record.getMessage()
        except (TypeError, ValueError):  # a malformed call: logging reports it as usual
            return True
        record.msg, record.args = mask_addresses(text), None
        return True


_FILTER = MaskingFilter()


def mask_logger(logger: logging.Logger) -> logging.Logger:
    """``logger`` with the one MaskingFilter (idempotent): for loggers prepflow does not name,
    such as Prefect's run loggers, which send their records to the Prefect server."""
    if _FILTER not in logger.filters:
        logger.addFilter(_FILTER)
    return logger


def get_logger(name: str) -> logging.Logger:
    """A ``prepflow.*`` logger carrying the one MaskingFilter (idempotent).

    A filter on a logger sees only records logged through that logger, not its children's,
    so every prepflow logger is made here rather than by ``logging.getLogger``.
    """
    if name != "prepflow" and not name.startswith("prepflow."):
        raise ValueError(f"logger {name!r}: prepflow's loggers are named 'prepflow.<part>'")
    return mask_logger(logging.getLogger(name))


#: The longest name or entity a nomination may carry (a header, not a biography).
MAX_NAME_LENGTH = 200


def decoded(text: str) -> str:
    """The text with its RFC 2047 encoded words decoded; ValueError if one cannot be."""
    if "=?" not in text:
        return text
    try:
        return str(make_header(decode_header(text)))
    except (HeaderParseError, LookupError, UnicodeError, ValueError) as exc:
        raise ValueError(f"an RFC 2047 encoded word that cannot be decoded ({exc})") from None


def _has_control(text: str) -> bool:
    """CR, LF, NUL, TAB, any other C0/C1 control, or a Unicode line or paragraph separator
    (format characters such as the zero-width non-joiner stay: Persian names use them)."""
    return any(unicodedata.category(c) in ("Cc", "Zl", "Zp") for c in text)


def text_problem(text: str, limit: int = MAX_NAME_LENGTH) -> str | None:
    """What makes ``text`` unfit for a header, or None: a control character (CR, LF, NUL…)
    as given or once its RFC 2047 encoded words are decoded, or more than ``limit``
    characters."""
    if len(text) > limit:
        return f"is {len(text)} characters long (at most {limit})"
    if _has_control(text):
        return "contains a control character (line break, NUL or similar)"
    try:
        plain = decoded(text)
    except ValueError as exc:
        return f"contains {exc}"
    if _has_control(plain):
        return ("contains a control character (line break, NUL or similar) once its RFC 2047 "
                "encoded words are decoded")
    return None
