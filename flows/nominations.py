"""The nominations register at the edge: reading CSV, validating and normalising nominations,
flagging late ones, and queueing each nomination's acknowledgement with it, atomically.

A file with a bad line imports nothing unless asked to skip bad lines: never half an import.
"""

from __future__ import annotations

import csv
import hashlib
import io
import unicodedata
from dataclasses import dataclass, field
from datetime import datetime
from email.errors import HeaderParseError
from email.headerregistry import Address
from pathlib import Path
from typing import Any

from flows.storage import ExpertDraft, OutboxDraft, normalise_email
from states.dates import end_instant, zone
from states.definition import ProcessDefinition
from states.errors import InputError

COLUMNS = ("first_name", "last_name", "entity", "email", "nominated_by", "country", "region",
           "stakeholder_type", "gender", "language", "timezone")
REQUIRED = ("first_name", "last_name", "entity", "email", "nominated_by", "country", "region",
            "stakeholder_type")


@dataclass
class Checked:
    """Valid nominations, and the bad lines with what is wrong on each."""

    drafts: list[ExpertDraft] = field(default_factory=list)
    lines: list[int] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def clean_email(raw: str) -> str:
    """A normalised address, or ValueError: one addr-spec, no display name, no line breaks."""
    text = unicodedata.normalize("NFKC", raw).strip()
    if not text or any(c in text for c in "\r\n<>,;\"") or " " in text:
        raise ValueError(f"'{raw}' is not a single email address")
    try:
        address = Address(addr_spec=text)
    except (HeaderParseError, ValueError, IndexError) as exc:
        raise ValueError(f"'{raw}' is not an email address ({exc})") from None
    if not address.username or "." not in address.domain:
        raise ValueError(f"'{raw}' is not an email address like name@example.org")
    return normalise_email(address.addr_spec)


def check_row(definition: ProcessDefinition, row: dict[str, str], now: datetime) -> ExpertDraft:
    """One nomination, validated against the definition; ValueError lists every problem."""
    problems = [f"{name} is empty" for name in REQUIRED if not (row.get(name) or "").strip()]
    values = {k: (v or "").strip() for k, v in row.items() if k in COLUMNS}
    email = ""
    if values.get("email"):
        try:
            email = clean_email(values["email"])
        except ValueError as exc:
            problems.append(str(exc))
    settings = definition.notifications
    regions = [r.id for r in settings.regions]
    if regions and values.get("region") and values["region"] not in regions:
        problems.append(f"region '{values['region']}' is not in the {settings.region_scheme or ''}"
                        f" scheme ({', '.join(regions)})".replace("  ", " "))
    if values.get("stakeholder_type") and values["stakeholder_type"] not in \
            settings.stakeholder_types:
        problems.append(f"stakeholder_type '{values['stakeholder_type']}' is not one of "
                        f"{', '.join(settings.stakeholder_types)}")
    language = values.get("language") or "en"
    if language not in settings.languages:
        problems.append(f"language '{language}' is not offered ({', '.join(settings.languages)})")
    if values.get("timezone"):
        try:
            zone(values["timezone"])
        except ValueError as exc:
            problems.append(str(exc))
    for name, value in values.items():
        if any(c in value for c in "\r\n"):
            problems.append(f"{name} contains a line break")
    if problems:
        raise ValueError("; ".join(problems))
    deadline = definition.nominations_deadline
    late = deadline is not None and deadline.exact and \
        now >= end_instant(deadline, zone(definition.timezone))
    return ExpertDraft(email=email, first_name=values["first_name"],
                       last_name=values["last_name"], entity=values["entity"],
                       nominated_by=values["nominated_by"], country=values["country"],
                       region=values["region"], stakeholder_type=values["stakeholder_type"],
                       gender=values.get("gender") or None, language=language,
                       timezone=values.get("timezone") or None, nominated_at=now, late=late)


def read_csv(definition: ProcessDefinition, path: Path, now: datetime) -> Checked:
    """Every line checked; duplicates within the file are bad lines too (by normalised email)."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot be read as UTF-8 CSV ({exc}).") from None
    reader = csv.DictReader(io.StringIO(text))
    missing = [c for c in REQUIRED if c not in (reader.fieldnames or [])]
    if missing:
        raise InputError(f"{path}: the header lacks {', '.join(missing)}; expected columns: "
                         f"{', '.join(COLUMNS)} (gender, language, timezone optional).")
    unknown = [c for c in reader.fieldnames or [] if c not in COLUMNS]
    if unknown:
        raise InputError(f"{path}: unknown columns {', '.join(unknown)}; expected: "
                         f"{', '.join(COLUMNS)}.")
    checked, seen = Checked(), {}
    for row in reader:
        line = reader.line_num
        if None in row:
            checked.problems.append(f"line {line}: more fields than columns")
            checked.lines.append(line)
            continue
        try:
            draft = check_row(definition, row, now)
        except ValueError as exc:
            checked.problems.append(f"line {line}: {exc}")
            checked.lines.append(line)
            continue
        if draft.email in seen:
            checked.problems.append(f"line {line}: {draft.email} repeats line {seen[draft.email]}")
            checked.lines.append(line)
            continue
        seen[draft.email] = line
        checked.drafts.append(draft)
    return checked


def acknowledgements(definition: ProcessDefinition, process_id: str,
                     drafts: list[ExpertDraft], now: datetime) -> list[OutboxDraft]:
    """One 'nomination acknowledged' message per new nomination (keyed by address)."""
    deadline = definition.nominations_deadline
    rows = []
    for draft in drafts:
        context: dict[str, Any] = {
            "process_id": process_id, "process_name": definition.name,
            "forum": definition.forum.name, "timezone": definition.timezone,
            "contact": definition.secretariat[0].email, "nominated_by": draft.nominated_by,
            "entity": draft.entity, "late": draft.late}
        if deadline is not None and deadline.exact:
            context["nominations_deadline"] = end_instant(
                deadline, zone(definition.timezone)).isoformat()
        tag = hashlib.sha256(draft.email.encode()).hexdigest()[:16]  # no address in the key
        rows.append(OutboxDraft(
            key=f"{process_id}:nomination:{tag}", process_id=process_id,
            event="nomination_acknowledged", recipient=f"nominee:{tag}",
            email=draft.email, name=f"{draft.first_name} {draft.last_name}",
            language=draft.language, timezone=draft.timezone, context=context, created_at=now))
    return rows
