"""``hippocrate import``: bring an existing platform's patients in (docs/INTEROP.md)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import typer
from sqlalchemy import func, select

from hippocrate.blobs import FileBlobStore
from hippocrate.cli.context import fail, platform_work, runtime
from hippocrate.guard.honeytokens import CanaryDomainMissing, plant, planted
from hippocrate.interop.importer import (
    BATCH,
    Format,
    ImportFileError,
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
    """A bar in a terminal, a plain line per batch otherwise; the report grows as each
    batch commits, so an interrupted import keeps what it found."""

    def __init__(self, report: Path, total: int | None) -> None:
        self.report = report
        self.append: bool | None = None  # known at the first batch: resuming appends
        self.written = 0
        self.bar: Any = None
        self.task: Any = None
        if sys.stderr.isatty():
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TimeRemainingColumn,
                TransferSpeedColumn,
            )

            self.bar = Progress(
                "importing",
                BarColumn(),
                MofNCompleteColumn(),
                TransferSpeedColumn(),
                TimeRemainingColumn(),
                transient=True,
            )
            self.bar.start()
            self.task = self.bar.add_task("import", total=total)

    def __call__(self, outcome: Outcome) -> None:
        new = outcome.rejected[self.written :]
        if self.append is None:
            write_report(self.report, new, append=outcome.resumed_from > 0)
            self.append = True
        elif new:
            write_report(self.report, new, append=True)
        self.written = len(outcome.rejected)
        if self.bar is not None:
            self.bar.update(self.task, completed=outcome.resumed_from + outcome.rows)
        else:
            typer.echo(
                f"import: {outcome.resumed_from + outcome.rows} rows, "
                f"{outcome.imported} imported, {len(outcome.rejected)} rejected",
                err=True,
            )

    def stop(self) -> None:
        if self.bar is not None:
            self.bar.stop()


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


def import_patients(
    file: Path = typer.Argument(..., help="NDJSON of FHIR Patient resources, or CSV."),
    fmt: str | None = typer.Option(
        None, "--format", help="fhir or csv (default: from the file's extension)."
    ),
    report: Path | None = typer.Option(
        None, "--report", help="Where to write rejected rows (default: FILE.report.csv)."
    ),
    batch: int = typer.Option(BATCH, "--batch", min=1, max=10_000, help="Rows per commit."),
) -> None:
    """Import patients from another platform. Each becomes a record and an account
    that its owner activates with the invitation emailed to them; nobody is given a
    password. Bad rows are reported (row, field, reason) and nothing of them is
    written. Interrupted, the same command resumes after the last committed batch."""
    fmt_ = _format_of(file, fmt)
    if not file.is_file():
        raise fail(f"no such file: {file}")
    report_path = report or file.with_name(file.name + ".report.csv")
    with runtime() as rt:
        begin: Callable[[], Any] = lambda: platform_work(rt, Purpose.IMPORT)  # noqa: E731
        progress = _Progress(report_path, total=_count_lines(file))
        try:
            outcome = import_file(
                path=file,
                fmt=fmt_,
                settings=rt.settings,
                begin=begin,
                now=lambda: datetime.now(UTC),
                on_progress=progress,
                batch_size=batch,
            )
        except ImportFileError as exc:
            progress.stop()
            raise fail(str(exc)) from None
        except KeyboardInterrupt:
            progress.stop()
            typer.echo(
                "hippocrate: import interrupted; the batch under way was not written. "
                "Run the same command again to resume after the last committed batch.",
                err=True,
            )
            raise typer.Exit(130) from None
        progress.stop()
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
