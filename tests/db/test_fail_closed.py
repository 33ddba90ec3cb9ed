"""The store fails closed: nothing sealed opens outside an audited, guarded unit of work.

A new entry point (a page, a job, a worker) that opens a plain session from the
runtime's factory, as a developer in a hurry would, gets an error, not plaintext; the
one that uses ``hippocrate.work.unit_of_work`` is recorded and checked by the guard.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from sqlalchemy import func, select

from hippocrate.audit.models import AuditEvent
from hippocrate.audit.recorder import Actor
from hippocrate.blobs import FileBlobStore
from hippocrate.config import Settings
from hippocrate.consultations.models import Attachment
from hippocrate.consultations.service import open_body
from hippocrate.db.engine import SessionFactory
from hippocrate.db.sealed import UnauditedAccess
from hippocrate.guard.errors import Contained
from hippocrate.guard.honeytokens import plant
from hippocrate.keyring.service import KEYRING
from hippocrate.patients.models import Patient
from hippocrate.patients.service import create_patient
from hippocrate.runtime import Runtime
from hippocrate.work import unit_of_work
from tests.conftest import Store
from tests.consultations.helpers import png_bytes, running_api
from tests.identity.helpers import patient_data


def real_runtime(store: Store, tmp_path: Path) -> Runtime:
    """The runtime an entry point gets: its session factory attaches nothing."""
    settings = Settings(data_dir=tmp_path / "var", database_url=store.url)
    return Runtime(settings, SessionFactory(store.engine, store.sessions.vault, KEYRING))


def events(store: Store) -> int:
    with store.sessions() as session:
        return int(session.scalar(select(func.count()).select_from(AuditEvent)) or 0)


def test_a_bare_session_opens_no_sealed_field_and_seals_none(store: Store, tmp_path: Path) -> None:
    with store.sessions.begin() as session:
        patient_id = create_patient(session=session, data=patient_data()).id
    runtime = real_runtime(store, tmp_path)
    before = events(store)

    with runtime.sessions() as session:
        patient = session.get(Patient, patient_id)
        assert patient is not None
        assert patient.family_name_sealed  # the ciphertext is there...
        with pytest.raises(UnauditedAccess, match="records no access"):
            _ = patient.family_name  # ...and does not open
        with pytest.raises(UnauditedAccess):
            _ = patient.email

    # Writing is refused too: an unrecorded write would be as invisible as a read.
    with pytest.raises(UnauditedAccess), runtime.sessions.begin() as session:
        create_patient(session=session, data=patient_data(email="autre@example.org"))
    with store.sessions() as session:
        assert session.scalar(select(func.count()).select_from(Patient)) == 1
    assert events(store) == before  # and nothing was read, so nothing to record


def test_a_bare_session_opens_no_attachment_body(store: Store, tmp_path: Path) -> None:
    with running_api(store, tmp_path) as api:
        patient = api.patient()
        api.open(patient, files=[("photo.png", png_bytes(), "image/png")])
        blobs = FileBlobStore(api.blob_dir)
    runtime = real_runtime(store, tmp_path)
    with runtime.sessions() as session:
        attachment = session.scalars(select(Attachment)).one()
        sealed = blobs.get(attachment.id)
        with pytest.raises(UnauditedAccess, match="attachment"):
            open_body(session=session, attachment=attachment, sealed=sealed)


def test_the_unit_of_work_records_and_guards_every_read(store: Store, tmp_path: Path) -> None:
    runtime = real_runtime(store, tmp_path)
    assert runtime.guard is not None
    job = Actor(role="practitioner", account_id=uuid.uuid4(), purpose="care")
    with unit_of_work(runtime, Actor(role="operator", purpose="setup")) as session:
        real = create_patient(session=session, data=patient_data()).id
        plant(session=session, guard=runtime.guard, count=1)
    decoy = next(p for p in all_patients(store) if p != real)

    # A read through the helper is in the trail, named after its actor.
    with unit_of_work(runtime, job) as session:
        patient = session.get(Patient, real)
        assert patient is not None
        assert patient.family_name
    with store.sessions() as session:
        read = session.scalars(
            select(AuditEvent).where(
                AuditEvent.action == "patient:record:read",
                AuditEvent.actor_account_id == job.account_id,
            )
        ).one()
    assert (read.patient_id, read.actor_role, read.purpose) == (real, "practitioner", "care")

    # And checked by the guard before decryption: a honeytoken contains its reader,
    # whose next unit of work, in any process sharing the state, reads nothing.
    with pytest.raises(Contained), unit_of_work(runtime, job) as session:  # noqa: PT012
        decoy_row = session.get(Patient, decoy)
        assert decoy_row is not None
        _ = decoy_row.family_name
    other = real_runtime(store, tmp_path)  # a second process: its own runtime and guard
    assert other.guard is not None
    assert other.guard.state.contained(job.account_id) == "honeytoken"
    with pytest.raises(Contained), unit_of_work(other, job) as session:  # noqa: PT012
        again = session.get(Patient, real)
        assert again is not None
        _ = again.family_name


def all_patients(store: Store) -> list[uuid.UUID]:
    with store.sessions() as session:
        return list(session.scalars(select(Patient.id)))
