"""A contained account is released only by two administrators (one asks, with a reason,
another approves), through the API (or by an operator at the server's CLI); the release
is in the audit trail."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from hippocrate.audit.models import AuditEvent
from hippocrate.identity.models import Account, AccountStatus, Role
from tests.conftest import Store
from tests.consultations.helpers import Api, running_api

REASON = "Faux positif vérifié par téléphone avec le praticien"


@pytest.fixture
def api(sqlite_store: Store, tmp_path: Path) -> Iterator[Api]:
    with running_api(sqlite_store, tmp_path) as running:
        yield running


def contain(api: Api, account_id: object) -> None:
    guard = api.client.app.state.runtime.guard  # type: ignore[attr-defined]
    guard.state.contain(account_id, "breadth: test")
    with api.store.sessions.begin() as session:
        account = session.get(Account, account_id)
        assert account is not None
        account.status, account.disabled_reason = AccountStatus.DISABLED, "contained"


def test_two_admins_release_a_contained_account_with_a_reason(api: Api) -> None:
    doctor, admin, other = api.practitioner(), api.staff(Role.ADMIN), api.staff(Role.ADMIN)
    contain(api, doctor.account_id)
    path = f"/api/v1/admin/accounts/{doctor.account_id}/release"

    short = api.client.post(path, headers=admin.headers, json={"reason": "ok"})
    assert short.status_code == 422
    by_enable = api.client.post(
        f"/api/v1/admin/accounts/{doctor.account_id}/enable", headers=admin.headers
    )
    assert by_enable.status_code == 409  # enable does not release a containment
    asked = api.client.post(path, headers=admin.headers, json={"reason": REASON})
    assert asked.status_code == 202, asked.text
    guard = api.client.app.state.runtime.guard  # type: ignore[attr-defined]
    assert guard.state.contained(doctor.account_id) is not None  # one admin is not enough
    released = api.client.post(
        f"/api/v1/admin/approvals/{asked.json()['id']}/approve", headers=other.headers
    )

    assert released.status_code == 200, released.text
    assert released.json()["outcome"] == "approved"
    assert guard.state.contained(doctor.account_id) is None
    with api.store.sessions() as session:
        account = session.get(Account, doctor.account_id)
        assert account is not None
        assert account.status is AccountStatus.ACTIVE
        events = session.scalars(
            select(AuditEvent).where(AuditEvent.action == "guard:principal:released")
        ).all()
    assert [(e.actor_account_id, e.resources) for e in events] == [
        (other.account_id, [f"account:{doctor.account_id}"])
    ]
    # Releasing again: there is nothing to release.
    again = api.client.post(path, headers=admin.headers, json={"reason": REASON})
    assert again.status_code == 409


def test_only_an_admin_releases(api: Api) -> None:
    doctor, support = api.practitioner(), api.staff(Role.SUPPORT)
    contain(api, doctor.account_id)
    response = api.client.post(
        f"/api/v1/admin/accounts/{doctor.account_id}/release",
        headers=support.headers,
        json={"reason": REASON},
    )
    assert response.status_code == 403
