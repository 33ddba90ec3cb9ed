"""``hippocrate import``: bring an existing platform's patients in (docs/INTEROP.md)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import typer
from sqlalchemy import func, select

from hippocrate.blobs import FileBlobStore
from hippocrate.cli.context import fail, platform_work, runtime
from hippocrate.cli.progress import Progress as Bar
from hippocrate.config import Settings
from hippocrate.guard.honeytokens import CanaryDomainMissing, plant, planted
from hippocrate.identity import service as identity_service
from hippocrate.interop.importer import (
    BATCH,
    Format,
    ImportFileError,
    ImportWorkerFailed,
    Outcome,
    import_file,
    write_report,
)
from hippocrate.patients.models import Patient, PatientStatus
from hippocrate.runtime import Runtime
from hippocrate.tags import Purpose

#: One honeytoken per this many patients (as ``seed`` keeps it), at least three.
PATIENTS_PER_HONEYTOKEN = 20


def _format_of(path: Path, chosen: str | None) -> Format:
    if chosen is not None:
        if chosen not in ("fhir", "csv"):
            raise fail(f"unknown format {chosen!r}: fhir (NDJSON of Patient resources) or csv")
        return "fhir" if chosen == "fhir" else "csv"
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return "csv"
    if suffix in (".ndjson", ".jsonl"):
        return "fhir"
    raise fail(f"cannot tell the format of {path.name}: say --format fhir or --format csv")


class _Progress:
    """The report grows as each batch commits, so an interrupted import keeps what it
    found; the bar (or plain lines) counts the rows read."""

    def __init__(self, report: Path, bar: Bar) -> None:
        self.report = report
        self.append: bool | None = None  # known at the first batch: resuming appends
        self.written = 0
        self.bar = bar

    def __call__(self, outcome: Outcome) -> None:
        new = outcome.rejected[self.written :]
        if self.append is None:
            write_report(self.report, new, append=outcome.resumed_from > 0)
            self.append = True
        elif new:
            write_report(self.report, new, append=True)
        self.written = len(outcome.rejected)
        self.bar.advance(outcome.resumed_from + outcome.rows - self.bar.done)


def _top_up_honeytokens(rt: Runtime) -> int:
    """After an import: honeytokens back to one per ``PATIENTS_PER_HONEYTOKEN`` patients,
    so a grown base does not dilute them (docs/GUARD.md)."""
    assert rt.guard is not None
    try:
        with platform_work(rt, Purpose.SETUP) as session:
            patients = int(
                session.scalar(
                    select(func.count())
                    .select_from(Patient)
                    .where(Patient.status == PatientStatus.ACTIVE)
                )
                or 0
            )
            missing = max(3, patients // PATIENTS_PER_HONEYTOKEN) - planted(session=session)
            if missing <= 0:
                return 0
            plant(
                session=session,
                guard=rt.guard,
                count=missing,
                blobs=FileBlobStore(rt.settings.blob_dir),
            )
            return missing
    except CanaryDomainMissing as exc:
        # The patients are in; the honeytokens wait for the canary domain.
        typer.echo(f"hippocrate: warning: honeytokens not topped up: {exc}", err=True)
        return 0


def _count_lines(path: Path) -> int | None:
    try:
        with path.open("rb") as handle:
            return sum(chunk.count(b"\n") for chunk in iter(lambda: handle.read(1 << 20), b""))
    except OSError:
        return None


@contextmanager
def open_platform(settings: Settings) -> Iterator[Callable[[], Any]]:
    """What one importing process of ``--workers`` opens: its own runtime (database
    engine, key provider, guard) and units of work of the platform for the import."""
    rt = Runtime.open(settings)
    try:
        yield lambda: platform_work(rt, Purpose.IMPORT)
    finally:
        rt.close()


def send_invitations(*, rt: Runtime, limit: int, batch: int) -> int:
    """The delivery worker of imported patients' invitations: up to ``limit`` queued
    ones, ``batch`` per unit of work, each delivered after its unit commits."""
    sent = 0
    while sent < limit:
        with platform_work(rt, Purpose.IMPORT) as session:
            taken = identity_service.send_invitations(
                session=session,
                settings=rt.settings,
                now=datetime.now(UTC),
                limit=min(batch, limit - sent),
            )
        sent += taken
        if taken == 0:
            break
    return sent


def import_patients(
    file: Path | None = typer.Argument(None, help="NDJSON of FHIR Patient resources, or CSV."),
    fmt: str | None = typer.Option(
        None, "--format", help="fhir or csv (default: from the file's extension)."
    ),
    report: Path | None = typer.Option(
        None, "--report", help="Where to write rejected rows (default: FILE.report.csv)."
    ),
    batch: int = typer.Option(BATCH, "--batch", min=1, max=10_000, help="Rows per commit."),
    workers: int = typer.Option(
        1,
        "--workers",
        min=1,
        max=64,
        help="Importing processes, each taking its own batches (PostgreSQL only; "
        "about one per core the import may take).",
    ),
    invitations: bool = typer.Option(
        False,
        "--send-invitations",
        help="Instead of importing: send the invitations imports queued (no FILE).",
    ),
    limit: int = typer.Option(
        10_000, "--limit", min=1, help="With --send-invitations: at most this many."
    ),
) -> None:
    """Import patients from another platform. Each becomes a record and an account
    that its owner activates with the invitation emailed to them; nobody is given a
    password. Bad rows are reported (row, field, reason) and nothing of them is
    written. Interrupted, the same command resumes after the committed batches. The
    invitations are queued; ``--send-invitations`` sends them (docs/INTEROP.md)."""
    if invitations:
        if file is not None:
            raise fail("--send-invitations takes no FILE: it sends what imports queued")
        with runtime() as rt:
            sent = send_invitations(rt=rt, limit=limit, batch=batch)
        typer.echo(f"{sent} invitations sent")
        return
    if file is None:
        raise fail("say which FILE to import (or --send-invitations)")
    fmt_ = _format_of(file, fmt)
    if not file.is_file():
        raise fail(f"no such file: {file}")
    report_path = report or file.with_name(file.name + ".report.csv")
    with runtime() as rt:
        if workers > 1 and not rt.settings.resolved_database_url.startswith("postgresql"):
            raise fail(
                "--workers above 1 needs PostgreSQL: SQLite takes one writer at a time, "
                "so more importing processes would only wait for each other"
            )
        begin: Callable[[], Any] = lambda: platform_work(rt, Purpose.IMPORT)  # noqa: E731
        try:
            with Bar(
                "import",
                total=_count_lines(file),
                unit="rows",
                interrupted=lambda done: (
                    f"{done} rows read; the batch under way was not written. Run the same "
                    "command again to resume after the committed batches."
                ),
            ) as bar:
                outcome = import_file(
                    path=file,
                    fmt=fmt_,
                    settings=rt.settings,
                    begin=begin,
                    now=lambda: datetime.now(UTC),
                    on_progress=_Progress(report_path, bar),
                    batch_size=batch,
                    workers=workers,
                    opener=open_platform,
                )
        except (ImportFileError, ImportWorkerFailed) as exc:
            raise fail(str(exc)) from None
        topped = _top_up_honeytokens(rt) if outcome.imported else 0
    resumed = f" (resumed after row {outcome.resumed_from})" if outcome.resumed_from else ""
    typer.echo(
        f"{outcome.imported} patients imported, {len(outcome.rejected)} rows rejected"
        f"{resumed}; report in {report_path}"
    )
    if topped:
        typer.echo(f"{topped} honeytoken patients planted among them")
    if outcome.rejected:
        raise typer.Exit(2)
