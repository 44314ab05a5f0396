"""Turning an outbox row into the email that goes out: templates, headers, the .ics.

Templates live in ``templates/mail/<event>/<lang>.{subject,txt,html}.j2`` (data only). A
language without its own template falls back to English. They render in jinja2's
SandboxedEnvironment (an edited template cannot reach Python internals: attribute access like
``''.__class__`` raises SecurityError) with StrictUndefined (a missing value is an error, never
an empty string in a mail to 300 experts); the HTML part is autoescaped.

Context keys (``OutboxItem.context``, produced by the lead from core effects; JSON only)
------------------------------------------------------------------------------------------
Every event: ``process_id``, ``process_name`` (definition name), ``forum`` (e.g. "WTPF-26");
optional ``timezone`` (the definition's zone, when the caller has it; otherwise the
``definition_timezone`` argument), ``contact`` (secretariat address, becomes Reply-To).
Instants are ISO 8601 strings with an offset (UTC), days are "YYYY-MM-DD", meeting start/end
are plan dates in the process's zone: "YYYY-MM-DD" or "YYYY-MM-DD HH:MM".

- nomination_acknowledged: nominated_by, entity; opt. late (bool), nominations_deadline (instant)
- draft_posted: cycle, cycle_name, document; opt. document_url, deadline (instant),
  public_consultation (bool)
- comment_reminder: cycle, cycle_name, document, deadline (instant), days_before (int);
  opt. document_url
- comments_closed: cycle, cycle_name, deadline (instant); opt. document, next_step (text)
- consultation_opened: cycle, cycle_name, document, deadline (instant); opt. document_url
- consultation_closed: cycle, cycle_name, deadline (instant)
- meeting_invitation / meeting_updated / meeting_cancelled: cycle, cycle_name, meeting (id),
  meeting_name, start, sequence (int, +1 on every change); opt. end, place, mode
  ("in-person" | "virtual" | "hybrid"), changes (text, updates), reason (text, cancellations)
- final_posted: cycle, cycle_name, document; opt. document_url, forum_opens (day)
- forum_reminder: forum_opens (day), days_before (int); opt. place
- step_overdue (secretariat): step (label), step_key, due (instant), overdue_days (number);
  opt. action (the command that does it)
- rule_at_risk (secretariat): rule, status ("FAIL" | "RISK"), message; opt. slack_days
- delivery_failures (secretariat): failed (int), uncertain (int), items (list of
  {id, event, recipient (masked address), error}); opt. command

Derived for the templates (never stored): ``recipient_name``, ``zone_label`` ("Geneva"),
``<key>_text`` (in the process's zone) and ``<key>_yours`` (in the recipient's zone, or None)
for each instant in INSTANT_KEYS, ``forum_opens_text``, and for meetings ``when_text``
and ``mode_text``. Events in SKIPPED have no mail by design (the spec marks them ``?``).

Header injection: names and subjects are reduced to one line (every run of whitespace,
CR/LF included, becomes one space) before they reach a header, so "Eve\\r\\nBcc: x@evil" is a
harmless display name; an *address* with CR/LF or spaces is refused (RenderError, which the
deliverer records as a permanent failure).
"""

from __future__ import annotations

import binascii
import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from email.headerregistry import Address, Group, HeaderRegistry
from email.message import EmailMessage, MIMEPart
from email.policy import SMTP, EmailPolicy
from email.utils import format_datetime, parseaddr
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Any, Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from jinja2 import FileSystemLoader, StrictUndefined, TemplateError, select_autoescape
from jinja2.sandbox import SandboxedEnvironment

from flows.mail import invitation as ics_invite
from states.dates import PlanDate

TEMPLATES = Path(__file__).resolve().parents[2] / "templates" / "mail"
FALLBACK_LANGUAGE = "en"
#: Events the spec marks "no mail needed"; rows for them should not be enqueued.
SKIPPED = frozenset({"meeting_started", "meeting_ended", "forum_opened"})
INSTANT_KEYS = ("deadline", "due", "nominations_deadline")
_MEETING = ("cycle", "cycle_name", "meeting", "meeting_name", "start", "sequence")
_MEETING_OPT = {"end": None, "place": None, "mode": "in-person", "changes": None, "reason": None}


@dataclass(frozen=True)
class EventSpec:
    """What one event's templates need, what they may use, and its calendar method."""

    required: tuple[str, ...]
    optional: Mapping[str, Any] = field(default_factory=dict)
    calendar: str | None = None  # iTIP method of the attached .ics


