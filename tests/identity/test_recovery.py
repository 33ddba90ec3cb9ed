"""Recovery never relies on what leaked: an email link, plus the second factor for those
who have one; staff are recovered by an administrator; staff setup by a one-time token."""

from __future__ import annotations

from typing import Any

import pyotp

from hippocrate.identity.models import Role
from tests.identity.conftest import Env, assert_problem, link_token
from tests.identity.helpers import TestUser, bearer, enrol_totp, login, totp_code

NEW_PASSWORD = "granite-heron-sings-at-dawn"


def _ask_reset(env: Env, email: str) -> Any:
    return env.client.post("/api/v1/auth/password-reset", json={"email": email})


def _complete(env: Env, token: str, password: str = NEW_PASSWORD, **extra: Any) -> Any:
    return env.client.post(
        "/api/v1/auth/password-reset/complete",
        json={"token": token, "password": password, **extra},
    )


def _reset_token(env: Env, user: TestUser) -> str:
    assert _ask_reset(env, user.email).status_code == 202
    return link_token(env.emails_to(user.email)[-1])


def test_a_reset_request_gives_the_same_answer_for_unknown_and_known_addresses(
    env: Env,
) -> None:
    user = env.user()

    known = _ask_reset(env, user.email)
    unknown = _ask_reset(env, "no.account@example.org")

    assert (known.status_code, known.json()) == (unknown.status_code, unknown.json())
    assert known.status_code == 202
    assert len(env.emails_to(user.email)) == 1
    assert env.emails_to("no.account@example.org") == []


def test_a_reset_link_sets_a_new_password_once_and_ends_every_session(env_on: Env) -> None:
    env = env_on
    user = env.user()
    session = env.login(user)
    token = _reset_token(env, user)

    first = _complete(env, token)
    second = _complete(env, token, password="another-granite-heron")

    assert first.status_code == 204
    assert_problem(second, 400)
    assert_problem(env.client.get("/api/v1/me", headers=session), 401)
    assert_problem(env.post_login(user.email, user.password), 401)
    assert env.post_login(user.email, NEW_PASSWORD).status_code == 200


def test_a_reset_link_expires_after_an_hour(env: Env) -> None:
    user = env.user()
    token = _reset_token(env, user)

    env.later(minutes=61)

    assert_problem(_complete(env, token), 400)


def test_a_newer_reset_link_withdraws_the_older_one(env: Env) -> None:
    user = env.user()
    older = _reset_token(env, user)
    env.later(minutes=2)  # past the one-email-a-minute limit
    newer = _reset_token(env, user)

    assert_problem(_complete(env, older), 400)
    assert _complete(env, newer).status_code == 204


def test_reset_emails_are_not_sent_more_than_once_a_minute(env: Env) -> None:
    user = env.user()

    for _ in range(3):
        assert _ask_reset(env, user.email).status_code == 202

    assert len(env.emails_to(user.email)) == 1


def test_a_reset_link_alone_does_not_take_over_an_account_with_a_second_factor(
    env_on: Env,
) -> None:
    env = env_on
    user = env.user()
    enrolment = enrol_totp(env.client, env.login(user), password=user.password, now=env.tick())
    token = _reset_token(env, user)

    without = _complete(env, token)
    wrong = _complete(env, token, code="000000")

    assert "second factor" in assert_problem(without, 403)["detail"]
    assert_problem(wrong, 401)
    assert_problem(env.post_login(user.email, NEW_PASSWORD), 401)
    # The token was not spent by the refusals; with a code it works.
    right = _complete(env, token, code=totp_code(enrolment.secret, now=env.tick()))
    assert right.status_code == 204
    assert login(env.client, user.email, NEW_PASSWORD, enrolment.secret, now=env.tick())


def test_wrong_codes_on_a_reset_lock_the_account(env: Env) -> None:
    user = env.user()
    enrolment = enrol_totp(env.client, env.login(user), password=user.password, now=env.tick())
    token = _reset_token(env, user)
    for _ in range(5):
        assert_problem(_complete(env, token, code="000000"), 401)

    locked = _complete(env, token, code=totp_code(enrolment.secret, now=env.tick()))

    # Wrong codes lock the account until an admin lifts it, the reset link included.
    assert_problem(locked, 423)


def test_a_recovery_code_also_completes_a_reset(env: Env) -> None:
    user = env.user()
    enrolment = enrol_totp(env.client, env.login(user), password=user.password, now=env.tick())
    token = _reset_token(env, user)

    assert _complete(env, token, code=enrolment.recovery_codes[0]).status_code == 204


def test_staff_cannot_reset_by_email(env: Env) -> None:
    staff = env.user(Role.PRACTITIONER)

    response = _ask_reset(env, staff.email)

    assert response.status_code == 202
    assert env.emails_to(staff.email) == []


# -- staff accounts: set up and recovered by an administrator ---------------------------


def _admin(env: Env) -> tuple[TestUser, dict[str, str]]:
    admin = env.user(Role.ADMIN)
    return admin, login(env.client, admin.email, admin.password, admin.totp_secret, now=env.tick())


