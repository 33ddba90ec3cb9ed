"""Operations on patients. Keyword-only arguments; nothing here commits."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from hippocrate.identifiers import nir_matches_identity
from hippocrate.keyring.service import destroy_keys, vault_of
from hippocrate.patients.errors import (
    DuplicatePatient,
    InconsistentIdentity,
    PatientNotFound,
    PatientShredded,
)
from hippocrate.patients.models import Patient, PatientStatus
from hippocrate.patients.schemas import Address, PatientCreate, PatientRead

_INDEXED = {"email": Patient.email_index, "phone": Patient.phone_index, "nir": Patient.nir_index}


def create_patient(*, session: Session, data: PatientCreate) -> Patient:
    """Register a patient; every field is sealed at flush. Raises ``DuplicatePatient``
    if the email or NIR is already registered, ``InconsistentIdentity`` if the NIR
    contradicts the sex or birth date."""
    if (
        data.nir
        and data.sex in ("F", "M")
        and not nir_matches_identity(
            data.nir,
            sex=data.sex,
            birth_year=data.birth_date.year,
            birth_month=data.birth_date.month,
        )
    ):
        raise InconsistentIdentity("the NIR does not match the sex and birth date given")
    if find_by(session=session, field="email", value=data.email):
        raise DuplicatePatient("email")
    if data.nir and find_by(session=session, field="nir", value=data.nir):
        raise DuplicatePatient("NIR")
    patient = Patient(id=uuid.uuid4(), status=PatientStatus.ACTIVE)
    patient.given_names = data.given_names
    patient.family_name = data.family_name
    patient.birth_date = data.birth_date
    patient.sex = data.sex
    patient.email = data.email
    patient.phone = data.phone
    patient.address = data.address.model_dump()
    patient.nir = data.nir
    session.add(patient)
    session.flush()
    return patient


def find_by(*, session: Session, field: str, value: str) -> Sequence[Patient]:
    """Patients whose ``field`` (email, phone or NIR) equals the normalised ``value``.

    The blind index narrows the candidates; each is confirmed by decryption, so a
    truncated-index collision never returns the wrong patient.
    """
    column = _INDEXED[field]
    index = vault_of(session).blind_index(field, value)
    candidates = session.scalars(
        select(Patient).where(column == index, Patient.status == PatientStatus.ACTIVE)
    ).all()
    return [p for p in candidates if getattr(p, field) == value]


def get_patient(*, session: Session, patient_id: uuid.UUID) -> Patient:
    patient = session.get(Patient, patient_id)
    if patient is None:
        raise PatientNotFound()
    if patient.status is PatientStatus.SHREDDED:
        raise PatientShredded()
    return patient


def to_read(patient: Patient) -> PatientRead:
    """Open every field of ``patient`` into the shape shown to an allowed reader."""
    address = patient.address
    return PatientRead(
        id=patient.id,
        given_names=patient.given_names or "",
        family_name=patient.family_name or "",
        birth_date=patient.birth_date,
        sex=patient.sex,
        email=patient.email or "",
        phone=patient.phone or "",
        address=Address.model_validate(address),
        nir_masked=PatientRead.mask(patient.nir),
        created_at=patient.created_at,
    )


def shred_patient(*, session: Session, patient_id: uuid.UUID) -> None:
    """Crypto-shred a patient: destroy their data keys and clear the blind indexes; the
    ciphertext stays, unreadable.

    Once committed nothing of theirs can be decrypted again, by anyone, from this
    database or any copy of it whose root key versions are retired.
    """
    patient = session.get(Patient, patient_id)
    if patient is None:
        raise PatientNotFound()
    destroy_keys(session=session, owner=patient.id)
    patient.status = PatientStatus.SHREDDED
    patient.email_index = patient.phone_index = patient.nir_index = None
