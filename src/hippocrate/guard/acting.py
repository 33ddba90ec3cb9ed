"""Playing a user's part: the platform makes data as a patient or practitioner would.

The demo's seeding and the guard's honeytokens act through the real services under the
principal of the person whose act it is (a patient opens, a practitioner takes and
writes), and the audit trail names that person, with the purpose and a request id as
the API records them: a copy of the trail shows every patient's history the same way,
whoever made it.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy.orm import Session

from hippocrate.access import policy
from hippocrate.access.principal import Principal
from hippocrate.audit.recorder import Actor, recorder_of
from hippocrate.audit.service import append


def actor_of(principal: Principal) -> Actor:
    """The actor the API would record for a request of ``principal``."""
    return Actor(
        role=principal.role.value,
        account_id=principal.account_id,
        purpose=policy.purpose_of(principal),
        request_id=uuid.uuid4().hex,
    )


def _no_check(_actor: Actor, _patient: uuid.UUID, _resource: str) -> None:
    return None


@contextmanager
def unsafe_acting_as(session: Session, actor: Actor) -> Iterator[None]:
    """Record what the block does as ``actor``'s own request, then give the unit of work
    back to its actor.

    Unsafe, it skips the guard's read check for the block: the platform plays this
    person's part (seeding, a honeytoken's life), they read nothing themselves, so
    nothing is counted against them (breadth, honeytokens). Only the platform's own
    units of work (the CLI's ``platform_work``) may use it; the block's events are
    written to the trail at once, under ``actor``. A session without a recorder (no
    trail) is left as it is."""
    recorder = recorder_of(session)
    if recorder is None:
        yield
        return
    append(session, recorder.drain())  # what came before is the unit's own actor's
    before, check = recorder.actor, recorder.check
    recorder.actor, recorder.check = actor, _no_check
    try:
        yield
        session.flush()
        append(session, recorder.drain())
    finally:
        recorder.actor, recorder.check = before, check
