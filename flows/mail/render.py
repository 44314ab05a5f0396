"""Turning an outbox row into the email that goes out: payload, templates, headers, the .ics.

Templates live in ``templates/mail/<event>/<lang>.{subject,txt,html}.j2`` (data only). A
language without its own template falls back to English. They render in jinja2's
SandboxedEnvironment (an edited template cannot reach Python internals: attribute access like
``''.__class__`` raises SecurityError) with StrictUndefined (a missing value is an error, never
an empty string in a mail to 300 experts); the HTML part is autoescaped.

The row's context is the event's payload (``states.messages``, one model per event): it is
validated back into that model here, and the templates see the model's fields plus what is
derived for display (never stored): ``recipient_name``, ``zone_label`` ("Geneva"),
``<key>_text`` (in the process's zone) and ``<key>_yours`` (in the recipient's zone, or None)
for each instant in INSTANT_KEYS, ``forum_opens_text``, and for meetings ``when_text``,
``mode_text`` and ``moved_text`` (an update's old → new days, None when the row lacks
them). Events in SKIPPED have no mail by design (the spec marks them ``?``).

Header injection: names and subjects are reduced to one line (every run of whitespace, CR/LF
included, becomes one space) before they reach a header, so "Eve\\r\\nBcc: x@evil" is a
harmless display name; an *address* with CR/LF or spaces is refused (RenderError, which the
deliverer records as a permanent failure).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from datetime import UTC, date, datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, parseaddr
from functools import cached_property
from pathlib import Path
from typing import Protocol

from jinja2 import FileSystemLoader, StrictUndefined, TemplateError, select_autoescape
from jinja2.sandbox import SandboxedEnvironment
from pydantic import ValidationError

from flows.addresses import text_problem, valid_email
from flows.mail import invitation as ics_invite
from flows.mail.fastmime import Calendar, Parts, build_fast
from flows.mail.wording import (
    RenderError,
    day_text,
    days_list_text,
    days_text,
    instant_text,
    known_zone,
    mode_text,
    moved_text,
    one_line,
    span_text,
    when_text,
    where_changed_text,
    zone_label,
)
from states.messages import CALENDAR, MODELS, SKIPPED, Message, parse_message

__all__ = ["EVENTS", "SKIPPED", "RenderError", "Renderable", "Renderer", "message_id",
           "recipient_address"]

TEMPLATES = Path(__file__).resolve().parents[2] / "templates" / "mail"
FALLBACK_LANGUAGE = "en"
INSTANT_KEYS = ("deadline", "due", "nominations_deadline")
#: The events that have mail (each with its payload model in states.messages).
EVENTS = frozenset(MODELS)


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
    def context(self) -> Mapping[str, object]: ...
    @property
    def created_at(self) -> datetime: ...


def message_id(key: str, domain: str) -> str:
    """A Message-ID derived from the idempotency key: the same key always gives the same id,
    so a receiver (or a person) can recognise a message that reached them twice."""
    digest = hashlib.sha256(key.encode()).hexdigest()[:40]
    return f"<{digest}@{domain}>"


def recipient_address(name: str, email: str) -> Address:
    """'Name <email>' safely: the name is folded to one line, the address must be clean."""
    if not email or any(c.isspace() for c in email) or email.count("@") != 1:
        raise RenderError("recipient address is not a single address like name@itu.int")
    local, domain = email.split("@")
    if local.isascii() and not domain.isascii():
        domain = _a_label(domain)  # exämple.org as xn--exmple-cua.org: no SMTPUTF8 needed
    shown = one_line(name)
    problem = text_problem(shown, limit=len(shown))  # an old row may hold what import refuses
    if problem:
        raise RenderError(f"recipient name {problem}")
    try:
        return Address(display_name=shown, username=local, domain=domain)
    except (ValueError, IndexError) as exc:
        raise RenderError(f"recipient address refused by the email package: {exc}") from exc


def _a_label(domain: str) -> str:
    """An internationalised domain in its ASCII form (IDNA 2008, as email-validator writes
    it); unchanged if it has none (the send then needs SMTPUTF8, or says why not)."""
    from email_validator import EmailNotValidError, validate_email

    try:
        ascii_domain = validate_email(f"a@{domain}", check_deliverability=False).ascii_domain
    except EmailNotValidError:
        return domain
    return str(ascii_domain or domain)


def payload(item: Renderable) -> Message:
    """The row's context as its event's model; RenderError names what is missing or wrong."""
    if item.event not in MODELS:
        known = ", ".join(sorted(MODELS))
        raise RenderError(f"no template for event {item.event!r}; events with mail: {known}")
    try:
        return parse_message(item.event, item.context)
    except ValidationError as exc:
        missing = [str(e["loc"][-1]) for e in exc.errors() if e["type"] == "missing"]
        wrong = [f"{'.'.join(str(p) for p in e['loc'][1:])}: {e['msg']}"
                 for e in exc.errors() if e["type"] != "missing"]
        said = ([f"context lacks {', '.join(missing)}"] if missing else []) + wrong
        raise RenderError(f"{item.event} for {item.key}: {'; '.join(said)}") from None


class Renderer:
    """Renders outbox rows; one per sender, reused (templates are compiled once)."""

    def __init__(self, sender: str, templates: Path = TEMPLATES) -> None:
        display, addr = parseaddr(sender)
        try:
            valid_email(addr)
        except ValueError as exc:
            raise RenderError(f"sender {sender!r} is not an address like "
                              f"'WTPF Secretariat <wtpf@itu.int>': {exc}") from None
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
        self.env.filters["days"] = days_text  # '{{ n | days(lang) }}': '1 day', '3 jours'

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

    def view(self, item: Renderable, definition_timezone: str,
             language: str) -> dict[str, object]:
        """The template variables: the payload's fields and derived display texts."""
        message = payload(item)
        view: dict[str, object] = message.model_dump()
        zone = known_zone(message.timezone or definition_timezone)
        if zone is None:
            raise RenderError(f"unknown process time zone {definition_timezone!r}")
        theirs = known_zone(item.timezone)
        if theirs is not None and theirs.key == zone.key:
            theirs = None  # no point in saying the same time twice
        view.update(recipient_name=one_line(item.name), zone_label=zone_label(zone),
                    process_zone=zone.key, recipient_zone=theirs.key if theirs else None,
                    lang=language)
        # Read from the dump, not the model: a field another event lacks is a dict miss here,
        # but an AttributeError raised and caught inside pydantic there (a third of the view).
        for key in INSTANT_KEYS:
            value = view.get(key)
            moment = value if isinstance(value, datetime) else None
            view[f"{key}_text"] = instant_text(moment, zone, language) if moment else None
            view[f"{key}_yours"] = (instant_text(moment, theirs, language)
                                    if moment and theirs else None)
        opens = view.get("forum_opens")
        view["forum_opens_text"] = day_text(opens, language) if isinstance(opens, date) else None
        if item.event in CALENDAR:
            view["when_text"] = when_text(str(view["start"]), _text(view["end"]), zone, language)
            view["mode_text"] = mode_text(str(view["mode"]), language)
            before = view.get("previous_start")  # an update's old days (None in older rows)
            view["moved_text"] = moved_text(
                (str(before), _text(view.get("previous_end"))),
                (str(view["start"]), _text(view["end"])), zone, language) if before else None
            _meeting_view(view, zone_label(zone), language)
        if item.event == "forum_updated":
            for key in ("mode", "previous_mode"):
                how = view.get(key)
                view[f"{key}_text"] = mode_text(str(how), language) if how else None
        return view

    def render(self, item: Renderable, definition_timezone: str,
               now: datetime | None = None) -> EmailMessage:
        """The multipart/alternative message for one row (with its .ics for meeting events)."""
        return build_fast(self.parts(item, definition_timezone, now))

    def parts(self, item: Renderable, definition_timezone: str,
              now: datetime | None = None) -> Parts:
        """What the row's message is made of: headers, both bodies, the calendar if any."""
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
        headers = [("From", self.sender_text), ("Subject", subject),
                   ("Date", format_datetime((now or item.created_at).astimezone(UTC))),
                   ("Message-ID", message_id(item.key, self.domain)),
                   ("X-Prepflow-Key", one_line(item.key)), ("X-Prepflow-Event", item.event)]
        contact = view.get("contact")
        if contact:
            headers.append(("Reply-To", str(recipient_address("", str(contact)))))
        return Parts(headers, recipient_address(item.name, item.email), text, html, language,
                     self._calendar(item, view, text, now))

    def _calendar(self, item: Renderable, view: Mapping[str, object], text: str,
                  now: datetime | None) -> Calendar | None:
        method = CALENDAR.get(item.event)
        if method is None:
            return None
        ics = ics_invite.invitation(
            process_id=item.process_id, meeting_id=str(view["meeting"]),
            summary=f"{view['forum']}: {view['meeting_name']}",
            start=str(view["start"]), end=_text(view["end"]), place=_text(view["place"]),
            description=text, sequence=int(str(view["sequence"])), method=method,
            organizer=(self.sender.display_name, self.sender.addr_spec),
            attendee=(one_line(item.name), item.email), zone=str(view["process_zone"]),
            stamp=now or item.created_at, days=_days(view.get("days")),
            mode=_text(view.get("mode")), join_url=_text(view.get("join_url")))
        return Calendar(ics, method)


