"""Issue 9, the practitioner's day: the patient's names and age in a consultation the
practitioner holds (an audited read), unread flags both ways, the questionnaire with
its labels, handing a consultation back to the queue, taking one from the queue list,
and the consultation notices (each event its own email, once, with nothing of the
consultation in it).

Everything through the real API, on SQLite and PostgreSQL; the race between two
practitioners taking one entry runs in threads against PostgreSQL.
"""

from __future__ import annotations

import threading
import uuid
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, text

from hippocrate.blobs import FileBlobStore
from hippocrate.consultations.entries import entry_id, entry_key
from hippocrate.consultations.errors import NoLongerWaiting
from hippocrate.consultations.models import CareRelationship, Consultation, ConsultationStatus
from hippocrate.consultations.schemas import ConsultationCreate
from hippocrate.consultations.service import open_consultation, take_entry
from hippocrate.consultations.views import age_on
from hippocrate.identity.models import Role
from hippocrate.notify.models import OutboundEmail
from hippocrate.patients.schemas import PatientCreate
from hippocrate.patients.synthetic import SyntheticPatients
from hippocrate.tags import Tag
from tests.conftest import Store
from tests.consultations.helpers import (
    QUESTIONNAIRE,
    T0,
    Actor,
    Api,
    assert_problem,
    new_patient,
    new_staff,
    settings_for,
)

SUBJECT = "Douleur thoracique au repos"
DESCRIPTION = "Oppression depuis hier soir, antécédents familiaux"
REASON = "Relève de la cardiologie, pas de la médecine générale"


def _patient_born(api: Api, born: date) -> Actor:
    data = SyntheticPatients(seed=4242).patient(with_nir=True)
    return api.patient(PatientCreate(**{**data.model_dump(), "birth_date": born, "nir": None}))


def _emails(api: Api) -> list[tuple[str, uuid.UUID]]:
    with api.store.sessions() as session:
        return [
            (template, account_id)
            for template, account_id in session.execute(
                select(OutboundEmail.template, OutboundEmail.account_id).order_by(
                    OutboundEmail.created_at, OutboundEmail.id
                )
            ).all()
        ]


def _outbox_text(api: Api) -> str:
    folder = api.settings.outbox_dir
    if not folder.exists():
        return ""
    return "\n".join(
        p.read_bytes().decode("utf-8", "replace") for p in sorted(folder.rglob("*")) if p.is_file()
    )


# -- the patient's names and age ---------------------------------------------------------


def test_the_practitioner_in_charge_sees_the_patients_name_and_age(api: Api) -> None:
    patient = _patient_born(api, date(1980, 11, 3))  # 45 on T0 (2 Nov 2026), 46 the day after
    gp = api.practitioner()
    other = api.practitioner(rpps="10101010102")
    opened = api.open(patient, subject=SUBJECT, description=DESCRIPTION)
    assert opened["patient"] is None  # the patient is not shown their own name here

    taken = api.take(gp)
    assert taken["patient"] == {
        "given_names": patient.data.given_names,
        "family_name": patient.data.family_name,
        "age": 45,
    }
    record = api.client.get(f"/api/v1/consultations/{opened['id']}", headers=gp.headers)
    assert record.status_code == 200, record.text
    assert record.json()["patient"]["age"] == 45
    # The age, never the birth date.
    for shown in ("1980-11-03", "1980", "03/11/1980"):
        assert shown not in record.text
    # Another practitioner: not found, like any consultation they do not hold.
    assert_problem(
        api.client.get(f"/api/v1/consultations/{opened['id']}", headers=other.headers), 404
    )
    # The patient's own view of the consultation carries no such block.
    mine = api.client.get(f"/api/v1/consultations/{opened['id']}", headers=patient.headers)
    assert mine.json()["patient"] is None

    # The read of the names is in the patient's access history, as the practitioner's.
    log = api.client.get("/api/v1/patients/me/access-log", headers=patient.headers)
    assert log.status_code == 200, log.text
    reads = [
        e
        for e in log.json()["items"]
        if e["role"] == "practitioner" and e["action"] == Tag.PATIENT_RECORD_READ.value
    ]
    assert reads, log.json()["items"]
    assert all("identity" in e["categories"] for e in reads)


def test_age_is_in_whole_years() -> None:
    assert age_on(date(1980, 11, 3), date(2026, 11, 2)) == 45
    assert age_on(date(1980, 11, 3), date(2026, 11, 3)) == 46
    assert age_on(date(2000, 2, 29), date(2026, 2, 28)) == 25
    assert age_on(None, date(2026, 1, 1)) is None


