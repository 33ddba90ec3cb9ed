"""Who accessed my record: the patient's view of the audit trail."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from hippocrate.access.models import BreakGlassGrant
from hippocrate.access.principal import operator_id
from hippocrate.audit.models import AuditEvent
from hippocrate.audit.schemas import AccessEntry
from hippocrate.identity.models import Practitioner


def access_log_statement(patient_id: uuid.UUID) -> Select[AuditEvent]:
    """Events about one patient, newest first (the caller scopes ``patient_id``)."""
    return (
        select(AuditEvent)
        .where(AuditEvent.patient_id == patient_id)
        .order_by(AuditEvent.seq.desc())
    )


def describe(
    session: Session, events: list[AuditEvent], patient_id: uuid.UUID
) -> list[AccessEntry]:
    """Name each actor as the patient should read it: a practitioner by name and
    role, "support", "administrator with break-glass: <reason>", "you"."""
    names: dict[uuid.UUID, str] = {}
    entries = []
    for event in events:
        entries.append(
            AccessEntry(
                at=event.at,
                who=_who(session, event, patient_id, names),
                role=event.actor_role,
                action=event.action,
                categories=list(event.categories),
                purpose=event.purpose,
                outcome=event.outcome,
            )
        )
    return entries


_PLAIN_ROLES = {
    "patient": "you",
    "operator": "platform operator",
    "support": "support",
    "dpo": "data protection officer",
    "anonymous": "anonymous",
}


def _who(
    session: Session, event: AuditEvent, patient_id: uuid.UUID, names: dict[uuid.UUID, str]
) -> str:
    role, account = event.actor_role, event.actor_account_id
    if role == "operator" and account is not None:
        grant = _operator_grant(session, account, patient_id, event.at)
        if grant is not None:
            return f"operator {grant.operator} with break-glass: {grant.reason}"
    if role in _PLAIN_ROLES or account is None:
        return _PLAIN_ROLES.get(role, role)
    if role == "practitioner":
        if account not in names:
            names[account] = _practitioner_name(session, account)
        return names[account]
    if role == "admin":
        reason = _break_glass_reason(session, account, patient_id, event.at)
        return f"administrator with break-glass: {reason}" if reason else "administrator"
    return role


def _operator_grant(
    session: Session, operator: uuid.UUID, patient_id: uuid.UUID, at: datetime
) -> BreakGlassGrant | None:
    """The grant under which a CLI operator (id derived from their name) read."""
    grants = session.scalars(
        select(BreakGlassGrant)
        .where(
            BreakGlassGrant.operator.is_not(None),
            BreakGlassGrant.patient_id == patient_id,
            BreakGlassGrant.started_at <= at,
        )
        .order_by(BreakGlassGrant.started_at.desc())
    )
    for grant in grants:
        assert grant.operator is not None
        if operator_id(grant.operator) == operator:
            return grant
    return None


def _practitioner_name(session: Session, account: uuid.UUID) -> str:
    practitioner = session.scalars(
        select(Practitioner).where(Practitioner.account_id == account)
    ).first()
    if practitioner is None:
        return "a practitioner"
    name = f"{practitioner.given_names} {practitioner.family_name}"
    return f"Dr {name} ({practitioner.specialty})"


def _break_glass_reason(
    session: Session, admin: uuid.UUID, patient_id: uuid.UUID, at: datetime
) -> str | None:
    grant = session.scalars(
        select(BreakGlassGrant)
        .where(
            BreakGlassGrant.admin_account_id == admin,
            BreakGlassGrant.patient_id == patient_id,
            BreakGlassGrant.started_at <= at,
        )
        .order_by(BreakGlassGrant.started_at.desc())
    ).first()
    return grant.reason if grant is not None else None
