"""Importing an existing platform's patients (FHIR NDJSON and CSV) on SQLite and
PostgreSQL: bad rows are reported with their row, field and reason and leave nothing
behind; imported patients hold their address and NIR but cannot sign in until they
choose a password through the invitation emailed to them; an interrupted import
resumes after its last committed batch, and nothing is imported twice."""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from hippocrate.audit.recorder import Actor
from hippocrate.identity.models import Account, AccountStatus
from hippocrate.interop.importer import Outcome, import_file, write_report
from hippocrate.interop.models import ImportProgress
from hippocrate.notify.models import OutboundEmail
from hippocrate.patients.models import Patient
from hippocrate.runtime import Runtime
from hippocrate.tags import Purpose
from hippocrate.work import unit_of_work
from tests.consultations.helpers import Api
from tests.identity.helpers import fast_password_hashing

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


def nir_with_key(body: str) -> str:
    return f"{body}{97 - int(body) % 97:02d}"


def csv_row(index: int, **changes: str) -> dict[str, str]:
    row = {
        "given_names": "Lucie Anne",
        "family_name": f"Martin{chr(65 + index % 26)}",
        "birth_date": "1985-06-14",
        "sex": "F",
        "email": f"lucie.martin{index}@example.org",
        "phone": f"+33 6 12 34 {index // 100 % 100:02d} {index % 100:02d}",
        "address_line1": f"{index} rue des Lilas",
        "address_line2": "",
        "postal_code": "75011",
        "city": "Paris",
        "country": "FR",
        "nir": "",
    }
    row.update(changes)
    return row


def write_csv(path: Path, rows: list[dict[str, str]]) -> Path:
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(csv_row(0)))
        writer.writeheader()
        writer.writerows(rows)
    return path


def fhir_patient(index: int, **changes: Any) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "resourceType": "Patient",
        "name": [{"use": "official", "family": f"Durand{index}", "given": ["Paul", "Marie"]}],
        "gender": "male",
        "birthDate": "1979-02-03",
        "telecom": [
            {"system": "email", "value": f"paul.durand{index}@example.org"},
            {"system": "phone", "value": f"06 98 76 {index // 100 % 100:02d} {index % 100:02d}"},
        ],
        "address": [
            {"use": "home", "line": [f"{index} avenue Foch"], "postalCode": "69006", "city": "Lyon"}
        ],
    }
    resource.update(changes)
    return resource


class Importer:
    def __init__(self, api: Api) -> None:
        self.api = api
        self.runtime = Runtime(api.settings, api.store.sessions)

    def begin(self) -> AbstractContextManager[Session]:
        return unit_of_work(self.runtime, Actor(role="operator", purpose=Purpose.IMPORT))

    def run(self, path: Path, fmt: str, **kwargs: Any) -> Outcome:
        return import_file(
            path=path,
            fmt=fmt,  # type: ignore[arg-type]
            settings=kwargs.pop("settings", self.api.settings),
            begin=kwargs.pop("begin", self.begin),
            now=lambda: NOW,
            **kwargs,
        )

    def count(self, model: type, *where: Any) -> int:
        with self.api.store.sessions() as session:
            return int(session.scalar(select(func.count()).select_from(model).where(*where)) or 0)


@pytest.fixture
def importer(api: Api) -> Importer:
    return Importer(api)


def test_a_csv_import_reports_each_bad_row_and_writes_nothing_of_it(
    importer: Importer, tmp_path: Path
) -> None:
    rows = [
        csv_row(1),
        csv_row(2, nir=nir_with_key("2850675116123")),  # a NIR that fits the woman
        csv_row(3, nir="285067511612300"),  # a check key that does not hold
        csv_row(4, email="not an address"),
        csv_row(5, email="lucie.martin1@example.org"),  # row 1's address again
        csv_row(6, birth_date="14/06/1985"),
        csv_row(7, nir=nir_with_key("1850675116123")),  # a man's NIR for a woman
        csv_row(8, nir=nir_with_key("2850675116123")),  # row 2's NIR again
        csv_row(9, sex="Q"),
    ]
    source = write_csv(tmp_path / "patients.csv", rows)

    outcome = importer.run(source, "csv")

    assert outcome.imported == 2
    rejected = {(r.row, r.field) for r in outcome.rejected}
    # Row numbers are line numbers: the header is line 1.
    assert rejected == {
        (4, "nir"),
        (5, "email"),
        (6, "email"),
        (7, "birth_date"),
        (8, "nir"),
        (9, "nir"),
        (10, "sex"),
    }
    assert all(r.reason for r in outcome.rejected)
    assert importer.count(Patient) == 2
    assert importer.count(Account) == 2

    report = tmp_path / "report.csv"
    write_report(report, outcome.rejected, append=False)
    text = report.read_text("utf-8")
    assert text.splitlines()[0] == "row,field,reason"
    # The report names rows, fields and reasons, never a value of a row.
    for row in rows:
        for value in (row["email"], row["family_name"], row["nir"], row["birth_date"]):
            if value:
                assert value not in text


