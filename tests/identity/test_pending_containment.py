"""A session whose second factor is pending has no principal yet, so the guard is asked
by the steps themselves: once an account is contained, its pending session's code, and
its second factor's setup, are refused (403, the guard's containment) through the API
and through the pages alike, before any code is looked at; released, the same code
passes (the refusal was the containment's, not the code's)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from hippocrate.guard.service import Guard
from hippocrate.identity.models import Account, AuthSession, Role
from hippocrate.web import cookies
from tests.conftest import Store
from tests.identity.conftest import Env, assert_problem
from tests.identity.helpers import totp_code
from tests.web.conftest import running_pages, submit

LOCKED = "Account locked"  # the guard's Contained, as every contained request is answered


@pytest.fixture
def web(sqlite_store: Store, tmp_path: Path) -> Iterator[Env]:
    yield from running_pages(sqlite_store, tmp_path)


def _contain(env: Env, account_id: uuid.UUID) -> Guard:
    """Contain the account in the guard's state (every process refuses it from then on),
    before the account is disabled or its sessions ended."""
    guard: Guard = env.app.state.runtime.guard
    assert guard.state.contain(account_id, "breadth: test")
    return guard


def _full_sessions(env: Env, account_id: uuid.UUID) -> int:
    with env.store.sessions() as session:
        count = session.scalar(
            select(func.count())
            .select_from(AuthSession)
            .where(
                AuthSession.account_id == account_id,
                AuthSession.ended_at.is_(None),
                AuthSession.mfa_passed.is_(True),
            )
        )
    return int(count or 0)


def _account(env: Env, account_id: uuid.UUID) -> Account:
    with env.store.sessions() as session:
        account = session.get(Account, account_id)
        assert account is not None
        return account


# -- the API --------------------------------------------------------------------------------


def test_a_contained_accounts_pending_session_cannot_pass_its_code(env: Env) -> None:
    doctor = env.user(Role.PRACTITIONER)
    assert doctor.totp_secret is not None
    login = env.post_login(doctor.email, doctor.password)
    assert login.status_code == 200, login.text
    pending = {"Authorization": f"Bearer {login.json()['token']}"}
    guard = _contain(env, doctor.account_id)
    code = totp_code(doctor.totp_secret)

    refused = env.client.post("/api/v1/auth/mfa", json={"code": code}, headers=pending)

    assert assert_problem(refused, 403)["title"] == LOCKED
    assert _full_sessions(env, doctor.account_id) == 0
    assert _account(env, doctor.account_id).mfa_failures == 0  # no code was looked at
    # Released, the very same code passes: it was neither checked nor spent.
    guard.state.release(doctor.account_id)
    passed = env.client.post("/api/v1/auth/mfa", json={"code": code}, headers=pending)
    assert passed.status_code == 200, passed.text
    assert _full_sessions(env, doctor.account_id) == 1


def test_a_contained_staff_member_cannot_set_up_a_second_factor(env: Env) -> None:
    staff = env.user(Role.PRACTITIONER, totp=False)
    login = env.post_login(staff.email, staff.password)
    assert login.json()["mfa_setup_required"] is True
    pending = {"Authorization": f"Bearer {login.json()['token']}"}
    begun = env.client.post("/api/v1/me/totp", headers=pending)
    assert begun.status_code == 200, begun.text
    secret = begun.json()["secret"]
    guard = _contain(env, staff.account_id)
    code = totp_code(secret)

    assert assert_problem(env.client.post("/api/v1/me/totp", headers=pending), 403)["title"] == (
        LOCKED
    )
    confirm = env.client.post("/api/v1/me/totp/confirm", json={"code": code}, headers=pending)

    assert assert_problem(confirm, 403)["title"] == LOCKED
    assert _account(env, staff.account_id).totp_enabled is False
    assert _full_sessions(env, staff.account_id) == 0
    guard.state.release(staff.account_id)
    confirmed = env.client.post("/api/v1/me/totp/confirm", json={"code": code}, headers=pending)
    assert confirmed.status_code == 200, confirmed.text
    assert _account(env, staff.account_id).totp_enabled is True


# -- the pages ------------------------------------------------------------------------------


def test_the_code_page_refuses_a_contained_account(web: Env) -> None:
    doctor = web.user(Role.PRACTITIONER)
    assert doctor.totp_secret is not None
    first = submit(web.client, "/sign-in", {"email": doctor.email, "password": doctor.password})
    assert first.headers["location"].startswith("/sign-in/code")
    pending = web.client.cookies.get(cookies.SESSION)
    guard = _contain(web, doctor.account_id)
    code = totp_code(doctor.totp_secret)

    refused = submit(web.client, "/sign-in/code", {"code": code})

    assert refused.status_code == 403
    assert refused.headers["content-type"].startswith("text/html")
    assert 'role="alert"' in refused.text
    assert web.client.cookies.get(cookies.SESSION) == pending  # no new session
    assert _full_sessions(web, doctor.account_id) == 0
    guard.state.release(doctor.account_id)
    assert submit(web.client, "/sign-in/code", {"code": code}).status_code == 303
    assert web.client.cookies.get(cookies.SESSION) != pending


def test_the_second_factor_setup_page_refuses_a_contained_account(web: Env) -> None:
    staff = web.user(Role.PRACTITIONER, totp=False)
    first = submit(web.client, "/sign-in", {"email": staff.email, "password": staff.password})
    assert first.headers["location"] == "/account/second-factor"
    setup = web.client.get("/account/second-factor")
    assert setup.status_code == 200
    secret = _secret_on(setup.text)
    guard = _contain(web, staff.account_id)
    code = totp_code(secret)

    assert web.client.get("/account/second-factor").status_code == 403
    refused = submit(web.client, "/account/second-factor", {"code": code}, form="/sign-in")

    assert refused.status_code == 403
    assert 'role="alert"' in refused.text
    assert _account(web, staff.account_id).totp_enabled is False
    assert _full_sessions(web, staff.account_id) == 0
    guard.state.release(staff.account_id)
    done = submit(web.client, "/account/second-factor", {"code": code}, form="/sign-in")
    assert done.status_code == 200, done.text[:500]
    assert _account(web, staff.account_id).totp_enabled is True


def _secret_on(page: str) -> str:
    start = page.index('<code id="secret">') + len('<code id="secret">')
    return page[start : page.index("</code>", start)].replace(" ", "")
