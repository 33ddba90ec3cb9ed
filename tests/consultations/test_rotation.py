"""A patient's data key rotation re-encrypts their attachment files too, and the old
key is destroyed only once every file is re-sealed."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select

from hippocrate.blobs import FileBlobStore
from hippocrate.consultations.models import Attachment
from hippocrate.consultations.schemas import ConsultationCreate
from hippocrate.consultations.service import open_body, open_consultation, unsafe_reseal_attachments
from hippocrate.consultations.uploads import UploadedFile
from hippocrate.keyring.models import DataKeyRecord, KeyState
from hippocrate.keyring.rotation import finish_data_key_rotation, rotate_data_key
from hippocrate.vault import peek_key_version
from tests.conftest import Store
from tests.consultations.helpers import (
    T0,
    new_patient,
    pdf_bytes,
    png_bytes,
    settings_for,
    stored_as,
)

ANSWERS = {
    "symptoms_duration": "1_to_3_days",
    "current_treatments": "aucun",
    "allergies": "aucune",
    "pregnancy": "not_applicable",
}


def test_rotation_reseals_attachment_files(sqlite_store: Store, tmp_path: Path) -> None:
    settings = settings_for(tmp_path, sqlite_store)
    blobs = FileBlobStore(settings.blob_dir)
    patient = new_patient(sqlite_store, settings, seed=41)
    files = [
        UploadedFile("analyses.pdf", "application/pdf", pdf_bytes("Glycemie 1,32 g/L")),
        UploadedFile("eruption.png", "image/png", png_bytes("plaque")),
    ]
    with sqlite_store.sessions.begin() as session:
        open_consultation(
            session=session,
            settings=settings,
            blobs=blobs,
            principal=patient.principal,
            data=ConsultationCreate(
                specialty="dermatology",
                subject="Plaques rouges",
                description="Depuis deux jours.",
                questionnaire=ANSWERS,
            ),
            files=files,
            now=T0,
        )
    owner = patient.patient_id
    assert owner is not None
    with sqlite_store.sessions() as session:
        ids = [a.id for a in session.scalars(select(Attachment))]
    before = {i: blobs.get(i) for i in ids}
    assert {peek_key_version(b) for b in before.values()} == {1}

    with sqlite_store.sessions.begin() as session:
        rotate_data_key(session=session, owner=owner)
    resealed = finish_data_key_rotation(
        sessions=sqlite_store.sessions,
        owner=owner,
        resealers=[lambda session, who: unsafe_reseal_attachments(session, blobs, who)],
    )

    assert resealed == 2
    after = {i: blobs.get(i) for i in ids}
    assert all(after[i] != before[i] and peek_key_version(after[i]) == 2 for i in ids)
    sqlite_store.sessions.vault.forget_all()
    with sqlite_store.sessions() as session:
        states = {
            r.version: r.state
            for r in session.scalars(select(DataKeyRecord).where(DataKeyRecord.owner_id == owner))
        }
        bodies = sorted(
            open_body(session=session, attachment=a, sealed=after[a.id])
            for a in session.scalars(select(Attachment))
        )
    assert states == {1: KeyState.DESTROYED, 2: KeyState.ACTIVE}
    assert bodies == sorted(stored_as(f.filename or "", f.content) for f in files)
