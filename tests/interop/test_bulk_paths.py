"""The bulk path's ways of writing: PostgreSQL's binary COPY writes, column for column,
the rows an executemany INSERT writes (SQLite's way, and PostgreSQL's before COPY), and
an import writes the same rows on either backend; two importing transactions given the
same address never both insert it, however their batches interleave."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Table, insert, select, text
from sqlalchemy.orm import Session

from hippocrate.identity.models import Account
from hippocrate.interop import bulk
from hippocrate.interop.importer import validated
from hippocrate.keyring.models import DataKeyRecord
from hippocrate.notify.models import OutboundEmail
from hippocrate.patients.models import Patient
from hippocrate.patients.schemas import PatientCreate
from tests.consultations.helpers import Api
from tests.interop.test_import import NOW, Importer, csv_row, nir_with_key, write_csv

TABLES: list[type] = [Patient, DataKeyRecord, Account, OutboundEmail]


@pytest.fixture
def importer(api: Api) -> Importer:
    return Importer(api)


def _rows(indexes: list[int], **changes: str) -> list[tuple[int, PatientCreate]]:
    out = []
    for index in indexes:
        raw = csv_row(index, **changes)
        data = {
            "given_names": raw["given_names"],
            "family_name": raw["family_name"],
            "birth_date": raw["birth_date"],
            "sex": raw["sex"],
            "email": raw["email"],
            "phone": raw["phone"],
            "address": {
                "line1": raw["address_line1"],
                "line2": raw["address_line2"] or None,
                "postal_code": raw["postal_code"],
                "city": raw["city"],
                "country": raw["country"],
            },
            "nir": raw["nir"] or None,
        }
        out.append((index, validated(data)))
    return out


def _raw(session: Session, model: type) -> list[dict[str, Any]]:
    """Every row of ``model``'s table as SQL returns it (what a dump holds)."""
    table: Table = model.__table__  # type: ignore[attr-defined]
    order = "owner_id, version" if model is DataKeyRecord else "id"
    rows = session.execute(text(f"SELECT * FROM {table.name} ORDER BY {order}"))
    return [
        {k: bytes(v) if isinstance(v, memoryview) else v for k, v in row._mapping.items()}
        for row in rows
    ]


class _RolledBack(Exception):
    pass


@pytest.mark.parametrize("store", ["postgresql"], indirect=True)
def test_copy_writes_exactly_the_rows_an_insert_writes(importer: Importer) -> None:
    valid = _rows([1, 2, 3]) + _rows([4], nir=nir_with_key("2850675116123"))
    # Not in UTC: both ways must store the same instant.
    now = datetime(2026, 12, 1, 10, 30, 15, 123456, tzinfo=timezone(timedelta(hours=2)))
    copied: dict[type, list[dict[str, Any]]] = {}
    inserted: dict[type, list[dict[str, Any]]] = {}

    def both_ways_then_roll_back() -> None:
        with importer.begin() as session:
            admitted, refused = bulk.admit(session, valid)
            assert refused == []
            assert len(admitted) == 4
            batch = bulk.rows_of(session, admitted, now)
            with session.begin_nested() as savepoint:
                for model, rows in batch.by_table():
                    bulk.insert_rows(session, model, rows)  # COPY on PostgreSQL
                copied.update({model: _raw(session, model) for model in TABLES})
                savepoint.rollback()
            with session.begin_nested() as savepoint:
                for model, rows in batch.by_table():
                    session.execute(insert(model.__table__), rows)  # type: ignore[attr-defined]
                inserted.update({model: _raw(session, model) for model in TABLES})
                savepoint.rollback()
            raise _RolledBack

    with pytest.raises(_RolledBack):
        both_ways_then_roll_back()
    for model in TABLES:
        assert len(copied[model]) == 4, model
        assert copied[model] == inserted[model], model
    (patient, *_) = copied[Patient]
    assert patient["status"] == "active"
    assert patient["created_at"] == now.astimezone(UTC)
    assert {a["role"] for a in copied[Account]} == {"patient"}
    assert {k["state"] for k in copied[DataKeyRecord]} == {"active"}
    assert {e["template"] for e in copied[OutboundEmail]} == {"invitation"}
    nir_indexes = [p["nir_index"] for p in copied[Patient]]
    assert sum(index is not None for index in nir_indexes) == 1


