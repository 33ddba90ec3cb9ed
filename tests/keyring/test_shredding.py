"""Crypto-shredding: destroying a patient's data key makes every field of theirs
unreadable, for this process, for a fresh one, and for whoever holds the root key."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from hippocrate.db.engine import unsafe_unaudited_sessions
from hippocrate.keyring.models import DataKeyRecord, KeyState
from hippocrate.keyring.service import KEYRING
from hippocrate.patients.errors import PatientShredded
from hippocrate.patients.models import Patient
from hippocrate.patients.service import shred_patient, to_read, unsafe_find_by, unsafe_get_patient
from hippocrate.vault import DecryptionError, KeyDestroyed, Vault
from hippocrate.vault.providers.file import FileKeyProvider
from tests.conftest import Store
from tests.keyring.test_rotation import SEALED_COLUMNS, assert_all_readable, make_patients


def test_shredded_patient_is_unreadable_and_others_are_not(store: Store) -> None:
    made = make_patients(store, 3)
    victim, *others = list(made)
    with store.sessions() as session:
        to_read(unsafe_get_patient(session=session, patient_id=victim))  # warm the key cache

    with store.sessions.begin() as session:
        shred_patient(session=session, patient_id=victim)

    with store.sessions() as session:
        record = session.scalars(
            select(DataKeyRecord).where(DataKeyRecord.owner_id == victim)
        ).one()
        assert (record.state, record.wrapped) == (KeyState.DESTROYED, None)
        with pytest.raises(PatientShredded):
            unsafe_get_patient(session=session, patient_id=victim)
        # The ciphertext is still there, and no longer opens: not in this process (the
        # cached key was dropped)...
        patient = session.get(Patient, victim)
        assert patient is not None
        assert all(getattr(patient, column) is not None for column in SEALED_COLUMNS)
        for name in Patient.__sealed_fields__:
            with pytest.raises(KeyDestroyed):
                getattr(patient, name)
        # ...and the blind indexes no longer find the patient.
        assert unsafe_find_by(session=session, field="email", value=made[victim].email) == []

    # ...nor in a fresh process holding the root key.
    fresh = Vault(FileKeyProvider(store.sessions.vault.provider._path))  # type: ignore[attr-defined]
    with unsafe_unaudited_sessions(
        store.engine, fresh, KEYRING, why="reads back with a fresh vault"
    )() as session:
        patient = session.get(Patient, victim)
        assert patient is not None
        with pytest.raises(DecryptionError):
            _ = patient.family_name
    assert_all_readable(store, {o: made[o] for o in others})


def test_nothing_new_is_sealed_for_a_shredded_patient(store: Store) -> None:
    victim = next(iter(make_patients(store, 1)))
    with store.sessions.begin() as session:
        shred_patient(session=session, patient_id=victim)
    with store.sessions() as session:
        patient = session.get(Patient, victim)
        assert patient is not None
        patient.family_name = "Nouveau"
        with pytest.raises(KeyDestroyed):
            session.flush()


def test_shredded_key_bytes_leave_the_sqlite_file(sqlite_store: Store) -> None:
    """A copy of the file taken after shredding does not hold the wrapped key that a
    holder of the root key could still unwrap."""
    store = sqlite_store
    victim = next(iter(make_patients(store, 3)))
    with store.sessions() as session:
        wrapped = session.scalars(
            select(DataKeyRecord.wrapped).where(DataKeyRecord.owner_id == victim)
        ).one()
    assert wrapped is not None
    with store.sessions.begin() as session:
        shred_patient(session=session, patient_id=victim)
    store.engine.dispose()
    assert store.path is not None
    files = [store.path, *store.path.parent.glob(store.path.name + "-*")]
    assert all(wrapped not in f.read_bytes() for f in files)
