"""Sign-in throttles and second-factor counters are shared by every app process.

Two apps, each with a runtime of its own (its own vault, guard and caches, as two
workers behind a load balancer), on one database: a thief who spreads password guesses
or second-factor codes over both gets no more tries than against one.
"""

from __future__ import annotations

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
