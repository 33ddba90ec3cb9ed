"""The patient record through the API: the patient's own (NIR masked unless asked),
a practitioner's in care, an admin's under break-glass (shown to the patient)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from hippocrate.identifiers import mask_nir
from hippocrate.identity.models import Role
from tests.conftest import Store
from tests.consultations.helpers import Api, assert_problem, running_api

REASON = "Demande du médecin régulateur du SAMU, patient inconscient aux urgences"


@pytest.fixture
def api(store: Store, tmp_path: Path) -> Iterator[Api]:
    with running_api(store, tmp_path) as running:
        yield running


@pytest.fixture
def sqlite_api(sqlite_store: Store, tmp_path: Path) -> Iterator[Api]:
    with running_api(sqlite_store, tmp_path) as running:
        yield running


def test_a_patient_reads_their_record_with_the_nir_masked_unless_asked(sqlite_api: Api) -> None:
    patient = sqlite_api.patient()
    nir = patient.data.nir
    assert nir

    masked = sqlite_api.client.get("/api/v1/patients/me", headers=patient.headers)
    revealed = sqlite_api.client.get(
        "/api/v1/patients/me", headers=patient.headers, params={"reveal_nir": "true"}
    )
    by_id = sqlite_api.client.get(f"/api/v1/patients/{patient.patient_id}", headers=patient.headers)

    assert masked.status_code == 200, masked.text
    assert masked.json()["family_name"] == patient.data.family_name
    assert masked.json()["email"] == patient.data.email
    assert masked.json()["nir_masked"] == mask_nir(nir)
    assert masked.json()["nir"] is None
    assert nir not in masked.text
    assert revealed.json()["nir"] == nir
    assert by_id.json()["id"] == str(patient.patient_id)


def test_another_patients_record_is_not_found(sqlite_api: Api) -> None:
    patient, other = sqlite_api.patient(), sqlite_api.patient()

    theirs = sqlite_api.client.get(f"/api/v1/patients/{other.patient_id}", headers=patient.headers)
    random = sqlite_api.client.get(f"/api/v1/patients/{uuid.uuid4()}", headers=patient.headers)

    assert_problem(theirs, 404)
    assert theirs.content == random.content


def test_a_practitioner_reads_the_records_in_their_care_only(sqlite_api: Api) -> None:
    patient, other = sqlite_api.patient(), sqlite_api.patient()
    gp = sqlite_api.practitioner()
    sqlite_api.open(patient)
    sqlite_api.take(gp)

    record = sqlite_api.client.get(f"/api/v1/patients/{patient.patient_id}", headers=gp.headers)
    full = sqlite_api.client.get(
        f"/api/v1/patients/{patient.patient_id}", headers=gp.headers, params={"reveal_nir": True}
    )

    assert record.status_code == 200
    assert record.json()["nir"] is None
    assert full.json()["nir"] == patient.data.nir  # prescriptions need it
    assert_problem(
        sqlite_api.client.get(f"/api/v1/patients/{other.patient_id}", headers=gp.headers), 404
    )
    # A practitioner has no record of their own.
    assert_problem(sqlite_api.client.get("/api/v1/patients/me", headers=gp.headers), 404)
    support = sqlite_api.staff(Role.SUPPORT)
    assert_problem(
        sqlite_api.client.get(f"/api/v1/patients/{patient.patient_id}", headers=support.headers),
        404,
    )


def test_break_glass_opens_a_time_limited_access_shown_to_the_patient(api: Api) -> None:
    patient = api.patient()
    consultation = api.open(patient, subject="Malaise au travail")
    admin = api.staff(Role.ADMIN)
    record = f"/api/v1/patients/{patient.patient_id}"

    # Without a grant, an admin sees nothing.
    assert_problem(api.client.get(record, headers=admin.headers), 404)

    granted = api.client.post(
        "/api/v1/admin/break-glass",
        headers=admin.headers,
        json={"patient_id": str(patient.patient_id), "reason": REASON, "minutes": 10},
    )

    assert granted.status_code == 201, granted.text
    assert granted.json()["active"] is True
    seen = api.client.get(record, headers=admin.headers)
    assert seen.status_code == 200
    assert seen.json()["family_name"] == patient.data.family_name
    # Never the full NIR, even with break-glass.
    assert (
        assert_problem(
            api.client.get(record, headers=admin.headers, params={"reveal_nir": True}), 403
        )["detail"]
        == "your role may not see a NIR in full"
    )
    listed = api.client.get("/api/v1/consultations", headers=admin.headers).json()
    assert [c["id"] for c in listed["items"]] == [consultation["id"]]

    # The patient sees who opened it, why and until when.
    grants = api.client.get("/api/v1/patients/me/break-glass", headers=patient.headers).json()
    assert grants["total"] == 1
    (grant,) = grants["items"]
    assert grant["reason"] == REASON
    assert grant["active"] is True
    assert grant["expires_at"] == granted.json()["expires_at"]

    # Ten minutes later the access is over.
    api.clock.advance(minutes=10, seconds=1)
    assert_problem(api.client.get(record, headers=admin.headers), 404)
    assert api.client.get("/api/v1/consultations", headers=admin.headers).json()["total"] == 0
    api.relogin(patient)
    (expired,) = api.client.get("/api/v1/patients/me/break-glass", headers=patient.headers).json()[
        "items"
    ]
    assert expired["active"] is False


@pytest.mark.parametrize(
    ("change", "status"),
    [
        ({"reason": "parce que"}, 422),
        ({"minutes": 241}, 422),
        ({"minutes": 0}, 422),
        ({"patient_id": "not-an-id"}, 422),
        ({"extra": "refused"}, 422),
    ],
)
def test_break_glass_needs_a_reason_and_a_short_time(
    sqlite_api: Api, change: dict[str, object], status: int
) -> None:
    patient = sqlite_api.patient()
    admin = sqlite_api.staff(Role.ADMIN)
    body = {"patient_id": str(patient.patient_id), "reason": REASON, "minutes": 240, **change}

    response = sqlite_api.client.post("/api/v1/admin/break-glass", headers=admin.headers, json=body)

    assert_problem(response, status)
    assert (
        sqlite_api.client.get("/api/v1/patients/me/break-glass", headers=patient.headers).json()[
            "total"
        ]
        == 0
    )


def test_only_admins_break_the_glass(sqlite_api: Api) -> None:
    patient = sqlite_api.patient()
    body = {"patient_id": str(patient.patient_id), "reason": REASON, "minutes": 30}

    for actor in (patient, sqlite_api.practitioner(), sqlite_api.staff(Role.SUPPORT)):
        response = sqlite_api.client.post(
            "/api/v1/admin/break-glass", headers=actor.headers, json=body
        )
        assert assert_problem(response, 403)["detail"] == "your role does not allow this"
    admin = sqlite_api.staff(Role.ADMIN)
    unknown = {**body, "patient_id": str(uuid.uuid4())}
    assert_problem(
        sqlite_api.client.post("/api/v1/admin/break-glass", headers=admin.headers, json=unknown),
        404,
    )
    assert_problem(
        sqlite_api.client.get("/api/v1/patients/me/break-glass", headers=admin.headers), 404
    )
