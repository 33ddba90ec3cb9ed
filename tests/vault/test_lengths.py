"""A copy of the database does not tell people apart by the lengths of their values.

Two patients whose names, emails, phones and addresses differ in length, but fall in
the same bucket of each field, are written; the lengths of the raw sealed columns, as
SQL sees them in SQLite and in PostgreSQL, are then identical. The same pair sealed in
format 1 (unpadded, as before) differs in every one of those columns: the test can fail.
"""

from __future__ import annotations

import uuid
from datetime import date

import pytest
from sqlalchemy import func, select

from hippocrate.db import sealed as sealed_module
from hippocrate.patients.models import Patient
from hippocrate.patients.schemas import Address, PatientCreate
from hippocrate.patients.service import create_patient, to_read, unsafe_get_patient
from hippocrate.vault import DataKey, FieldContext, Padding
from hippocrate.vault.fields import OVERHEAD, seal_v1
from tests.conftest import Store

SHORT = PatientCreate(
    given_names="Li",
    family_name="Wu",
    birth_date=date(1990, 1, 2),
    sex="F",
    email="li.wu@example.fr",
    phone="06 12 34 56 78",
    address=Address(line1="1 rue A", postal_code="75001", city="Paris"),
    nir="290017511234558",
)
LONG = PatientCreate(
    given_names="Marie-Thérèse Anne-Sophie",
    family_name="Delacroix-Montfort de la Tour",
    birth_date=date(1948, 11, 30),
    sex="F",
    email="marie-therese.delacroix-montfort.1948@example.fr",
    phone="+44 7911 123456",
    address=Address(
        line1="127 boulevard du Général Leclerc",
        line2="Résidence Les Jardins, bâtiment C",
        postal_code="92200",
        city="Neuilly-sur-Seine",
    ),
    nir="248119220012378",
)
#: Column, and the bucket its values fall in for both patients.
BUCKETS = {
    "given_names_sealed": 64,
    "family_name_sealed": 64,
    "email_sealed": 128,
    "phone_sealed": 32,
    "address_sealed": 256,
    "nir_sealed": 32,
    "birth_date_sealed": 16,
}


def column_lengths(store: Store, patient_id: uuid.UUID) -> dict[str, int]:
    """The byte lengths of a patient's sealed columns, as the database reports them."""
    lengths = [func.length(getattr(Patient, column)) for column in BUCKETS]
    with store.sessions() as session:
        row = session.execute(select(*lengths).where(Patient.id == patient_id)).one()
    return dict(zip(BUCKETS, map(int, row), strict=True))


def write(store: Store, *patients: PatientCreate) -> list[uuid.UUID]:
    with store.sessions.begin() as session:
        return [create_patient(session=session, data=data).id for data in patients]


def test_values_of_one_bucket_have_one_length(store: Store) -> None:
    assert len(SHORT.email) != len(LONG.email)
    assert len(SHORT.phone) != len(LONG.phone)
    short, long = write(store, SHORT, LONG)

    expected = {column: OVERHEAD + bucket for column, bucket in BUCKETS.items()}
    assert column_lengths(store, short) == expected
    assert column_lengths(store, long) == expected

    store.sessions.vault.forget_all()
    with store.sessions() as session:
        for patient_id, data in ((short, SHORT), (long, LONG)):
            read = to_read(unsafe_get_patient(session=session, patient_id=patient_id))
            assert (read.given_names, read.family_name, read.email, read.phone) == (
                data.given_names,
                data.family_name,
                data.email,
                data.phone,
            )
            assert read.address == data.address


def test_format_1_lengths_told_them_apart(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    """The control: sealed unpadded, the same pair differs in every column but the
    fixed-length ones (NIR, birth date)."""

    def v1(key: DataKey, plaintext: bytes, context: FieldContext, padding: Padding) -> bytes:
        return seal_v1(key, plaintext, context)

    monkeypatch.setattr(sealed_module, "seal_field", v1)
    short, long = write(store, SHORT, LONG)
    a, b = column_lengths(store, short), column_lengths(store, long)
    differing = {column for column in BUCKETS if a[column] != b[column]}
    assert differing == set(BUCKETS) - {"nir_sealed", "birth_date_sealed"}
    assert a["family_name_sealed"] == OVERHEAD + len(b"Wu")
