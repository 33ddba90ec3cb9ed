"""``hippocrate breach``: the notice job's worker, and the list of letters to post."""

from __future__ import annotations

import csv
import os
import uuid
from pathlib import Path

import typer
from sqlalchemy import select

from hippocrate.breach import jobs, notices
from hippocrate.breach.models import Incident, Notice, NoticeStatus
from hippocrate.cli.context import fail, runtime
from hippocrate.patients.models import Patient
from hippocrate.work import unit_of_work

app = typer.Typer(no_args_is_help=True, help="Breach response: the notices to patients.")

POSTAL_COLUMNS = (
    "incident",
    "given_names",
    "family_name",
    "line1",
    "line2",
    "postal_code",
    "city",
    "country",
)


@app.command("worker")
def worker(
    workers: int = typer.Option(2, "--workers", min=1, max=64, help="Threads sending at once."),
    once: bool = typer.Option(False, "--once", help="Send what is due, then exit."),
) -> None:
    """Prepare and send the launched notices (Art. 34), until stopped. Several workers,
    on one machine or many, share the queue; a worker killed mid-batch loses nothing."""
    with runtime() as rt:
        queue = jobs.open_queue(rt)
        swept = jobs.sweep(rt, queue)  # whatever a dead worker left
        if once:
            ran = jobs.run_pending(queue)
            typer.echo(f"notices: {swept} due at start, {ran} tasks run")
            return
        typer.echo(f"notice worker: {workers} threads, {swept} notices due at start")
        jobs.consumer(queue, workers=workers).run()


@app.command("postal")
def postal(
    incident: str = typer.Argument(..., help="The incident's reference or id."),
    out: Path = typer.Option(..., "--out", help="The CSV file to write (0600, new)."),
) -> None:
    """Write the names and postal addresses of the patients whose notice goes by letter
    (no address to email, or every attempt failed), for the mail house. The notice job
    reads them, under its guard rule; the file is made readable by its owner only."""
    if out.exists():
        raise fail(f"{out} already exists; refusing to overwrite it")
    with runtime() as rt, unit_of_work(rt, notices.NOTICE_ACTOR) as session:
        found = session.scalars(
            select(Incident).where(
                (Incident.reference == incident) | (Incident.id == _uuid_or_none(incident))
            )
        ).first()
        if found is None:
            raise fail(f"no incident {incident}")
        letters = session.scalars(
            select(Notice).where(Notice.incident_id == found.id, Notice.status == NoticeStatus.POST)
        ).all()
        fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(POSTAL_COLUMNS)
            for notice in letters:
                patient = session.get(Patient, notice.patient_id)
                if patient is None:
                    continue
                address = patient.address or {}
                writer.writerow(
                    [
                        found.reference,
                        patient.given_names,
                        patient.family_name,
                        address.get("line1", ""),
                        address.get("line2", ""),
                        address.get("postal_code", ""),
                        address.get("city", ""),
                        address.get("country", ""),
                    ]
                )
    typer.echo(f"{len(letters)} letters listed in {out}")


def _uuid_or_none(text: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(text)
    except ValueError:
        return None
