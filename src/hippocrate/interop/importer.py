"""Bringing an existing platform's patients in: FHIR Patient resources (NDJSON) or CSV.

Three stages per row, each able to refuse it with one clear line (row, field, reason):
1. parse: a line of NDJSON is a FHIR Patient (validated against the FHIR models), a
   CSV row has the documented columns (``CSV_COLUMNS``);
2. validate: the same rules as a registration (``PatientCreate``: names, birth date,
   email, phone, address, NIR checksum and its agreement with sex and birth date);
3. create: the record, sealed under a new patient key, and an account that cannot sign
   in until its owner sets a password through the invitation emailed to the address.
   Nobody is ever given a password. A duplicate address or NIR (already on the
   platform, or earlier in the file) is refused before anything is written.

Rows are imported in batches, one unit of work each: a batch commits whole or not at
all, with its progress (``import_progress``) in the same transaction, so an interrupted
import resumes after the last committed batch and never leaves half a patient. The
report file names only rows, fields and reasons, never a value.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from hippocrate.config import Settings
from hippocrate.identity.errors import DuplicateAccount
from hippocrate.identity.service import invite_imported_patient
from hippocrate.interop.models import ImportProgress
from hippocrate.patients.errors import DuplicatePatient, InconsistentIdentity
from hippocrate.patients.schemas import PatientCreate

Format = Literal["fhir", "csv"]

CSV_COLUMNS = (
    "given_names",
    "family_name",
    "birth_date",
    "sex",
    "email",
    "phone",
    "address_line1",
    "address_line2",
    "postal_code",
    "city",
    "country",
    "nir",
)
_REQUIRED_CSV = set(CSV_COLUMNS) - {"address_line2", "country", "nir"}
NIR_SYSTEMS = ("urn:oid:1.2.250.1.213.1.4.8",)
_SEX = {"female": "F", "male": "M", "other": "X", "unknown": "X"}
BATCH = 200


class ImportFileError(ValueError):
    """The file as a whole cannot be imported (unreadable, wrong header)."""


@dataclass(frozen=True)
class Rejection:
    row: int
    field: str
    reason: str

    def line(self) -> list[str]:
        return [str(self.row), self.field, self.reason]


class RowError(Exception):
    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


@dataclass
class Outcome:
    rows: int = 0
    imported: int = 0
    rejected: list[Rejection] = field(default_factory=list)
    resumed_from: int = 0


# -- parsing ---------------------------------------------------------------------------


def rows_of(path: Path, fmt: Format) -> Iterator[tuple[int, dict[str, Any] | RowError]]:
    """(row number, raw fields or the parse error) for each record of the file. The row
    number is the line number in the file, so an operator finds it in an editor."""
    try:
        handle = path.open(encoding="utf-8", newline="")
    except OSError as exc:
        raise ImportFileError(f"cannot read {path.name}: {exc.strerror}") from None
    with handle:
        if fmt == "csv":
            yield from _csv_rows(handle)
        else:
            yield from _ndjson_rows(handle)


def _csv_rows(handle: io.TextIOBase) -> Iterator[tuple[int, dict[str, Any] | RowError]]:
    reader = csv.DictReader(handle)
    header = set(reader.fieldnames or ())
    missing = _REQUIRED_CSV - header
    if missing:
        raise ImportFileError(f"the CSV header lacks the columns: {', '.join(sorted(missing))}")
    unknown = header - set(CSV_COLUMNS)
    if unknown:
        raise ImportFileError(f"unknown CSV columns: {', '.join(sorted(unknown))}")
    try:
        for record in reader:
            row = reader.line_num
            if None in record or any(value is None for value in record.values()):
                yield row, RowError("row", "wrong number of columns")
                continue
            yield row, _from_csv(record)
    except csv.Error as exc:
        raise ImportFileError(f"malformed CSV near line {reader.line_num}: {exc}") from None
    except UnicodeDecodeError:
        raise ImportFileError("the file is not UTF-8") from None


def _from_csv(record: dict[str, str]) -> dict[str, Any]:
    value = {k: (v or "").strip() for k, v in record.items()}
    return {
        "given_names": value["given_names"],
        "family_name": value["family_name"],
        "birth_date": value["birth_date"],
        "sex": value["sex"].upper(),
        "email": value["email"],
        "phone": value["phone"],
        "address": {
            "line1": value["address_line1"],
            "line2": value.get("address_line2") or None,
            "postal_code": value["postal_code"],
            "city": value["city"],
            "country": (value.get("country") or "FR").upper(),
        },
        "nir": value.get("nir") or None,
    }


def _ndjson_rows(handle: io.TextIOBase) -> Iterator[tuple[int, dict[str, Any] | RowError]]:
    from fhir.resources.R4B.patient import Patient as FhirPatient

    try:
        for row, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                resource = json.loads(line)
            except json.JSONDecodeError as exc:
                yield row, RowError("json", f"not JSON ({exc.msg})")
                continue
            if not isinstance(resource, dict) or resource.get("resourceType") != "Patient":
                yield row, RowError("resourceType", "not a FHIR Patient resource")
                continue
            try:
                FhirPatient.model_validate(resource)
            except ValidationError as exc:
                first = exc.errors(include_input=False, include_url=False)[0]
                place = ".".join(str(part) for part in first["loc"]) or "resource"
                yield row, RowError(place, f"invalid FHIR ({first['type']})")
                continue
            try:
                yield row, _from_fhir(resource)
            except RowError as error:
                yield row, error
    except UnicodeDecodeError:
        raise ImportFileError("the file is not UTF-8") from None


def _from_fhir(resource: dict[str, Any]) -> dict[str, Any]:
    names = resource.get("name") or []
    name = next((n for n in names if n.get("use") == "official"), names[0] if names else None)
    if not name or not name.get("family") or not name.get("given"):
        raise RowError("name", "an official family name and given names are required")
    telecom = resource.get("telecom") or []

    def contact(system: str) -> str:
        found = next((t.get("value") for t in telecom if t.get("system") == system), None)
        if not found:
            raise RowError(f"telecom.{system}", f"the patient's {system} is required")
        return str(found)

    addresses = resource.get("address") or []
    if not addresses:
        raise RowError("address", "a postal address is required")
    address = next((a for a in addresses if a.get("use") == "home"), addresses[0])
    lines = address.get("line") or []
    nir = next(
        (
            i.get("value")
            for i in resource.get("identifier") or []
            if i.get("system") in NIR_SYSTEMS
        ),
        None,
    )
    gender = resource.get("gender")
    if gender not in _SEX:
        raise RowError("gender", "one of female, male, other, unknown is required")
    if not resource.get("birthDate"):
        raise RowError("birthDate", "the birth date is required")
    return {
        "given_names": " ".join(name["given"]),
        "family_name": name["family"],
        "birth_date": resource["birthDate"],
        "sex": _SEX[gender],
        "email": contact("email"),
        "phone": contact("phone"),
        "address": {
            "line1": lines[0] if lines else "",
            "line2": " ".join(lines[1:]) or None,
            "postal_code": address.get("postalCode") or "",
            "city": address.get("city") or "",
            "country": _country(address.get("country")),
        },
        "nir": nir,
    }


def _country(value: str | None) -> str:
    if not value:
        return "FR"
    if value.strip().lower() in {"france", "fra"}:
        return "FR"
    return value.strip().upper()


def validated(raw: dict[str, Any]) -> PatientCreate:
    """The row as a registration would take it; ``RowError`` naming the first bad field
    (by its name in the registration form) and the rule it breaks."""
    try:
        data = PatientCreate.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors(include_input=False, include_url=False)[0]
        place = ".".join(str(part) for part in first["loc"]) or "row"
        raise RowError(place, _reason(first)) from None
    return data


def _reason(error: Any) -> str:
    message = str(error.get("msg", "invalid"))
    return message.removeprefix("Value error, ")


# -- importing -------------------------------------------------------------------------


def digest_of(path: Path) -> str:
    """The source's identity for resuming: a SHA-256 of its bytes."""
    sha = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            sha.update(chunk)
    return sha.hexdigest()


