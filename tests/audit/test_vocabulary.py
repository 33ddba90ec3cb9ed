"""The trail's vocabulary: every tag is ``domain:subject:action``; after a representative
workload driven through the API (real sign-ins, consultations with files, care, a
break-glass, support, refusals), every action, category, purpose and outcome in the
trail is a member of its enum; and a breach scope ("which patients had NIR or health
content read by account X between t1 and t2") is one call against the trail."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from hippocrate.audit.models import AuditEvent
from hippocrate.audit.scope import patients_touched
from hippocrate.tags import (
    ATTEMPTS,
    READS,
    Category,
    Outcome,
    Purpose,
    Subject,
    Tag,
    Verb,
    account_created,
    refused,
    rule_refused,
)
from tests.access.world import World, build_world
from tests.conftest import Store
from tests.consultations.helpers import Api, running_api
from tests.identity.helpers import fast_password_hashing

TAG = re.compile(r"[a-z]+(-[a-z]+)*:[a-z]+(-[a-z]+)*:[a-z]+(-[a-z]+)*")
REASON = "Réquisition judiciaire n° 2026-114 : dossier demandé par le parquet"


# -- the enums themselves --------------------------------------------------------------


def test_every_tag_is_domain_subject_action() -> None:
    bad = [tag.value for tag in Tag if not TAG.fullmatch(tag.value)]
    assert not bad
    assert not TAG.fullmatch("patient:record")  # the check can fail
    assert not TAG.fullmatch("Patient:Record:Read")


def test_every_access_to_a_subject_has_its_tag() -> None:
    for subject in Subject:
        assert re.fullmatch(r"[a-z]+:[a-z-]+", subject.value)
        for verb in Verb:
            assert Tag.of(subject, verb).value == f"{subject.value}:{verb.value}"
    assert {Tag.of(s, Verb.READ) for s in Subject} == READS
    assert all(tag.verb == "read" for tag in READS)


def test_dynamic_tags_are_members_with_todays_values() -> None:
    # The values stored before the vocabulary existed (the trail's existing rows).
    for kind in ("patient", "consultation", "message", "attachment", "account"):
        assert refused(kind).value == f"{kind}:access:refused"
    assert refused("anything else") is Tag.RESOURCE_ACCESS_REFUSED
    for name in ("Forbidden", "NotAuthenticated", "SecondFactorRequired"):
        assert rule_refused(name).value == f"access:{name.lower()}:refused"
    for role in ("practitioner", "support", "dpo", "admin"):
        assert account_created(role).value == f"account:{role}:created"
    with pytest.raises(ValueError, match="patient"):
        account_created("patient")
    for what, (locked, failed) in ATTEMPTS.items():
        assert (locked.value, failed.value) == (f"account:{what}:locked", f"account:{what}:refused")


def test_values_are_the_strings_the_trail_stores() -> None:
    assert Category.NIR == "nir"
    assert Category.HEALTH == "health"
    assert Purpose.BREAK_GLASS == "break-glass"
    assert Purpose.KEY_ROTATION == "key-rotation"
    assert Tag.CONSULTATION_MESSAGE_READ == "consultation:message:read"
    assert f"{Tag.PATIENT_RECORD_READ}" == "patient:record:read"  # formats as its value


# -- a representative workload through the API -----------------------------------------


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with fast_password_hashing(), build_world(tmp_path_factory.mktemp("vocabulary")) as built:
        yield built


def _workload(world: World) -> None:
    client, a, b = world.client, world.a, world.b
    a_id = str(a.patient.patient_id)
    ok = [
        client.get(f"/api/v1/patients/{a_id}", headers=world.headers("practitioner")),
        client.get(
            f"/api/v1/consultations/{a.consultation}/messages",
            headers=world.headers("practitioner"),
        ),
        client.get("/api/v1/patients/me", headers=world.headers("patient")),
        client.get("/api/v1/patients/me/export", headers=world.headers("patient")),
        client.get("/api/v1/patients/me/access-log", headers=world.headers("patient")),
        client.get("/api/v1/notifications", headers=world.headers("patient")),
        client.get("/api/v1/support/accounts", headers=world.headers("support")),
        client.get("/api/v1/me", headers=world.headers("dpo")),
    ]
    messages = ok[1].json()["items"]
    for message in messages:
        for attachment in message.get("attachments", []):
            ok.append(
                client.get(
                    f"/api/v1/attachments/{attachment['id']}",
                    headers=world.headers("practitioner"),
                )
            )
    granted = client.post(
        "/api/v1/admin/break-glass",
        headers=world.headers("admin"),
        json={"patient_id": a_id, "reason": REASON, "minutes": 10},
    )
    ok += [granted, client.get(f"/api/v1/patients/{a_id}", headers=world.headers("admin"))]
    ok.append(client.get("/api/v1/patients/me/break-glass", headers=world.headers("patient")))
    for response in ok:
        assert response.status_code in (200, 201), (response.request.url, response.text)
    # Refusals: a hidden consultation, a staff-only route, no token, a wrong password.
    hidden = client.get(f"/api/v1/consultations/{b.consultation}", headers=world.headers("patient"))
    assert hidden.status_code == 404
    assert client.get("/api/v1/support/accounts", headers=world.headers("patient")).status_code
    assert client.get("/api/v1/patients/me").status_code == 401
    wrong = client.post(
        "/api/v1/auth/login",
        json={"email": world.probe.email, "password": "not the password at all"},
    )
    assert wrong.status_code in (400, 401), wrong.text


def test_every_tag_category_purpose_and_outcome_in_the_trail_is_a_member(world: World) -> None:
    _workload(world)
    with world.sessions() as session:
        events = session.scalars(select(AuditEvent)).all()
    assert len(events) > 50
    actions = {e.action for e in events}
    categories = {c for e in events for c in e.categories}
    purposes = {e.purpose for e in events}
    outcomes = {e.outcome for e in events}
    assert actions <= {t.value for t in Tag}, actions - {t.value for t in Tag}
    assert categories <= {c.value for c in Category}, categories
    assert purposes <= {p.value for p in Purpose} | {None}, purposes
    assert outcomes <= {o.value for o in Outcome}, outcomes
    # The workload is representative: the check saw most of the vocabulary.
    assert categories >= {"identity", "contact", "nir", "health", "attachment", "access"}
    assert {"credentials", "notification"} & categories
    assert purposes >= {"self", "care", "break-glass"}
    assert outcomes >= {"allowed", "refused"}
    assert actions >= {
        "patient:record:read",
        "consultation:record:read",
        "consultation:message:write",
        "consultation:attachment:read",
        "patient:break-glass:write",
        "consultation:access:refused",
    }


# -- a breach scope, against the trail ----------------------------------------------------


@pytest.fixture
def api(store: Store, tmp_path: Path) -> Iterator[Api]:
    with running_api(store, tmp_path) as running:
        yield running


def test_which_patients_had_nir_or_health_content_read_by_an_account(api: Api) -> None:
    a, c, untouched = api.patient(), api.patient(), api.patient()
    consultation_a = api.open(a, subject="Douleur thoracique à l'effort")
    doctor, other_doctor = api.practitioner(), api.practitioner()
    t1 = datetime.now(UTC)
    assert api.take(doctor)["id"] == consultation_a["id"]
    record = api.client.get(f"/api/v1/patients/{a.patient_id}", headers=doctor.headers)
    assert record.status_code == 200
    api.write(doctor, consultation_a["id"], "Depuis quand ?")
    t2 = datetime.now(UTC)
    api.open(c, subject="Éruption")
    assert api.take(other_doctor)
    api.open(untouched, specialty="dermatology")  # waits: nobody reads it
    hidden = api.client.get(f"/api/v1/patients/{c.patient_id}", headers=doctor.headers)
    assert hidden.status_code == 404  # refused: not in the scope
    later = datetime.now(UTC) + timedelta(seconds=1)

    wanted = (Category.NIR, Category.HEALTH)
    with api.store.sessions() as session:
        by_doctor = patients_touched(
            session, categories=wanted, actor_account_id=doctor.account_id, since=t1, until=later
        )
        by_anyone = patients_touched(session, categories=wanted, since=t1, until=later)
        before = patients_touched(
            session, categories=wanted, actor_account_id=doctor.account_id, since=t1, until=t1
        )
        secrets = patients_touched(
            session,
            categories=(Category.CREDENTIALS,),
            actor_account_id=doctor.account_id,
            since=t1,
            until=later,
        )
        in_window = patients_touched(
            session, categories=wanted, actor_account_id=other_doctor.account_id, since=t1, until=t2
        )

    assert set(by_doctor) == {a.patient_id}
    assert Category.HEALTH in by_doctor[a.patient_id]
    assert by_doctor[a.patient_id] <= set(wanted)
    # Anyone: the other doctor's patient, and the patients reading their own.
    assert {a.patient_id, c.patient_id} <= set(by_anyone)
    assert before == {}
    assert secrets == {}  # a practitioner's own credentials belong to no patient
    assert in_window == {}  # the other doctor read after t2
