"""Root key rotation rewraps data keys without touching data; data key rotation
re-encrypts one patient's fields; both leave every record readable."""

from __future__ import annotations

import uuid

from sqlalchemy import select

from hippocrate.db.engine import unsafe_unaudited_sessions
from hippocrate.keyring.models import DataKeyRecord, KeyState, RootRotation
from hippocrate.keyring.rotation import (
    finish_data_key_rotation,
    key_versions,
    rotate_data_key,
    rotate_root,
)
from hippocrate.keyring.service import KEYRING
from hippocrate.patients.models import Patient
from hippocrate.patients.schemas import PatientCreate
from hippocrate.patients.service import create_patient, to_read, unsafe_get_patient
from hippocrate.patients.synthetic import SyntheticPatients
from hippocrate.vault import Vault, peek_key_version
from hippocrate.vault.providers.file import FileKeyProvider
from tests.conftest import Store

SEALED_COLUMNS = [
    "given_names_sealed",
    "family_name_sealed",
    "birth_date_sealed",
    "email_sealed",
    "phone_sealed",
    "address_sealed",
    "nir_sealed",
]


def make_patients(store: Store, count: int, seed: int = 1) -> dict[uuid.UUID, PatientCreate]:
    generator = SyntheticPatients(seed=seed)
    made = {}
    with store.sessions.begin() as session:
        for _ in range(count):
            data = generator.patient()
            made[create_patient(session=session, data=data).id] = data
    return made


def sealed_bytes(store: Store) -> dict[uuid.UUID, tuple[bytes | None, ...]]:
    with store.sessions() as session:
        rows = session.scalars(select(Patient)).all()
        return {p.id: tuple(getattr(p, c) for c in SEALED_COLUMNS) for p in rows}


def assert_all_readable(store: Store, made: dict[uuid.UUID, PatientCreate]) -> None:
    """Read everything back with a vault that has never seen these keys."""
    fresh = Vault(FileKeyProvider(store.sessions.vault.provider._path))  # type: ignore[attr-defined]
    sessions = unsafe_unaudited_sessions(
        store.engine, fresh, KEYRING, why="reads back with a fresh vault"
    )
    with sessions() as session:
        for patient_id, data in made.items():
            read = to_read(unsafe_get_patient(session=session, patient_id=patient_id))
            assert (read.given_names, read.family_name, read.email, read.phone) == (
                data.given_names,
                data.family_name,
                data.email,
                data.phone,
            )
            assert unsafe_get_patient(session=session, patient_id=patient_id).nir == data.nir


def test_root_rotation_rewraps_every_key_and_leaves_data_untouched(store: Store) -> None:
    made = make_patients(store, 30)
    before = sealed_bytes(store)
    with store.sessions() as session:
        wrapped_before = {r.owner_id: r.wrapped for r in session.scalars(select(DataKeyRecord))}

    report = rotate_root(sessions=store.sessions, batch_size=7)

    assert (report.target_version, report.rewrapped, report.resumed) == (2, 30, False)
    assert sealed_bytes(store) == before  # no field was re-encrypted
    with store.sessions() as session:
        records = session.scalars(select(DataKeyRecord)).all()
        assert {r.root_version for r in records} == {2}
        assert all(r.wrapped != wrapped_before[r.owner_id] for r in records)
        assert key_versions(session=session) == {2: 30}
        rotation = session.scalars(select(RootRotation)).one()
        assert rotation.finished_at is not None
        assert rotation.rewrapped == 30
    assert_all_readable(store, made)

    # A second rotation goes to version 3; new patients get the newest root version.
    more = make_patients(store, 3, seed=2)
    assert rotate_root(sessions=store.sessions).target_version == 3
    assert_all_readable(store, made | more)


def test_data_key_rotation_reencrypts_one_patient(store: Store) -> None:
    made = make_patients(store, 3)
    target, *others = list(made)
    before = sealed_bytes(store)

    with store.sessions.begin() as session:
        resealed = rotate_data_key(session=session, owner=target)
    with store.sessions() as session:  # until finished, both versions are kept
        states = {r.version: r.state for r in session.scalars(select(DataKeyRecord))
                  if r.owner_id == target}  # fmt: skip
    assert states == {1: KeyState.RETIRED, 2: KeyState.ACTIVE}
    finish_data_key_rotation(sessions=store.sessions, owner=target)

    assert resealed == len(SEALED_COLUMNS) + 1  # every field, sex included
    after = sealed_bytes(store)
    assert all(a != b for a, b in zip(after[target], before[target], strict=True))
    assert all(peek_key_version(blob) == 2 for blob in after[target] if blob is not None)
    assert all(after[o] == before[o] for o in others)
    with store.sessions() as session:
        versions = {
            r.version: (r.state, r.wrapped is None)
            for r in session.scalars(select(DataKeyRecord).where(DataKeyRecord.owner_id == target))
        }
    assert versions == {1: (KeyState.DESTROYED, True), 2: (KeyState.ACTIVE, False)}
    assert_all_readable(store, made)
    # The blind indexes still find the patient.
    from hippocrate.patients.service import unsafe_find_by

    with store.sessions() as session:
        assert [
            p.id for p in unsafe_find_by(session=session, field="email", value=made[target].email)
        ] == [target]