def progress_of(session: Session, digest: str) -> ImportProgress | None:
    return session.scalar(select(ImportProgress).where(ImportProgress.source_digest == digest))


def import_row(*, session: Session, settings: Settings, raw: dict[str, Any], now: datetime) -> None:
    """One patient in, or ``RowError`` before anything of it is written."""
    data = validated(raw)
    try:
        invite_imported_patient(session=session, settings=settings, data=data, now=now)
    except (DuplicatePatient, DuplicateAccount) as exc:
        raise RowError(_duplicate_field(exc), "already registered on the platform") from None
    except InconsistentIdentity as exc:
        raise RowError("nir", str(exc)) from None


def _duplicate_field(exc: Exception) -> str:
    text = str(exc).lower()
    return "nir" if "nir" in text else "email"


def import_file(
    *,
    path: Path,
    fmt: Format,
    settings: Settings,
    begin: Callable[[], Any],
    now: Callable[[], datetime],
    on_progress: Callable[[Outcome], None] | None = None,
    batch_size: int = BATCH,
) -> Outcome:
    """Import ``path``, resuming after its last committed batch; ``begin`` opens a unit
    of work (committing on success). The outcome counts this run's rows only."""
    digest = digest_of(path)
    with begin() as session:
        progress = progress_of(session, digest)
        done = progress.rows_done if progress is not None else 0
    outcome = Outcome(resumed_from=done)
    run = _Run(digest, settings, begin, now, outcome)
    rows = rows_of(path, fmt)
    pending: list[tuple[int, dict[str, Any] | RowError]] = []
    position = 0
    for item in rows:
        position += 1
        if position <= done:
            continue
        pending.append(item)
        if len(pending) >= batch_size:
            _commit_batch(run, pending, position)
            pending = []
            if on_progress is not None:
                on_progress(outcome)
    if pending:
        _commit_batch(run, pending, position)
    elif position == done and progress is None:
        with begin() as session:
            _record_progress(session, digest, rows_done=position, imported=0, rejected=0, at=now())
    if on_progress is not None:
        on_progress(outcome)
    return outcome


