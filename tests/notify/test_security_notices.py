"""The security notices to an account's owner, through the real API and database.

Each notice goes when its event happens, once, to the account's own address, with a
fixed text that carries nothing of the account's owner; the failure paths an attacker
drives (wrong passwords, wrong codes) send nothing but the lock notice, once per lock,
after the answer, and an address without an account gets exactly the same answers.
"""

from __future__ import annotations

import re
import socket
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path

import pytest
from sqlalchemy import select

from hippocrate.audit.recorder import Actor, attach
from hippocrate.identity.models import Role
from hippocrate.notify import delivery
from hippocrate.notify.models import OutboundEmail
from hippocrate.notify.service import send_later
from hippocrate.patients.schemas import PatientCreate
from tests.conftest import Store
from tests.identity.conftest import Env, link_token, running, text_of
from tests.identity.helpers import (
    TestUser,
    bearer,
    enrol_totp,
    fast_password_hashing,
    login_as,
    new_password,
    patient_data,
    totp_code,
)
from tests.notify.conftest import new_account, settings_for
from tests.notify.test_templates import _sentinel_hits
from tests.plaintext import find_in, spellings_of_patient

PUBLIC_URL = "https://hippocrate.example.fr"
SUBJECTS = {
    "security_alert": "Hippocrate : la sécurité de votre compte a changé",
    "recovery_code_used": "Hippocrate : un code de secours a été utilisé",
    "account_locked": "Hippocrate : connexion à votre compte bloquée",
    "account_suspended": "Hippocrate : votre compte est suspendu par sécurité",
    "account_deleted": "Hippocrate : votre compte a été supprimé",
    "reset_password": "Hippocrate : choisissez un nouveau mot de passe",
}
_CODE = re.compile(r"[A-HJ-NP-Z2-9]{4}-[A-HJ-NP-Z2-9]{4}")


@pytest.fixture(autouse=True)
def _fast_passwords() -> Iterator[None]:
    with fast_password_hashing():
        yield


@pytest.fixture
def api(store: Store, tmp_path: Path) -> Iterator[Env]:
    """The app on SQLite, then on PostgreSQL."""
    with running(store, tmp_path, public_url=PUBLIC_URL) as env:
        yield env


def patient(api: Env) -> tuple[TestUser, PatientCreate]:
    data = patient_data()
    return api.user(Role.PATIENT, patient=data), data


def received(api: Env, user: TestUser) -> list[str]:
    """The templates (by subject) of every email delivered to ``user``'s address."""
    assert delivery.drain(timeout=30)
    by_subject = {subject: name for name, subject in SUBJECTS.items()}
    return [by_subject.get(m["Subject"], m["Subject"]) for m in api.emails_to(user.email)]


def assert_carries_nothing_of(message: EmailMessage, data: PatientCreate) -> None:
    """The sentinel checks of the templates, on the delivered message's parts."""
    html_part = message.get_body(preferencelist=("html",))
    assert html_part is not None
    for part in (text_of(message), html_part.get_content()):
        assert _sentinel_hits(part) == []
        assert find_in(part.encode(), spellings_of_patient(data)) == []
    # No digit in the text outside the verification code and the platform's address.
    assert not re.search(r"\d", _CODE.sub("", text_of(message).replace(PUBLIC_URL, "")))


