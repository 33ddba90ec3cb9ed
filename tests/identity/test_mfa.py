"""The second factor: TOTP codes used once, recovery codes used once, wrong codes
throttled, staff enrolment before anything else, and a pending session that reaches
nothing but the routes that complete it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pyotp
import pytest

from hippocrate.identity.models import Role
from tests.identity.conftest import Env, assert_problem
from tests.identity.helpers import TestUser, bearer, enrol_totp, login, totp_code


def _pending(env: Env, user: TestUser) -> dict[str, str]:
    response = env.post_login(user.email, user.password)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["mfa_required"] is True
    return bearer(body["token"])


def _mfa(env: Env, headers: dict[str, str], code: str) -> httpx.Response:
    return env.client.post("/api/v1/auth/mfa", json={"code": code}, headers=headers)


# -- staff sign-in -----------------------------------------------------------------------


@pytest.mark.parametrize("role", [Role.PRACTITIONER, Role.SUPPORT, Role.DPO, Role.ADMIN])
def test_staff_sign_in_asks_for_the_second_factor(env: Env, role: Role) -> None:
    user = env.user(role)

    response = env.post_login(user.email, user.password)

    body = response.json()
    assert response.status_code == 200
    assert body["mfa_required"] is True
    assert body["mfa_setup_required"] is False
    assert "token_type" not in body


def test_a_pending_session_reaches_nothing_but_the_second_factor(env: Env) -> None:
    admin = env.user(Role.ADMIN)
    pending = _pending(env, admin)

    for method, path in [
        ("GET", "/api/v1/me"),
        ("GET", "/api/v1/support/accounts"),
        ("DELETE", "/api/v1/admin/sessions"),
        ("POST", "/api/v1/me/recovery-codes"),
    ]:
        response = env.client.request(method, path, headers=pending, json={"code": "123456"})
        assert_problem(response, 401)

    completed = _mfa(env, pending, totp_code(admin.totp_secret or ""))
    assert completed.status_code == 200
    full = bearer(completed.json()["token"])
    assert env.client.get("/api/v1/support/accounts", headers=full).status_code == 200
    # The pending token ended when the session gained its factor.
    assert_problem(env.client.get("/api/v1/me", headers=pending), 401)
    assert_problem(env.client.post("/api/v1/auth/logout", headers=pending), 401)


def test_a_pending_session_lives_ten_minutes(env: Env) -> None:
    user = env.user(Role.PRACTITIONER)
    pending = _pending(env, user)

    env.later(minutes=11)

    assert_problem(_mfa(env, pending, "000000"), 401)  # the session, not the code


# -- TOTP codes --------------------------------------------------------------------------


def test_a_totp_code_cannot_be_replayed(env_on: Env) -> None:
    env = env_on
    user = env.user(Role.PRACTITIONER)
    assert user.totp_secret is not None
    now = datetime.now(UTC)
    env.set_clock(now)
    totp = pyotp.TOTP(user.totp_secret)
    code = totp.at(now)

    assert _mfa(env, _pending(env, user), code).status_code == 200
    replay = _mfa(env, _pending(env, user), code)

    body = assert_problem(replay, 401)
    assert "already used" in body["detail"]


def test_an_older_code_cannot_follow_a_newer_one(env: Env) -> None:
    user = env.user(Role.PRACTITIONER)
    assert user.totp_secret is not None
    now = datetime.now(UTC)
    env.set_clock(now)
    totp = pyotp.TOTP(user.totp_secret)

    assert _mfa(env, _pending(env, user), totp.at(now)).status_code == 200
    older = _mfa(env, _pending(env, user), totp.at(now - timedelta(seconds=30)))
    newer = _mfa(env, _pending(env, user), totp.at(now + timedelta(seconds=30)))

    assert_problem(older, 401)
    assert newer.status_code == 200


def test_a_code_from_two_steps_away_is_refused(env: Env) -> None:
    user = env.user(Role.PRACTITIONER)
    assert user.totp_secret is not None
    now = datetime.now(UTC)
    env.set_clock(now)

    stale = pyotp.TOTP(user.totp_secret).at(now - timedelta(seconds=90))

    assert_problem(_mfa(env, _pending(env, user), stale), 401)


def test_wrong_codes_lock_the_account(env: Env) -> None:
    user = env.user(Role.PRACTITIONER)
    pending = _pending(env, user)
    right = pyotp.TOTP(user.totp_secret or "").now()
    wrong = f"{(int(right) + 1) % 1_000_000:06d}"
    for _ in range(5):
        assert_problem(_mfa(env, pending, wrong), 401)

    locked = _mfa(env, pending, right)

    # The second factor's own lock (tests/identity/test_mfa_limits.py), until an admin
    # lifts it, ended the waiting session; the sign-in lock answers first at the
    # password step (limiters before anything is verified).
    assert_problem(locked, 401)
    assert_problem(env.post_login(user.email, user.password), 429)


# -- recovery codes -------------------------------------------------------------------------


def _patient_with_totp(env: Env) -> tuple[TestUser, list[str], str]:
    """A patient who set up TOTP through the API, on a clock the test steps with
    ``env.tick()`` (one fresh TOTP step per tick)."""
    user = env.user()
    now = env.tick()
    enrolment = enrol_totp(env.client, env.login(user), password=user.password, now=now)
    return user, enrolment.recovery_codes, enrolment.secret


def test_a_recovery_code_works_once(env_on: Env) -> None:
    env = env_on
    user, codes, _ = _patient_with_totp(env)

    first = _mfa(env, _pending(env, user), codes[0])
    again = _mfa(env, _pending(env, user), codes[0])

    assert first.status_code == 200
    assert_problem(again, 401)
    headers = bearer(first.json()["token"])
    assert env.client.get("/api/v1/me", headers=headers).json()["recovery_codes_left"] == 9


def test_recovery_codes_are_accepted_however_they_are_typed(env: Env) -> None:
    user, codes, _ = _patient_with_totp(env)

    typed = codes[1].replace("-", " ").lower()

    assert _mfa(env, _pending(env, user), typed).status_code == 200


def test_regenerated_recovery_codes_replace_the_old_ones(env: Env) -> None:
    user, old_codes, secret = _patient_with_totp(env)
    headers = login(env.client, user.email, user.password, secret, now=env.tick())

    refused = env.client.post("/api/v1/me/recovery-codes", headers=headers, json={"code": "000000"})
    response = env.client.post(
        "/api/v1/me/recovery-codes",
        headers=headers,
        json={"code": totp_code(secret, now=env.tick())},
    )

    assert_problem(refused, 401)
    assert response.status_code == 200
    new_codes = response.json()["recovery_codes"]
    assert len(new_codes) == 10
    assert not set(new_codes) & set(old_codes)
    assert_problem(_mfa(env, _pending(env, user), old_codes[0]), 401)
    assert _mfa(env, _pending(env, user), new_codes[0]).status_code == 200


# -- enrolment ----------------------------------------------------------------------------


def test_a_staff_member_without_totp_can_only_set_it_up(env: Env) -> None:
    user = env.user(Role.PRACTITIONER, totp=False)

    response = env.post_login(user.email, user.password)
    body = response.json()
    assert body["mfa_required"] is True
    assert body["mfa_setup_required"] is True
    pending = bearer(body["token"])

    assert_problem(_mfa(env, pending, "123456"), 409)
    assert_problem(env.client.get("/api/v1/me", headers=pending), 401)
    setup = env.client.post("/api/v1/me/totp", headers=pending)
    assert setup.status_code == 200
    secret = setup.json()["secret"]
    assert setup.json()["otpauth_uri"].startswith("otpauth://totp/Hippocrate:")
    assert f"secret={secret}" in setup.json()["otpauth_uri"]
    wrong = env.client.post("/api/v1/me/totp/confirm", headers=pending, json={"code": "000000"})
    assert_problem(wrong, 401)

    confirmed = env.client.post(
        "/api/v1/me/totp/confirm", headers=pending, json={"code": totp_code(secret)}
    )

    assert confirmed.status_code == 200, confirmed.text
    codes = confirmed.json()["recovery_codes"]
    assert len(codes) == 10
    assert len(set(codes)) == 10
    full = bearer(confirmed.json()["token"])
    me = env.client.get("/api/v1/me", headers=full).json()
    assert me["mfa_enabled"] is True
    assert me["role"] == "practitioner"
    assert_problem(env.client.get("/api/v1/me", headers=pending), 401)
    # From now on a sign-in asks for a code, not for a setup.
    assert login(env.client, user.email, user.password, secret)


def test_a_set_up_factor_cannot_be_replaced_from_a_password_only_session(env: Env) -> None:
    user, _, _ = _patient_with_totp(env)
    pending = _pending(env, user)

    assert_problem(env.client.post("/api/v1/me/totp", headers=pending), 409)


def test_enabling_totp_ends_the_other_sessions(env: Env) -> None:
    user = env.user()
    other = env.login(user)

    enrolment = enrol_totp(env.client, env.login(user), password=user.password)

    assert_problem(env.client.get("/api/v1/me", headers=other), 401)
    assert env.client.get("/api/v1/me", headers=enrolment.headers).status_code == 200


def test_a_patient_may_turn_the_second_factor_off_with_password_and_code(env: Env) -> None:
    user, _, secret = _patient_with_totp(env)
    headers = login(env.client, user.email, user.password, secret, now=env.tick())

    without_password = env.client.post(
        "/api/v1/me/totp/disable",
        headers=headers,
        json={"password": "not-the-password-1", "code": totp_code(secret, now=env.tick())},
    )
    response = env.client.post(
        "/api/v1/me/totp/disable",
        headers=headers,
        json={"password": user.password, "code": totp_code(secret, now=env.tick())},
    )

    assert_problem(without_password, 401)
    assert response.status_code == 204
    assert env.post_login(user.email, user.password).json()["token_type"] == "bearer"


def test_staff_cannot_turn_the_second_factor_off(env: Env) -> None:
    user = env.user(Role.SUPPORT)
    headers = env.login(user)

    response = env.client.post(
        "/api/v1/me/totp/disable",
        headers=headers,
        json={"password": user.password, "code": totp_code(user.totp_secret or "")},
    )

    assert_problem(response, 403)


# -- turning the second factor on from a signed-in session -----------------------------


def _begin(env: Env, headers: dict[str, str]) -> str:
    begun = env.client.post("/api/v1/me/totp", headers=headers)
    assert begun.status_code == 200, begun.text
    return str(begun.json()["secret"])


def test_a_stolen_full_session_cannot_turn_on_the_thiefs_second_factor(env: Env) -> None:
    """Turned on with a stolen session alone, the thief's authenticator would lock the
    holder out (their password then needs the thief's code, and so does a reset link):
    a signed-in account gives its password, checked on the sign-in's counters."""
    user = env.user()
    stolen = env.login(user)
    holder = env.login(user)
    secret = _begin(env, stolen)
    for body in (
        {"code": totp_code(secret, now=env.tick())},
        {"code": totp_code(secret, now=env.tick()), "password": "not-the-password-1"},
    ):
        refused = env.client.post("/api/v1/me/totp/confirm", headers=stolen, json=body)
        assert_problem(refused, 401)
    me = env.client.get("/api/v1/me", headers=holder)
    assert me.status_code == 200, me.text
    assert me.json()["mfa_enabled"] is False
    # With the password it goes through, and the other sessions end.
    confirmed = env.client.post(
        "/api/v1/me/totp/confirm",
        headers=stolen,
        json={"code": totp_code(secret, now=env.tick()), "password": user.password},
    )
    assert confirmed.status_code == 200, confirmed.text
    assert env.client.get("/api/v1/me", headers=holder).status_code == 401
    full = bearer(confirmed.json()["token"])
    assert env.client.get("/api/v1/me", headers=full).json()["mfa_enabled"] is True


def test_wrong_passwords_at_totp_confirmation_lock_as_at_sign_in(env: Env) -> None:
    """The confirmation's password is counted as a sign-in's: guessing through it locks
    the account as guessing at sign-in does."""
    user = env.user()
    headers = env.login(user)
    secret = _begin(env, headers)
    statuses = []
    for _ in range(12):
        answer = env.client.post(
            "/api/v1/me/totp/confirm",
            headers=headers,
            json={"code": totp_code(secret, now=env.tick()), "password": "not-the-password-1"},
        )
        statuses.append(answer.status_code)
    assert statuses[0] == 401
    assert statuses[-1] in (423, 429), statuses
    assert env.post_login(user.email, user.password).status_code in (423, 429)


def test_a_staff_pending_setup_session_confirms_without_the_password(env: Env) -> None:
    user = env.user(Role.DPO, totp=False)
    pending = _pending(env, user)
    secret = _begin(env, pending)
    confirmed = env.client.post(
        "/api/v1/me/totp/confirm", headers=pending, json={"code": totp_code(secret)}
    )
    assert confirmed.status_code == 200, confirmed.text
    assert login(env.client, user.email, user.password, secret, now=env.tick())
