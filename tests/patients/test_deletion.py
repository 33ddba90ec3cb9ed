"""Deleting one's account through the API asks the password again, and a code when the
second factor is on, as the page does: a session alone, stolen or left open, deletes
nothing; wrong answers are counted and lock the account as a sign-in's do."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from hippocrate.identity.models import Account, AccountStatus, Role
from hippocrate.patients.models import Patient, PatientStatus
from tests.conftest import Store
from tests.identity.conftest import Env, assert_problem, running
from tests.identity.helpers import TestUser, fast_password_hashing, totp_code

ME = "/api/v1/patients/me"


@pytest.fixture
def env(sqlite_store: Store, tmp_path: Path) -> Iterator[Env]:
    with fast_password_hashing(), running(sqlite_store, tmp_path) as running_env:
        yield running_env


def _delete(env: Env, headers: dict[str, str], body: Any = None) -> httpx.Response:
    return env.client.request("DELETE", ME, headers=headers, json=body)


def _still_there(env: Env, user: TestUser, headers: dict[str, str]) -> None:
    """The account and its record are intact, and the session still reads the record."""
    with env.store.sessions() as session:
        account = session.get(Account, user.account_id)
        patient = session.get(Patient, user.patient_id)
        assert account is not None
        assert account.status is AccountStatus.ACTIVE
        assert patient is not None
        assert patient.status is not PatientStatus.SHREDDED
    assert env.client.get(ME, headers=headers).status_code == 200


def test_a_stolen_session_without_the_password_deletes_nothing(env: Env) -> None:
    user = env.user()
    stolen = env.login(user)  # all a thief holds: the bearer token

    assert _delete(env, stolen).status_code == 422  # no body: nothing to check
    assert _delete(env, stolen, {}).status_code == 422
    refused = _delete(env, stolen, {"password": "a-guess-at-the-password"})
    assert_problem(refused, 401)
    _still_there(env, user, stolen)
    with env.store.sessions() as session:
        account = session.get(Account, user.account_id)
        assert account is not None
        assert account.failed_logins == 1  # counted as a failed sign-in is

    assert _delete(env, stolen, {"password": user.password}).status_code == 204
    assert_problem(env.client.get(ME, headers=stolen), 401)
    with env.store.sessions() as session:
        account = session.get(Account, user.account_id)
        assert account is not None
        assert account.status is AccountStatus.DELETED


def test_with_a_second_factor_the_password_alone_deletes_nothing(env: Env) -> None:
    user = env.user(totp=True)
    assert user.totp_secret is not None
    headers = env.login(user)

    assert_problem(_delete(env, headers, {"password": user.password}), 401)
    assert_problem(_delete(env, headers, {"password": user.password, "code": "000000"}), 401)
    wrong_password = {"password": "not-the-password", "code": totp_code(user.totp_secret)}
    assert_problem(_delete(env, headers, wrong_password), 401)
    _still_there(env, user, headers)

    code = totp_code(user.totp_secret, now=env.tick())  # a step the sign-in did not spend
    assert _delete(env, headers, {"password": user.password, "code": code}).status_code == 204


def test_guessing_the_password_through_deletion_locks_sign_in(env: Env) -> None:
    user = env.user()
    stolen = env.login(user)
    for index in range(env.settings.login_failures_per_account):
        answer = _delete(env, stolen, {"password": f"guess-number-{index}-of-many"})
        assert answer.status_code == 401, answer.text
    locked = _delete(env, stolen, {"password": user.password})
    assert_problem(locked, 429)
    assert "Retry-After" in locked.headers
    # The lock is the sign-in's: the owner waits too, and the account is still there.
    assert_problem(env.post_login(user.email, user.password), 429)
    with env.store.sessions() as session:
        account = session.get(Account, user.account_id)
        assert account is not None
        assert account.status is AccountStatus.ACTIVE


def test_staff_are_not_asked_a_password_they_cannot_use_here(env: Env) -> None:
    """A practitioner has no record to delete: refused before any password is looked
    at, so nothing is counted against their account."""
    doctor = env.user(Role.PRACTITIONER)
    headers = env.login(doctor)
    assert_problem(_delete(env, headers, {"password": "not-the-password"}), 404)
    with env.store.sessions() as session:
        account = session.get(Account, doctor.account_id)
        assert account is not None
        assert account.failed_logins == 0
