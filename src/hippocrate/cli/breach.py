"""``hippocrate breach``: the notice job's worker, and the list of letters to post."""

from __future__ import annotations

import csv
import os
import uuid
from datetime import UTC, datetime
from pathlib import Path

import typer
from sqlalchemy import select
from sqlalchemy.orm import Session

from hippocrate.audit.recorder import recorder_of
from hippocrate.breach import jobs, notices
from hippocrate.breach.models import Incident, Notice, NoticeStatus
from hippocrate.cli.context import (
    fail,
    operator_actor,
    operator_principal,
    operator_work,
    runtime,
    settings,
)
from hippocrate.cli.progress import Progress as Bar
from hippocrate.errors import HippocrateError
from hippocrate.patients.models import Patient
from hippocrate.tags import Tag
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
            with Bar(
                "notices",
                total=jobs.pending(queue),
                unit="tasks",
                interrupted=lambda done: (
                    f"{done} tasks run; the notices of the batch under way go back to "
                    "the queue once their lease runs out (those marked sent stay sent); "
                    "run 'hippocrate breach worker --once' again for the rest"
                ),
            ) as bar:

                def ran_one(left: int) -> None:
                    bar.set_total(bar.done + 1 + left)
                    bar.advance(1)

                ran = jobs.run_pending(queue, on_task=ran_one)
            typer.echo(f"notices: {swept} due at start, {ran} tasks run")
            return
        typer.echo(f"notice worker: {workers} threads, {swept} notices due at start")
        jobs.consumer(queue, workers=workers).run()


@app.command("approve-notices")
def approve_notices(
    incident: str = typer.Argument(..., help="The incident's reference or id."),
    note: str = typer.Option(..., "--note", help="Why you approve (kept on the timeline)."),
) -> None:
    """Approve the notices a DPO asked for (the second pair of eyes, for a deployment
    with one DPO): the notice job then prepares and sends them."""
    if not note.strip():
        raise fail("say why you approve, with --note")
    principal = operator_principal()
    with runtime() as rt:
        with operator_work(rt, principal) as session:
            found = _incident(session, incident)
            try:
                notices.approve(
                    session=session,
                    actor=operator_actor(principal),
                    incident=found,
                    now=datetime.now(UTC),
                    note=note,
                )
            except HippocrateError as exc:
                raise fail(str(exc)) from None
            incident_id, reference = found.id, found.reference
        jobs.enqueue_prepare(jobs.open_queue(rt), incident_id)
    typer.echo(f"notices of {reference} approved: the notice workers send them")


@app.command("postal")
def postal(
    incident: str = typer.Argument(..., help="The incident's reference or id."),
    out: Path = typer.Option(..., "--out", help="The CSV file to write (0600, new)."),
) -> None:
    """Write the names and postal addresses of the patients whose notice goes by letter
    (no address to email, or every attempt failed), for the mail house. The notice job
    reads them, under its guard rule; the trail names the operator who asked, a
    contained operator is refused, and the file is made readable by its owner only,
    whole or not at all."""
    if out.exists():
        raise fail(f"{out} already exists; refusing to overwrite it")
    principal = operator_principal()
    partial = out.with_name(f".{out.name}.partial")
    with runtime() as rt:
        assert rt.guard is not None
        try:
            rt.guard.ensure_not_contained(principal.account_id)
        except HippocrateError:
            raise fail(f"operator {principal.operator} is contained") from None
        try:
            with unit_of_work(rt, notices.NOTICE_ACTOR) as session:
                found = _incident(session, incident)
                letters = session.scalars(
                    select(Notice).where(
                        Notice.incident_id == found.id, Notice.status == NoticeStatus.POST
                    )
                ).all()
                fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                with os.fdopen(fd, "w", newline="", encoding="utf-8") as handle:
                    writer = csv.writer(handle)
                    writer.writerow(POSTAL_COLUMNS)
                    for notice in letters:
                        line = unsafe_letter_of(session, notice.patient_id)
                        if line is not None:
                            writer.writerow([found.reference, *line])
                recorder = recorder_of(session)
                assert recorder is not None
                # Who asked for the addresses: the operator, not the job that read them.
                recorder.event(
                    Tag.BREACH_LETTERS_LISTED,
                    actor=operator_actor(principal),
                    resources=(f"incident:{found.id}", f"letters:{len(letters)}"),
                )
            os.replace(partial, out)
        finally:
            partial.unlink(missing_ok=True)
    typer.echo(f"{len(letters)} letters listed in {out}")


def unsafe_letter_of(session: Session, patient_id: uuid.UUID) -> list[str] | None:
    """The name and postal address of a patient whose notice goes by letter: unsafe, it
    skips the access policy. The notice job reads them under its guard rule (the
    patient's notice is set for a letter), for the mail house's list only."""
    patient = session.get(Patient, patient_id)
    if patient is None:
        return None
    address = patient.address or {}
    return [
        patient.given_names or "",
        patient.family_name or "",
        *(str(address.get(k, "")) for k in ("line1", "line2", "postal_code", "city", "country")),
    ]


def _incident(session: Session, named: str) -> Incident:
    found = session.scalars(
        select(Incident).where(
            (Incident.reference == named) | (Incident.id == _uuid_or_none(named))
        )
    ).first()
    if found is None:
        raise fail(f"no incident {named}")
    return found


def _uuid_or_none(text: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(text)
    except ValueError:
        return None


def drill(
    workdir: Path = typer.Option(
        None,
        "--workdir",
        help="Where to make the drill's deployment (new; default: a temporary folder).",
    ),
    patients: int = typer.Option(60, "--patients", min=5, max=100_000, help="Demo patients."),
    json_out: Path | None = typer.Option(None, "--json", help="Also write the report as JSON."),
) -> None:
    """Run the MédecinDirect scenario against a fresh demo deployment of its own: what
    a copy of the data folder reveals, what stolen sessions get before containment, and
    the response (incident, scope, severity, Art. 34 decision, dossier, notices)."""
    import tempfile

    from hippocrate.breach import drill as drilling

    if workdir is None:
        workdir = Path(tempfile.mkdtemp(prefix="hippocrate-drill-")) / "deployment"
    elif workdir.exists():
        raise fail(f"{workdir} already exists; the drill makes a deployment of its own")
    with Bar(
        "drill",
        unit="steps",
        interrupted=lambda done: (
            f"stopped after {done} steps; the drill's deployment in {workdir} is of no use "
            "(delete it); run 'hippocrate drill' again for a new one"
        ),
    ) as bar:
        report = drilling.run(workdir, patients=patients, start=bar.set_total, progress=bar.advance)
    typer.echo(report.text(), nl=False)
    if json_out is not None:
        drilling.write_json(report, json_out)
        typer.echo(f"report: {json_out}")
    # The deployment this command is configured for keeps its last drill for the DPO's
    # page (/dpo/drill), if it has a data folder.
    from hippocrate.breach.pages import DRILL_REPORT

    data_dir = settings().data_dir
    if data_dir.is_dir():
        drilling.write_json(report, data_dir / DRILL_REPORT)
        typer.echo(f"report kept for the DPO's page: {data_dir / DRILL_REPORT}")
