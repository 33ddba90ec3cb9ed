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
import multiprocessing
import queue as queue_module
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any, Literal

from pydantic import ValidationError
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from hippocrate.config import Settings
from hippocrate.errors import HippocrateError
from hippocrate.interop import bulk
from hippocrate.interop.models import ImportBatch, ImportProgress
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
BATCH = 1000


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
    for row, parse in records_of(path, fmt):
        yield row, parse()


def records_of(
    path: Path, fmt: Format
) -> Iterator[tuple[int, Callable[[], dict[str, Any] | RowError]]]:
    """Like :func:`rows_of`, each record's parse left to the caller (FHIR validation is
    most of the cost of a line: a process skipping another's batches skips it)."""
    try:
        handle = path.open(encoding="utf-8", newline="")
    except OSError as exc:
        raise ImportFileError(f"cannot read {path.name}: {exc.strerror}") from None
    with handle:
        if fmt == "csv":
            for row, parsed in _csv_rows(handle):
                yield row, partial(_given, parsed)
        else:
            yield from _ndjson_records(handle)


def _given(parsed: dict[str, Any] | RowError) -> dict[str, Any] | RowError:
    return parsed


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
    for row, parse in _ndjson_records(handle):
        yield row, parse()


def _ndjson_records(
    handle: io.TextIOBase,
) -> Iterator[tuple[int, Callable[[], dict[str, Any] | RowError]]]:
    """(line number, the parse of that line, not run yet) per non-blank line: an
    importing process parses only the lines of its own batches."""
    try:
        for row, line in enumerate(handle, start=1):
            if line.strip():
                yield row, partial(_fhir_line, line)
    except UnicodeDecodeError:
        raise ImportFileError("the file is not UTF-8") from None


def _fhir_line(line: str) -> dict[str, Any] | RowError:
    from fhir.resources.R4B.patient import Patient as FhirPatient

    try:
        resource = json.loads(line)
    except json.JSONDecodeError as exc:
        return RowError("json", f"not JSON ({exc.msg})")
    if not isinstance(resource, dict) or resource.get("resourceType") != "Patient":
        return RowError("resourceType", "not a FHIR Patient resource")
    try:
        FhirPatient.model_validate(resource)
    except ValidationError as exc:
        first = exc.errors(include_input=False, include_url=False)[0]
        place = ".".join(str(part) for part in first["loc"]) or "resource"
        return RowError(place, f"invalid FHIR ({first['type']})")
    try:
        return _from_fhir(resource)
    except RowError as error:
        return error


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


class ImportWorkerFailed(HippocrateError):
    """An importing process stopped on an error: the batches committed stay, the
    others are not written; the same command resumes."""


#: Opens what an importing process needs (its own database engine and key provider,
#: from the settings) and yields its ``begin``. A module-level function, so that a
#: process started for ``--workers`` can be handed it.
Opener = Callable[[Settings], AbstractContextManager[Callable[[], Any]]]


