"""Anonymous paths spend nothing that others need (issue 8, item 6).

Attacks through the real API on a vault with small unwrap budgets and no key cache (so
that every read unwraps): password-reset requests for many known addresses must not
make another patient's sign-in, or an authenticated read, answer 503; and a reset
request answers the same, status and body, for known and unknown addresses, even once
the budget that delivering the links spends is gone.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hippocrate.app import create_app
from hippocrate.db.engine import SessionFactory
from hippocrate.keyring.service import KEYRING
from hippocrate.runtime import Runtime
from hippocrate.vault.factory import open_vault
from tests.conftest import Store
from tests.identity.conftest import Env, TestClient, settings_for
from tests.identity.helpers import TestUser

BUDGET = 10  # distinct patient keys per minute, for each class of caller


@pytest.fixture
def budgeted(sqlite_store: Store, key_file: Path, tmp_path: Path) -> Iterator[Env]:
    """The app on SQLite with a vault of its own: small budgets, no key cache."""
    settings = settings_for(
        tmp_path,
        sqlite_store,
        key_file=key_file,
        key_cache_ttl=0,
        key_unwrap_budget=BUDGET,
        key_unwrap_budget_anonymous=BUDGET,
        key_unwrap_budget_recovery=BUDGET // 2,
        resets_per_client=1_000,
        resets_global=1_000,
    )
    vault = open_vault(settings)
    sessions = SessionFactory(sqlite_store.engine, vault, KEYRING)
    app = create_app(runtime=Runtime(settings, sessions))
    try:
        with TestClient(app) as client:
            yield Env(client, app, sqlite_store, settings)
    finally:
        vault.close()


def _ask_reset(env: Env, email: str) -> Any:
    return env.client.post("/api/v1/auth/password-reset", json={"email": email})


def _targets(env: Env, count: int) -> list[TestUser]:
    return [env.user() for _ in range(count)]


def test_reset_requests_for_known_addresses_leave_sign_in_and_reads_alone(
    budgeted: Env,
) -> None:
    env = budgeted
    patient = env.user()
    targets = _targets(env, 2 * BUDGET)

    answers = [_ask_reset(env, targets[i % len(targets)].email) for i in range(60)]
    signed_in = env.post_login(patient.email, patient.password)

    assert signed_in.status_code == 200, signed_in.text
    assert {a.status_code for a in answers} == {202}
    me = env.client.get(
        "/api/v1/me", headers={"Authorization": f"Bearer {signed_in.json()['token']}"}
    )
    assert me.status_code == 200, me.text


def test_a_reset_request_answers_alike_for_known_and_unknown_addresses_once_spent(
    budgeted: Env,
) -> None:
    env = budgeted
    targets = _targets(env, BUDGET)
    for target in targets:
        _ask_reset(env, target.email)
    fresh = env.user()
    known = _ask_reset(env, fresh.email)
    unknown = _ask_reset(env, "nobody.here@example.org")

    assert (known.status_code, known.json()) == (unknown.status_code, unknown.json())
    assert known.status_code == 202
    assert sorted(known.headers) == sorted(unknown.headers)
    delivered = [t for t in [*targets, fresh] if env.emails_to(t.email)]
    assert len(delivered) == BUDGET // 2  # the recovery budget was spent: no more links


def test_a_spent_sign_in_budget_answers_alike_for_known_and_unknown_addresses(
    budgeted: Env,
) -> None:
    env = budgeted
    patients = _targets(env, BUDGET + 1)
    for patient in patients[:BUDGET]:
        assert env.post_login(patient.email, "not-the-password-at-all").status_code == 401

    known = env.post_login(patients[-1].email, "not-the-password-at-all")
    unknown = env.post_login("nobody.here@example.org", "not-the-password-at-all")

    assert (known.status_code, known.json()) == (unknown.status_code, unknown.json())
    assert known.status_code == 503
