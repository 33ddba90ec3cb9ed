"""``hippocrate keys``: root key status, rotation and retirement, patient data key
rotation, re-sealing values of the unpadded sealed format 1, and sealing the health
metadata that rows written before revision 0008 hold in plaintext."""

from __future__ import annotations

import uuid

import typer
from sqlalchemy import select

from hippocrate.audit.recorder import Actor
from hippocrate.blobs import FileBlobStore
from hippocrate.cli.context import runtime
from hippocrate.cli.progress import Progress as Bar
from hippocrate.consultations.metadata import count_left, unsafe_seal_metadata
from hippocrate.consultations.service import unsafe_reseal_attachments
from hippocrate.keyring.errors import RetireRefused
from hippocrate.keyring.models import RootRotation
from hippocrate.keyring.reseal import Progress, count_v1, unsafe_reseal_v1
from hippocrate.keyring.rotation import (
    finish_data_key_rotation,
    key_versions,
    retire_root,
    rotate_data_key,
    rotate_root,
)
from hippocrate.patients.service import unsafe_get_patient
from hippocrate.tags import Purpose
from hippocrate.work import Units

app = typer.Typer(help="Root keys and data keys.", no_args_is_help=True)


@app.command("status")
def status() -> None:
    """Show the key provider, its root key versions and what each one wraps."""
    with runtime() as rt:
        provider = rt.sessions.vault.provider
        with rt.sessions() as session:
            counts = key_versions(session=session)
            unfinished = session.scalars(
                select(RootRotation).where(RootRotation.finished_at.is_(None))
            ).first()
        typer.echo(f"provider: {provider.name}")
        typer.echo(f"root key versions: {', '.join(map(str, provider.versions()))}")
        typer.echo(f"current root key version: {provider.current_version()}")
        for version in sorted(counts):
            typer.echo(f"data keys wrapped by root version {version}: {counts[version]}")
        if unfinished is not None:
            typer.echo(
                f"unfinished rotation to version {unfinished.target_version}: "
                "run 'hippocrate keys rotate' to finish it"
            )


@app.command("rotate")
def rotate(
    batch_size: int = typer.Option(500, min=1, max=100_000, help="Data keys per transaction."),
) -> None:
    """Rewrap every data key under a new root key version (resumes an interrupted one)."""
    with (
        runtime() as rt,
        Bar(
            "keys rotate",
            unit="data keys",
            interrupted=lambda done: (
                f"{done} data keys rewrapped and committed in whole batches, the batch "
                "under way rolled back; run 'hippocrate keys rotate' again to finish "
                "the rotation"
            ),
        ) as bar,
    ):
        report = rotate_root(
            sessions=rt.sessions,
            batch_size=batch_size,
            start=bar.set_total,
            progress=lambda done: bar.advance(done - bar.done),
        )
    verb = "resumed and finished" if report.resumed else "finished"
    typer.echo(
        f"rotation to root key version {report.target_version} {verb}: "
        f"{report.rewrapped} data keys rewrapped"
    )


@app.command("retire")
def retire(
    version: int = typer.Argument(..., min=1, help="The root key version to remove."),
) -> None:
    """Remove an old root key version from the key provider, for good.

    Refused while any live data key is wrapped under it, while a rotation is
    unfinished, or when it is the current version. Afterwards backups of the database
    made before the rotation can no longer be read, by anyone."""
    with runtime() as rt:
        try:
            retire_root(sessions=rt.sessions, version=version)
        except RetireRefused as exc:
            typer.echo(f"hippocrate: error: {exc}", err=True)
            raise typer.Exit(1) from None
        remaining = ", ".join(map(str, rt.sessions.vault.provider.versions()))
    typer.echo(f"root key version {version} retired; root key versions left: {remaining}")


@app.command("rotate-patient")
def rotate_patient(patient_id: uuid.UUID) -> None:
    """Give one patient a new data key and re-encrypt all their fields under it."""
    with runtime() as rt:
        # Key maintenance: every field is opened and sealed again, recorded as the
        # platform's (the trail names the purpose), nothing is shown.
        units = Units(rt, Actor(role="operator", purpose=Purpose.KEY_ROTATION))
        resume = (
            f"run 'hippocrate keys rotate-patient {patient_id}' again: until it finishes, "
            "the patient's old and new data keys both open their values"
        )
        with Bar(
            "keys rotate-patient",
            unit="rows",
            interrupted=lambda done: f"the step under way rolled back whole; {resume}",
        ) as bar:
            with units.begin() as session:
                unsafe_get_patient(session=session, patient_id=patient_id)
                count = rotate_data_key(
                    session=session, owner=patient_id, start=bar.set_total, progress=bar.advance
                )
            store = FileBlobStore(rt.settings.blob_dir)
            files = finish_data_key_rotation(
                sessions=units,
                owner=patient_id,
                resealers=[lambda session, owner: unsafe_reseal_attachments(session, store, owner)],
            )
    typer.echo(f"patient {patient_id}: {files} attachment files re-encrypted")
    typer.echo(f"patient {patient_id}: {count} fields re-encrypted under a new data key")


@app.command("reseal")
def reseal(
    batch_size: int = typer.Option(200, min=1, max=100_000, help="Rows per transaction."),
) -> None:
    """Re-seal every value still in sealed format 1 (unpadded: its length gives away the
    plaintext's) in format 2, padded to its field's buckets; then seal the health
    metadata older rows hold in plaintext (a consultation's specialty and exact times
    once out of the queue, messages' times, files' exact sizes). Resumable: a rerun only
    touches what is left; every value opens meanwhile."""
    with runtime() as rt:
        # Key maintenance: every value is opened and sealed again, recorded as the
        # platform's (the trail names the purpose), nothing is shown.
        units = Units(rt, Actor(role="operator", purpose=Purpose.KEY_ROTATION))
        left = count_v1(sessions=units)
        typer.echo(f"rows holding format 1 values: {sum(left.values())}")
        for table, count in sorted(left.items()):
            typer.echo(f"  {table}: {count}")

        def show(step: Progress) -> None:
            typer.echo(f"{step.table}: {step.rows} rows, {step.resealed} values re-sealed so far")

        report = unsafe_reseal_v1(sessions=units, batch_size=batch_size, progress=show)
        typer.echo(f"re-sealed {report.resealed} values in {report.rows} rows in format 2")
        if report.unopenable:
            typer.echo(
                f"left {report.unopenable} format 1 values whose data key is destroyed "
                "(shredded: nobody can open them)"
            )

        left = count_left(sessions=units)
        typer.echo(f"rows holding plaintext health metadata: {sum(left.values())}")
        for table, count in sorted(left.items()):
            typer.echo(f"  {table}: {count}")

        def moved(table: str, rows: int) -> None:
            typer.echo(f"{table}: {rows} more rows without plaintext metadata")

        metadata = unsafe_seal_metadata(sessions=units, batch_size=batch_size, progress=moved)
    typer.echo(f"sealed the plaintext metadata of {sum(metadata.sealed.values())} rows")
    if metadata.coarsened:
        typer.echo(
            f"coarsened {sum(metadata.coarsened.values())} rows of shredded patients "
            "(their keys are destroyed: nothing to seal, nothing anyone can read)"
        )