@dataclass(frozen=True)
class Plan:
    """How a file is cut: batches of ``size`` records at fixed positions (batch ``k``
    holds records ``k * size + 1`` to ``(k + 1) * size``), those already committed
    (their first positions), and how many records they hold."""

    digest: str
    size: int
    committed: frozenset[int]
    rows_done: int

    def first_of(self, position: int) -> int:
        return (position - 1) // self.size * self.size + 1

    def taken_by(self, first: int, worker: int, workers: int) -> bool:
        return ((first - 1) // self.size) % workers == worker


def plan_of(*, begin: Callable[[], Any], digest: str, batch_size: int) -> Plan:
    """The committed batches of ``digest`` (creating its progress row if absent, so
    that concurrent batches only update it). A resumed import keeps the batch size of
    its first run, whatever ``batch_size`` says now: its batches stay aligned."""
    with begin() as session:
        if progress_of(session, digest) is None:
            session.add(ImportProgress(source_digest=digest, rows_done=0, imported=0, rejected=0))
            session.flush()
        batches = session.execute(
            select(ImportBatch.first_row, ImportBatch.last_row).where(
                ImportBatch.source_digest == digest
            )
        ).all()
    size = max((last - first + 1 for first, last in batches), default=batch_size)
    if batches and any((first - 1) % size for first, _ in batches):
        size = batch_size  # not of one size: the last (short) batch alone
    return Plan(
        digest=digest,
        size=size,
        committed=frozenset(first for first, _ in batches),
        rows_done=sum(last - first + 1 for first, last in batches),
    )


def import_file(
    *,
    path: Path,
    fmt: Format,
    settings: Settings,
    begin: Callable[[], Any],
    now: Callable[[], datetime],
    on_progress: Callable[[Outcome], None] | None = None,
    batch_size: int = BATCH,
    workers: int = 1,
    opener: Opener | None = None,
) -> Outcome:
    """Import ``path``, skipping its committed batches; ``begin`` opens a unit of work
    (committing on success). With ``workers`` above 1, that many processes (each
    opened with ``opener``) take disjoint batches, batch ``k`` going to process
    ``k mod workers``; ``now`` is then each process's clock. The outcome counts this
    run's rows only; ``on_progress`` is called after each committed batch."""
    digest = digest_of(path)
    plan = plan_of(begin=begin, digest=digest, batch_size=batch_size)
    outcome = Outcome(resumed_from=plan.rows_done)
    if workers > 1:
        if opener is None:
            raise ValueError("several importing processes need an opener")
        _run_workers(
            path=path,
            fmt=fmt,
            settings=settings,
            plan=plan,
            workers=workers,
            opener=opener,
            outcome=outcome,
            on_progress=on_progress,
        )
    else:
        for done in _batches(
            path=path, fmt=fmt, plan=plan, begin=begin, now=now, worker=0, workers=1
        ):
            done.add_to(outcome)
            if on_progress is not None:
                on_progress(outcome)
    if on_progress is not None:
        on_progress(outcome)
    return outcome


@dataclass(frozen=True)
class BatchDone:
    """What one committed batch did (plain values: it crosses processes)."""

    rows: int
    imported: int
    rejected: tuple[Rejection, ...]

    def add_to(self, outcome: Outcome) -> None:
        outcome.rows += self.rows
        outcome.imported += self.imported
        outcome.rejected.extend(self.rejected)


def _batches(
    *,
    path: Path,
    fmt: Format,
    plan: Plan,
    begin: Callable[[], Any],
    now: Callable[[], datetime],
    worker: int,
    workers: int,
) -> Iterator[BatchDone]:
    """Commit this process's batches of ``plan`` not committed yet, one unit of work
    each; yields each once committed."""
    pending: list[tuple[int, Callable[[], dict[str, Any] | RowError]]] = []
    first = 0
    position = 0
    for item in records_of(path, fmt):
        position += 1
        start = plan.first_of(position)
        if start in plan.committed or not plan.taken_by(start, worker, workers):
            continue
        if pending and start != first:
            yield _commit_batch(plan, begin, now, first, pending)
            pending = []
        first = start
        pending.append(item)
    if pending:
        yield _commit_batch(plan, begin, now, first, pending)


def _commit_batch(
    plan: Plan,
    begin: Callable[[], Any],
    now: Callable[[], datetime],
    first: int,
    items: list[tuple[int, Callable[[], dict[str, Any] | RowError]]],
) -> BatchDone:
    rejected: list[Rejection] = []
    valid: list[tuple[int, PatientCreate]] = []
    # Parsed and validated before the unit of work takes a database connection.
    for row, parse in items:
        raw = parse()
        if isinstance(raw, RowError):
            rejected.append(Rejection(row, raw.field, raw.reason))
            continue
        try:
            valid.append((row, validated(raw)))
        except RowError as error:
            rejected.append(Rejection(row, error.field, error.reason))
    with begin() as session:
        at = now()
        admitted, refused = bulk.admit(session, valid)
        bulk.write(session, admitted, at)
        rejected.extend(Rejection(r.row, r.field, r.reason) for r in refused)
        rejected.sort(key=lambda r: r.row)
        session.add(
            ImportBatch(
                source_digest=plan.digest,
                first_row=first,
                last_row=first + len(items) - 1,
                imported=len(admitted),
                rejected=len(rejected),
                committed_at=at,
            )
        )
        # Last, so that the one row every batch updates is locked the shortest time.
        session.execute(
            update(ImportProgress)
            .where(ImportProgress.source_digest == plan.digest)
            .values(
                rows_done=ImportProgress.rows_done + len(items),
                imported=ImportProgress.imported + len(admitted),
                rejected=ImportProgress.rejected + len(rejected),
                updated_at=at,
            )
        )
    # Counted once the batch committed: an interrupted batch counts for nothing.
    return BatchDone(len(items), len(admitted), tuple(rejected))


# -- several importing processes -------------------------------------------------------


def _run_workers(
    *,
    path: Path,
    fmt: Format,
    settings: Settings,
    plan: Plan,
    workers: int,
    opener: Opener,
    outcome: Outcome,
    on_progress: Callable[[Outcome], None] | None,
) -> None:
    """Start ``workers`` processes, collect their batches as they commit. If one fails,
    the others are stopped (their batch under way rolls back with its connection) and
    :class:`ImportWorkerFailed` says why; committed batches stay."""
    context = multiprocessing.get_context("spawn")
    queue: Any = context.Queue()
    processes = [
        context.Process(
            target=_worker_main,
            kwargs={
                "opener": opener,
                "settings": settings,
                "path": path,
                "fmt": fmt,
                "plan": plan,
                "index": index,
                "workers": workers,
                "queue": queue,
            },
            name=f"hippocrate-import-{index}",
        )
        for index in range(workers)
    ]
    for process in processes:
        process.start()
    collector = _Collector(processes, outcome, on_progress)
    try:
        collector.run(queue)
    except KeyboardInterrupt:
        # Interrupted here alone (a terminal's Ctrl-C reaches every process): stop the
        # others too, whose batch under way then rolls back.
        collector.stop_all()
        raise
    finally:
        for process in processes:
            process.join()
    if collector.failure is not None:
        raise ImportWorkerFailed(collector.failure)


class _Collector:
    """The parent's side: batches as they commit, and how each process ended."""

    def __init__(
        self,
        processes: list[Any],
        outcome: Outcome,
        on_progress: Callable[[Outcome], None] | None,
    ) -> None:
        self.processes = processes
        self.outcome = outcome
        self.on_progress = on_progress
        self.ended: set[int] = set()
        self.failure: str | None = None

    def stop_all(self) -> None:
        for process in self.processes:
            if process.is_alive():
                process.terminate()  # its batch under way dies with its connection

    def take(self, message: tuple[str, int, Any]) -> None:
        kind, index, payload = message
        if kind == "batch":
            payload.add_to(self.outcome)
            if self.on_progress is not None:
                self.on_progress(self.outcome)
            return
        self.ended.add(index)
        if payload is not None and self.failure is None:
            self.failure = payload
            self.stop_all()

    def run(self, queue: Any) -> None:
        while len(self.ended) < len(self.processes):
            try:
                self.take(queue.get(timeout=0.5))
            except queue_module.Empty:
                self._reap(queue)

    def _reap(self, queue: Any) -> None:
        """Processes that ended without saying so (terminated, killed): what they
        committed was reported before they ended; anything still queued is read."""
        for index, process in enumerate(self.processes):
            if index in self.ended or process.is_alive():
                continue
            while True:
                try:
                    self.take(queue.get(timeout=0.1))
                except queue_module.Empty:
                    break
            if index not in self.ended:
                self.take(("end", index, _died(index, process.exitcode)))


def _died(index: int, code: int | None) -> str | None:
    if code in (0, None):
        return None
    return f"importing process {index} ended (exit code {code})"


def _worker_main(
    *,
    opener: Opener,
    settings: Settings,
    path: Path,
    fmt: Format,
    plan: Plan,
    index: int,
    workers: int,
    queue: Any,
) -> None:
    """One importing process: its batches, each reported once committed; ``None`` at
    the end, or a line saying what stopped it (never a value of a row)."""
    try:
        with opener(settings) as begin:
            for done in _batches(
                path=path,
                fmt=fmt,
                plan=plan,
                begin=begin,
                now=_clock,
                worker=index,
                workers=workers,
            ):
                queue.put(("batch", index, done))
    except KeyboardInterrupt:
        queue.put(("end", index, f"importing process {index} interrupted"))
        return
    except Exception as exc:  # noqa: BLE001 - reported to the parent, which raises
        # The kind of error only (a database error's text may quote the row's values),
        # or the platform's own refusals, which are written to be shown.
        why = str(exc) if isinstance(exc, HippocrateError) else type(exc).__name__
        queue.put(("end", index, f"importing process {index} stopped: {why}"))
        return
    queue.put(("end", index, None))


def _clock() -> datetime:
    return datetime.now(UTC)


def write_report(path: Path, rejected: list[Rejection], *, append: bool) -> None:
    """The rejected rows as CSV (row, field, reason): no value of any row."""
    new = not append or not path.exists()
    with path.open("a" if append else "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        if new:
            writer.writerow(["row", "field", "reason"])
        for rejection in rejected:
            writer.writerow(rejection.line())
