"""Sessions: idle and absolute lifetimes (shorter for staff), logout, and the events that
end them (password change, admin, disabling)."""

from __future__ import annotations

from hippocrate.identity.models import Account, AccountStatus, Role
from tests.identity.conftest import Env, assert_problem
from tests.identity.helpers import TestUser, login


def _me(env: Env, headers: dict[str, str]) -> int:
    return env.client.get("/api/v1/me", headers=headers).status_code


def test_staff_sessions_idle_out_sooner_than_patients(env_on: Env) -> None:
    env = env_on
    patient, doctor = env.user(), env.user(Role.PRACTITIONER)
    patient_session, doctor_session = env.login(patient), env.login(doctor)

    env.later(minutes=16)  # staff idle limit: 15 min; patients: 30 min

    assert _me(env, patient_session) == 200
    assert _me(env, doctor_session) == 401
    env.later(minutes=16 + 31)
    assert _me(env, patient_session) == 401


def test_an_active_session_still_ends_at_its_absolute_lifetime(env: Env) -> None:
    patient, doctor = env.user(), env.user(Role.PRACTITIONER)
    patient_session, doctor_session = env.login(patient), env.login(doctor)

    for minutes in range(10, 8 * 60, 10):  # a request every 10 minutes for 8 hours
        env.later(minutes=minutes)
        assert _me(env, patient_session) == 200
        assert _me(env, doctor_session) == 200, minutes
    env.later(minutes=8 * 60 + 1)  # staff: 8 hours
    assert _me(env, doctor_session) == 401
    for minutes in range(8 * 60 + 10, 12 * 60, 10):
        env.later(minutes=minutes)
        assert _me(env, patient_session) == 200
    env.later(minutes=12 * 60 + 1)  # patients: 12 hours
    assert _me(env, patient_session) == 401


def test_logout_ends_the_session_and_only_it(env: Env) -> None:
    user = env.user()
    first, second = env.login(user), env.login(user)

    response = env.client.post("/api/v1/auth/logout", headers=first)

    assert response.status_code == 204
    assert _me(env, first) == 401
    assert _me(env, second) == 200


def test_a_password_change_ends_the_other_sessions(env_on: Env) -> None:
    env = env_on
    user = env.user()
    current, other = env.login(user), env.login(user)

    wrong = env.client.post(
        "/api/v1/me/password",
        headers=current,
        json={"current_password": "not-the-password-1", "new_password": "quiet-lynx-over-ice"},
    )
    weak = env.client.post(
        "/api/v1/me/password",
        headers=current,
        json={"current_password": user.password, "new_password": "password123456"},
    )
    changed = env.client.post(
        "/api/v1/me/password",
        headers=current,
        json={"current_password": user.password, "new_password": "quiet-lynx-over-ice"},
    )

    assert_problem(wrong, 401)
    assert_problem(weak, 422)
    assert changed.status_code == 204
    assert _me(env, current) == 200
    assert _me(env, other) == 401
    assert env.post_login(user.email, "quiet-lynx-over-ice").status_code == 200


def test_guessing_the_current_password_counts_as_failed_sign_ins(env: Env) -> None:
    user = env.user()
    session = env.login(user)
    for _ in range(5):
        response = env.client.post(
            "/api/v1/me/password",
            headers=session,
            json={"current_password": "not-the-password-1", "new_password": "quiet-lynx-ice-1"},
        )
        assert_problem(response, 401)

    assert_problem(env.post_login(user.email, user.password), 429)


# -- administrators ----------------------------------------------------------------------


def _admin(env: Env) -> tuple[TestUser, dict[str, str]]:
    admin = env.user(Role.ADMIN)
    return admin, login(env.client, admin.email, admin.password, admin.totp_secret)


def test_an_admin_ends_every_session_of_one_account(env: Env) -> None:
    _, admin_headers = _admin(env)
    user, bystander = env.user(), env.user()
    sessions = [env.login(user), env.login(user)]
    bystander_session = env.login(bystander)

    response = env.client.delete(
        f"/api/v1/admin/accounts/{user.account_id}/sessions", headers=admin_headers
    )

    assert response.json() == {"ended": 2}
    assert [_me(env, s) for s in sessions] == [401, 401]
    assert _me(env, bystander_session) == 200
    assert env.post_login(user.email, user.password).status_code == 200


def test_an_admin_ends_everyone_s_sessions_own_included(env: Env) -> None:
    _, admin_headers = _admin(env)
    others = [env.login(env.user()) for _ in range(3)]

    response = env.client.delete("/api/v1/admin/sessions", headers=admin_headers)

    assert response.status_code == 200
    assert response.json() == {"ended": 4}
    assert [_me(env, s) for s in others] == [401, 401, 401]
    assert _me(env, admin_headers) == 401


def test_disabling_an_account_ends_its_sessions_and_sign_in(env: Env) -> None:
    _, admin_headers = _admin(env)
    user = env.user()
    session = env.login(user)

    disabled = env.client.post(
        f"/api/v1/admin/accounts/{user.account_id}/disable",
        headers=admin_headers,
        json={"reason": "reported stolen phone"},
    )

    assert disabled.status_code == 200
    assert disabled.json()["status"] == "disabled"
    assert disabled.json()["disabled_reason"] == "reported stolen phone"
    assert _me(env, session) == 401
    assert_problem(env.post_login(user.email, user.password), 403)
    enabled = env.client.post(
        f"/api/v1/admin/accounts/{user.account_id}/enable", headers=admin_headers
    )
    assert enabled.json()["status"] == "active"
    assert env.post_login(user.email, user.password).status_code == 200


def test_an_admin_lifts_a_lock_without_opening_the_account(env: Env) -> None:
    _, admin_headers = _admin(env)
    user = env.user()
    for _ in range(5):
        env.post_login(user.email, "not-the-password-1")
    assert_problem(env.post_login(user.email, user.password), 429)

    response = env.client.post(
        f"/api/v1/admin/accounts/{user.account_id}/unlock", headers=admin_headers
    )

    assert response.status_code == 200
    assert response.json()["locked"] is False
    assert env.post_login(user.email, user.password).status_code == 200


def test_an_admin_cannot_disable_their_own_account(env: Env) -> None:
    admin, admin_headers = _admin(env)

    response = env.client.post(
        f"/api/v1/admin/accounts/{admin.account_id}/disable",
        headers=admin_headers,
        json={"reason": "oops"},
    )

    assert_problem(response, 409)


def test_only_admins_reach_the_admin_routes(env: Env) -> None:
    target = env.user()
    for role in (Role.PATIENT, Role.PRACTITIONER, Role.SUPPORT, Role.DPO):
        headers = env.login(env.user(role))
        for method, path in [
            ("DELETE", "/api/v1/admin/sessions"),
            ("DELETE", f"/api/v1/admin/accounts/{target.account_id}/sessions"),
            ("POST", f"/api/v1/admin/accounts/{target.account_id}/unlock"),
        ]:
            assert_problem(env.client.request(method, path, headers=headers), 403)
    assert_problem(env.client.delete("/api/v1/admin/sessions"), 401)


def test_an_account_contained_by_the_guard_is_released_by_the_guard_only(env: Env) -> None:
    _, admin_headers = _admin(env)
    user = env.user()
    with env.store.sessions.begin() as session:
        account = session.get(Account, user.account_id)
        assert account is not None
        account.status, account.disabled_reason = AccountStatus.DISABLED, "contained"

    response = env.client.post(
        f"/api/v1/admin/accounts/{user.account_id}/enable", headers=admin_headers
    )

    assert "guard release" in assert_problem(response, 409)["detail"]
