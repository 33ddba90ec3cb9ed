"""``hippocrate patients``: operations on one patient from the command line.

Reading a patient's record is a break-glass: the operator states why (``--reason``),
the grant is shown to the patient with that reason, the read is recorded in the trail
and checked by the guard like any staff member's (a honeytoken contains the operator).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import typer

from hippocrate.access.errors import NotFound
from hippocrate.audit.recorder import recorder_of
from hippocrate.cli.context import fail, operator_principal, operator_work, runtime
from hippocrate.patients.errors import PatientNotFound, PatientShredded
from hippocrate.patients.service import grant_break_glass, readable_record, shred_patient, to_read
from hippocrate.tags import Tag

app = typer.Typer(help="Patients.", no_args_is_help=True)

#: How long the grant of one ``patients show`` lasts (the command reads once).
SHOW_GRANT_MINUTES = 5


@app.command("show")
def show(
    patient_id: uuid.UUID,
    reason: str = typer.Option(
        ..., "--reason", help="Why you read this record (the patient reads it)."
    ),
) -> None:
    """Print one patient's record as JSON (NIR masked), under a break-glass grant."""
    if len(reason.strip()) < 10:
        raise fail("give a reason of at least 10 characters; the patient will read it")
    principal = operator_principal()
    now = datetime.now(UTC)
    with runtime() as rt:
        try:
            with operator_work(rt, principal) as session:
                grant_break_glass(
                    session=session,
                    principal=principal,
                    patient_id=patient_id,
                    reason=reason.strip(),
                    minutes=SHOW_GRANT_MINUTES,
                    now=now,
                    settings=rt.settings,
                )
                patient = readable_record(
                    session=session, principal=principal, patient_id=patient_id, now=now
                )
                record = to_read(patient)
        except NotFound:
            raise fail(f"no such patient {patient_id}") from None
        except PatientShredded:
            raise fail(f"patient {patient_id} is erased: nothing of theirs opens") from None
    typer.echo(record.model_dump_json(indent=2))


@app.command("shred")
def shred(
    patient_id: uuid.UUID,
    yes: bool = typer.Option(False, "--yes", help="Confirm: this cannot be undone."),
) -> None:
    """Crypto-shred a patient: destroy their data key; nothing of theirs opens again."""
    if not yes:
        raise fail("shredding cannot be undone; add --yes to confirm")
    principal = operator_principal()
    with runtime() as rt:
        try:
            with operator_work(rt, principal) as session:
                shred_patient(session=session, patient_id=patient_id)
                recorder = recorder_of(session)
                assert recorder is not None
                recorder.event(Tag.PATIENT_RECORD_SHREDDED, patient=patient_id)
        except PatientNotFound:
            raise fail(f"no such patient {patient_id}") from None
    typer.echo(f"patient {patient_id}: data key destroyed, data unreadable")
