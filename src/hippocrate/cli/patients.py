"""``hippocrate patients``: operations on one patient from the command line."""

from __future__ import annotations

import uuid

import typer

from hippocrate.cli.context import runtime
from hippocrate.patients.service import get_patient, shred_patient, to_read

app = typer.Typer(help="Patients.", no_args_is_help=True)


@app.command("show")
def show(patient_id: uuid.UUID) -> None:
    """Print one patient's record as JSON (NIR masked)."""
    with runtime() as rt, rt.sessions.begin() as session:
        record = to_read(get_patient(session=session, patient_id=patient_id))
    typer.echo(record.model_dump_json(indent=2))


@app.command("shred")
def shred(
    patient_id: uuid.UUID,
    yes: bool = typer.Option(False, "--yes", help="Confirm: this cannot be undone."),
) -> None:
    """Crypto-shred a patient: destroy their data key; nothing of theirs opens again."""
    if not yes:
        typer.echo("hippocrate: error: shredding cannot be undone; add --yes to confirm", err=True)
        raise typer.Exit(1)
    with runtime() as rt, rt.sessions.begin() as session:
        shred_patient(session=session, patient_id=patient_id)
    typer.echo(f"patient {patient_id}: data key destroyed, data unreadable")
