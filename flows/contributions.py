"""The contributions register at the edge: reading an import file, and recording what the
core decided (``states.contributions``) in one store transaction.

The decision is taken on the process read under its row lock, and the contributions and their
audit entries are written in that transaction: all of an import or nothing. A refusal is
audited and nothing else is written; bad input writes nothing at all.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from pydantic import ValidationError
from pydantic_core import ErrorDetails

from flows.nominations import too_big
from flows.shell import Service
from flows.storage import AuditDraft
from states import engine
from states.contribution_types import audit_inputs
from states.contributions import (
    Contribution,
    ContributionDraft,
    ContributionKind,
    SubmitterCategory,
    receive,
    receive_many,
)
from states.dates import check_year
from states.decision import Record
from states.definition import OFFICIAL_LANGUAGES
from states.errors import InputError, Refused
from states.roles import Act, Via, needed

#: Import columns, named as the options of 'prepflow comments add'.
COLUMNS = ("cycle", "from", "category", "kind", "title", "document", "country", "region",
           "language", "received", "opinion")
REQUIRED = ("cycle", "from", "category", "kind", "title", "document")
#: Draft fields by the column or option people know them by.
FIELD_NAMES = {"submitter": "from", "received_at": "received"}
CHOICES = {
    "category": ", ".join(c.value for c in SubmitterCategory),
    "kind": ", ".join(k.value for k in ContributionKind),
    "language": ", ".join(OFFICIAL_LANGUAGES),
}


def record(service: Service, process_id: str, drafts: Sequence[tuple[str, ContributionDraft]],
           by: str, now: datetime | None = None, action: str = "comments add",
           problems: Sequence[str] = ()) -> list[Contribution]:
    """Decide on and record contributions (labelled for messages, e.g. 'line 4'), all or
    nothing; a refusal is audited, then raised. ``problems``: rows already found bad (they
    are listed with those the core finds bad, and nothing is written). A document reference
    already in the register is bad input, checked against the register read in the write's
    transaction; a public submitter's name reaches the audit log only masked."""
    at = service.now(now)
    refused: Refused | None = None
    needs, presented = needed(Act.REGISTER), service.gate.present(process_id)
    with service.store.transaction(process_id) as tx:
        definition, instance = service.decode(tx.get())
        via = service.gate.via(by, needs)
        register = tx.contributions(sorted({d.cycle for _, d in drafts}))
        try:
            via = service.gate.admit(presented, definition, process_id, by, Act.REGISTER, needs)
            member = via.member
            receipts = ([receive(definition, instance, drafts[0][1], at, by=member,
                                 register=register)]
                        if len(drafts) == 1 and not problems else
                        receive_many(definition, instance, drafts, at, by=member,
                                     problems=problems, register=register))
        except Refused as exc:
            inputs = {"contributions": [audit_inputs(d) for _, d in drafts], "via": via.doc()}
            refusal = engine.refusal_record(definition, instance, action, via.member, at, exc,
                                            inputs)
            tx.commit(None, [_audit(refusal)])
            refused = exc
        else:
            added = tx.add_contributions([r.contribution for r in receipts])
            tx.commit(None, [_audit(r.record, via) for r in receipts])
    if refused is not None:
        raise refused
    return added


def _audit(entry: Record, via: Via | None = None) -> AuditDraft:
    inputs = {**entry.inputs, "via": via.doc()} if via is not None else entry.inputs
    return AuditDraft(at=entry.at, actor=entry.actor, kind=entry.kind, trigger=entry.trigger,
                      from_state=entry.from_state, to_state=entry.to_state,
                      reason=entry.reason, inputs=inputs)


def draft(values: Mapping[str, str | None], process_id: str, tz: ZoneInfo, now: datetime,
          prefix: str = "") -> ContributionDraft:
    """A draft from text values keyed by column (option) name; ValueError names each bad field
    (``prefix``: '--' when they were options)."""
    received = values.get("received")
    try:
        at = parse_received(received, tz) if received else now
    except ValueError as exc:
        raise ValueError(f"{prefix}received: {exc}") from None
    try:
        return ContributionDraft(
            process_id=process_id, cycle=values.get("cycle") or "",
            submitter=values.get("from") or "", category=values.get("category") or "",
            kind=values.get("kind") or "", title=values.get("title") or "",
            document=values.get("document") or "", country=values.get("country") or None,
            region=values.get("region") or None, language=values.get("language") or "en",
            received_at=at, opinion=values.get("opinion") or None)
    except ValidationError as exc:
        raise ValueError("; ".join(_problem(e, values, prefix) for e in exc.errors())) from None


def _problem(error: ErrorDetails, values: Mapping[str, str | None], prefix: str) -> str:
    loc = error.get("loc") or ("?",)
    field = FIELD_NAMES.get(str(loc[0]), str(loc[0]))
    name = f"{prefix}{field}"
    given = values.get(field)
    message = str(error.get("msg", "invalid")).removeprefix("Value error, ")
    if field in CHOICES:
        message = f"must be one of {CHOICES[field]}"
    if not given and field in REQUIRED:
        return f"{name} is empty"
    return f"{name} '{given}': {message}" if given else f"{name}: {message}"


