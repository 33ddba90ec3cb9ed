"""The second factor has a limit of its own, and codes are parsed as ASCII only.

The attack (issue 8, items 5 and 11): a thief who has a patient's or a practitioner's
password signs in again and again, each time trying one more code, from a new address
each time (here behind a trusted proxy, so the addresses really count as different).
The sign-in counter that a right password resets must not be the only limit.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyotp
import pytest
from hypothesis import given
from hypothesis import strategies as st

from hippocrate.app import create_app
from hippocrate.identity import factors
from hippocrate.identity.models import Role
from hippocrate.runtime import Runtime
from tests.conftest import Store
from tests.identity.conftest import Env, TestClient, assert_problem, settings_for, text_of
from tests.identity.helpers import bearer, login

PROXY = ("10.0.0.5", 41000)
ARABIC_INDIC = str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩")
FULL_WIDTH = str.maketrans("0123456789", "０１２３４５６７８９")


@contextmanager
def behind_proxy(store: Store, tmp_path: Path, **changes: Any) -> Iterator[Env]:
    """The app behind a trusted proxy (10.0.0.0/8) that sets ``X-Forwarded-For``."""
    settings = settings_for(tmp_path, store, trusted_proxies="10.0.0.0/8", **changes)
    app = create_app(runtime=Runtime(settings, store.sessions))
    with TestClient(app, client=PROXY) as client:
        yield Env(client, app, store, settings)


@pytest.fixture
def proxied(sqlite_store: Store, tmp_path: Path) -> Iterator[Env]:
    with behind_proxy(sqlite_store, tmp_path) as env:
        yield env


def _codes_now(secret: str, now: datetime) -> set[str]:
    totp = pyotp.TOTP(secret)
    step = factors.step_at(now)
    return {totp.generate_otp(s) for s in range(step - 1, step + 2)}


def _wrong_codes(secret: str, now: datetime) -> Iterator[str]:
    """Codes that are not valid at ``now`` (none of the three steps of the window)."""
    valid = _codes_now(secret, now)
    n = 0
    while True:
        code = f"{(123_457 * n + 98_765) % 1_000_000:06d}"
        n += 1
        if code not in valid:
            yield code


def _password_step(env: Env, email: str, password: str, address: str) -> Any:
    return env.client.post(
        "/api/v1/auth/login",
        json={"email": email, "password": password},
        headers={"X-Forwarded-For": address},
    )


def _try_code(env: Env, token: str, code: str, address: str) -> Any:
    return env.client.post(
        "/api/v1/auth/mfa",
        json={"code": code},
        headers={**bearer(token), "X-Forwarded-For": address},
    )


@pytest.mark.parametrize("role", [Role.PATIENT, Role.PRACTITIONER])
def test_a_thief_with_the_password_is_locked_after_the_code_limit(proxied: Env, role: Role) -> None:
    env = proxied
    user = env.user(role, totp=True)
    assert user.totp_secret is not None
    now = datetime.now(UTC)
    env.set_clock(now)
    limit = env.settings.mfa_failures_per_account
    wrong = _wrong_codes(user.totp_secret, now)

    answers = []
    for i in range(limit):
        address = f"198.51.100.{i + 1}"  # a new address for every try
        step = _password_step(env, user.email, user.password, address)
        assert step.status_code == 200, step.text  # the right password, every time
        answers.append(_try_code(env, step.json()["token"], next(wrong), address).status_code)
        if i == limit - 2:
            held = _password_step(env, user.email, user.password, "198.51.100.99").json()
    assert answers == [401] * limit

    # Locked: the right password answers the lock, not a session waiting for a code...
    locked = _password_step(env, user.email, user.password, "198.51.100.200")
    body = assert_problem(locked, 423)
    assert "token" not in body
    # ... and the right code opens nothing either, not even in a session that was
    # waiting for it before the lock (the lock ended it).
    for code in _codes_now(user.totp_secret, now):
        refused = _try_code(env, held["token"], code, "198.51.100.201")
        assert refused.status_code in (401, 423), refused.text

    # The owner is told, without any health data (the template's fixed text).
    emails = env.emails_to(user.email)
    assert [m["Subject"] for m in emails] == ["Hippocrate : votre compte est bloqué par sécurité"]
    assert "double authentification" in text_of(emails[0])

    # Time does not lift it (unlike the 15-minute sign-in lock)...
    env.set_clock(now.replace(year=now.year + 1))
    later = _password_step(env, user.email, user.password, "198.51.100.202")
    assert later.status_code == 423, later.text

    # ... an administrator does; then the right code works again.
    env.set_clock(now)
    admin = env.user(Role.ADMIN)
    admin_headers = login(env.client, admin.email, admin.password, admin.totp_secret, now=now)
    metadata = env.client.get(f"/api/v1/support/accounts/{user.account_id}", headers=admin_headers)
    assert metadata.json()["locked"] is True
    assert metadata.json()["second_factor_locked_at"] is not None
    lifted = env.client.post(
        f"/api/v1/admin/accounts/{user.account_id}/unlock", headers=admin_headers
    )
    assert lifted.status_code in (200, 204), lifted.text
    env.tick()
    assert login(env.client, user.email, user.password, user.totp_secret, now=env.clock)


def test_a_right_password_does_not_reset_the_code_count(proxied: Env) -> None:
    env = proxied
    user = env.user(Role.PATIENT, totp=True)
    assert user.totp_secret is not None
    now = datetime.now(UTC)
    env.set_clock(now)
    limit = env.settings.mfa_failures_per_account
    wrong = _wrong_codes(user.totp_secret, now)
    for i in range(limit - 1):
        step = _password_step(env, user.email, user.password, f"203.0.113.{i + 1}")
        _try_code(env, step.json()["token"], next(wrong), f"203.0.113.{i + 1}")
    # A right code forgets the wrong ones...
    step = _password_step(env, user.email, user.password, "203.0.113.50")
    right = pyotp.TOTP(user.totp_secret).generate_otp(factors.step_at(now))
    assert _try_code(env, step.json()["token"], right, "203.0.113.50").status_code == 200
    # ... so the owner who mistyped is not locked by one more slip.
    step = _password_step(env, user.email, user.password, "203.0.113.51")
    assert _try_code(env, step.json()["token"], next(wrong), "203.0.113.51").status_code == 401
    assert _password_step(env, user.email, user.password, "203.0.113.52").status_code == 200


# -- codes are ASCII ---------------------------------------------------------------------


def _non_ascii_spellings(code: str) -> list[str]:
    return [
        code.translate(ARABIC_INDIC),  # ١٢٣٤٥٦
        code.translate(FULL_WIDTH),  # １２３４５６
        "".join(chr(0x1D7CE + int(d)) for d in code),  # mathematical bold digits
        code[:5] + "\u0663",  # one Arabic-Indic digit
    ]


def test_non_ascii_digits_are_a_counted_refusal_never_a_500(env: Env) -> None:
    user = env.user(Role.PATIENT, totp=True)
    assert user.totp_secret is not None
    now = datetime.now(UTC)
    env.set_clock(now)
    right = pyotp.TOTP(user.totp_secret).generate_otp(factors.step_at(now))
    spellings = [*_non_ascii_spellings(right), "ＡＢＣＤ-ＥＦＧＨ-ＩＪＫＬ-ＭＮＯＰ"]
    limit = env.settings.mfa_failures_per_account
    assert len(spellings) >= limit
    answers = []
    for code in spellings[:limit]:
        step = env.post_login(user.email, user.password)
        assert step.status_code == 200, step.text
        answer = env.client.post(
            "/api/v1/auth/mfa", json={"code": code}, headers=bearer(step.json()["token"])
        )
        answers.append(answer.status_code)
    # The right code in other digits is refused like a wrong one, and counted.
    assert answers == [401] * limit
    assert_problem(env.post_login(user.email, user.password), 423)


def test_non_ascii_recovery_codes_and_enrolment_codes_are_refused(env: Env) -> None:
    user = env.user(Role.PATIENT, totp=True)
    assert user.totp_secret is not None
    headers = env.login(user)
    # A recovery code with a letter that upper-cases to ASCII (ſ → S) or full-width.
    for code in ("ABCD-EFGH-IJKL-MNOſ", "ＡＢＣＤＥＦＧＨＩＪＫＬＭＮＯＰ", "١٢٣٤٥٦"):
        answer = env.client.post("/api/v1/me/recovery-codes", json={"code": code}, headers=headers)
        assert_problem(answer, 401)
    # Enrolment (not counted: the secret is not in use yet) answers 401, not 500.
    staff = env.user(Role.SUPPORT, totp=False)
    step = env.post_login(staff.email, staff.password)
    pending = bearer(step.json()["token"])
    secret = env.client.post("/api/v1/me/totp", headers=pending).json()["secret"]
    code = pyotp.TOTP(secret).now().translate(ARABIC_INDIC)
    answer = env.client.post("/api/v1/me/totp/confirm", json={"code": code}, headers=pending)
    assert_problem(answer, 401)


@given(st.text(max_size=80))
def test_code_parsing_is_ascii_only_and_never_raises(code: str) -> None:
    secret = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"
    now = datetime(2026, 12, 1, tzinfo=UTC)
    step = factors.totp_step(secret, code, now=now, last_step=None)
    assert step is None or (code.isascii() and code.isdigit())
    if factors.is_recovery_code(code):
        assert code.isascii()