def test_each_second_factor_and_password_change_emails_the_owner_once(api: Env) -> None:
    user, data = patient(api)
    headers = login_as(api.client, user)
    assert received(api, user) == []

    enrolment = enrol_totp(api.client, headers, password=user.password)
    assert received(api, user) == ["security_alert"]
    headers = enrolment.headers

    api.tick()
    response = api.client.post(
        "/api/v1/me/recovery-codes", json={"code": totp_code(enrolment.secret)}, headers=headers
    )
    assert response.status_code == 200, response.text
    codes = response.json()["recovery_codes"]
    assert received(api, user) == ["security_alert"] * 2

    # A recovery code that completes a sign-in.
    pending = api.post_login(user.email, user.password).json()["token"]
    response = api.client.post("/api/v1/auth/mfa", json={"code": codes[0]}, headers=bearer(pending))
    assert response.status_code == 200, response.text
    headers = bearer(response.json()["token"])
    assert received(api, user) == ["security_alert"] * 2 + ["recovery_code_used"]

    api.tick()
    response = api.client.post(
        "/api/v1/me/totp/disable",
        json={"password": user.password, "code": totp_code(enrolment.secret)},
        headers=headers,
    )
    assert response.status_code == 204, response.text

    fresh = new_password()
    response = api.client.post(
        "/api/v1/me/password",
        json={"current_password": user.password, "new_password": fresh},
        headers=headers,
    )
    assert response.status_code == 204, response.text
    got = received(api, user)
    assert got == ["security_alert"] * 2 + ["recovery_code_used"] + ["security_alert"] * 2

    messages = api.emails_to(user.email)
    assert {m["To"] for m in messages} == {user.email}
    for message in messages:
        assert_carries_nothing_of(message, data)
    # Each one is a record the owner can check in the app, under its own code.
    with api.store.sessions() as session:
        records = session.scalars(
            select(OutboundEmail).where(OutboundEmail.account_id == user.account_id)
        ).all()
    assert sorted(r.template for r in records) == sorted(got)
    assert all(r.sent_at is not None for r in records)


def test_refused_changes_send_nothing(api: Env) -> None:
    user, _ = patient(api)
    headers = login_as(api.client, user)
    response = api.client.post(
        "/api/v1/me/password",
        json={"current_password": "not-the-password-at-all", "new_password": new_password()},
        headers=headers,
    )
    assert response.status_code == 401, response.text
    api.client.post("/api/v1/me/totp", headers=headers)
    response = api.client.post("/api/v1/me/totp/confirm", json={"code": "000000"}, headers=headers)
    assert response.status_code in (400, 401, 422), response.text
    assert received(api, user) == []


def test_completing_a_password_reset_emails_the_owner_once(api: Env) -> None:
    user, data = patient(api)
    response = api.client.post("/api/v1/auth/password-reset", json={"email": user.email})
    assert response.status_code == 202, response.text
    (link,) = api.emails_to(user.email)
    response = api.client.post(
        "/api/v1/auth/password-reset/complete",
        json={"token": link_token(link), "password": new_password()},
    )
    assert response.status_code == 204, response.text
    assert received(api, user) == ["reset_password", "security_alert"]
    assert_carries_nothing_of(api.emails_to(user.email)[-1], data)


def fail_sign_ins(api: Env, email: str, times: int) -> list[tuple[int, bytes]]:
    answers = []
    for _ in range(times):
        response = api.post_login(email, "wrong-password-" + uuid.uuid4().hex[:6])
        answers.append((response.status_code, response.content))
    return answers


def test_a_throttled_account_is_told_once_per_lock_and_an_unknown_address_alike(
    api: Env,
) -> None:
    limit = api.settings.login_failures_per_account
    now = datetime.now(UTC)
    api.set_clock(now)
    user, data = patient(api)
    unknown = f"personne.{uuid.uuid4().hex[:8]}@example.org"

    # Twice the limit: the lock, then failures refused while it holds.
    known_answers = fail_sign_ins(api, user.email, 2 * limit)
    unknown_answers = fail_sign_ins(api, unknown, 2 * limit)
    assert known_answers == unknown_answers  # same statuses, same bodies (Retry-After too)
    assert [status for status, _ in known_answers] == [401] * limit + [429] * limit
    assert received(api, user) == ["account_locked"]
    assert api.emails_to(unknown) == []
    (notice,) = api.emails_to(user.email)
    assert notice["To"] == user.email
    assert_carries_nothing_of(notice, data)

    # Mail-bombing the victim gets one email per lock period, however many failures.
    api.set_clock(now + timedelta(seconds=api.settings.login_lock_seconds / 2))
    fail_sign_ins(api, user.email, 3 * limit)
    assert received(api, user) == ["account_locked"]
    api.set_clock(now + timedelta(seconds=api.settings.login_lock_seconds + 1))
    fail_sign_ins(api, user.email, limit)
    assert received(api, user) == ["account_locked"] * 2


