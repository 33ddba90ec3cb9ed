"""Recording accesses as they happen, and writing them when the unit of work ends.

A :class:`Recorder` is attached to every session that serves a request or a CLI
command. The store tells it of every sealed read and write *before* the value is
decrypted or sealed (``db.sealed.ACCESS_HOOK``), so nothing reads patient data without
passing here, and the guard (if installed) can refuse the read. Accesses are grouped
per patient, subject and verb: one event each, listing the resources and categories
touched. The events are appended to the chain just before the session commits; if the
unit of work fails, :func:`record_failure` writes them, with the refusal, in a fresh
transaction.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import event
from sqlalchemy.orm import Session

from hippocrate.audit.service import PendingEvent, append
from hippocrate.db.engine import HippocrateSession, SessionFactory
from hippocrate.db.sealed import ACCESS_HOOK, Sealed, SealedModel
from hippocrate.tags import Category, Outcome, Purpose, Subject, Tag, Verb

RECORDER = "hippocrate.recorder"


@dataclass
class Actor:
    """Who acts: an account with its role, or the platform itself (CLI, jobs)."""

    role: str
    account_id: uuid.UUID | None = None
    purpose: Purpose | None = None
    request_id: str | None = None


ANONYMOUS = Actor(role="anonymous")


@dataclass
class _Group:
    resources: set[str] = field(default_factory=set)
    categories: set[Category] = field(default_factory=set)


#: Called for every read of a patient's data by an actor; may raise to refuse it.
ReadCheck = Callable[[Actor, uuid.UUID, str], None]


class Recorder:
    """The store's access hook (``db.sealed.AccessHook``) for one unit of work."""

    def __init__(self, actor: Actor, check: ReadCheck) -> None:
        self.actor = actor
        self.check = check
        #: The store opens sealed values only for a hook that checks reads.
        self.checks_reads = True
        self._groups: dict[tuple[uuid.UUID | None, Subject, Verb], _Group] = {}
        self._extra: list[PendingEvent] = []
        self._checked: set[uuid.UUID] = set()  # patients the check passed in this unit

    # -- the store's hook ---------------------------------------------------------------

    def __call__(self, instance: SealedModel, sealed: Sealed[Any], verb: Verb) -> None:
        subject = type(instance).__audit_subject__
        self.note(
            patient=instance.audit_patient_id(),
            subject=subject,
            verb=verb,
            resource=f"{subject.noun}:{instance.id}",  # type: ignore[attr-defined]
            category=sealed.category,
        )

    def _check(self, patient: uuid.UUID, resource: str) -> None:
        if patient not in self._checked:
            self.check(self.actor, patient, resource)
            self._checked.add(patient)

    def note(
        self,
        *,
        patient: uuid.UUID | None,
        subject: Subject,
        verb: Verb,
        resource: str,
        category: Category,
    ) -> None:
        """Record an access that does not go through a sealed attribute (blob bodies)."""
        if verb == Verb.READ and patient is not None:
            self._check(patient, resource)
        group = self._groups.setdefault((patient, subject, verb), _Group())
        group.resources.add(resource)
        group.categories.add(category)

    def event(
        self,
        action: Tag,
        *,
        outcome: Outcome = Outcome.ALLOWED,
        patient: uuid.UUID | None = None,
        resources: tuple[str, ...] = (),
        categories: tuple[Category, ...] = (),
        actor: Actor | None = None,
        now: datetime | None = None,
    ) -> None:
        """Record one event as is (authentication, administration, refusals)."""
        who = actor or self.actor
        self._extra.append(
            PendingEvent(
                action=action,
                actor_role=who.role,
                outcome=outcome,
                at=now or datetime.now(UTC),
                actor_account_id=who.account_id,
                patient_id=patient,
                resources=resources,
                categories=categories,
                purpose=who.purpose,
                request_id=who.request_id,
            )
        )

    def drain(
        self, *, outcome: Outcome = Outcome.ALLOWED, now: datetime | None = None
    ) -> list[PendingEvent]:
        """Every event recorded so far, grouped; the recorder starts empty again."""
        at = now or datetime.now(UTC)
        events = [
            PendingEvent(
                action=Tag.of(subject, verb),
                actor_role=self.actor.role,
                outcome=outcome,
                at=at,
                actor_account_id=self.actor.account_id,
                patient_id=patient,
                resources=tuple(sorted(group.resources)),
                categories=tuple(sorted(group.categories)),
                purpose=self.actor.purpose,
                request_id=self.actor.request_id,
            )
            for (patient, subject, verb), group in self._groups.items()
        ]
        events.extend(self._extra)
        self._groups, self._extra = {}, []
        return events


def attach(session: Session, actor: Actor, check: ReadCheck) -> Recorder:
    """Give ``session`` a recorder for ``actor`` (replacing any other), whose ``check``
    (the guard's) runs before the first read of each patient. Entry points do not call
    this themselves: ``hippocrate.work.unit_of_work`` does."""
    recorder = Recorder(actor, check)
    session.info[RECORDER] = recorder
    session.info[ACCESS_HOOK] = recorder
    return recorder


def recorder_of(session: Session) -> Recorder | None:
    found: Recorder | None = session.info.get(RECORDER)
    return found


@event.listens_for(HippocrateSession, "before_commit")
def _write_before_commit(session: Session) -> None:
    recorder = recorder_of(session)
    if recorder is not None:
        append(session, recorder.drain())


def record_failure(
    sessions: SessionFactory,
    recorder: Recorder,
    *,
    action: Tag | None = None,
    resource: str | None = None,
    outcome: Outcome = Outcome.REFUSED,
) -> None:
    """After a failed unit of work: write what it touched (outcome ``aborted``) and the
    refusal itself, in a transaction of their own."""
    events = recorder.drain(outcome=Outcome.ABORTED)
    if action is not None:
        recorder.event(action, outcome=outcome, resources=(resource,) if resource else ())
        events += recorder.drain()
    if events:
        with sessions() as session, session.begin():
            append(session, events)