def test_a_new_practitioner_sets_a_password_then_totp_before_anything_else(env_on: Env) -> None:
    env = env_on
    _, admin_headers = _admin(env)
    _, other_headers = _admin(env)
    created = env.client.post(
        "/api/v1/admin/practitioners",
        headers=admin_headers,
        json={
            "email": "Dr.Bernard@Example.org",
            "given_names": "Hélène",
            "family_name": "Bernard",
            "rpps": "10003456786",
            "specialty": "dermatology",
        },
    )
    # A second administrator approves; the setup link goes to the new address only.
    assert created.status_code == 202, created.text
    approved = env.client.post(
        f"/api/v1/admin/approvals/{created.json()['id']}/approve", headers=other_headers
    )
    assert approved.status_code == 200, approved.text
    assert approved.json()["role"] == "practitioner"
    email = "dr.bernard@example.org"
    assert_problem(env.post_login(email, NEW_PASSWORD), 401)  # no password yet
    setup_token = link_token(env.emails_to(email)[-1])

    assert _complete(env, setup_token).status_code == 204
    assert_problem(_complete(env, setup_token, password="other-granite-heron"), 400)
    signed_in = env.post_login(email, NEW_PASSWORD).json()
    assert signed_in["mfa_setup_required"] is True
    pending = bearer(signed_in["token"])
    assert_problem(env.client.get("/api/v1/me", headers=pending), 401)
    enrolment = enrol_totp(env.client, pending, now=env.tick())

    me = env.client.get("/api/v1/me", headers=enrolment.headers).json()
    assert me["role"] == "practitioner"
    assert me["mfa_enabled"] is True


def test_a_setup_token_expires_after_three_days(env: Env) -> None:
    _, admin_headers = _admin(env)
    _, other_headers = _admin(env)
    asked = env.client.post(
        "/api/v1/admin/staff",
        headers=admin_headers,
        json={"email": "support.new@example.org", "role": "support"},
    ).json()
    env.client.post(f"/api/v1/admin/approvals/{asked['id']}/approve", headers=other_headers)
    setup_token = link_token(env.emails_to("support.new@example.org")[-1])

    env.tick(73 * 3600)

    assert_problem(_complete(env, setup_token), 400)


def _recovered(env: Env, account_id: object, **reset: bool) -> Any:
    """One admin asks to recover ``account_id``, another approves: the approval's answer."""
    _, admin_headers = _admin(env)
    _, other_headers = _admin(env)
    asked = env.client.post(
        f"/api/v1/admin/accounts/{account_id}/recovery", headers=admin_headers, json=reset
    )
    assert asked.status_code == 202, asked.text
    approved = env.client.post(
        f"/api/v1/admin/approvals/{asked.json()['id']}/approve", headers=other_headers
    )
    assert approved.status_code == 200, approved.text
    return approved.json()


def test_two_admins_recover_a_staff_member_who_lost_password_and_phone(env: Env) -> None:
    doctor = env.user(Role.PRACTITIONER)
    doctor_session = login(
        env.client, doctor.email, doctor.password, doctor.totp_secret, now=env.tick()
    )

    recovery = _recovered(env, doctor.account_id, password=True, second_factor=True)

    assert recovery["sessions_ended"] == 1
    assert "setup_token" not in recovery
    assert_problem(env.client.get("/api/v1/me", headers=doctor_session), 401)
    assert_problem(env.post_login(doctor.email, doctor.password), 401)
    # The setup link is emailed to the staff member's own address.
    assert _complete(env, link_token(env.emails_to(doctor.email)[-1])).status_code == 204
    signed_in = env.post_login(doctor.email, NEW_PASSWORD).json()
    assert signed_in["mfa_setup_required"] is True
    old_code = pyotp.TOTP(doctor.totp_secret or "").at(env.tick())
    assert_problem(
        env.client.post(
            "/api/v1/auth/mfa", json={"code": old_code}, headers=bearer(signed_in["token"])
        ),
        409,
    )
    assert enrol_totp(env.client, bearer(signed_in["token"]), now=env.tick())


def test_admins_may_reset_only_the_second_factor(env: Env) -> None:
    doctor = env.user(Role.PRACTITIONER)

    _recovered(env, doctor.account_id, password=False, second_factor=True)

    # No password to set, so no link: the owner is only told the factor was reset.
    (told,) = env.emails_to(doctor.email)
    assert " ".join(str(told["Subject"]).split()) == (
        "Hippocrate : la sécurité de votre compte a changé"
    )
    assert "token=" not in told.get_body(preferencelist=("plain",)).get_content()
    assert env.post_login(doctor.email, doctor.password).json()["mfa_setup_required"] is True


def test_staff_recovery_is_refused_for_patients_and_for_oneself(env: Env) -> None:
    admin, admin_headers = _admin(env)
    patient = env.user()

    for account_id in (patient.account_id, admin.account_id):
        response = env.client.post(
            f"/api/v1/admin/accounts/{account_id}/recovery", headers=admin_headers, json={}
        )
        assert_problem(response, 409)