def test_the_lock_notice_is_delivered_after_the_answer(sqlite_store: Store, tmp_path: Path) -> None:
    """With a mail relay that never answers, the sign-in that locks an account answers
    at once: the transport's wait (10 s here) is not in the answer."""
    with socket.socket() as relay:
        relay.bind(("127.0.0.1", 0))
        relay.listen(8)  # accepts connections, never greets
        port = relay.getsockname()[1]
        with running(
            sqlite_store, tmp_path, public_url=PUBLIC_URL, smtp_host="127.0.0.1", smtp_port=port
        ) as api:
            user, _ = patient(api)
            limit = api.settings.login_failures_per_account
            fail_sign_ins(api, user.email, limit - 1)
            started = time.perf_counter()
            ((status, _),) = fail_sign_ins(api, user.email, 1)
            elapsed = time.perf_counter() - started
            assert status == 401
            assert elapsed < 2.0, f"the locking sign-in took {elapsed:.1f} s"
            relay.close()  # a queued connection is reset: the delivery fails
            assert delivery.drain(timeout=30)
            with api.store.sessions() as session:
                (record,) = session.scalars(
                    select(OutboundEmail).where(OutboundEmail.account_id == user.account_id)
                ).all()
            assert record.template == "account_locked"
            assert record.failed_at is not None
            assert record.sent_at is None


REDIS_URL = "redis://127.0.0.1:6379/0"


def test_a_contained_account_is_told_once(sqlite_store: Store, tmp_path: Path) -> None:
    # On Redis: the database state settles an enumeration containment when it is
    # decided, so completing it (the account disabled, the notice) is skipped there.
    with running(sqlite_store, tmp_path, public_url=PUBLIC_URL, redis_url=REDIS_URL) as api:
        _contained_and_told(api)


def _contained_and_told(api: Env) -> None:
    user, data = patient(api)
    headers = login_as(api.client, user)
    statuses = []
    for _ in range(api.settings.guard_enumeration_limit + 3):
        response = api.client.get(f"/api/v1/consultations/{uuid.uuid4()}", headers=headers)
        statuses.append(response.status_code)
    assert 403 in statuses, statuses
    assert received(api, user) == ["account_suspended"]
    (notice,) = api.emails_to(user.email)
    assert_carries_nothing_of(notice, data)
    assert "enumeration" not in text_of(notice)


def test_deleting_an_account_emails_its_address_after_its_keys_are_gone(api: Env) -> None:
    user, data = patient(api)
    headers = login_as(api.client, user)
    response = api.client.request(
        "DELETE", "/api/v1/patients/me", headers=headers, json={"password": user.password}
    )
    assert response.status_code == 204, response.text
    assert received(api, user) == ["account_deleted"]
    (notice,) = api.emails_to(user.email)
    assert notice["To"] == user.email
    assert_carries_nothing_of(notice, data)
    with api.store.sessions() as session:
        (record,) = session.scalars(
            select(OutboundEmail).where(OutboundEmail.account_id == user.account_id)
        ).all()
        assert record.template == "account_deleted"
        assert record.sent_at is not None
        assert record.code_sealed is not None  # sealed under a key that is destroyed


@pytest.mark.parametrize("commits", [True, False])
def test_a_later_notice_goes_only_if_the_work_that_asked_for_it_commits(
    sqlite_store: Store, tmp_path: Path, commits: bool
) -> None:
    settings = settings_for(tmp_path, sqlite_store)
    account = new_account(sqlite_store, "dominique.petit@example.org")
    recorder_actor = Actor(role="anonymous")

    class Refused(Exception):
        pass

    try:
        with sqlite_store.sessions() as session, session.begin():
            attach(session, recorder_actor, check=lambda *_: None)
            send_later(
                session=session,
                settings=settings,
                account_id=account.id,
                template="account_locked",
                now=datetime.now(UTC),
            )
            # Nothing is recorded in the caller's unit of work.
            assert not [r for r in session.new if isinstance(r, OutboundEmail)]
            if not commits:
                raise Refused
    except Refused:
        pass
    assert delivery.drain(timeout=30)
    with sqlite_store.sessions() as session:
        records = session.scalars(
            select(OutboundEmail).where(OutboundEmail.account_id == account.id)
        ).all()
    assert [r.template for r in records] == (["account_locked"] if commits else [])
    assert all(r.sent_at is not None for r in records)