# -- unread flags ------------------------------------------------------------------------


def _unread_in_list(api: Api, actor: Actor, consultation_id: str) -> int | None:
    listed = api.client.get("/api/v1/consultations", headers=actor.headers).json()["items"]
    (found,) = [c for c in listed if c["id"] == consultation_id]
    value: int | None = found["unread"]
    return value


def _unread(api: Api, actor: Actor, consultation_id: str) -> int | None:
    record = api.client.get(f"/api/v1/consultations/{consultation_id}", headers=actor.headers)
    assert record.status_code == 200, record.text
    value: int | None = record.json()["unread"]
    assert _unread_in_list(api, actor, consultation_id) == value
    return value


def _read_messages(api: Api, actor: Actor, consultation_id: str, **params: Any) -> Any:
    listed = api.client.get(
        f"/api/v1/consultations/{consultation_id}/messages", headers=actor.headers, params=params
    )
    assert listed.status_code == 200, listed.text
    return listed.json()


def test_unread_counts_both_ways(api: Api) -> None:
    patient = api.patient()
    gp = api.practitioner()
    consultation = api.open(patient)["id"]
    api.take(gp)
    assert (_unread(api, patient, consultation), _unread(api, gp, consultation)) == (0, 0)

    for body in ("Depuis quand ?", "Avez-vous de la fièvre ?"):
        assert api.write(gp, consultation, body).status_code == 201
    # Two for the patient; the practitioner's own messages are never unread to them.
    assert (_unread(api, patient, consultation), _unread(api, gp, consultation)) == (2, 0)

    # The patient reads the first page (one message): one left; then all.
    assert len(_read_messages(api, patient, consultation, limit=1)["items"]) == 1
    assert _unread(api, patient, consultation) == 1
    _read_messages(api, patient, consultation)
    assert _unread(api, patient, consultation) == 0

    assert api.write(patient, consultation, "Depuis hier, 38,5").status_code == 201
    assert (_unread(api, patient, consultation), _unread(api, gp, consultation)) == (0, 1)
    _read_messages(api, gp, consultation)
    assert (_unread(api, patient, consultation), _unread(api, gp, consultation)) == (0, 0)

    # Reading an earlier page again moves nothing back.
    assert api.write(gp, consultation, "Merci").status_code == 201
    _read_messages(api, patient, consultation)
    _read_messages(api, patient, consultation, limit=1)
    assert _unread(api, patient, consultation) == 0

    # The database keeps message numbers for each side, no time.
    with api.store.engine.connect() as connection:
        row = connection.execute(
            text("SELECT patient_read, practitioner_read FROM consultations WHERE id = :id"),
            {"id": uuid.UUID(consultation).hex if api.store.backend == "sqlite" else consultation},
        ).one()
    assert tuple(row) == (4, 3)


def test_an_admin_under_break_glass_marks_nothing_read(sqlite_api: Api) -> None:
    api = sqlite_api
    patient = api.patient()
    gp = api.practitioner()
    consultation = api.open(patient)["id"]
    api.take(gp)
    assert api.write(gp, consultation, "Une question").status_code == 201
    admin = api.staff(Role.ADMIN)
    granted = api.client.post(
        "/api/v1/admin/break-glass",
        headers=admin.headers,
        json={
            "patient_id": str(patient.patient_id),
            "reason": "Patiente inconsciente aux urgences, pas de proche joignable.",
            "minutes": 5,
        },
    )
    assert granted.status_code == 201, granted.text
    assert _unread(api, admin, consultation) is None
    _read_messages(api, admin, consultation)
    assert _unread(api, patient, consultation) == 1


# -- questionnaire labels ----------------------------------------------------------------


def test_the_questionnaire_comes_with_its_labels(api: Api) -> None:
    # The labels in French, the API's default language (the suite's clients ask for
    # English; tests/api/test_languages.py checks both).
    api.client.headers["Accept-Language"] = "fr"
    patient = api.patient()
    gp = api.practitioner()
    opened = api.open(patient)
    assert opened["questionnaire"] == QUESTIONNAIRE  # the codes stay
    taken = api.take(gp)
    assert taken["answers"] == [
        {
            "code": "symptoms_duration",
            "question": "Depuis combien de temps avez-vous ces symptômes ?",
            "answer": "4_to_7_days",
            "answer_label": "De 4 à 7 jours",
        },
        {
            "code": "current_treatments",
            "question": "Quels traitements prenez-vous actuellement ? (« aucun » sinon)",
            "answer": "aucun",
            "answer_label": "aucun",
        },
        {
            "code": "allergies",
            "question": "Avez-vous des allergies connues ? (« aucune » sinon)",
            "answer": "aucune",
            "answer_label": "aucune",
        },
        {
            "code": "pregnancy",
            "question": "Êtes-vous enceinte ou susceptible de l'être ?",
            "answer": "not_applicable",
            "answer_label": "Non concernée",
        },
    ]
    # The catalogue labels every choice it offers.
    catalogue = api.client.get("/api/v1/consultations/catalogue", headers=gp.headers).json()
    for question in catalogue["questions"]:
        assert set(question["choice_labels"]) == set(question["choices"])
        assert all(question["choice_labels"].values())


