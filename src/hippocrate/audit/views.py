"""Who accessed my record: the patient's view of the audit trail."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from hippocrate.access import policy
from hippocrate.access.models import BreakGlassGrant
from hippocrate.access.principal import Principal, operator_id
from hippocrate.audit.models import AuditEvent, AuditPending, TrailEvent
from hippocrate.audit.schemas import AccessEntry
from hippocrate.identity.models import Practitioner
from hippocrate.tags import Outcome


def access_log_statement(principal: Principal) -> Select[AuditEvent]:
    """The chained events about the patient whose history ``principal`` may read,
    newest first (``Forbidden`` for anyone but a patient:
    :func:`policy.access_history_owner`)."""
    return (
        select(AuditEvent)
        .where(AuditEvent.patient_id == policy.access_history_owner(principal))
        .order_by(AuditEvent.seq.desc())
    )


def history_events(session: Session, principal: Principal) -> list[TrailEvent]:
    """Every event about the patient whose history ``principal`` may read, newest
    first: those the chainer has not reached yet (after every chained one), then the
    chain's. A history never waits for the chainer."""
    owner = policy.access_history_owner(principal)
    pending = session.scalars(
        select(AuditPending)
        .where(AuditPending.patient_id == owner)
        .order_by(AuditPending.id.desc())
    ).all()
    return [*pending, *session.scalars(access_log_statement(principal))]


def access_history(session: Session, principal: Principal, *, now: datetime) -> list[AccessEntry]:
    """The history ``principal`` (a patient) reads, newest first, repeated accesses
    grouped (:func:`group`). Pages are cut from the grouped entries, so a group is never
    split across two pages; the whole history is described for each page, which is
    bounded by one patient's events."""
    events = history_events(session, principal)
    return group(events, describe(session, principal, events, now=now))


def describe(
    session: Session, principal: Principal, events: list[TrailEvent], *, now: datetime
) -> list[AccessEntry]:
    """Name each actor as the patient should read it: a practitioner by name and
    role, "support", "administrator with break-glass: <reason>", "you". Names and
    reasons come through the access policy, as ``principal`` may read them at ``now``."""
    names: dict[uuid.UUID, str] = {}
    seen = _Seen(session, principal, now)
    entries = []
    for event in events:
        own = _own(event, principal)
        entries.append(
            AccessEntry(
                at=event.at,
                who="you" if own else _who(seen, event, names),
                role="patient" if own else event.actor_role,
                action=event.action,
                categories=list(event.categories),
                purpose=event.purpose,
                outcome=event.outcome,
                until=event.at,
            )
        )
    return entries


def _own(event: TrailEvent, principal: Principal) -> bool:
    """Whether the patient did it: as their account, or before signing in (registering,
    signing in, resetting their password) when it succeeded. A refused attempt on
    their account is not theirs: it shows as "anonymous"."""
    if event.actor_account_id is not None:
        return event.actor_account_id == principal.account_id
    return event.actor_role == "anonymous" and event.outcome == Outcome.ALLOWED


#: Repeated accesses at most this far apart are one entry of the history.
GROUP_WITHIN = timedelta(minutes=10)


def group(
    events: list[TrailEvent], entries: list[AccessEntry], *, within: timedelta = GROUP_WITHIN
) -> list[AccessEntry]:
    """Fold ``entries`` (described from ``events``, newest first): consecutive ones of
    the same actor (account and name as shown), action, purpose and outcome, each at
    most ``within`` before the next, become one entry with their ``count``, the first
    time in ``at`` and the last in ``until``, and every category they touched. A
    break-glass under another grant names another reason, so it starts a new entry."""
    grouped: list[AccessEntry] = []
    last_key: tuple[object, ...] | None = None
    for event, entry in zip(events, entries, strict=True):
        key = (event.actor_account_id, entry.who, entry.role, entry.action, entry.purpose,
               entry.outcome)  # fmt: skip
        previous = grouped[-1] if grouped else None
        if previous is not None and key == last_key and previous.at - entry.at <= within:
            grouped[-1] = previous.model_copy(
                update={
                    "at": entry.at,
                    "count": previous.count + entry.count,
                    "categories": sorted({*previous.categories, *entry.categories}),
                }
            )
        else:
            grouped.append(entry)
        last_key = key
    return grouped


_PLAIN_ROLES = {
    "patient": "you",
    "operator": "platform operator",
    "support": "support",
    "dpo": "data protection officer",
    "anonymous": "anonymous",
}


class _Seen:
    """What the history's reader may see of the people in it, through the policy."""

    def __init__(self, session: Session, principal: Principal, now: datetime) -> None:
        self.session = session
        self.patient_id = policy.access_history_owner(principal)
        self.grants = policy.readable_break_glass_grants(principal, now=now)
        self.practitioners = policy.readable_practitioners(principal, now=now)


def _who(seen: _Seen, event: TrailEvent, names: dict[uuid.UUID, str]) -> str:
    role, account = event.actor_role, event.actor_account_id
    if role == "operator" and account is not None:
        grant = _operator_grant(seen, account, event.at)
        if grant is not None:
            return f"operator {grant.operator} with break-glass: {grant.reason}"
    if role in _PLAIN_ROLES or account is None:
        return _PLAIN_ROLES.get(role, role)
    if role == "practitioner":
        if account not in names:
            names[account] = _practitioner_name(seen, account)
        return names[account]
    if role == "admin":
        reason = _break_glass_reason(seen, account, event.at)
        return f"administrator with break-glass: {reason}" if reason else "administrator"
    return role


def _operator_grant(seen: _Seen, operator: uuid.UUID, at: datetime) -> BreakGlassGrant | None:
    """The grant under which a CLI operator (id derived from their name) read."""
    grants = seen.session.scalars(
        seen.grants.where(
            BreakGlassGrant.operator.is_not(None),
            BreakGlassGrant.patient_id == seen.patient_id,
            BreakGlassGrant.started_at <= at,
        ).order_by(BreakGlassGrant.started_at.desc())
    )
    for grant in grants:
        assert grant.operator is not None
        if operator_id(grant.operator) == operator:
            return grant
    return None


def _practitioner_name(seen: _Seen, account: uuid.UUID) -> str:
    practitioner = seen.session.scalars(
        seen.practitioners.where(Practitioner.account_id == account)
    ).first()
    if practitioner is None:
        return "a practitioner"
    name = f"{practitioner.given_names} {practitioner.family_name}"
    return f"Dr {name} ({practitioner.specialty})"


def _break_glass_reason(seen: _Seen, admin: uuid.UUID, at: datetime) -> str | None:
    grant = seen.session.scalars(
        seen.grants.where(
            BreakGlassGrant.admin_account_id == admin,
            BreakGlassGrant.patient_id == seen.patient_id,
            BreakGlassGrant.started_at <= at,
        ).order_by(BreakGlassGrant.started_at.desc())
    ).first()
    return grant.reason if grant is not None else None