def test_an_import_writes_the_same_rows_on_either_backend(
    importer: Importer, tmp_path: Path
) -> None:
    """Run on SQLite (executemany) and on PostgreSQL (COPY): the same expectations hold
    of the raw rows and of what the store opens, so both backends hold the same rows."""
    rows = [csv_row(1), csv_row(2, nir=nir_with_key("2850675116123")), csv_row(3)]
    source = write_csv(tmp_path / "three.csv", rows)
    assert importer.run(source, "csv").imported == 3

    api = importer.api
    with api.store.sessions() as session:
        patients = _raw(session, Patient)
        accounts = _raw(session, Account)
        keys = _raw(session, DataKeyRecord)
        emails = _raw(session, OutboundEmail)
        opened = {
            p.email: (p.given_names, p.family_name, str(p.birth_date), p.phone, p.nir)
            for p in session.scalars(select(Patient))
        }
        account_emails = {a.email for a in session.scalars(select(Account))}
    assert opened == {
        "lucie.martin1@example.org": ("Lucie Anne", "MartinB", "1985-06-14", "+33612340001", None),
        "lucie.martin2@example.org": (
            "Lucie Anne",
            "MartinC",
            "1985-06-14",
            "+33612340002",
            nir_with_key("2850675116123"),
        ),
        "lucie.martin3@example.org": ("Lucie Anne", "MartinD", "1985-06-14", "+33612340003", None),
    }
    assert account_emails == set(opened)

    def instant(value: Any) -> datetime:
        # SQLite hands back the stored text or a naive UTC datetime.
        found = datetime.fromisoformat(value) if isinstance(value, str) else value
        assert isinstance(found, datetime)
        return found if found.tzinfo else found.replace(tzinfo=UTC)

    assert {(p["status"], instant(p["created_at"])) for p in patients} == {("active", NOW)}
    assert {
        (a["role"], a["status"], bool(a["totp_enabled"]), a["failed_logins"], a["mfa_failures"])
        for a in accounts
    } == {("patient", "active", False, 0, 0)}
    assert all(a["email_verified_at"] is None and a["totp_secret"] is None for a in accounts)
    assert {(k["version"], k["root_version"], k["state"]) for k in keys} == {(1, 1, "active")}
    assert {p["id"] for p in patients} == {k["owner_id"] for k in keys}
    assert {(e["template"], e["sent_at"]) for e in emails} == {("invitation", None)}
    assert all(len(e["verification_code"]) > 0 for e in emails)


@pytest.mark.parametrize("store", ["postgresql"], indirect=True)
def test_two_importers_with_the_same_address_never_both_insert_it(importer: Importer) -> None:
    """The first importer holds the address's advisory lock from its lookup to its
    commit: the second, looking the address up meanwhile, waits, then finds the first's
    patient and refuses its row."""
    first_wrote = threading.Event()
    second_done = threading.Event()
    outcome: dict[str, Any] = {}

    def second() -> None:
        first_wrote.wait(10)
        try:
            with importer.begin() as session:
                admitted, refused = bulk.admit(session, _rows([7, 8]))
                bulk.write(session, admitted, NOW)
                outcome["second"] = (len(admitted), refused)
        except Exception as exc:  # reported to the test's thread
            outcome["error"] = exc
        finally:
            second_done.set()

    worker = threading.Thread(target=second)
    worker.start()
    try:
        with importer.begin() as session:
            admitted, _ = bulk.admit(session, _rows([6, 7]))
            bulk.write(session, admitted, NOW)
            first_wrote.set()
            # The second importer is now waiting on the lock of row 7's address.
            assert not second_done.wait(1.0), "the second importer did not wait"
    finally:
        worker.join(30)
    assert "error" not in outcome, outcome.get("error")
    imported, refused = outcome["second"]
    assert imported == 1
    assert [(r.row, r.field, r.reason) for r in refused] == [(7, "email", bulk.ALREADY_REGISTERED)]
    assert importer.count(Patient) == 3
    with importer.api.store.sessions() as session:
        emails = sorted(str(p.email) for p in session.scalars(select(Patient)))
    assert emails == [f"lucie.martin{i}@example.org" for i in (6, 7, 8)]


@pytest.mark.parametrize("store", ["postgresql"], indirect=True)
def test_a_batch_that_fails_after_its_copy_leaves_nothing(importer: Importer) -> None:
    """COPY runs in the unit's transaction: a failure after it rolls it all back."""

    def write_then_fail() -> None:
        with importer.begin() as session:
            admitted, _ = bulk.admit(session, _rows([1, 2]))
            bulk.write(session, admitted, NOW)
            assert session.scalar(text("SELECT count(*) FROM patients")) == 2
            raise _RolledBack

    with pytest.raises(_RolledBack):
        write_then_fail()
    for model in TABLES:
        assert importer.count(model) == 0
    started = time.monotonic()
    with importer.begin() as session:  # and the address is free again, at once
        admitted, refused = bulk.admit(session, _rows([1]))
        assert refused == []
        bulk.write(session, admitted, NOW)
    assert time.monotonic() - started < 5
    assert importer.count(Patient) == 1
