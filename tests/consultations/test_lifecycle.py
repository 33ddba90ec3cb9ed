"""Statuses and who may move them: requested → in progress → closed, or cancelled; the
report, acts and incidents on the record; what each role may do at each step."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from hippocrate.consultations.models import day_ceil
from hippocrate.identity.models import Role
from tests.consultations.helpers import QUESTIONNAIRE, Actor, Api, assert_problem


@pytest.fixture
def in_progress(sqlite_api: Api) -> tuple[Api, Actor, Actor, str]:
    patient = sqlite_api.patient()
    gp = sqlite_api.practitioner()
    consultation_id = sqlite_api.open(patient)["id"]
    sqlite_api.take(gp)
    return sqlite_api, patient, gp, consultation_id


def post(api: Api, actor: Actor, path: str, body: Any = None) -> Any:
    return api.client.post(f"/api/v1/consultations/{path}", headers=actor.headers, json=body)


# -- opening ---------------------------------------------------------------------------


def test_the_catalogue_lists_specialties_and_questions(sqlite_api: Api) -> None:
    patient = sqlite_api.patient()

    catalogue = sqlite_api.client.get("/api/v1/consultations/catalogue", headers=patient.headers)

    assert catalogue.status_code == 200
    body = catalogue.json()
    assert {"general-practice", "dermatology", "paediatrics", "psychiatry"} <= set(
        body["specialties"]
    )
    codes = [q["code"] for q in body["questions"]]
    assert codes[:4] == ["symptoms_duration", "current_treatments", "allergies", "pregnancy"]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"specialty": "astrology"}, "unknown specialty"),
        ({"questionnaire": {**QUESTIONNAIRE, "blood_type": "A+"}}, "unknown questions: blood_type"),
        (
            {"questionnaire": {**QUESTIONNAIRE, "pregnancy": "maybe"}},
            "question 'pregnancy' takes one of",
        ),
        (
            {"questionnaire": {k: v for k, v in QUESTIONNAIRE.items() if k != "allergies"}},
            "question 'allergies' needs an answer",
        ),
        ({"questionnaire": {**QUESTIONNAIRE, "allergies": "x" * 1001}}, "longer than 1000"),
        ({"subject": ""}, "at least 3 characters"),
        ({"patient_id": "00000000-0000-0000-0000-000000000000"}, "Extra inputs are not permitted"),
    ],
)
def test_opening_validates_against_the_catalogue(
    sqlite_api: Api, change: dict[str, Any], message: str
) -> None:
    patient = sqlite_api.patient()
    body = {
        "specialty": "general-practice",
        "subject": "Toux",
        "description": "Toux sèche",
        "questionnaire": QUESTIONNAIRE,
        **change,
    }

    response = sqlite_api.client.post("/api/v1/consultations", headers=patient.headers, json=body)

    problem = assert_problem(response, 422)
    assert any(message in error["msg"] for error in problem["errors"]), problem
    assert "x" * 50 not in response.text  # the answer itself is not echoed


def test_only_patients_open_consultations(sqlite_api: Api) -> None:
    gp = sqlite_api.practitioner()
    body = {
        "specialty": "general-practice",
        "subject": "Toux",
        "description": "d",
        "questionnaire": QUESTIONNAIRE,
    }

    response = sqlite_api.client.post("/api/v1/consultations", headers=gp.headers, json=body)

    assert assert_problem(response, 403)["detail"] == "only patients open consultations"


def test_requests_need_a_signed_in_account(sqlite_api: Api) -> None:
    for method, path in [
        ("GET", "/api/v1/consultations"),
        ("POST", "/api/v1/consultations"),
        ("GET", "/api/v1/queue"),
        ("POST", "/api/v1/queue/take"),
        ("GET", "/api/v1/attachments/00000000-0000-4000-8000-000000000000"),
    ]:
        assert_problem(sqlite_api.client.request(method, path), 401)


def test_the_list_is_paginated(sqlite_api: Api) -> None:
    patient = sqlite_api.patient()
    for n in range(3):
        sqlite_api.clock.advance(minutes=1)
        sqlite_api.open(patient, subject=f"Question {n}")

    page = sqlite_api.client.get(
        "/api/v1/consultations", headers=patient.headers, params={"limit": 2, "offset": 0}
    ).json()
    rest = sqlite_api.client.get(
        "/api/v1/consultations", headers=patient.headers, params={"limit": 2, "offset": 2}
    ).json()

    assert page["total"] == rest["total"] == 3
    assert [c["subject"] for c in page["items"] + rest["items"]] == [
        "Question 2",
        "Question 1",
        "Question 0",
    ]
    assert_problem(
        sqlite_api.client.get(
            "/api/v1/consultations", headers=patient.headers, params={"limit": 101}
        ),
        422,
    )
    only_requested = sqlite_api.client.get(
        "/api/v1/consultations", headers=patient.headers, params={"status": "closed"}
    ).json()
    assert only_requested["total"] == 0


# -- closing ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"acts": ["TCG"]}, "Field required"),
        ({"report": "   ", "acts": ["TCG"]}, "a report is required to close a consultation"),
        ({"report": "RAS"}, "Field required"),
        ({"report": "RAS", "acts": []}, "at least 1 item"),
        ({"report": "RAS", "acts": ["tcg; drop table"]}, "an act is a code"),
    ],
)
def test_closing_requires_a_report_and_acts(
    in_progress: tuple[Api, Actor, Actor, str], body: dict[str, Any], message: str
) -> None:
    api, _, gp, consultation_id = in_progress

    response = post(api, gp, f"{consultation_id}/close", body)

    problem = assert_problem(response, 422)
    assert any(message in error["msg"] for error in problem["errors"]), problem
    still = api.client.get(f"/api/v1/consultations/{consultation_id}", headers=gp.headers).json()
    assert still["status"] == "in_progress"


def test_the_closed_record_keeps_what_the_rules_require(
    in_progress: tuple[Api, Actor, Actor, str],
) -> None:
    api, patient, gp, consultation_id = in_progress
    api.clock.advance(minutes=4)
    incident = post(
        api, gp, f"{consultation_id}/incidents", {"description": "Photo illisible, renvoyée"}
    )
    assert incident.status_code == 201, incident.text
    api.clock.advance(minutes=4)

    closed = api.close(gp, consultation_id, report="Rhinopharyngite.", acts=["tcg", "TE2"])

    assert closed.status_code == 200, closed.text
    record = api.client.get(
        f"/api/v1/consultations/{consultation_id}", headers=patient.headers
    ).json()
    assert record["status"] == "closed"
    assert record["report"] == "Rhinopharyngite."
    assert record["prescription"] is None
    assert record["acts"] == ["TCG", "TE2"]
    assert record["practitioner"]["family_name"] == "Dubreuil"
    assert record["practitioner"]["rpps"] == "10101010101"
    assert record["incidents"] == [
        {
            "recorded_at": incident.json()["incidents"][0]["recorded_at"],
            "description": "Photo illisible, renvoyée",
        }
    ]
    assert record["taken_at"] < record["incidents"][0]["recorded_at"] < record["closed_at"]
    # An incident may still be noted on the closed record.
    late = post(
        api, gp, f"{consultation_id}/incidents", {"description": "Envoi du compte rendu retardé"}
    )
    assert late.status_code == 201
    assert len(late.json()["incidents"]) == 2


def test_who_may_move_a_consultation(in_progress: tuple[Api, Actor, Actor, str]) -> None:
    api, patient, gp, consultation_id = in_progress
    other_gp = api.practitioner(names=("Marc", "Lenoir"), rpps="10202020202")

    assert (
        assert_problem(
            post(api, patient, f"{consultation_id}/close", {"report": "x", "acts": ["TCG"]}), 403
        )["detail"]
        == "only the practitioner in charge closes a consultation"
    )
    assert assert_problem(
        post(api, patient, f"{consultation_id}/incidents", {"description": "panne"}), 403
    )
    assert assert_problem(post(api, gp, f"{consultation_id}/cancel"), 403)["detail"] == (
        "only the patient cancels their consultation"
    )
    # Another practitioner does not even see it.
    for path, body in [
        (f"{consultation_id}/close", {"report": "x", "acts": ["TCG"]}),
        (f"{consultation_id}/cancel", None),
        (f"{consultation_id}/messages", {"body": "bonjour"}),
        (f"{consultation_id}/incidents", {"description": "panne"}),
    ]:
        assert_problem(post(api, other_gp, path, body), 404)
    support = api.staff(Role.SUPPORT)
    assert_problem(
        api.client.get(f"/api/v1/consultations/{consultation_id}", headers=support.headers), 404
    )
    assert api.client.get("/api/v1/consultations", headers=support.headers).json()["total"] == 0


def test_a_closed_consultation_takes_no_more_messages_nor_steps(
    in_progress: tuple[Api, Actor, Actor, str],
) -> None:
    api, patient, gp, consultation_id = in_progress
    assert api.close(gp, consultation_id).status_code == 200

    assert assert_problem(api.close(gp, consultation_id), 409)["detail"] == (
        "this consultation is closed: only one in progress is closed"
    )
    assert assert_problem(post(api, patient, f"{consultation_id}/cancel"), 409)["detail"] == (
        "this consultation is closed: it cannot be cancelled"
    )
    for actor in (patient, gp):
        assert (
            assert_problem(api.write(actor, consultation_id, "encore une question"), 403)["detail"]
            == "this consultation is closed: no new messages"
        )


def test_a_patient_may_write_before_anyone_takes_it(sqlite_api: Api) -> None:
    patient = sqlite_api.patient()
    consultation_id = sqlite_api.open(patient)["id"]

    response = sqlite_api.write(patient, consultation_id, "J'oubliais: j'ai 38,5 de fièvre.")

    assert response.status_code == 201
    assert response.json()["author"] == "patient"


def test_cancelling_a_waiting_consultation_takes_it_out_of_the_queue(sqlite_api: Api) -> None:
    patient = sqlite_api.patient()
    gp = sqlite_api.practitioner()
    consultation_id = sqlite_api.open(patient)["id"]

    cancelled = post(sqlite_api, patient, f"{consultation_id}/cancel")

    assert cancelled.status_code == 200
    assert cancelled.json()["status"] == "cancelled"
    assert cancelled.json()["cancelled_at"] is not None
    assert sqlite_api.client.get("/api/v1/queue", headers=gp.headers).json()["total"] == 0
    assert (
        assert_problem(sqlite_api.client.post("/api/v1/queue/take", headers=gp.headers), 409)[
            "detail"
        ]
        == "no consultation is waiting in the general-practice queue"
    )


def test_cancelling_in_progress_ends_the_care_after_the_period(
    in_progress: tuple[Api, Actor, Actor, str],
) -> None:
    api, patient, gp, consultation_id = in_progress
    assert post(api, patient, f"{consultation_id}/cancel").status_code == 200
    cancelled_at = api.clock.now

    # Care ends at the midnight (UTC) after the period ends: whole days, so that the
    # care relationship does not give away the instant of the cancellation.
    api.clock.advance(days=30, seconds=1)
    api.relogin(gp)
    assert (
        api.client.get(f"/api/v1/consultations/{consultation_id}", headers=gp.headers).status_code
        == 200
    )
    api.clock.now = day_ceil(cancelled_at + timedelta(days=30)) + timedelta(seconds=1)
    api.relogin(gp)
    assert_problem(
        api.client.get(f"/api/v1/consultations/{consultation_id}", headers=gp.headers), 404
    )
