"""The patient's own pages: their account (identity, second factor), the exports of
their data, deleting their account with the password asked again, and who accessed
their record (a practitioner's read, a break-glass with its reason)."""

from __future__ import annotations

import json
import re
from typing import Any

from hippocrate.identity.models import Role
from hippocrate.interop import fhir
from hippocrate.patients.schemas import PatientRead
from hippocrate.web import cookies, csrf
from tests.consultations.helpers import QUESTIONNAIRE
from tests.identity.conftest import Env
from tests.identity.helpers import TestUser, patient_data, totp_code
from tests.web.conftest import sign_in, submit, token_of

REASON = "Appel du SAMU : patiente inconsciente, antécédents nécessaires"


def _signed_in(web: Env, role: Role = Role.PATIENT, **kwargs: Any) -> TestUser:
    user = web.user(role, **kwargs)
    sign_in(web.client, user)
    return user


# -- the account ---------------------------------------------------------------------------


def test_the_patient_sees_their_identity_and_second_factor_status(web: Env) -> None:
    data = patient_data(with_nir=True)
    assert data.nir is not None
    user = _signed_in(web, patient=data)
    me = web.client.get("/api/v1/patients/me", headers=web.login(user)).json()
    page = web.client.get("/patient/account")
    assert page.status_code == 200
    assert page.text.count("<h1>") == 1
    for value in (me["given_names"], me["family_name"], me["email"], me["phone"]):
        assert value in page.text
    assert f"{me['birth_date'][8:10]}/{me['birth_date'][5:7]}/{me['birth_date'][:4]}" in page.text
    assert 'href="/account/second-factor"' in page.text
    assert 'href="/patient/account/export.json"' in page.text
    assert 'href="/patient/account/delete"' in page.text
    # The NIR is not shown, in full or in part.
    assert data.nir not in page.text
    assert str(PatientRead.mask(data.nir)) not in page.text


def test_the_patient_pages_are_for_patients_only(web: Env) -> None:
    paths = (
        "/patient/account",
        "/patient/account/export.json",
        "/patient/account/export.fhir.json",
        "/patient/account/delete",
        "/patient/access",
    )
    for path in paths:
        answer = web.client.get(path)
        assert answer.status_code == 303, path
        assert answer.headers["location"].startswith("/sign-in?next="), path
    for role in (Role.PRACTITIONER, Role.ADMIN, Role.DPO):
        web.client.cookies.clear()
        _signed_in(web, role)
        for path in paths:
            answer = web.client.get(path)
            assert answer.status_code == 403, (role, path)
            assert answer.headers["content-type"].startswith("text/html")
        token = token_of(web.client, "/sign-in")
        refused = web.client.post(
            "/patient/account/delete", data={csrf.FIELD: token, "password": "whatever-it-is"}
        )
        assert refused.status_code == 403


# -- exports ---------------------------------------------------------------------------------


def test_the_exports_are_the_signed_in_patients_data_as_json_and_fhir(web: Env) -> None:
    other = web.user()
    user = _signed_in(web)
    exported = web.client.get("/patient/account/export.json")
    assert exported.status_code == 200
    assert exported.headers["content-type"].startswith("application/json")
    assert exported.headers["content-disposition"].startswith("attachment;")
    assert "hippocrate-export.json" in exported.headers["content-disposition"]
    document = exported.json()
    assert user.email in exported.text
    assert other.email not in exported.text
    assert document

    bundle_answer = web.client.get("/patient/account/export.fhir.json")
    assert bundle_answer.status_code == 200
    assert bundle_answer.headers["content-type"].startswith(fhir.MEDIA_TYPE)
    assert "hippocrate-export.fhir.json" in bundle_answer.headers["content-disposition"]
    bundle = json.loads(bundle_answer.text)
    assert bundle["resourceType"] == "Bundle"
    assert user.email in bundle_answer.text
    assert other.email not in bundle_answer.text


# -- deletion ----------------------------------------------------------------------------------