# -- handing back ------------------------------------------------------------------------


def test_handing_back_ends_care_and_puts_it_back_in_the_queue(api: Api) -> None:
    first, second = api.patient(), api.patient()
    gp = api.practitioner()
    colleague = api.practitioner(rpps="10101010102")
    handed = api.open(first, subject=SUBJECT, description=DESCRIPTION)["id"]
    api.clock.advance(minutes=10)
    later = api.open(second)["id"]
    api.clock.advance(minutes=5)
    api.relogin(gp)
    assert api.take(gp)["id"] == handed
    assert api.client.get(f"/api/v1/patients/{first.patient_id}", headers=gp.headers).is_success

    api.clock.advance(minutes=5)
    response = api.hand_back(api.relogin(gp), handed, REASON)
    api.relogin(colleague)
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "requested"
    assert response.json()["practitioner"] is None
    assert response.json()["taken_at"] is None

    # Care ended: the consultation, its messages and the patient's record are not found.
    for path in (
        f"/api/v1/consultations/{handed}",
        f"/api/v1/consultations/{handed}/messages",
        f"/api/v1/patients/{first.patient_id}",
    ):
        assert_problem(api.client.get(path, headers=gp.headers), 404)
    assert_problem(api.hand_back(gp, handed), 404)
    # Back in the queue at its original place: waiting since its opening, 20 minutes.
    queue = api.client.get("/api/v1/queue", headers=colleague.headers).json()
    assert [(e["position"], e["waiting_seconds"]) for e in queue["items"]] == [(1, 1200), (2, 600)]
    # A colleague takes it: it is the oldest again.
    assert api.take(colleague)["id"] == handed
    assert api.take(colleague)["id"] == later
    with api.store.sessions() as session:
        cares = session.execute(
            select(CareRelationship.practitioner_id, CareRelationship.ends_at).where(
                CareRelationship.consultation_id == uuid.UUID(handed)
            )
        ).all()
    assert sorted((p == gp.practitioner_id, end is None) for p, end in cares) == [
        (False, True),
        (True, False),
    ]
    # The patient still sees it, and who handed it back is named nowhere in their view.
    mine = api.client.get(f"/api/v1/consultations/{handed}", headers=first.headers)
    assert mine.json()["practitioner"]["id"] == str(colleague.practitioner_id)

    # The trail has the typed event; the reason is sealed (not in a copy of the rows).
    with api.store.sessions() as session:
        events = session.execute(
            text("SELECT action FROM audit_events WHERE action = :a"),
            {"a": Tag.CONSULTATION_RECORD_HANDED_BACK.value},
        ).all()
    assert len(events) == 1
    with api.store.engine.connect() as connection:
        for row in connection.execute(text("SELECT * FROM consultations")).mappings():
            for value in row.values():
                if isinstance(value, bytes | memoryview):
                    assert REASON.encode() not in bytes(value)
                elif isinstance(value, str):
                    assert REASON not in value
    # The patient was told (the new_message text: a message waits in the app).
    assert ("new_message", first.account_id) in _emails(api)
    assert REASON not in _outbox_text(api)


def test_who_may_hand_back_and_when(api: Api) -> None:
    patient = api.patient()
    gp = api.practitioner()
    consultation = api.open(patient)["id"]
    # Waiting: nobody holds it; the patient may not hand it back either.
    assert_problem(api.hand_back(gp, consultation), 404)
    api.take(gp)
    assert_problem(api.hand_back(patient, consultation), 403)
    for bad in ({"reason": "  "}, {}, {"reason": "x" * 1001}, {"reason": "ok", "extra": 1}):
        response = api.client.post(
            f"/api/v1/consultations/{consultation}/hand-back", headers=gp.headers, json=bad
        )
        assert_problem(response, 422)
    assert api.close(gp, consultation).status_code == 200
    assert_problem(api.hand_back(gp, consultation), 409)


