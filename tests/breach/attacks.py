"""The scripted attack the breach tests respond to: a practitioner's session, stolen
the morning after a day of care, reading every patient in care until the guard
contains it. Its victims are known: the patients whose data came back."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from hippocrate.identity.models import Role
from tests.guard.helpers import (
    Case,
    exposed,
    guard_of,
    marked_in,
    patients_in_care,
    sign_in,
    staff_member,
    wait_for_containment,
)
from tests.guard.test_redteam import reads_of


@dataclass(frozen=True)
class Theft:
    practitioner: Any  # the TestUser whose session was stolen
    cases: list[Case]
    victims: set[uuid.UUID]
    stolen_at: datetime  # in the server's own time, as the trail keeps it


def stolen_practitioner_session(api: Any, count: int, *, before: Any = None) -> Theft:
    """``count`` patients in care; 16 hours later the session is stolen and read until
    contained. ``before(practitioner, cases)`` runs first (the practitioner's own work
    of the day before the theft)."""
    user = staff_member(api, Role.PRACTITIONER)
    cases = patients_in_care(api, sign_in(api, user), count, minutes_between=4)
    if before is not None:
        before(user, cases)
    api.clock.advance(hours=16)
    stolen_at = datetime.now(UTC)
    thief = sign_in(api, user)
    bodies = [
        api.client.get(path, headers=thief.headers).content
        for case in cases
        for path in reads_of(case)
    ]
    wait_for_containment(api.store, thief.account_id, marked_in(guard_of(api).state))
    return Theft(user, cases, exposed(bodies, cases), stolen_at)
