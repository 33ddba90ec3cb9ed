"""Units of work for every entry point: an API request, a CLI command, a job.

:func:`unit_of_work` is the one way in to patient data. Its session carries the audit
recorder, with the guard's read check: every sealed read and write is recorded and
chained in the same transaction, every first read of a patient is checked by the guard
(containment, honeytokens, breadth) before anything is decrypted, and a refused or
failed unit writes what it touched, and the refusal, in a transaction of its own. A
session opened any other way reads nothing sealed (``db.sealed`` fails closed).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager

from sqlalchemy.orm import Session

from hippocrate.access.errors import AccessError, NotFound
from hippocrate.audit.recorder import Actor, attach, record_failure
from hippocrate.errors import HippocrateError
from hippocrate.guard.errors import Contained
from hippocrate.keyring.service import ANONYMOUS, UNWRAP_BUDGET
from hippocrate.runtime import Runtime
from hippocrate.tags import Outcome, Tag, refused, rule_refused
from hippocrate.vault.core import AUTHENTICATED


def budget_class(actor: Actor) -> str:
    """The vault's unwrap budget class for ``actor``: anonymous callers spend one of
    their own, never the one that authenticated reads need."""
    return ANONYMOUS if actor.role == "anonymous" else AUTHENTICATED


@contextmanager
def unit_of_work(runtime: Runtime, actor: Actor, *, budget: str | None = None) -> Iterator[Session]:
    """A transaction acting as ``actor``: committed if the block ends, rolled back if
    it raises (the error goes on to the caller). Whoever later learns who acts (the
    API, once the bearer token is resolved) sets ``recorder_of(session).actor`` and
    ``session.info[UNWRAP_BUDGET]``. ``budget`` names the vault's unwrap budget class
    (default: from ``actor``, see :func:`budget_class`)."""
    sessions, guard = runtime.sessions, runtime.guard
    assert guard is not None
    session = sessions()
    session.info[UNWRAP_BUDGET] = budget or budget_class(actor)
    recorder = attach(
        session,
        actor,
        check=lambda who, patient, _resource: guard.check_read(session, who, patient),
    )
    refusal: HippocrateError | None = None
    try:
        with session.begin():
            try:
                yield session
            except HippocrateError as exc:
                if not exc.commit:
                    raise
                refusal = exc  # a counted refusal: its counters commit with the unit
    except Contained as exc:
        record_failure(
            sessions, recorder, action=Tag.GUARD_ACCESS_REFUSED, outcome=Outcome.CONTAINED
        )
        guard.complete_containment(sessions, recorder.actor, exc)
        raise
    except NotFound as exc:
        resource = f"{exc.kind}:{exc.object_id}" if exc.object_id else None
        record_failure(sessions, recorder, action=refused(exc.kind), resource=resource)
        try:
            guard.note_refusal(recorder.actor)
        except Contained as contained:
            guard.complete_containment(sessions, recorder.actor, contained)
            raise contained from None
        raise
    except AccessError as exc:
        record_failure(sessions, recorder, action=rule_refused(type(exc).__name__))
        raise
    except Exception:
        record_failure(sessions, recorder)
        raise
    finally:
        session.close()
    if refusal is not None:
        raise refusal


class Units:
    """Units of work of one actor, opened one after the other (a job in batches): the
    shape of ``SessionFactory.begin`` with the recorder and the guard attached."""

    def __init__(self, runtime: Runtime, actor: Actor) -> None:
        self.runtime = runtime
        self.actor = actor

    def begin(self) -> AbstractContextManager[Session]:
        return unit_of_work(self.runtime, self.actor)
