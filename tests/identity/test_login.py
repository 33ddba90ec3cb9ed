"""Sign-in hardening: no enumeration by answer or timing, throttling per account and per
address checked before the password, locks that say when they end, argon2 rehashing."""

from __future__ import annotations

import statistics
import time
import warnings
from collections.abc import Callable
from typing import Any

import argon2
import pytest

from hippocrate.identity import passwords, signin
from hippocrate.identity.models import Account, Role
from tests.conftest import Store
from tests.identity.conftest import Env, assert_problem
from tests.identity.helpers import bearer, fast_password_hashing, make_user

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message=r"Using `httpx` with `starlette\.testclient`")
    from fastapi.testclient import TestClient

UNKNOWN = "nobody.here@example.org"


def _comparable(response: Any) -> tuple[int, str, dict[str, Any]]:
    return response.status_code, response.headers["content-type"], response.json()


# -- the same answer --------------------------------------------------------------------


def test_unknown_email_and_wrong_password_get_the_same_answer(env: Env) -> None:
    user = env.user()

    unknown = env.post_login(UNKNOWN, "some-password-123")
    wrong = env.post_login(user.email, "some-password-123")

    assert_problem(wrong, 401)
    assert _comparable(unknown) == _comparable(wrong)
    assert "password" in wrong.json()["detail"]


def test_a_malformed_email_gets_the_same_answer_as_a_wrong_password(env: Env) -> None:
    user = env.user()

    malformed = env.post_login("not an email", "some-password-123")
    wrong = env.post_login(user.email, "some-password-123")

    assert _comparable(malformed) == _comparable(wrong)


def test_the_email_is_matched_whatever_its_case_and_spaces(env: Env) -> None:
    user = env.user()

    response = env.post_login(f"  {user.email.upper()} ", user.password)

    assert response.status_code == 200, response.text


def _median_login_seconds(env: Env, email: str, rounds: int) -> float:
    durations = []
    for _ in range(rounds):
        start = time.perf_counter()
        response = env.post_login(email, "a-wrong-password-42")
        durations.append(time.perf_counter() - start)
        assert response.status_code == 401
    return statistics.median(durations)


def _timing_ratio(env: Env, known_email: str, rounds: int = 7) -> float:
    """Median time of a sign-in with an unknown email over one with a wrong password,
    interleaved so that machine load affects both alike."""
    unknown, wrong = [], []
    _median_login_seconds(env, UNKNOWN, 2)  # warm up both paths
    _median_login_seconds(env, known_email, 2)
    for _ in range(rounds):
        unknown.append(_median_login_seconds(env, UNKNOWN, 1))
        wrong.append(_median_login_seconds(env, known_email, 1))
    return statistics.median(unknown) / statistics.median(wrong)


@pytest.fixture
def production_hashing() -> Any:
    """The production argon2 parameters, so that hashing dominates as it does live."""
    with passwords.unsafe_parameters(passwords.PRODUCTION_PARAMETERS):
        yield


@pytest.mark.usefixtures("production_hashing")
def test_timing_does_not_tell_whether_an_account_exists(make_env: Callable[..., Env]) -> None:
    env = make_env(login_failures_per_account=1000, login_failures_per_client=1000)
    user = env.user()

    ratio = _timing_ratio(env, user.email)

    assert 0.7 <= ratio <= 1.4, ratio


