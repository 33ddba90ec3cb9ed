"""The queue: per specialty, oldest first, specialty and waiting time only; taking is
safe when practitioners take at the same time (threads against PostgreSQL)."""

from __future__ import annotations

import threading
import uuid
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import select

from hippocrate.blobs import FileBlobStore
from hippocrate.consultations.errors import QueueEmpty
from hippocrate.consultations.models import CareRelationship, Consultation, ConsultationStatus
from hippocrate.consultations.schemas import ConsultationCreate
from hippocrate.consultations.service import open_consultation, take_next
from hippocrate.identity.models import Role
from tests.conftest import Store
from tests.consultations.helpers import (
    QUESTIONNAIRE,
    T0,
    Api,
    assert_problem,
    new_patient,
    new_staff,
    settings_for,
)


def test_the_queue_shows_position_and_waiting_time_only(api: Api) -> None:
    patients = [api.patient() for _ in range(3)]
    opened = []
    for n, patient in enumerate(patients):
        opened.append(api.open(patient, subject=f"Sujet confidentiel {n}", specialty="dermatology"))
        api.clock.advance(minutes=10)
    api.open(api.patient(), subject="Autre file", specialty="paediatrics")
    dermatologist = api.practitioner("dermatology")

    response = api.client.get("/api/v1/queue", headers=dermatologist.headers)

    assert response.status_code == 200, response.text
    page = response.json()
    assert page["total"] == 3
    assert [(e["position"], e["waiting_seconds"], e["specialty"]) for e in page["items"]] == [
        (1, 1800, "dermatology"),
        (2, 1200, "dermatology"),
        (3, 600, "dermatology"),
    ]
    assert all(
        set(e) == {"entry", "specialty", "position", "waiting_since", "waiting_seconds"}
        for e in page["items"]
    )
    # Each entry's id is opaque: no consultation id, no patient, in any form.
    for entry in page["items"]:
        assert len(entry["entry"]) == 22
        for consultation, patient in zip(opened, patients, strict=True):
            for hidden in (uuid.UUID(consultation["id"]), patient.patient_id):
                assert hidden.hex not in entry["entry"].lower()
                assert str(hidden) not in entry["entry"]
    for consultation, patient in zip(opened, patients, strict=True):
        for hidden in (consultation["id"], consultation["subject"], str(patient.patient_id)):
            assert hidden not in response.text
    second = api.client.get(
        "/api/v1/queue", headers=dermatologist.headers, params={"limit": 1, "offset": 1}
    ).json()
    assert [e["position"] for e in second["items"]] == [2]

    # Taking gives the oldest first.
    assert [api.take(dermatologist)["id"] for _ in range(3)] == [c["id"] for c in opened]
    assert_problem(api.client.post("/api/v1/queue/take", headers=dermatologist.headers), 409)


def test_only_practitioners_see_and_take_from_a_queue(sqlite_api: Api) -> None:
    patient = sqlite_api.patient()
    sqlite_api.open(patient)
    for actor in (patient, sqlite_api.staff(Role.ADMIN), sqlite_api.staff(Role.SUPPORT)):
        assert (
            assert_problem(sqlite_api.client.get("/api/v1/queue", headers=actor.headers), 403)[
                "detail"
            ]
            == "only practitioners take consultations"
        )
        assert_problem(sqlite_api.client.post("/api/v1/queue/take", headers=actor.headers), 403)


# -- concurrency -----------------------------------------------------------------------


def _waiting(store: Store, tmp_path: Path, count: int) -> tuple[set[uuid.UUID], list]:  # type: ignore[type-arg]
    settings = settings_for(tmp_path, store)
    blobs = FileBlobStore(settings.blob_dir)
    ids = set()
    for n in range(count):
        patient = new_patient(store, settings, seed=1000 + n)
        with store.sessions.begin() as session:
            consultation = open_consultation(
                session=session,
                settings=settings,
                blobs=blobs,
                principal=patient.principal,
                data=ConsultationCreate(
                    specialty="general-practice",
                    subject=f"Question {n}",
                    description="d",
                    questionnaire=QUESTIONNAIRE,
                ),
                now=T0,
            )
            ids.add(consultation.id)
    return ids, [
        new_staff(store, settings, Role.PRACTITIONER, rpps=f"1000000000{n}") for n in range(8)
    ]


def _take_all(
    store: Store, principal, barrier: threading.Barrier, taken: list, errors: list
) -> None:  # type: ignore[no-untyped-def]
    barrier.wait()
    try:
        while True:
            with store.sessions.begin() as session:
                taken.append(
                    take_next(session=session, principal=principal, now=T0, settings=None).id
                )
    except QueueEmpty:
        return
    except Exception as exc:  # surfaced by the test
        errors.append(exc)


@pytest.mark.parametrize("store", ["postgresql"], indirect=True)
def test_two_practitioners_taking_at_once_never_get_the_same_consultation(
    store: Store, tmp_path: Path
) -> None:
    waiting, practitioners = _waiting(store, tmp_path, 16)
    barrier = threading.Barrier(2)
    taken: list[list[uuid.UUID]] = [[], []]
    errors: list[Exception] = []
    threads = [
        threading.Thread(target=_take_all, args=(store, p.principal, barrier, taken[i], errors))
        for i, p in enumerate(practitioners[:2])
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert errors == []
    everything = taken[0] + taken[1]
    assert Counter(everything).most_common(1)[0][1] == 1  # nobody got one twice
    assert set(everything) == waiting  # and every one was taken
    _assert_one_practitioner_each(store, waiting)


@pytest.mark.parametrize("store", ["postgresql"], indirect=True)
def test_a_crowd_taking_at_once_takes_each_consultation_once(store: Store, tmp_path: Path) -> None:
    waiting, practitioners = _waiting(store, tmp_path, 5)
    barrier = threading.Barrier(len(practitioners))
    results: dict[int, uuid.UUID | None] = {}
    errors: list[Exception] = []

    def take_one(index: int) -> None:
        barrier.wait()
        try:
            with store.sessions.begin() as session:
                results[index] = take_next(
                    session=session,
                    principal=practitioners[index].principal,
                    now=T0,
                    settings=None,
                ).id
        except QueueEmpty:
            results[index] = None
        except Exception as exc:
            errors.append(exc)

    threads = [threading.Thread(target=take_one, args=(i,)) for i in range(len(practitioners))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert errors == []
    won = [r for r in results.values() if r is not None]
    assert sorted(won) == sorted(waiting)
    assert list(results.values()).count(None) == len(practitioners) - len(waiting)
    _assert_one_practitioner_each(store, waiting)


def _assert_one_practitioner_each(store: Store, waiting: set[uuid.UUID]) -> None:
    with store.sessions() as session:
        rows = session.execute(
            select(Consultation.id, Consultation.status, Consultation.practitioner_id)
        ).all()
        care = session.execute(
            select(CareRelationship.consultation_id, CareRelationship.practitioner_id)
        ).all()
    assert {r.id for r in rows if r.status is ConsultationStatus.IN_PROGRESS} == waiting
    assert sorted(care) == sorted((r.id, r.practitioner_id) for r in rows)
