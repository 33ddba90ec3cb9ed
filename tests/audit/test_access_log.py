"""A patient lists who accessed their record: when, who (a practitioner by name and
role, an administrator with the break-glass reason), what kind of data, why. Every
access through the API is in the trail, refusals included, and the trail verifies."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from hippocrate.audit.models import AuditEvent
from hippocrate.audit.service import verify
from hippocrate.identity.models import Practitioner, Role
from tests.conftest import Store
from tests.consultations.helpers import Api, running_api

REASON = "Appel du SAMU : patient inconscient, antécédents nécessaires"


@pytest.fixture
def api(store: Store, tmp_path: Path) -> Iterator[Api]:
    with running_api(store, tmp_path) as running:
        yield running


def access_log(api: Api, patient: object) -> list[dict[str, object]]:
    response = api.client.get("/api/v1/patients/me/access-log", headers=patient.headers)  # type: ignore[attr-defined]
    assert response.status_code == 200, response.text
    items: list[dict[str, object]] = response.json()["items"]
    return items


def test_the_patient_sees_who_read_what_and_why(api: Api) -> None:
    patient = api.patient()
    consultation = api.open(patient, subject="Douleur thoracique à l'effort")
    doctor = api.practitioner()
    api.take(doctor)
    assert (
        api.client.get(f"/api/v1/patients/{patient.patient_id}", headers=doctor.headers).status_code
        == 200
    )
    api.write(doctor, consultation["id"], "Pouvez-vous préciser la durée des douleurs ?")
    admin = api.staff(Role.ADMIN)
    granted = api.client.post(
        "/api/v1/admin/break-glass",
        headers=admin.headers,
        json={"patient_id": str(patient.patient_id), "reason": REASON, "minutes": 10},
    )
    assert granted.status_code == 201
    assert (
        api.client.get(f"/api/v1/patients/{patient.patient_id}", headers=admin.headers).status_code
        == 200
    )

    entries = access_log(api, patient)

    with api.store.sessions() as session:
        practitioner = session.scalars(
            select(Practitioner).where(Practitioner.account_id == doctor.account_id)
        ).one()
        doctor_name = f"Dr {practitioner.given_names} {practitioner.family_name}"
    by_who = {str(e["who"]): e for e in entries}
    doctor_entries = [e for e in entries if str(e["who"]).startswith(doctor_name)]
    assert doctor_entries, by_who.keys()
    assert {"care"} == {e["purpose"] for e in doctor_entries}
    assert any("identity" in e["categories"] for e in doctor_entries)  # type: ignore[operator]
    assert any(e["action"] == "consultation:message:write" for e in doctor_entries)
    admin_entries = [
        e for e in entries if str(e["who"]).startswith("administrator with break-glass")
    ]
    assert admin_entries
    assert all(str(e["who"]).endswith(REASON) for e in admin_entries)
    assert {e["purpose"] for e in admin_entries} == {"break-glass"}
    assert any(e["who"] == "you" for e in entries)
    # Newest first; nothing about anyone else.
    times = [e["at"] for e in entries]
    assert times == sorted(times, reverse=True)


def test_every_api_access_and_refusal_is_in_a_verifiable_trail(api: Api) -> None:
    patient, stranger = api.patient(), api.patient()
    consultation = api.open(patient)
    probe = api.client.get(f"/api/v1/consultations/{consultation['id']}", headers=stranger.headers)
    assert probe.status_code == 404
    mine = api.client.get(f"/api/v1/consultations/{consultation['id']}", headers=patient.headers)
    assert mine.status_code == 200
    request_id = mine.headers["X-Request-ID"]

    with api.store.sessions() as session:
        events = session.scalars(select(AuditEvent).order_by(AuditEvent.seq)).all()
        report = verify(
            session=session,
            public_key=api.store.sessions.vault.provider.signing_public_key(),
            checkpoint_files=[],
        )
    assert report.ok, report.problems
    refused = [e for e in events if e.outcome == "refused"]
    assert any(
        e.actor_account_id == stranger.account_id
        and e.resources == [f"consultation:{consultation['id']}"]
        for e in refused
    ), [(e.action, e.resources) for e in refused]
    read = [e for e in events if e.request_id == request_id]
    assert read
    assert {e.action for e in read} >= {"consultation:record:read"}
    assert all(e.patient_id == patient.patient_id for e in read if e.patient_id)
    assert all(e.actor_role == "patient" and e.purpose == "self" for e in read)
    # Ids and categories only: no plaintext in the trail.
    assert not any("Plaques" in str(e.as_dict()) for e in events)


def test_only_patients_have_an_access_history(api: Api) -> None:
    support = api.staff(Role.SUPPORT)
    response = api.client.get("/api/v1/patients/me/access-log", headers=support.headers)
    assert response.status_code == 403