@dataclass(frozen=True)
class _Run:
    digest: str
    settings: Settings
    begin: Callable[[], Any]
    now: Callable[[], datetime]
    outcome: Outcome


def _commit_batch(
    run: _Run, items: list[tuple[int, dict[str, Any] | RowError]], position: int
) -> None:
    imported = 0
    rejected: list[Rejection] = []
    with run.begin() as session:
        at = run.now()
        for row, raw in items:
            if isinstance(raw, RowError):
                rejected.append(Rejection(row, raw.field, raw.reason))
                continue
            try:
                import_row(session=session, settings=run.settings, raw=raw, now=at)
            except RowError as error:
                rejected.append(Rejection(row, error.field, error.reason))
                continue
            imported += 1
        _record_progress(
            session,
            run.digest,
            rows_done=position,
            imported=imported,
            rejected=len(rejected),
            at=at,
        )
    # Counted once the batch committed: an interrupted batch counts for nothing.
    run.outcome.rows += len(items)
    run.outcome.imported += imported
    run.outcome.rejected.extend(rejected)


def _record_progress(
    session: Session, digest: str, *, rows_done: int, imported: int, rejected: int, at: datetime
) -> None:
    progress = progress_of(session, digest)
    if progress is None:
        progress = ImportProgress(source_digest=digest, rows_done=0, imported=0, rejected=0)
        session.add(progress)
    progress.rows_done = rows_done
    progress.imported += imported
    progress.rejected += rejected
    progress.updated_at = at
    session.flush()


def write_report(path: Path, rejected: list[Rejection], *, append: bool) -> None:
    """The rejected rows as CSV (row, field, reason): no value of any row."""
    new = not append or not path.exists()
    with path.open("a" if append else "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        if new:
            writer.writerow(["row", "field", "reason"])
        for rejection in rejected:
            writer.writerow(rejection.line())
