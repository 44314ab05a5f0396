"""The nominations register at the edge: reading CSV, validating and normalising nominations,
flagging late ones, and queueing each nomination's acknowledgement with it, atomically.

A file with a bad line imports nothing unless asked to skip bad lines: never half an import.
"""

from __future__ import annotations

import csv
import hashlib
import io
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from flows.addresses import (
    mask_addresses,
    mask_email,
    normalise_email,
    text_problem,
    valid_email,
)
from flows.storage import ExpertDraft, OutboxDraft
from states.dates import end_instant, zone
from states.definition import ProcessDefinition
from states.errors import InputError
from states.messages import NominationAcknowledged

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
    """A normalised address, or ValueError naming it masked (email-validator decides)."""
    return normalise_email(valid_email(raw))


def _choice_problems(definition: ProcessDefinition, values: dict[str, str]) -> list[str]:
    """Region, stakeholder type, language and zone: each one the definition offers."""
    problems: list[str] = []
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
    return problems


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
    # These echo the value given; one in the wrong column may be an address: masked.
    problems += [mask_addresses(p) for p in _choice_problems(definition, values)]
    for name, value in values.items():
        problem = text_problem(value)
        if problem:
            problems.append(f"{name} {problem}")
    if problems:
        raise ValueError("; ".join(problems))
    deadline = definition.nominations_deadline
    late = deadline is not None and deadline.exact and \
        now >= end_instant(deadline, zone(definition.timezone))
    return ExpertDraft(email=email, first_name=values["first_name"],
                       last_name=values["last_name"], entity=values["entity"],
                       nominated_by=values["nominated_by"], country=values["country"],
                       region=values["region"], stakeholder_type=values["stakeholder_type"],
                       gender=values.get("gender") or None,
                       language=values.get("language") or "en",
                       timezone=values.get("timezone") or None, nominated_at=now, late=late)


#: The largest CSV import read: a register of 1,000 experts is ~200 kB, so this is headroom,
#: not a quota; a bigger file is a wrong file (or should be split), not minutes of work.
MAX_IMPORT_BYTES = 10_000_000


def too_big(path: Path) -> None:
    """Refuse an import file over MAX_IMPORT_BYTES before reading it (bad input, exit 2)."""
    try:
        size = path.stat().st_size
    except OSError:
        return  # the read that follows says why it cannot be read
    if size > MAX_IMPORT_BYTES:
        raise InputError(f"{path}: {size:,} bytes; prepflow imports at most "
                         f"{MAX_IMPORT_BYTES:,} bytes per file (split it, or check it is the "
                         "right file).")


def read_csv(definition: ProcessDefinition, path: Path, now: datetime) -> Checked:
    """Every line checked; duplicates within the file are bad lines too (by normalised email)."""
    too_big(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot be read as UTF-8 CSV ({exc}).") from None
    reader = csv.DictReader(io.StringIO(text))
    try:
        missing = [c for c in REQUIRED if c not in (reader.fieldnames or [])]
        if missing:
            raise InputError(f"{path}: the header lacks {', '.join(missing)}; expected columns: "
                             f"{', '.join(COLUMNS)} (gender, language, timezone optional).")
        unknown = [c for c in reader.fieldnames or [] if c not in COLUMNS]
        if unknown:
            raise InputError(f"{path}: unknown columns {mask_addresses(', '.join(unknown))}; "
                             "expected: "
                             f"{', '.join(COLUMNS)}.")
        checked, seen = Checked(), dict[str, int]()
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
                checked.problems.append(f"line {line}: {mask_email(draft.email)} repeats line "
                                        f"{seen[draft.email]}")
                checked.lines.append(line)
                continue
            seen[draft.email] = line
            checked.drafts.append(draft)
    except csv.Error as exc:  # a runaway quote: one field past the csv module's limit
        raise InputError(f"{path}: line {reader.line_num} is not readable as CSV ({exc}); "
                         "check its quotes. Nothing imported.") from None
    return checked


def acknowledgements(definition: ProcessDefinition, process_id: str,
                     drafts: list[ExpertDraft], now: datetime) -> list[OutboxDraft]:
    """One 'nomination acknowledged' message per new nomination (keyed by address)."""
    deadline = definition.nominations_deadline
    rows = []
    for draft in drafts:
        closes = end_instant(deadline, zone(definition.timezone)) \
            if deadline is not None and deadline.exact else None
        message = NominationAcknowledged(
            process_id=process_id, process_name=definition.name, forum=definition.forum.name,
            timezone=definition.timezone, contact=definition.secretariat[0].email,
            nominated_by=draft.nominated_by, entity=draft.entity, late=draft.late,
            nominations_deadline=closes)
        tag = hashlib.sha256(draft.email.encode()).hexdigest()[:16]  # no address in the key
        rows.append(OutboxDraft(
            key=f"{process_id}:nomination:{tag}", process_id=process_id,
            event="nomination_acknowledged", recipient=f"nominee:{tag}",
            email=draft.email, name=f"{draft.first_name} {draft.last_name}",
            language=draft.language, timezone=draft.timezone,
            context=message.model_dump(mode="json"), created_at=now))
    return rows
