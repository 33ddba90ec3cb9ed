"""``hippocrate keys reseal`` turns every value of sealed format 1 (unpadded) into
format 2, once: a second run does nothing, a killed run resumes, and every value opens
throughout, in either format."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from sqlalchemy import select

from hippocrate.db import sealed as sealed_module
from hippocrate.keyring.reseal import FAULT_KILL_AFTER, count_v1, unsafe_reseal_v1
from hippocrate.patients.models import Patient
from hippocrate.patients.schemas import PatientCreate
from hippocrate.patients.service import shred_patient
from hippocrate.vault import DataKey, FieldContext, Padding
from hippocrate.vault.fields import OVERHEAD, seal_v1
from tests.conftest import Store
from tests.keyring.test_rotation import assert_all_readable, make_patients

HIPPOCRATE = str(Path(sys.executable).parent / "hippocrate")
SEALED_COLUMNS = [field.column_attr for field in Patient.__sealed_fields__.values()]


def make_v1_patients(
    store: Store, count: int, monkeypatch: pytest.MonkeyPatch
) -> dict[uuid.UUID, PatientCreate]:
    def v1(key: DataKey, plaintext: bytes, context: FieldContext, padding: Padding) -> bytes:
        return seal_v1(key, plaintext, context)

    with monkeypatch.context() as patched:
        patched.setattr(sealed_module, "seal_field", v1)
        return make_patients(store, count, seed=11)


def formats(store: Store) -> list[int]:
    """The format byte of every sealed value of every patient, in the raw columns."""
    with store.sessions() as session:
        columns = [getattr(Patient, c) for c in SEALED_COLUMNS]
        rows = session.execute(select(*columns)).all()
    return sorted(blob[0] for row in rows for blob in row if blob is not None)


def values_per_row(store: Store) -> list[int]:
    """How many sealed values each patient row holds, in the order the reseal walks."""
    with store.sessions() as session:
        columns = [getattr(Patient, c) for c in SEALED_COLUMNS]
        rows = session.execute(select(*columns).order_by(Patient.id)).all()
    return [sum(blob is not None for blob in row) for row in rows]


def reseal_command(store: Store, **extra: str) -> tuple[list[str], dict[str, str]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HIPPOCRATE_")}
    env |= {
        "HIPPOCRATE_DATABASE_URL": store.url,
        "HIPPOCRATE_KEY_FILE": str(store.sessions.vault.provider._path),  # type: ignore[attr-defined]
        **extra,
    }
    return [HIPPOCRATE, "keys", "reseal", "--batch-size", "5"], env


def test_format_1_values_open_and_show_their_length(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    made = make_v1_patients(store, 3, monkeypatch)
    assert set(formats(store)) == {1}
    with store.sessions() as session:
        for patient_id, data in made.items():
            row = session.get_one(Patient, patient_id)
            # What format 2 ends: the length is the plaintext's plus 33 bytes.
            assert len(row.family_name_sealed) == len(data.family_name.encode()) + OVERHEAD
    assert_all_readable(store, made)


def test_reseal_turns_every_value_into_format_2_once(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    made = make_v1_patients(store, 12, monkeypatch)
    values = len(formats(store))
    assert count_v1(sessions=store.sessions) == {"patients": 12}

    steps = []
    report = unsafe_reseal_v1(sessions=store.sessions, batch_size=5, progress=steps.append)

    assert (report.resealed, report.rows, report.unopenable) == (values, 12, 0)
    assert [s.rows for s in steps] == [5, 10, 12]
    assert formats(store) == [2] * values
    assert count_v1(sessions=store.sessions) == {}
    assert_all_readable(store, made)
    with store.sessions() as session:
        for patient_id in made:
            row = session.get_one(Patient, patient_id)
            assert len(row.family_name_sealed) == OVERHEAD + 64  # the names' bucket

    again = unsafe_reseal_v1(sessions=store.sessions, batch_size=5)
    assert (again.resealed, again.rows) == (0, 0)


def test_values_of_shredded_patients_are_left_and_counted(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    made = make_v1_patients(store, 4, monkeypatch)
    shredded = next(iter(made))
    with store.sessions.begin() as session:
        shred_patient(session=session, patient_id=shredded)
    with store.sessions() as session:
        left = [getattr(session.get_one(Patient, shredded), c) for c in SEALED_COLUMNS]
    report = unsafe_reseal_v1(sessions=store.sessions, batch_size=2)
    assert report.unopenable == sum(blob is not None for blob in left)
    assert report.rows == 4
    assert formats(store).count(1) == report.unopenable
    assert unsafe_reseal_v1(sessions=store.sessions).resealed == 0


def test_the_command_reseals_then_does_nothing(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    made = make_v1_patients(store, 7, monkeypatch)
    values = len(formats(store))
    command, env = reseal_command(store)

    result = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert "rows holding format 1 values: 7" in result.stdout
    assert "patients: 5 rows" in result.stdout  # progress after the first batch
    assert f"re-sealed {values} values in 7 rows in format 2" in result.stdout
    assert formats(store) == [2] * values
    assert_all_readable(store, made)

    result = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert "rows holding format 1 values: 0" in result.stdout
    assert "re-sealed 0 values in 0 rows" in result.stdout


def test_a_killed_reseal_resumes(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    made = make_v1_patients(store, 12, monkeypatch)
    values = len(formats(store))
    first_batch = sum(values_per_row(store)[:5])
    # Killed inside the second batch: the first batch (5 rows) is committed, no more.
    command, env = reseal_command(store, **{FAULT_KILL_AFTER: str(first_batch + 3)})
    result = subprocess.run(command, env=env, capture_output=True, check=False)
    assert result.returncode == -signal.SIGKILL, result.stderr
    assert formats(store).count(2) == first_batch
    assert_all_readable(store, made)  # half re-sealed: every value opens

    command, env = reseal_command(store)
    result = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert "rows holding format 1 values: 7" in result.stdout
    assert f"re-sealed {values - first_batch} values in 7 rows" in result.stdout
    assert formats(store) == [2] * values
    assert_all_readable(store, made)