def _meeting_view(view: dict[str, object], zone: str, language: str) -> None:
    """A meeting on non-contiguous days names each day; an update says a new mode and place
    (old → new); the moved text is dropped when only the mode or place changed."""
    days = _days(view.get("days"))
    if days:
        view["when_text"] = f"{days_list_text(days, language)} ({zone})"
    view["changed_text"] = where_changed_text(
        (_text(view.get("previous_mode")), _text(view.get("previous_place"))),
        (_text(view.get("mode")), _text(view.get("place"))), language)
    same_span = (view.get("previous_start"), view.get("previous_end")) == (
        view.get("start"), view.get("end"))
    if same_span and _days(view.get("previous_days")) == days:
        view["moved_text"] = None
    view["sessions_text"] = [_session_text(s, language) for s in _sessions(view)]


def _sessions(view: Mapping[str, object]) -> list[Mapping[str, object]]:
    sessions = view.get("sessions")
    return [s for s in sessions if isinstance(s, Mapping)] if isinstance(
        sessions, list | tuple) else []


def _session_text(session: Mapping[str, object], language: str) -> str:
    """'4th IEG meeting: 9 Feb 2026 – 10 Feb 2026, in person, Geneva'."""
    days = _days(session.get("days"))
    when = days_list_text(days, language) if days else span_text(
        str(session["start"]), _text(session.get("end")), language)
    place = _text(session.get("place"))
    informal = {"fr": " (session informelle)"}.get(language, " (informal session)")
    return (f"{session['meeting_name']}: {when}, {mode_text(str(session.get('mode')), language)}"
            f"{f', {place}' if place else ''}{informal if session.get('informal') else ''}")


def _days(value: object) -> tuple[str, ...] | None:
    if not isinstance(value, list | tuple) or not value:
        return None
    return tuple(str(v) for v in value)


def _text(value: object) -> str | None:
    return None if value is None else str(value)