def test_a_handed_back_consultation_keeps_the_record_of_it(sqlite_api: Api) -> None:
    api = sqlite_api
    patient = api.patient()
    gp = api.practitioner()
    consultation = api.open(patient)["id"]
    api.take(gp)
    assert api.hand_back(gp, consultation, REASON).status_code == 200
    with api.store.sessions() as session:
        # Opened as the patient would see it: the hand-back, its practitioner and reason.
        row = session.get(Consultation, uuid.UUID(consultation))
        assert row is not None
        (handback,) = row.handbacks or []
    assert handback["reason"] == REASON
    assert handback["practitioner_id"] == str(gp.practitioner_id)
    assert handback["taken"]
    assert handback["handed_back"]


# -- taking from the list ----------------------------------------------------------------


def test_taking_an_entry_from_the_list(api: Api) -> None:
    patients = [api.patient() for _ in range(3)]
    opened = []
    for patient in patients:
        opened.append(api.open(patient, specialty="dermatology")["id"])
        api.clock.advance(minutes=5)
    dermatologist = api.practitioner("dermatology")
    colleague = api.practitioner("dermatology", rpps="10101010102")
    gp = api.practitioner(rpps="10101010103")
    entries = [
        e["entry"]
        for e in api.client.get("/api/v1/queue", headers=dermatologist.headers).json()["items"]
    ]
    assert len(set(entries)) == 3

    # Not the oldest: the second of the list.
    taken = api.client.post(f"/api/v1/queue/{entries[1]}/take", headers=dermatologist.headers)
    assert taken.status_code == 200, taken.text
    assert taken.json()["id"] == opened[1]
    assert taken.json()["status"] == "in_progress"
    assert taken.json()["patient"]["family_name"] == patients[1].data.family_name
    # Once taken, the entry is stale for everyone: 409, nothing else changes.
    for actor in (colleague, dermatologist):
        stale = api.client.post(f"/api/v1/queue/{entries[1]}/take", headers=actor.headers)
        assert assert_problem(stale, 409)["title"] == "No longer waiting"
    # Another specialty's practitioner gets the same answer as for a stale entry.
    elsewhere = api.client.post(f"/api/v1/queue/{entries[0]}/take", headers=gp.headers)
    assert assert_problem(elsewhere, 409)["detail"] == stale.json()["detail"]
    # Made up, or not an entry at all.
    made_up = api.client.post(f"/api/v1/queue/{'A' * 22}/take", headers=colleague.headers)
    assert_problem(made_up, 409)
    for bad in ("nope", str(uuid.uuid4()), "A" * 21 + "!"):
        assert_problem(api.client.post(f"/api/v1/queue/{bad}/take", headers=colleague.headers), 422)
    # Patients and staff: 403 before anything is looked up.
    for actor in (patients[0], api.staff(Role.SUPPORT), api.staff(Role.ADMIN)):
        refused = api.client.post(f"/api/v1/queue/{entries[0]}/take", headers=actor.headers)
        assert_problem(refused, 403)
    # A cancelled one: stale too.
    cancelled = api.client.post(
        f"/api/v1/consultations/{opened[2]}/cancel", headers=patients[2].headers
    )
    assert cancelled.status_code == 200
    assert_problem(
        api.client.post(f"/api/v1/queue/{entries[2]}/take", headers=colleague.headers), 409
    )
    # "Oldest first" is unchanged for the next take.
    assert api.take(colleague)["id"] == opened[0]
    remaining = api.client.get("/api/v1/queue", headers=colleague.headers).json()
    assert remaining["total"] == 0


def test_an_entry_handed_back_is_takeable_again(sqlite_api: Api) -> None:
    api = sqlite_api
    patient = api.patient()
    gp = api.practitioner()
    colleague = api.practitioner(rpps="10101010102")
    consultation = api.open(patient)["id"]
    (entry,) = [
        e["entry"] for e in api.client.get("/api/v1/queue", headers=gp.headers).json()["items"]
    ]
    assert api.client.post(f"/api/v1/queue/{entry}/take", headers=gp.headers).status_code == 200
    assert api.hand_back(gp, consultation).status_code == 200
    again = api.client.post(f"/api/v1/queue/{entry}/take", headers=colleague.headers)
    assert again.status_code == 200, again.text
    assert again.json()["id"] == consultation