def test_imported_patients_hold_their_identity_but_sign_in_only_after_the_invitation(
    importer: Importer, tmp_path: Path
) -> None:
    api = importer.api
    source = write_csv(tmp_path / "one.csv", [csv_row(1, nir=nir_with_key("2850675116123"))])
    importer.run(source, "csv")

    with api.store.sessions() as session:
        (account,) = session.scalars(select(Account)).all()
        assert account.status is AccountStatus.ACTIVE
        # Nobody was given a password: the account holds a placeholder that no
        # password matches (tests/interop/test_copy.py: a copy shows no difference).
        assert account.password_sealed is not None
        (email,) = session.scalars(select(OutboundEmail)).all()
    assert email.template == "invitation"

    # Nothing a leak holds signs in: no password was ever set.
    signin = api.client.post(
        "/api/v1/auth/login",
        json={"email": "lucie.martin1@example.org", "password": "Lucie Martin 1985-06-14"},
    )
    assert signin.status_code == 401, signin.text

    # The address is held: registering it again sends its owner a reset link, and the
    # NIR cannot be taken by someone else's registration either.
    with fast_password_hashing():
        again = api.client.post(
            "/api/v1/auth/register",
            json={
                "given_names": "Eve",
                "family_name": "Intruse",
                "birth_date": "1985-06-14",
                "sex": "F",
                "email": "lucie.martin1@example.org",
                "phone": "+33 6 00 00 00 01",
                "address": {"line1": "1 rue X", "postal_code": "75001", "city": "Paris"},
                "nir": nir_with_key("2850675116123"),
                "password": "une phrase de passe assez longue",
            },
        )
    assert again.status_code in (200, 201, 202), again.text
    assert importer.count(Patient) == 1


def test_a_fhir_import_brings_patients_in_and_refuses_what_is_not_a_patient(
    importer: Importer, tmp_path: Path
) -> None:
    lines = [
        json.dumps(fhir_patient(1)),
        json.dumps(fhir_patient(2, gender="female", birthDate="1990-13-01")),
        "{not json",
        json.dumps({"resourceType": "Observation", "status": "final"}),
        "",
        json.dumps(fhir_patient(3, telecom=[])),
        json.dumps(
            fhir_patient(
                4,
                identifier=[{"system": "urn:oid:1.2.250.1.213.1.4.8", "value": "123"}],
            )
        ),
        json.dumps(fhir_patient(5)),
    ]
    source = tmp_path / "patients.ndjson"
    source.write_text("\n".join(lines) + "\n", "utf-8")

    outcome = importer.run(source, "fhir")

    assert outcome.imported == 2
    assert {(r.row, r.field) for r in outcome.rejected} == {
        (2, "birthDate"),
        (3, "json"),
        (4, "resourceType"),
        (6, "telecom.email"),
        (7, "nir"),
    }
    assert importer.count(Patient) == 2


def test_an_interrupted_import_resumes_after_its_last_committed_batch(
    importer: Importer, tmp_path: Path
) -> None:
    source = write_csv(tmp_path / "many.csv", [csv_row(i) for i in range(1, 26)])
    batches = 0

    def crashing() -> AbstractContextManager[Session]:
        nonlocal batches
        batches += 1
        if batches == 3:  # the progress read, two batches, then the machine stops
            raise KeyboardInterrupt
        return importer.begin()

    with pytest.raises(KeyboardInterrupt):
        importer.run(source, "csv", begin=crashing, batch_size=10)
    assert importer.count(Patient) == 10
    assert importer.count(Account) == 10

    outcome = importer.run(source, "csv", batch_size=10)

    assert (outcome.resumed_from, outcome.imported, outcome.rejected) == (10, 15, [])
    assert importer.count(Patient) == 25
    assert importer.count(Account) == 25
    assert importer.count(OutboundEmail) == 25  # one invitation each, none twice

    # Run again: everything is done, nothing is imported twice.
    done = importer.run(source, "csv", batch_size=10)
    assert (done.resumed_from, done.imported) == (25, 0)
    assert importer.count(Patient) == 25
    assert importer.count(ImportProgress) == 1


def test_a_batch_that_fails_midway_leaves_nothing_of_itself(
    importer: Importer, tmp_path: Path
) -> None:
    source = write_csv(tmp_path / "few.csv", [csv_row(i) for i in range(1, 8)])

    def failing_inside() -> Callable[[], AbstractContextManager[Session]]:
        calls = 0

        def begin() -> AbstractContextManager[Session]:
            nonlocal calls
            calls += 1
            unit = importer.begin()
            if calls < 3:
                return unit
            return _failing_at_commit(unit)

        return begin

    with pytest.raises(RuntimeError):
        importer.run(source, "csv", begin=failing_inside(), batch_size=5)

    # The first batch (5) committed; the second, which failed before its commit,
    # left no patient, no account, no email and no progress.
    assert importer.count(Patient) == 5
    assert importer.count(Account) == 5
    assert importer.count(OutboundEmail) == 5
    with importer.api.store.sessions() as session:
        assert session.scalar(select(ImportProgress.rows_done)) == 5


class _failing_at_commit(AbstractContextManager[Session]):
    """A unit of work whose block fails once everything is written, before commit."""

    def __init__(self, unit: AbstractContextManager[Session]) -> None:
        self.unit = unit

    def __enter__(self) -> Session:
        self.session = self.unit.__enter__()
        return self.session

    def __exit__(self, *exc: Any) -> bool | None:
        if exc[0] is None:
            self.session.flush()
            error = RuntimeError("the disk filled up")
            self.unit.__exit__(RuntimeError, error, None)
            raise error
        return self.unit.__exit__(*exc)
