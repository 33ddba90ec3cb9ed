"""Attack test: a session probing ids it may not read is contained completely, on each
of the guard's shared states (the database, the default without Redis, and Redis): the
account is disabled, its sessions end, the trail says so and its owner is told.

On the database state the probe's containment used to be recorded at once and then,
when it was completed, found already recorded: the account stayed enabled, its
sessions alive and the trail silent (the accesses were refused, nothing else)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from hippocrate.audit.models import AuditEvent
from hippocrate.identity.models import Account, AccountStatus, AuthSession, Role
from hippocrate.notify.models import OutboundEmail
from hippocrate.tags import Tag
from tests.admin.helpers import STATES, admin_api
from tests.conftest import Store
from tests.consultations.helpers import Api
from tests.guard.helpers import sign_in, staff_member

LIMIT = 5


@pytest.fixture(params=STATES)
def api(request: pytest.FixtureRequest, sqlite_store: Store, tmp_path: Path) -> Iterator[Api]:
    with admin_api(sqlite_store, tmp_path, request.param, guard_enumeration_limit=LIMIT) as running:
        yield running


def test_probing_ids_contains_the_account_completely(api: Api) -> None:
    thief = staff_member(api, Role.PRACTITIONER)
    signed = sign_in(api, thief)

    statuses = [
        api.client.get(f"/api/v1/patients/{uuid.uuid4()}", headers=signed.headers).status_code
        for _ in range(LIMIT + 3)
    ]

    assert statuses[:LIMIT] == [404] * LIMIT
    assert 403 in statuses  # contained past the threshold
    with api.store.sessions() as session:
        account = session.get(Account, thief.account_id)
        assert account is not None
        assert account.status is AccountStatus.DISABLED
        live = session.scalars(
            select(AuthSession).where(
                AuthSession.account_id == thief.account_id, AuthSession.ended_at.is_(None)
            )
        ).all()
        contained = session.scalars(
            select(AuditEvent).where(
                AuditEvent.action == Tag.GUARD_PRINCIPAL_CONTAINED.value,
                AuditEvent.actor_account_id == thief.account_id,
            )
        ).all()
        told = session.scalars(
            select(OutboundEmail.template).where(OutboundEmail.account_id == thief.account_id)
        ).all()
    assert live == []
    assert len(contained) == 1
    assert "account_suspended" in told
    # And the stolen session is dead for everything, not only for patients' records.
    again = api.client.get("/api/v1/consultations", headers=signed.headers)
    assert again.status_code in (401, 403)
