"""The project's first promise: a copy of the database holds nothing readable.

Known patients are written; then every byte of the SQLite file (with its WAL) or of a
``pg_dump`` of the PostgreSQL database is searched for every spelling of every value.
"""

from __future__ import annotations

import shutil
import subprocess

import pytest
from sqlalchemy import make_url

from hippocrate.patients.service import create_patient, to_read, unsafe_get_patient
from hippocrate.patients.synthetic import SyntheticPatients
from tests.conftest import Store
from tests.plaintext import find_in, spellings_of_patient


def dump(store: Store) -> bytes:
    """Every byte a thief who copies the database gets."""
    store.engine.dispose()  # close connections so SQLite's files are complete
    if store.backend == "sqlite":
        assert store.path is not None
        files = [store.path, *store.path.parent.glob(store.path.name + "-*")]
        return b"".join(f.read_bytes() for f in files)
    if shutil.which("pg_dump") is None:
        pytest.fail("pg_dump is needed for the PostgreSQL dump test")
    url = make_url(store.url)
    return subprocess.run(
        [
            "pg_dump",
            "--host",
            url.host or "127.0.0.1",
            "--port",
            str(url.port or 5432),
            "--username",
            url.username or "postgres",
            "--dbname",
            url.database or "",
        ],
        check=True,
        capture_output=True,
        env={"PGPASSWORD": url.password or "", "PATH": "/usr/bin:/bin"},
    ).stdout


def test_dump_holds_no_plaintext(store: Store) -> None:
    generator = SyntheticPatients(seed=20251128)
    patients = [generator.patient(with_nir=True) for _ in range(25)]
    with store.sessions.begin() as session:
        ids = [create_patient(session=session, data=data).id for data in patients]

    # The data really is there, and readable through the vault...
    store.sessions.vault.forget_all()
    with store.sessions() as session:
        for patient_id, data in zip(ids, patients, strict=True):
            read = to_read(unsafe_get_patient(session=session, patient_id=patient_id))
            assert (read.family_name, read.email, read.birth_date) == (
                data.family_name,
                data.email,
                data.birth_date,
            )

    # ...and nowhere in the copy.
    copied = dump(store)
    assert len(copied) > 10_000
    for data in patients:
        assert find_in(copied, spellings_of_patient(data)) == []


def test_the_search_would_find_plaintext(store: Store) -> None:
    """The dump test can fail: a value written in the clear is found."""
    from sqlalchemy import update

    from hippocrate.patients.models import Patient

    data = SyntheticPatients(seed=7).patient(with_nir=True)
    assert data.nir is not None
    with store.sessions.begin() as session:
        patient = create_patient(session=session, data=data)
        # A forgetful developer bypasses the sealed attribute and stores the NIR as is.
        session.execute(
            update(Patient).where(Patient.id == patient.id).values(nir_sealed=data.nir.encode())
        )
    hits = find_in(dump(store), spellings_of_patient(data))
    assert sorted(hits) == sorted([f"nir: {data.nir!r}", f"nir: {data.nir[:13]!r}"])
