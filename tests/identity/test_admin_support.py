"""Administrators create staff accounts; support reads account metadata and nothing
else: no email, no name, no NIR, no health data, whatever the account."""

from __future__ import annotations

from typing import Any

import pytest

from hippocrate.identity.models import Role
from tests.identity.conftest import Env, assert_problem
from tests.identity.helpers import login, patient_data

METADATA_FIELDS = {
    "id",
    "role",
    "status",
    "email_verified",
    "mfa_enabled",
    "locked",
    "locked_until",
    "failed_logins",
    "second_factor_locked_at",
    "disabled_reason",
    "created_at",
    "last_login_at",
}


def _admin_headers(env: Env) -> dict[str, str]:
    admin = env.user(Role.ADMIN)
    return login(env.client, admin.email, admin.password, admin.totp_secret)


def _practitioner(**changes: Any) -> dict[str, Any]:
    body = {
        "email": "dr.martin@example.org",
        "given_names": "Paul",
        "family_name": "Martin",
        "rpps": "10001234565",  # Luhn-valid
        "specialty": "general-practice",
    }
    body.update(changes)
    return body


# -- creating staff accounts ---------------------------------------------------------


@pytest.mark.parametrize("role", ["support", "dpo", "admin"])
def test_a_staff_account_is_created_only_once_another_admin_approves(env: Env, role: str) -> None:
    response = env.client.post(
        "/api/v1/admin/staff",
        headers=_admin_headers(env),
        json={"email": f"new.{role}@example.org", "role": role},
    )

    assert response.status_code == 202, response.text
    body = response.json()
    assert (body["action"], body["role"], body["outcome"]) == ("create_staff", role, "pending")
    assert "setup_token" not in body
    assert "second administrator" in body["instructions"]
    assert env.emails_to(f"new.{role}@example.org") == []


def test_patients_are_not_created_as_staff(env: Env) -> None:
    response = env.client.post(
        "/api/v1/admin/staff",
        headers=_admin_headers(env),
        json={"email": "p@example.org", "role": "patient"},
    )

    assert_problem(response, 422)


@pytest.mark.parametrize(
    "changes",
    [
        {"rpps": "1000123456"},  # 10 digits
        {"rpps": "1000123456X"},
        {"specialty": "Médecine générale"},
        {"email": "not-an-email"},
        {"given_names": ""},
        {"nir": "1 84 12 76 451 089 46"},  # not a field of a practitioner
    ],
)
def test_a_malformed_practitioner_is_refused(env: Env, changes: dict[str, Any]) -> None:
    response = env.client.post(
        "/api/v1/admin/practitioners", headers=_admin_headers(env), json=_practitioner(**changes)
    )

    assert_problem(response, 422)


def test_an_email_or_rpps_already_used_is_a_conflict_for_the_admin(env: Env) -> None:
    headers = _admin_headers(env)
    assert (
        env.client.post(
            "/api/v1/admin/practitioners", headers=headers, json=_practitioner()
        ).status_code
        == 202
    )

    same_email = env.client.post(
        "/api/v1/admin/practitioners", headers=headers, json=_practitioner(rpps="10009999995")
    )
    same_rpps = env.client.post(
        "/api/v1/admin/practitioners",
        headers=headers,
        json=_practitioner(email="other.doctor@example.org"),
    )

    assert "email" in assert_problem(same_email, 409)["detail"]
    assert "RPPS" in assert_problem(same_rpps, 409)["detail"]


# -- support: metadata only ------------------------------------------------------------


def _support_headers(env: Env) -> dict[str, str]:
    support = env.user(Role.SUPPORT)
    return login(env.client, support.email, support.password, support.totp_secret)


def test_support_sees_account_metadata_and_nothing_personal(env_on: Env) -> None:
    env = env_on
    data = patient_data(with_nir=True)
    patient = env.user(patient=data)
    doctor = env.user(Role.PRACTITIONER)
    headers = _support_headers(env)

    listing = env.client.get("/api/v1/support/accounts", headers=headers)
    one = env.client.get(f"/api/v1/support/accounts/{patient.account_id}", headers=headers)

    assert listing.status_code == 200
    assert one.status_code == 200
    items = listing.json()["items"]
    assert {item["id"] for item in items} >= {str(patient.account_id), str(doctor.account_id)}
    assert all(set(item) == METADATA_FIELDS for item in items)
    assert set(one.json()) == METADATA_FIELDS
    assert data.nir is not None
    secrets = [
        data.email,
        patient.email.split("@")[0],
        doctor.email,
        data.given_names,
        data.family_name,
        data.nir,
        data.nir[:13],
        data.phone,
        data.birth_date.isoformat(),
        str(patient.patient_id),
        "Durand",  # the practitioner's family name (helpers)
    ]
    for text in (listing.text, one.text):
        for secret in secrets:
            assert secret not in text, secret


def test_support_pages_through_accounts(env: Env) -> None:
    created = [env.user() for _ in range(5)]
    headers = _support_headers(env)

    first = env.client.get("/api/v1/support/accounts?limit=2", headers=headers).json()
    second = env.client.get("/api/v1/support/accounts?limit=2&offset=2", headers=headers).json()
    patients = env.client.get("/api/v1/support/accounts?role=patient", headers=headers).json()

    assert first["total"] == 6  # five patients and the support account
    assert len(first["items"]) == 2
    assert {i["id"] for i in first["items"]}.isdisjoint({i["id"] for i in second["items"]})
    assert {i["id"] for i in patients["items"]} == {str(u.account_id) for u in created}
    assert_problem(env.client.get("/api/v1/support/accounts?limit=1000", headers=headers), 422)


def test_an_unknown_account_is_a_404(env: Env) -> None:
    response = env.client.get(
        "/api/v1/support/accounts/00000000-0000-4000-8000-000000000000",
        headers=_support_headers(env),
    )

    assert_problem(response, 404)


@pytest.mark.parametrize("role", [Role.PATIENT, Role.PRACTITIONER, Role.DPO])
def test_other_roles_do_not_read_account_metadata(env: Env, role: Role) -> None:
    headers = env.login(env.user(role))

    assert_problem(env.client.get("/api/v1/support/accounts", headers=headers), 403)


def test_support_does_not_reach_admin_routes(env: Env) -> None:
    headers = _support_headers(env)

    response = env.client.post(
        "/api/v1/admin/staff", headers=headers, json={"email": "x@example.org", "role": "admin"}
    )

    assert_problem(response, 403)