@pytest.mark.usefixtures("production_hashing")
def test_the_timing_check_sees_a_missing_dummy_hash(
    make_env: Callable[..., Env], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Control: answering unknown accounts without hashing is caught by the measure."""
    env = make_env(login_failures_per_account=1000, login_failures_per_client=1000)
    user = env.user()
    real_verify = passwords.verify

    def shortcut(stored: str | None, password: str) -> bool:
        return False if stored is None else real_verify(stored, password)

    monkeypatch.setattr(signin.passwords, "verify", shortcut)

    assert _timing_ratio(env, user.email, rounds=5) < 0.7


# -- what only the password holder learns ----------------------------------------------


def test_a_patient_without_second_factor_gets_a_bearer_token(env: Env) -> None:
    user = env.user()

    response = env.post_login(user.email, user.password)

    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"token", "token_type", "expires_at", "unseen_notices"}
    assert body["token_type"] == "bearer"
    assert body["unseen_notices"] == 0
    me = env.client.get("/api/v1/me", headers=bearer(body["token"]))
    assert me.status_code == 200
    assert me.json()["role"] == "patient"


def test_a_pending_account_answers_like_an_unknown_address_even_to_its_password(
    env: Env,
) -> None:
    """Anyone can make a pending account with a password of their choosing: telling
    it apart from a wrong password would tell which addresses were free (ACCOUNTS.md)."""
    user = env.user()
    with env.store.sessions.begin() as session:
        account = session.get(Account, user.account_id)
        assert account is not None
        account.status = account.status.PENDING

    wrong = env.post_login(user.email, "some-password-123")
    right = env.post_login(user.email, user.password)

    unknown = _comparable(env.post_login(UNKNOWN, "some-password-123"))
    assert _comparable(wrong) == unknown
    assert _comparable(right) == unknown
    assert_problem(right, 401)


def test_a_disabled_account_cannot_sign_in(env: Env) -> None:
    user = env.user()
    with env.store.sessions.begin() as session:
        account = session.get(Account, user.account_id)
        assert account is not None
        account.status = account.status.DISABLED

    assert "disabled" in assert_problem(env.post_login(user.email, user.password), 403)["detail"]


# -- throttling --------------------------------------------------------------------------


def _fail(env: Env, email: str, times: int, client: TestClient | None = None) -> None:
    for _ in range(times):
        response = (client or env.client).post(
            "/api/v1/auth/login", json={"email": email, "password": "not-the-password-1"}
        )
        assert response.status_code == 401, response.text


def test_the_sixth_attempt_is_refused_even_with_the_right_password(env_on: Env) -> None:
    env = env_on
    user = env.user()
    _fail(env, user.email, 5)

    response = env.post_login(user.email, user.password)

    body = assert_problem(response, 429)
    assert body["locked_until"]
    assert body["locked_until"][:16] in body["detail"]
    assert 0 < int(response.headers["Retry-After"]) <= env.settings.login_lock_seconds


def test_an_unknown_address_locks_exactly_like_an_account(env: Env) -> None:
    user = env.user()
    _fail(env, user.email, 5)
    _fail(env, UNKNOWN, 5)

    known = env.post_login(user.email, "not-the-password-1")
    unknown = env.post_login(UNKNOWN, "not-the-password-1")

    assert_problem(known, 429)
    assert known.status_code == unknown.status_code
    assert set(known.json()) == set(unknown.json())
    assert abs(int(known.headers["Retry-After"]) - int(unknown.headers["Retry-After"])) <= 1


def test_sign_in_works_again_once_the_lock_has_run_out(env: Env) -> None:
    user = env.user()
    _fail(env, user.email, 5)
    assert_problem(env.post_login(user.email, user.password), 429)

    env.later(seconds=env.settings.login_lock_seconds + 1)

    assert env.post_login(user.email, user.password).status_code == 200


def test_a_success_forgets_the_account_failures(env: Env) -> None:
    user = env.user()
    _fail(env, user.email, 4)
    assert env.post_login(user.email, user.password).status_code == 200

    _fail(env, user.email, 4)

    assert env.post_login(user.email, user.password).status_code == 200


def test_failures_from_one_address_block_it_for_every_account(
    make_env: Callable[..., Env],
) -> None:
    env = make_env(login_failures_per_client=5)
    user = env.user()
    for index in range(5):  # five different accounts, one failure each
        _fail(env, f"someone.{index}@example.org", 1)

    blocked = env.post_login(user.email, user.password)
    elsewhere = TestClient(env.app, client=("198.51.100.7", 50000)).post(
        "/api/v1/auth/login", json={"email": user.email, "password": user.password}
    )

    assert_problem(blocked, 429)
    assert elsewhere.status_code == 200


def test_the_lock_is_counted_in_the_database_across_app_processes(
    sqlite_store: Store, make_env: Callable[..., Env]
) -> None:
    first, second = make_env(), make_env()
    user = first.user()
    _fail(first, user.email, 3)
    _fail(second, user.email, 2)

    assert_problem(first.post_login(user.email, user.password), 429)


def test_support_sees_the_lock(env: Env) -> None:
    user = env.user()
    support = env.user(Role.SUPPORT)
    _fail(env, user.email, 5)

    response = env.client.get(
        f"/api/v1/support/accounts/{user.account_id}", headers=env.login(support)
    )

    assert response.status_code == 200
    assert response.json()["locked"] is True
    assert response.json()["failed_logins"] == 5


# -- input ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        {"email": "a@example.org", "password": "x" * 20, "remember_me": True},
        {"email": "a@example.org"},
        {"email": "a@example.org", "password": "x" * 129},
        {"email": "a" * 400 + "@example.org", "password": "x" * 20},
        {"email": "a@example.org", "password": ""},
    ],
)
def test_a_malformed_request_is_a_422_problem(env: Env, body: dict[str, Any]) -> None:
    assert_problem(env.client.post("/api/v1/auth/login", json=body), 422)


# -- argon2 -----------------------------------------------------------------------------


def _stored_hash(env: Env, account_id: Any) -> str:
    with env.store.sessions() as session:
        account = session.get(Account, account_id)
        assert account is not None
        assert account.password_hash is not None
        return account.password_hash


def test_the_hash_is_redone_at_sign_in_when_the_parameters_change(env: Env) -> None:
    user = env.user()
    before = argon2.extract_parameters(_stored_hash(env, user.account_id))
    stronger = argon2.Parameters(
        type=argon2.Type.ID,
        version=19,
        salt_len=16,
        hash_len=32,
        time_cost=before.time_cost + 1,
        memory_cost=before.memory_cost * 2,
        parallelism=1,
    )

    with passwords.unsafe_parameters(stronger):
        assert env.post_login(user.email, user.password).status_code == 200

    after = argon2.extract_parameters(_stored_hash(env, user.account_id))
    assert after == stronger
    assert before != stronger
    with fast_password_hashing():  # the new hash still verifies, whatever is current
        assert env.post_login(user.email, user.password).status_code == 200


def test_production_parameters_meet_owasp() -> None:
    production = passwords.PRODUCTION_PARAMETERS

    assert production.type is argon2.Type.ID
    assert production.memory_cost >= 19 * 1024
    assert production.time_cost >= 2
    assert production.parallelism >= 1


def test_weaker_parameters_are_refused_outside_tests() -> None:
    weak = argon2.Parameters(
        type=argon2.Type.ID,
        version=19,
        salt_len=16,
        hash_len=32,
        time_cost=1,
        memory_cost=1024,
        parallelism=1,
    )

    with pytest.raises(ValueError, match="OWASP"):
        passwords.use_parameters(weak)


def test_seeding_helper_gives_each_role_a_working_sign_in(env: Env, sqlite_store: Store) -> None:
    for role in Role:
        if role is Role.OPERATOR:  # a command-line principal, never an account
            continue
        user = make_user(sqlite_store.sessions, role)
        me = env.client.get("/api/v1/me", headers=env.login(user))
        assert me.status_code == 200, (role, me.text)
        assert me.json()["role"] == role.value
        assert me.json()["mfa_enabled"] is role.is_staff
