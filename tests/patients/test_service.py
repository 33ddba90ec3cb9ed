"""Creating and finding patients: validation, duplicates, blind index collisions, and
nothing half-written when a step fails."""

from __future__ import annotations

import uuid

import pytest
from pydantic import ValidationError
from sqlalchemy import func, select

from hippocrate.identifiers import normalise_email, normalise_nir, normalise_phone
from hippocrate.keyring.models import DataKeyRecord
from hippocrate.patients.errors import DuplicatePatient, InconsistentIdentity, PatientNotFound
from hippocrate.patients.models import Patient
from hippocrate.patients.schemas import PatientCreate
from hippocrate.patients.service import create_patient, to_read, unsafe_find_by, unsafe_get_patient
from hippocrate.patients.synthetic import SyntheticPatients
from hippocrate.vault import blind_index
from tests.conftest import Store


def counts(store: Store) -> tuple[int, int]:
    with store.sessions() as session:
        return (
            session.scalar(select(func.count()).select_from(Patient)) or 0,
            session.scalar(select(func.count()).select_from(DataKeyRecord)) or 0,
        )


def test_create_and_read_back(sqlite_store: Store) -> None:
    data = SyntheticPatients(seed=3).patient()
    with sqlite_store.sessions.begin() as session:
        patient_id = create_patient(session=session, data=data).id
    sqlite_store.sessions.vault.forget_all()
    with sqlite_store.sessions() as session:
        read = to_read(unsafe_get_patient(session=session, patient_id=patient_id))
    assert read.model_dump(exclude={"id", "created_at", "nir_masked"}) == data.model_dump(
        exclude={"nir"}
    )
    assert data.nir is not None
    assert read.nir_masked is not None
    assert data.nir[1:13] not in read.nir_masked.replace(" ", "")


def test_find_by_email_phone_and_nir_in_any_writing(sqlite_store: Store) -> None:
    generator = SyntheticPatients(seed=4)
    with sqlite_store.sessions.begin() as session:
        people = [create_patient(session=session, data=generator.patient()) for _ in range(10)]
        target = people[3]
        assert target.nir is not None
        national = "0" + (target.phone or "").removeprefix("+33")
        spaced_nir = " ".join([target.nir[0], target.nir[1:3], target.nir[3:5], target.nir[5:]])
        email = normalise_email("  " + (target.email or "").upper() + " ")
        assert [p.id for p in unsafe_find_by(session=session, field="email", value=email)] == [
            target.id
        ]
        phone = normalise_phone(national)
        assert [p.id for p in unsafe_find_by(session=session, field="phone", value=phone)] == [
            target.id
        ]
        nir = normalise_nir(spaced_nir.lower())
        assert [p.id for p in unsafe_find_by(session=session, field="nir", value=nir)] == [
            target.id
        ]
        assert unsafe_find_by(session=session, field="email", value="nobody@example.fr") == []


def test_blind_index_collisions_are_confirmed_by_decryption(
    sqlite_store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    # With a 1-bit index every lookup has many candidates: decryption picks the right one.
    monkeypatch.setitem(blind_index.BITS, "email", 1)
    generator = SyntheticPatients(seed=5)
    with sqlite_store.sessions.begin() as session:
        people = [create_patient(session=session, data=generator.patient()) for _ in range(12)]
    with sqlite_store.sessions() as session:
        indexes = {p.email_index for p in session.scalars(select(Patient))}
        assert indexes <= {0, 1}
        for person in people:
            found = unsafe_find_by(session=session, field="email", value=person.email or "")
            assert [p.id for p in found] == [person.id]


def test_duplicate_email_or_nir_is_refused_and_nothing_is_written(sqlite_store: Store) -> None:
    generator = SyntheticPatients(seed=6)
    first = generator.patient()
    with sqlite_store.sessions.begin() as session:
        create_patient(session=session, data=first)
    before = counts(sqlite_store)
    same_email = generator.patient().model_copy(update={"email": first.email.upper()})
    same_email = PatientCreate.model_validate(same_email.model_dump())
    with pytest.raises(DuplicatePatient, match="email"), sqlite_store.sessions.begin() as session:
        create_patient(session=session, data=same_email)
    other = generator.patient()
    same_nir = PatientCreate.model_validate(
        first.model_dump() | {"email": other.email, "phone": other.phone}
    )
    with pytest.raises(DuplicatePatient, match="NIR"), sqlite_store.sessions.begin() as session:
        create_patient(session=session, data=same_nir)
    assert counts(sqlite_store) == before


def test_nir_that_contradicts_sex_or_birth_date_is_refused(sqlite_store: Store) -> None:
    data = SyntheticPatients(seed=8).patient()
    assert data.nir is not None
    wrong_sex = "M" if data.sex == "F" else "F"
    liar = PatientCreate.model_validate(data.model_dump() | {"sex": wrong_sex})
    with pytest.raises(InconsistentIdentity), sqlite_store.sessions.begin() as session:
        create_patient(session=session, data=liar)
    assert counts(sqlite_store) == (0, 0)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("nir", "1 85 05 78 006 084 36", "key"),
        ("nir", "12345", "15"),
        ("phone", "01 23", "phone"),
        ("email", "jean@", "email"),
        ("birth_date", "2999-01-01", "future"),
        ("sex", "Q", "'F', 'M' or 'X'"),
        ("shoe_size", "44", "Extra inputs are not permitted"),
    ],
)
def test_invalid_input_is_refused_with_a_clear_message(
    field: str, value: str, message: str
) -> None:
    data = SyntheticPatients(seed=9).patient().model_dump() | {field: value}
    with pytest.raises(ValidationError) as caught:
        PatientCreate.model_validate(data)
    assert message.lower() in str(caught.value).lower()


def test_unknown_patient(sqlite_store: Store) -> None:
    with sqlite_store.sessions() as session, pytest.raises(PatientNotFound):
        unsafe_get_patient(session=session, patient_id=uuid.uuid4())