def _race(
    store: Store, settings: Any, entry: str, takers: list[Actor]
) -> tuple[list[uuid.UUID], list[uuid.UUID], list[Exception]]:
    """Every taker takes ``entry`` at the same instant; who won, who lost, what broke."""
    barrier = threading.Barrier(len(takers))
    won: list[uuid.UUID] = []
    lost: list[uuid.UUID] = []
    errors: list[Exception] = []

    def take(actor: Actor) -> None:
        barrier.wait()
        try:
            with store.sessions.begin() as session:
                take_entry(
                    session=session,
                    settings=settings,
                    principal=actor.principal,
                    entry=entry,
                    now=T0,
                )
            won.append(actor.account_id)
        except NoLongerWaiting:
            lost.append(actor.account_id)
        except Exception as exc:
            errors.append(exc)

    threads = [threading.Thread(target=take, args=(t,)) for t in takers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return won, lost, errors


@pytest.mark.parametrize("store", ["postgresql"], indirect=True)
def test_two_practitioners_taking_one_entry_at_once_one_wins(store: Store, tmp_path: Path) -> None:
    settings = settings_for(tmp_path, store)
    blobs = FileBlobStore(settings.blob_dir)
    for attempt in range(5):
        patient = new_patient(store, settings, seed=2000 + attempt)
        with store.sessions.begin() as session:
            consultation = open_consultation(
                session=session,
                settings=settings,
                blobs=blobs,
                principal=patient.principal,
                data=ConsultationCreate(
                    specialty="cardiology",
                    subject="Palpitations",
                    description="d",
                    questionnaire=QUESTIONNAIRE,
                ),
                now=T0,
            )
            consultation_id = consultation.id
            entry = entry_id(entry_key(session), "cardiology", consultation_id)
        takers = [
            new_staff(
                store,
                settings,
                Role.PRACTITIONER,
                specialty="cardiology",
                rpps=f"2000000{attempt}{n:03d}",
            )
            for n in range(4)
        ]
        won, lost, errors = _race(store, settings, entry, takers)
        assert errors == []
        assert (len(won), len(lost)) == (1, len(takers) - 1)
        with store.sessions() as session:
            status, holder = session.execute(
                select(Consultation.status, Consultation.practitioner_id).where(
                    Consultation.id == consultation_id
                )
            ).one()
            cares = session.scalars(
                select(CareRelationship.practitioner_id).where(
                    CareRelationship.consultation_id == consultation_id
                )
            ).all()
        assert status is ConsultationStatus.IN_PROGRESS
        winner = next(t for t in takers if t.account_id == won[0])
        assert holder == winner.practitioner_id
        assert cares == [winner.practitioner_id]


# -- the notices -------------------------------------------------------------------------


def test_each_consultation_event_sends_its_own_email_once(api: Api) -> None:
    patient = api.patient()
    gp = api.practitioner()
    consultation = api.open(patient, subject=SUBJECT, description=DESCRIPTION)["id"]
    assert _emails(api) == []  # opening tells nobody

    api.take(gp)
    assert _emails(api) == [("consultation_taken", patient.account_id)]
    api.clock.advance(seconds=1)
    assert api.write(gp, consultation, "Depuis quand exactement ?").status_code == 201
    api.clock.advance(seconds=1)
    assert api.write(patient, consultation, "Depuis hier soir, au repos").status_code == 201
    # Reading sends nothing.
    _read_messages(api, gp, consultation)
    _read_messages(api, patient, consultation)
    report = "Douleur pariétale probable"
    prescription = "Paracétamol 1 g si douleur"
    api.clock.advance(seconds=1)
    closed = api.close(gp, consultation, report=report, prescription=prescription)
    assert closed.status_code == 200, closed.text
    assert _emails(api) == [
        ("consultation_taken", patient.account_id),
        ("new_message", patient.account_id),
        ("patient_replied", gp.account_id),
        ("report_ready", patient.account_id),  # one for the report and the prescription
    ]

    # Cancelling: the patient gets consultation_cancelled, once.
    other = api.open(patient)["id"]
    api.clock.advance(seconds=1)
    cancelled = api.client.post(f"/api/v1/consultations/{other}/cancel", headers=patient.headers)
    assert cancelled.status_code == 200
    assert _emails(api)[-1] == ("consultation_cancelled", patient.account_id)
    assert len(_emails(api)) == 5

    # A patient's message while nobody holds the consultation tells no practitioner.
    waiting = api.open(patient)["id"]
    assert api.write(patient, waiting, "Précision").status_code == 201
    assert len(_emails(api)) == 5

    # No email carries anything of the consultation or of who the patient is.
    outbox = _outbox_text(api)
    assert outbox
    for secret in (
        SUBJECT,
        DESCRIPTION,
        report,
        prescription,
        "Depuis hier soir",
        "Depuis quand",
        patient.data.family_name,
        patient.data.given_names,
        consultation,
        str(patient.patient_id),
        "Dubreuil",
    ):
        assert secret not in outbox, secret