def test_deleting_the_account_needs_the_password_then_signs_out(web: Env) -> None:
    user = _signed_in(web)
    page = web.client.get("/patient/account/delete")
    assert page.status_code == 200
    assert '<label for="password">' in page.text
    assert 'id="code"' not in page.text
    token_of(web.client, "/patient/account/delete")
    assert (
        web.client.post("/patient/account/delete", data={"password": user.password}).status_code
        == 403
    )
    wrong = submit(web.client, "/patient/account/delete", {"password": "not-the-password"})
    assert wrong.status_code == 401
    assert 'role="alert"' in wrong.text
    assert web.client.get("/patient/account").status_code == 200  # still there

    session = web.client.cookies.get(cookies.SESSION)
    done = submit(web.client, "/patient/account/delete", {"password": user.password})
    assert done.status_code == 303
    assert done.headers["location"] == "/sign-in?deleted=true"
    assert not web.client.cookies.get(cookies.SESSION)
    goodbye = web.client.get(done.headers["location"])
    assert goodbye.status_code == 200
    assert "<h1>" in goodbye.text
    # The session is over and the account gone.
    web.client.cookies.set(cookies.SESSION, session or "")
    assert web.client.get("/patient/account").status_code == 303
    web.client.cookies.clear()
    assert (
        submit(web.client, "/sign-in", {"email": user.email, "password": user.password}).status_code
        == 401
    )


def test_deleting_an_account_with_a_second_factor_needs_a_code_too(web: Env) -> None:
    user = _signed_in(web, totp=True)
    assert user.totp_secret is not None
    page = web.client.get("/patient/account/delete")
    assert 'id="code"' in page.text
    without = submit(web.client, "/patient/account/delete", {"password": user.password})
    assert without.status_code == 401
    assert web.client.get("/patient/account").status_code == 200
    done = submit(
        web.client,
        "/patient/account/delete",
        {"password": user.password, "code": totp_code(user.totp_secret, now=web.tick())},
    )
    assert done.status_code == 303


# -- who accessed my record ---------------------------------------------------------------------


def _practitioner_reads(web: Env, patient: TestUser) -> None:
    """A practitioner takes the patient's consultation and reads the record (API)."""
    own = web.login(patient)
    opened = web.client.post(
        "/api/v1/consultations",
        headers=own,
        json={
            "specialty": "general-practice",
            "subject": "Toux persistante",
            "description": "Depuis deux semaines, surtout la nuit.",
            "questionnaire": QUESTIONNAIRE,
        },
    )
    assert opened.status_code == 201, opened.text
    doctor = web.user(Role.PRACTITIONER)
    headers = web.login(doctor)
    assert web.client.post("/api/v1/queue/take", headers=headers).status_code == 200
    read = web.client.get(f"/api/v1/patients/{patient.patient_id}", headers=headers)
    assert read.status_code == 200, read.text


def _break_glass(web: Env, patient: TestUser) -> None:
    admin = web.user(Role.ADMIN)
    headers = web.login(admin)
    granted = web.client.post(
        "/api/v1/admin/break-glass",
        headers=headers,
        json={"patient_id": str(patient.patient_id), "reason": REASON, "minutes": 10},
    )
    assert granted.status_code == 201, granted.text
    read = web.client.get(f"/api/v1/patients/{patient.patient_id}", headers=headers)
    assert read.status_code == 200, read.text


def test_the_access_page_lists_a_practitioners_read_and_a_break_glass_with_its_reason(
    web: Env,
) -> None:
    patient = web.user()
    _practitioner_reads(web, patient)
    _break_glass(web, patient)
    sign_in(web.client, patient)

    page = web.client.get("/patient/access")
    assert page.status_code == 200
    assert page.text.count("<h1>") == 1
    assert "Dr Camille Durand" in page.text
    assert REASON in page.text
    assert '<th scope="col">' in page.text
    # The break-glass read is marked in words, not by colour alone.
    rows = re.findall(r"<tr>.*?</tr>", page.text, re.DOTALL)
    marked = [row for row in rows if "administrator with break-glass" in row]
    assert marked
    assert all("Emergency access" in row for row in marked)
    assert not any("Emergency access" in row for row in rows if "Dr Camille Durand" in row)


def test_the_access_page_is_paginated_like_the_api(web: Env) -> None:
    patient = web.user()
    _practitioner_reads(web, patient)
    sign_in(web.client, patient)
    first = web.client.get("/patient/access?limit=1")
    assert first.status_code == 200
    found = re.search(r'<a href="(/patient/access\?limit=1&amp;offset=1)" rel="next">', first.text)
    assert found is not None, first.text
    second = web.client.get(found.group(1).replace("&amp;", "&"))
    assert second.status_code == 200
    assert "Previous page of accesses" in second.text
    assert web.client.get("/patient/access?limit=1000").status_code == 422
