"""A patient deletes their account: their data key is destroyed, so nothing of theirs
decrypts any more, in the database or in the blob folder, not even from a copy taken
before; only plaintext metadata stays."""

from __future__ import annotations

import shutil
import uuid

import pytest
from sqlalchemy import select

from hippocrate.consultations.models import Attachment, CareRelationship, Consultation, Message
from hippocrate.consultations.service import open_body
from hippocrate.identity import passwords
from hippocrate.identity.models import Account, AccountStatus, AuthSession
from hippocrate.keyring.models import DataKeyRecord, KeyState
from hippocrate.patients.models import Patient, PatientStatus
from hippocrate.vault import KeyDestroyed
from tests.consultations.helpers import Actor, Api, assert_problem, jpeg_bytes, pdf_bytes
from tests.identity.helpers import fast_password_hashing

PASSWORD = "heron-lantern-quietly-folds"


def _with_password(api: Api, actor: Actor) -> dict[str, str]:
    """Give ``actor``'s account a password; the body that deleting it asks for."""
    with fast_password_hashing(), api.store.sessions.begin() as session:
        account = session.get(Account, actor.account_id)
        assert account is not None
        account.password_hash = passwords.hash_password(PASSWORD)
    return {"password": PASSWORD}


def test_deleting_the_account_shreds_everything(api: Api) -> None:
    patient = api.patient()
    gp = api.practitioner()
    opened = api.open(
        patient, files=[("bilan.pdf", pdf_bytes("Bilan hepatique"), "application/pdf")]
    )
    waiting = api.open(patient, subject="Une autre question")
    api.take(gp)
    api.write(patient, opened["id"], "Photo", files=[("photo.jpg", jpeg_bytes(), "image/jpeg")])
    backup = api.blob_dir.parent / "blobs-backup"
    shutil.copytree(api.blob_dir, backup)  # a copy of the blob folder, taken before
    stored = sorted(p.name for p in backup.rglob("*") if p.is_file())
    assert len(stored) == 2

    body = _with_password(api, patient)
    response = api.client.request(
        "DELETE", "/api/v1/patients/me", headers=patient.headers, json=body
    )

    assert response.status_code == 204, response.text
    # Signed out everywhere; the practitioner loses the record at once.
    assert_problem(api.client.get("/api/v1/patients/me", headers=patient.headers), 401)
    assert_problem(api.client.get(f"/api/v1/consultations/{opened['id']}", headers=gp.headers), 404)
    assert api.client.get("/api/v1/consultations", headers=gp.headers).json()["total"] == 0
    # The files are gone from the blob folder...
    assert [p for p in api.blob_dir.rglob("*") if p.is_file()] == []

    api.store.sessions.vault.forget_all()
    with api.store.sessions() as session:
        patient_row = session.get(Patient, patient.patient_id)
        assert patient_row is not None
        assert patient_row.status is PatientStatus.SHREDDED
        assert (patient_row.email_index, patient_row.nir_index) == (None, None)
        account = session.get(Account, patient.account_id)
        assert account is not None
        assert account.status is AccountStatus.DELETED
        assert account.email_index is None
        keys = session.scalars(
            select(DataKeyRecord).where(DataKeyRecord.owner_id == patient.patient_id)
        ).all()
        assert keys
        assert all(k.state is KeyState.DESTROYED and k.wrapped is None for k in keys)
        sessions = session.scalars(
            select(AuthSession).where(AuthSession.account_id == patient.account_id)
        ).all()
        assert all(s.ended_at is not None for s in sessions)

        # ...and what was copied before does not decrypt, nor does anything in the database.
        attachments = session.scalars(select(Attachment)).all()
        assert sorted(str(a.id) for a in attachments) == stored
        for attachment in attachments:
            sealed = next(backup.rglob(str(attachment.id))).read_bytes()
            with pytest.raises(KeyDestroyed):
                open_body(session=session, attachment=attachment, sealed=sealed)
            with pytest.raises(KeyDestroyed):
                _ = attachment.filename
        for message in session.scalars(select(Message)).all():
            with pytest.raises(KeyDestroyed):
                _ = message.body
        for consultation in session.scalars(select(Consultation)).all():
            with pytest.raises(KeyDestroyed):
                _ = consultation.subject
        with pytest.raises(KeyDestroyed):
            _ = patient_row.family_name

        # What stays is metadata: ids, statuses, specialties, times.
        statuses = dict(session.execute(select(Consultation.id, Consultation.status)).all())
        assert {str(k): v.value for k, v in statuses.items()} == {
            opened["id"]: "cancelled",
            waiting["id"]: "cancelled",
        }
        care = session.scalars(select(CareRelationship)).all()
        assert [c.ends_at for c in care] == [api.clock.now]


def test_only_a_patient_deletes_their_own_account(api: Api) -> None:
    gp = api.practitioner()

    body = {"password": PASSWORD}
    assert_problem(
        api.client.request("DELETE", "/api/v1/patients/me", headers=gp.headers, json=body), 404
    )
    assert_problem(api.client.get("/api/v1/patients/me/export", headers=gp.headers), 404)
    assert (
        api.client.delete(f"/api/v1/patients/{uuid.uuid4()}", headers=gp.headers).status_code == 405
    )
