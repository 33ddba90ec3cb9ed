"""Sign-in throttles and second-factor counters are shared by every app process.

Two apps, each with a runtime of its own (its own vault, guard and caches, as two
workers behind a load balancer), on one database: a thief who spreads password guesses
or second-factor codes over both gets no more tries than against one.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pyotp
import pytest

from hippocrate.db.engine import unsafe_unaudited_sessions
from hippocrate.identity.models import Role
from hippocrate.keyring.service import KEYRING
from hippocrate.vault import Vault
from hippocrate.vault.providers.file import FileKeyProvider
from tests.conftest import Store
from tests.identity.conftest import Env, running


@pytest.fixture
def two_workers(store: Store, tmp_path: Path) -> Iterator[tuple[Env, Env]]:
    key_file = store.sessions.vault.provider._path  # type: ignore[attr-defined]
    second = Store(
        store.backend,
        store.url,
        store.engine,
        unsafe_unaudited_sessions(
            store.engine, Vault(FileKeyProvider(key_file)), KEYRING, why="a second worker's vault"
        ),
        store.path,
    )
    with ExitStack() as stack:
        one = stack.enter_context(running(store, tmp_path / "one", key_file=key_file))
        two = stack.enter_context(running(second, tmp_path / "two", key_file=key_file))
        yield one, two


def test_password_failures_count_across_workers(two_workers: tuple[Env, Env]) -> None:
    one, two = two_workers
    user = one.user(Role.PATIENT)
    limit = one.settings.login_failures_per_account
    answers = [
        (one if i % 2 else two).post_login(user.email, f"wrong-guess-{i}").status_code
        for i in range(limit)
    ]
    assert set(answers) == {401}
    # Locked in both workers, even with the right password.
    for worker in (one, two):
        locked = worker.post_login(user.email, user.password)
        assert locked.status_code in (423, 429), locked.text


def test_second_factor_guesses_count_across_workers(two_workers: tuple[Env, Env]) -> None:
    one, two = two_workers
    user = one.user(Role.PRACTITIONER)
    assert user.totp_secret is not None
    right = pyotp.TOTP(user.totp_secret).now()
    wrong = f"{(int(right) + 1) % 1_000_000:06d}"
    step = one.post_login(user.email, user.password)
    assert step.status_code == 200, step.text
    pending = {"Authorization": f"Bearer {step.json()['token']}"}
    statuses = [
        (one if i % 2 else two)
        .client.post("/api/v1/auth/mfa", json={"code": wrong}, headers=pending)
        .status_code
        for i in range(one.settings.login_failures_per_account)
    ]
    assert statuses[0] == 401
    # Locked for both workers now: the right code no longer opens the session.
    for worker in (one, two):
        final = worker.client.post("/api/v1/auth/mfa", json={"code": right}, headers=pending)
        assert final.status_code in (401, 423, 429), final.text


def test_the_second_factor_lock_holds_across_workers(two_workers: tuple[Env, Env]) -> None:
    """A thief re-entering the password before each code, on alternate workers, is
    locked after ``mfa_failures_per_account`` codes in all, and the owner gets one email."""
    one, two = two_workers
    user = one.user(Role.PATIENT, totp=True)
    assert user.totp_secret is not None
    totp = pyotp.TOTP(user.totp_secret)
    step = int(time.time()) // 30
    valid = {totp.generate_otp(s) for s in range(step - 2, step + 3)}
    wrong = [c for c in (f"{n:06d}" for n in range(0, 1_000_000, 7919)) if c not in valid]
    answers = []
    for i in range(one.settings.mfa_failures_per_account):
        worker = one if i % 2 else two
        pending = worker.post_login(user.email, user.password)
        assert pending.status_code == 200, pending.text
        headers = {"Authorization": f"Bearer {pending.json()['token']}"}
        answer = worker.client.post("/api/v1/auth/mfa", json={"code": wrong[i]}, headers=headers)
        answers.append(answer.status_code)
    assert set(answers) == {401}
    for worker in (one, two):
        assert worker.post_login(user.email, user.password).status_code == 423
    locks = [env for env in (one, two) for _ in env.emails_to(user.email)]
    assert len(locks) == 1