def parse_received(text: str, tz: ZoneInfo) -> datetime:
    """An instant from ISO 8601; a local time without zone is the process's (Geneva), and
    one a daylight-saving change skips or repeats is refused."""
    try:
        value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"'{text}' is not a date and time; write e.g. 2024-08-26T17:30 "
                         f"({tz.key}) or 2024-08-26T15:30Z") from None
    check_year(value.year, text)  # near year 1 or 9999 the zone's offset leaves the calendar
    if value.tzinfo is not None:
        return value.astimezone(UTC)
    early, late = value.replace(tzinfo=tz, fold=0), value.replace(tzinfo=tz, fold=1)
    if early.astimezone(UTC).astimezone(tz).replace(tzinfo=None) != value:
        raise ValueError(f"'{text}' does not exist in {tz.key} (clocks jump forward); "
                         "give the time with its offset, e.g. +01:00")
    if early.utcoffset() != late.utcoffset():
        raise ValueError(f"'{text}' happens twice in {tz.key} (clocks go back); give the "
                         "time with its offset, e.g. +02:00 or +01:00")
    return early.astimezone(UTC)


@dataclass(frozen=True)
class ImportFile:
    """An import file's rows as drafts, labelled 'line N', and its bad rows (line: what)."""

    drafts: list[tuple[str, ContributionDraft]]
    problems: list[str]
    separator: str


def read_csv(path: Path, process_id: str, tz: ZoneInfo, now: datetime) -> ImportFile:
    """Every row read and checked field by field (line and field named for each bad one); an
    unreadable file, header or encoding is InputError at once."""
    too_big(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputError(f"{path}: cannot be read ({exc.strerror}).") from None
    wide = wide_encoding(data)
    if wide is not None:
        raise InputError(f"{path}: the file is {wide}; save it as UTF-8 (in Excel: 'CSV "
                         "UTF-8'), then import it again.")
    header = data.removeprefix(b"\xef\xbb\xbf").split(b"\n", 1)[0]
    separator = ";" if header.count(b";") > header.count(b",") else ","
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputError(_encoding_problem(path, data, exc, separator)) from None
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=separator)
    try:
        columns = [c.strip().lower() for c in next(reader, [])]
        _check_header(path, columns, separator)
        drafts: list[tuple[str, ContributionDraft]] = []
        problems: list[str] = []
        for row in reader:
            line = reader.line_num
            if not any(cell.strip() for cell in row):
                continue
            if len(row) != len(columns):
                problems.append(f"line {line}: {len(row)} field(s) where the header has "
                                f"{len(columns)} (separator '{separator}'; quote a field that "
                                "contains it)")
                continue
            values = {name: cell.strip() for name, cell in zip(columns, row, strict=True)}
            try:
                drafts.append((f"line {line}", draft(values, process_id, tz, now)))
            except ValueError as exc:
                problems.append(f"line {line}: {exc}")
    except csv.Error as exc:  # a runaway quote: one field past the csv module's limit
        raise InputError(f"{path}: line {reader.line_num} is not readable as CSV ({exc}); "
                         "check its quotes. Nothing recorded.") from None
    if not drafts and not problems:
        raise InputError(f"{path}: no rows under the header; nothing recorded.")
    return ImportFile(drafts, problems, separator)


def _check_header(path: Path, columns: list[str], separator: str) -> None:
    expected = f"expected columns {', '.join(COLUMNS)} separated by commas or semicolons"
    if len(columns) <= 1:
        raise InputError(f"{path}: line 1 (header) is one field "
                         f"('{columns[0] if columns else ''}'): {expected}.")
    unknown = [c for c in columns if c not in COLUMNS]
    missing = [c for c in REQUIRED if c not in columns]
    if unknown or missing:
        parts = ([f"unknown column(s) {', '.join(unknown)}"] if unknown else []) + \
            ([f"missing column(s) {', '.join(missing)}"] if missing else [])
        raise InputError(f"{path}: line 1 (header, separator '{separator}'): "
                         f"{'; '.join(parts)}; {expected}.")


#: Byte order marks of the encodings Excel and Notepad save as 'Unicode' (longest first).
_BOMS = ((b"\xff\xfe\x00\x00", "UTF-32"), (b"\x00\x00\xfe\xff", "UTF-32"),
         (b"\xff\xfe", "UTF-16"), (b"\xfe\xff", "UTF-16"))


def wide_encoding(data: bytes) -> str | None:
    """'UTF-16' or 'UTF-32' when ``data`` is text in one (by its BOM, or without one by the
    NUL bytes its Latin letters carry), else None: named as such rather than as a byte that
    is not UTF-8."""
    for bom, name in _BOMS:
        if data.startswith(bom):
            return name
    head = data[:4096]
    nuls = head.count(0)
    if not head or nuls * 4 < len(head):
        return None
    return "UTF-32" if nuls * 3 > len(head) * 2 else "UTF-16"


def _encoding_problem(path: Path, data: bytes, exc: UnicodeDecodeError, separator: str) -> str:
    """Which line and field hold the first byte that is not UTF-8."""
    start = data.rfind(b"\n", 0, exc.start) + 1
    line = data.count(b"\n", 0, exc.start) + 1
    head = data.removeprefix(b"\xef\xbb\xbf").split(b"\n", 1)[0].decode("latin-1")
    names = [c.strip().lower() for c in head.split(separator)]
    index = data[start:exc.start].count(separator.encode())
    field = names[index] if index < len(names) else f"field {index + 1}"
    return (f"{path}: line {line}, field '{field}': byte 0x{data[exc.start]:02x} is not "
            "UTF-8. Save the file as UTF-8 (in Excel: 'CSV UTF-8'), then import it again.")