EVENTS: dict[str, EventSpec] = {
    "nomination_acknowledged": EventSpec(
        ("nominated_by", "entity"), {"late": False, "nominations_deadline": None}),
    "draft_posted": EventSpec(
        ("cycle", "cycle_name", "document"),
        {"document_url": None, "deadline": None, "public_consultation": False}),
    "comment_reminder": EventSpec(
        ("cycle", "cycle_name", "document", "deadline", "days_before"), {"document_url": None}),
    "comments_closed": EventSpec(
        ("cycle", "cycle_name", "deadline"), {"document": None, "next_step": None}),
    "consultation_opened": EventSpec(
        ("cycle", "cycle_name", "document", "deadline"), {"document_url": None}),
    "consultation_closed": EventSpec(("cycle", "cycle_name", "deadline")),
    "meeting_invitation": EventSpec(_MEETING, _MEETING_OPT, "REQUEST"),
    "meeting_updated": EventSpec(_MEETING, _MEETING_OPT, "REQUEST"),
    "meeting_cancelled": EventSpec(_MEETING, _MEETING_OPT, "CANCEL"),
    "final_posted": EventSpec(
        ("cycle", "cycle_name", "document"), {"document_url": None, "forum_opens": None}),
    "forum_reminder": EventSpec(("forum_opens", "days_before"), {"place": None}),
    "step_overdue": EventSpec(("step", "step_key", "due", "overdue_days"), {"action": None}),
    "rule_at_risk": EventSpec(("rule", "status", "message"), {"slack_days": None}),
    "delivery_failures": EventSpec(
        ("failed", "uncertain", "items"), {"command": "prepflow outbox --status failed"}),
}
_COMMON = ("process_id", "process_name", "forum")
_COMMON_OPT = {"contact": None, "timezone": None}

_MONTHS = {
    "en": ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"],
    "fr": ["janv.", "févr.", "mars", "avr.", "mai", "juin", "juil.", "août", "sept.", "oct.",
           "nov.", "déc."],
}
_MODES = {
    "en": {"in-person": "in person", "virtual": "virtual (online)",
           "hybrid": "hybrid (in person and online)"},
    "fr": {"in-person": "en présentiel", "virtual": "virtuelle (en ligne)",
           "hybrid": "hybride (en présentiel et en ligne)"},
}
_SPACES = re.compile(r"\s+")


class _Registry(HeaderRegistry):
    """The stdlib registry builds a new class on every lookup; once per header name is enough."""

    @lru_cache(maxsize=128)  # noqa: B019 - one registry for the whole process
    def __getitem__(self, name: str) -> type:
        return super().__getitem__(name)


class _Policy(EmailPolicy):
    """email.policy.SMTP, with the parsing and folding of repeated header values memoised.

    A fan-out repeats most headers (From, Subject, Date, MIME-Version, the parts'
    Content-Type…) for hundreds of messages, and the email package re-parses and re-folds
    each one: about half the cost of a message. The results depend only on the policy, the
    name and the text, so they are cached; the checks (CR/LF refused in a value) still run
    the first time a text is seen, and every time for values that are not plain strings.
    """

    def header_store_parse(self, name: str, value: Any) -> Any:
        if type(value) is str:
            return _parsed(self, name, value)
        return super().header_store_parse(name, value)

    def header_fetch_parse(self, name: str, value: Any) -> Any:
        # Headers stored in source form (see _put) are parsed when read; the generator reads
        # every part's Content-Type, the deliverer reads From and To.
        # Keyed by the header factory, not the policy: the generator flattens each part with
        # a clone of the policy, and the parse depends only on the factory and the text.
        if type(value) is str:
            key = (self.header_factory, name, value)
            header = _FETCHED.get(key)
            if header is None:
                header = super().header_fetch_parse(name, value)
                if len(_FETCHED) >= 4096:
                    _FETCHED.clear()  # per-recipient values (To) must not pile up
                _FETCHED[key] = header
            return header
        return super().header_fetch_parse(name, value)

    def fold_binary(self, name: str, value: Any) -> bytes:
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
def _parsed(policy: EmailPolicy, name: str, value: str) -> Any:
    return EmailPolicy.header_store_parse(policy, name, value)


_FOLDED: dict[tuple[EmailPolicy, str, str], bytes] = {}
_FETCHED: dict[tuple[Any, str, str], Any] = {}
#: email.policy.SMTP (CRLF line ends, RFC 5322 headers), made faster; see _Policy.
_REGISTRY = _Registry()
POLICY = _Policy(linesep=SMTP.linesep, header_factory=_REGISTRY)


class RenderError(ValueError):
    """The row cannot become a mail (missing context, bad address, broken template)."""


class Renderable(Protocol):
    """The parts of an OutboxDraft / OutboxItem that rendering reads."""

    @property
    def key(self) -> str: ...
    @property
    def process_id(self) -> str: ...
    @property
    def event(self) -> str: ...
    @property
    def email(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def language(self) -> str: ...
    @property
    def timezone(self) -> str | None: ...
    @property
    def context(self) -> Mapping[str, Any]: ...
    @property
    def created_at(self) -> datetime: ...


def one_line(text: str) -> str:
    """Any whitespace run (CR and LF included) as one space: safe for a header."""
    return _SPACES.sub(" ", str(text)).strip()


def document_link(url_template: str | None, document: str | None) -> str | None:
    """The definition's notifications.document_url with {document} filled in (or None)."""
    if not url_template or not document:
        return None
    return url_template.replace("{document}", document)


def message_id(key: str, domain: str) -> str:
    """A Message-ID derived from the idempotency key: the same key always gives the same id,
    so a receiver (or a person) can recognise a message that reached them twice."""
    digest = hashlib.sha256(key.encode()).hexdigest()[:40]
    return f"<{digest}@{domain}>"


def _zone(name: str | None) -> ZoneInfo | None:
    if not name:
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None


def zone_label(zone: ZoneInfo) -> str:
    """'Geneva' for ITU's zone (Europe/Zurich is the IANA name for Geneva), else the city."""
    if zone.key == "Europe/Zurich":
        return "Geneva"
    return zone.key.rsplit("/", 1)[-1].replace("_", " ")


def _abbrev(local: datetime) -> str:
    name = local.tzname() or ""
    return f"UTC{name}" if name[:1] in "+-" else name  # '+03' says less than 'UTC+03'


def day_text(day: str | date, language: str) -> str:
    """'20 Dec 2024' (English), '20 déc. 2024' (French)."""
    value: date = day if isinstance(day, date) else PlanDate.parse(day).first_day()
    months = _MONTHS.get(language, _MONTHS["en"])
    return f"{value.day} {months[value.month - 1]} {value.year}"


def instant_text(instant: str | datetime, zone: ZoneInfo, language: str) -> str:
    """'20 Dec 2024, 24:00 CET': midnight reads as the end of the day before (a deadline
    "by 20 December" ends at 24:00 on the 20th, which is 00:00 on the 21st)."""
    moment = datetime.fromisoformat(instant) if isinstance(instant, str) else instant
    if moment.tzinfo is None:
        raise RenderError(f"instant {instant!r} has no offset; give it in UTC, e.g. ...+00:00")
    local = moment.astimezone(zone)
    clock = local.strftime("%H:%M")
    if local.time() == time(0):
        local, clock = local - timedelta(days=1), "24:00"
    return f"{day_text(local.date(), language)}, {clock} {_abbrev(local)}"


class Renderer:
    """Renders outbox rows; one per sender, reused (templates are compiled once)."""

    def __init__(self, sender: str, templates: Path = TEMPLATES) -> None:
        display, addr = parseaddr(sender)
        if not addr or "@" not in addr:
            raise RenderError(f"sender {sender!r} is not an address like "
                              "'WTPF Secretariat <wtpf@itu.int>'")
        self.sender = Address(display_name=one_line(display), addr_spec=addr)
        self.sender_text = str(self.sender)
        self.domain = addr.rsplit("@", 1)[1]
        self.templates = templates
        self.env = SandboxedEnvironment(
            loader=FileSystemLoader(str(templates)),
            undefined=StrictUndefined,
            autoescape=select_autoescape(enabled_extensions=("html.j2",),
                                         default_for_string=False, default=False),
            keep_trailing_newline=True,
            auto_reload=False,  # templates are data shipped with the code: no stat() per mail
            trim_blocks=True,
            lstrip_blocks=True,
        )

    @cached_property
    def available(self) -> frozenset[str]:
        """'<event>/<lang>' pairs that have all three templates."""
        names = set(self.env.list_templates())
        pairs = {n.rsplit(".", 2)[0] for n in names if n.endswith(".txt.j2")}
        return frozenset(p for p in pairs
                         if {f"{p}.subject.j2", f"{p}.html.j2"} <= names)

    def language_for(self, event: str, language: str) -> str:
        """The recipient's language if this event has it, else English."""
        return language if f"{event}/{language}" in self.available else FALLBACK_LANGUAGE

    def view(self, item: Renderable, definition_timezone: str, language: str) -> dict[str, Any]:
        """The template variables: the row's context, defaults, and derived display texts."""
        spec = EVENTS.get(item.event)
        if spec is None:
            known = ", ".join(sorted(EVENTS))
            raise RenderError(f"no template for event {item.event!r}; events with mail: {known}")
        context = dict(item.context)
        missing = [k for k in (*_COMMON, *spec.required) if k not in context]
        if missing:
            raise RenderError(f"{item.event} for {item.key}: context lacks {', '.join(missing)}")
        view: dict[str, Any] = {**_COMMON_OPT, **spec.optional, **context}
        zone = _zone(context.get("timezone") or definition_timezone)
        if zone is None:
            raise RenderError(f"unknown process time zone {definition_timezone!r}")
        theirs = _zone(item.timezone)
        if theirs is not None and theirs.key == zone.key:
            theirs = None  # no point in saying the same time twice
        view.update(recipient_name=one_line(item.name), zone_label=zone_label(zone),
                    process_zone=zone.key, recipient_zone=theirs.key if theirs else None,
                    lang=language)
        for key in INSTANT_KEYS:
            value = view.get(key)
            view[f"{key}_text"] = instant_text(value, zone, language) if value else None
            view[f"{key}_yours"] = (instant_text(value, theirs, language)
                                    if value and theirs else None)
        if view.get("forum_opens"):
            view["forum_opens_text"] = day_text(view["forum_opens"], language)
        else:
            view["forum_opens_text"] = None
        if spec.calendar:
            view["when_text"] = self._when(view, zone, language)
            modes = _MODES.get(language, _MODES["en"])
            view["mode_text"] = modes.get(str(view["mode"]), str(view["mode"]))
        return view

    @staticmethod
    def _when(view: Mapping[str, Any], zone: ZoneInfo, language: str) -> str:
        start, end = PlanDate.parse(view["start"]), PlanDate.parse(view["end"] or view["start"])
        first, last = day_text(start.first_day(), language), day_text(end.last_day(), language)
        days = first if first == last else f"{first} – {last}"
        if start.at is not None:
            days += f", {start.at:%H:%M}"
            if end.at is not None:
                days += f"–{end.at:%H:%M}"
        return f"{days} ({zone_label(zone)})"

    def render(self, item: Renderable, definition_timezone: str,
               now: datetime | None = None) -> EmailMessage:
        """The multipart/alternative message for one row (with its .ics for meeting events)."""
        language = self.language_for(item.event, item.language)
        view = self.view(item, definition_timezone, language)
        base = f"{item.event}/{language}"
        try:
            subject = one_line(self.env.get_template(f"{base}.subject.j2").render(view))
            text = self.env.get_template(f"{base}.txt.j2").render(view)
            html = self.env.get_template(f"{base}.html.j2").render(view)
        except TemplateError as exc:  # SecurityError and UndefinedError included
            raise RenderError(f"template {base} failed for {item.key}: "
                              f"{type(exc).__name__}: {exc}") from exc
        message = EmailMessage(policy=POLICY)
        _put(message, "From", self.sender_text)
        message["To"] = _to_header(recipient_address(item.name, item.email))
        _put(message, "Subject", subject)
        _put(message, "Date", format_datetime((now or item.created_at).astimezone(UTC)))
        _put(message, "Message-ID", message_id(item.key, self.domain))
        _put(message, "X-Prepflow-Key", one_line(item.key))
        _put(message, "X-Prepflow-Event", item.event)
        contact = view.get("contact")
        if contact:
            _put(message, "Reply-To", str(recipient_address("", str(contact))))
        message.set_raw("MIME-Version", "1.0")
        # "=_" never occurs in quoted-printable or base64 text, so a fixed boundary cannot
        # collide with a part's content (RFC 2045 §6.7); fixed, the generator skips its
        # per-message regex search for a free one.
        alternative = [_text_part("plain", text), _text_part("html", html)]
        spec = EVENTS[item.event]
        if not spec.calendar:
            _multipart(message, "alternative", "=_prepflow_0", alternative)
        else:
            ics = ics_invite.invitation(
                process_id=item.process_id, meeting_id=str(view["meeting"]),
                summary=f"{view['forum']}: {view['meeting_name']}",
                start=str(view["start"]), end=view["end"], place=view["place"],
                description=text, sequence=int(view["sequence"]), method=spec.calendar,
                organizer=(self.sender.display_name, self.sender.addr_spec),
                attendee=(one_line(item.name), item.email), zone=view["process_zone"],
                stamp=now or item.created_at)
            # As calendar servers send it: an alternative that clients act on, and the same
            # data as a file people can open.
            calendar = MIMEPart(policy=POLICY)
            calendar.set_content(ics, maintype="text", subtype="calendar",
                                 params={"method": spec.calendar})
            attachment = MIMEPart(policy=POLICY)
            attachment.set_content(ics, maintype="application", subtype="ics",
                                   disposition="attachment", filename="invite.ics")
            body = _multipart(MIMEPart(policy=POLICY), "alternative", "=_prepflow_1",
                              [*alternative, calendar])
            _multipart(message, "mixed", "=_prepflow_0", [body, attachment])
        _put(message, "Content-Language", language)
        return message


def _put(message: MIMEPart, name: str, value: str) -> None:
    """Set a header, skipping the email package's parse-and-refold when it would change nothing.

    A short value of printable ASCII (no CR/LF or other control, no "=?" that could read as an
    RFC 2047 encoded word) is already its own folded, encoded form: it is stored as a parser
    would store it (``set_raw``) and written out as is; it is parsed, with the same header
    classes, only if someone reads it. Anything else (non-ASCII names and subjects, long
    lines) goes through ``message[name] = value``: RFC 2047 encoding, folding, and the
    email package's refusal of CR/LF. That is about half the cost of a message saved.
    """
    if _plain(name, value):
        message.set_raw(name, value)
    else:
        message[name] = value


def _plain(name: str, value: str) -> bool:
    """True if ``name: value`` is one short line of printable ASCII with nothing to encode."""
    return (len(name) + len(value) <= 76 and value.isascii() and value.isprintable()
            and "=?" not in value)


#: The registry's class for To (an address header, at most one per message).
_TO_CLASS: Any = _REGISTRY["to"]


class _ToHeader(_TO_CLASS):  # type: ignore[misc]  # the registry builds its classes at run time
    """A To header made from an Address the renderer has checked, not parsed from text.

    The email package's address parser costs ~0.2 ms a header, and every message has its
    own To (the deliverer reads it for the envelope). Built only for a plain value (see
    _plain), whose folded form is the value itself; any other fold parses as usual.
    """

    def fold(self, *, policy: Any) -> str:
        line = f"{self.name}: {self}"
        limit: int | None = policy.max_line_length
        if limit and len(line) > limit:
            folded: str = _TO_CLASS(self.name, str(self)).fold(policy=policy)
            return folded
        linesep: str = policy.linesep
        return line + linesep

    def __reduce__(self) -> tuple[Any, ...]:
        # The registry's base class is made at run time and cannot be pickled by name.
        return _parsed_to, (str(self),)


def _parsed_to(text: str) -> Any:
    return _TO_CLASS("To", text)


def _to_header(address: Address) -> Any:
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


def recipient_address(name: str, email: str) -> Address:
    """'Name <email>' safely: the name is folded to one line, the address must be clean."""
    if not email or any(c.isspace() for c in email) or email.count("@") != 1:
        raise RenderError("recipient address is not a single address like name@itu.int")
    local, domain = email.split("@")
    try:
        return Address(display_name=one_line(name), username=local, domain=domain)
    except (ValueError, IndexError) as exc:
        raise RenderError(f"recipient address refused by the email package: {exc}") from exc


_DEFAULT: list[Renderer] = []


def render(item: Renderable, definition_timezone: str,
           now: datetime | None = None) -> EmailMessage:
    """Render with the sender from the settings (PREPFLOW_SMTP_SENDER)."""
    if not _DEFAULT:
        from flows.mail.delivery import MailSettings  # here: mail_delivery imports this module

        _DEFAULT.append(Renderer(MailSettings().sender))
    return _DEFAULT[0].render(item, definition_timezone, now)
