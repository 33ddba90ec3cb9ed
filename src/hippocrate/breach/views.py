"""What the DPO is shown of an incident: its register entry with the clock running, the
decision its assessment gives, what the dossier still misses, its timeline, scopes and
notifications. Counts and ids only: nothing of any patient's data."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from hippocrate.breach import service
from hippocrate.breach.models import Incident
from hippocrate.breach.schemas import (
    ClockRead,
    IncidentRead,
    IncidentSummary,
    NotificationRead,
    ScopeSummary,
    TimelineLine,
    missing,
)


def summary(
    session: Session, incident: Incident, *, now: datetime, policy: service.Policy
) -> IncidentSummary:
    decision = service.current_decision(incident, policy)
    details = service.details_of(incident)
    return IncidentSummary(
        id=incident.id,
        reference=incident.reference,
        status=incident.status.value,
        origin=incident.origin.value,
        title=details.general.title,
        opened_at=incident.opened_at,
        awareness_at=incident.awareness_at,
        clock=ClockRead(**service.clock_of(session, incident, now, policy).as_dict()),
        band=decision.severity.band.value if decision else None,
        version=incident.version,
    )


def read(
    session: Session, incident: Incident, *, now: datetime, policy: service.Policy
) -> IncidentRead:
    head = summary(session, incident, now=now, policy=policy)
    decision = service.current_decision(incident, policy)
    details = service.details_of(incident)
    return IncidentRead(
        **head.model_dump(),
        details=details,
        assessment=incident.assessment,
        decision=decision.as_dict() if decision else None,
        missing=missing(details),
        timeline=[
            TimelineLine(
                seq=line.seq,
                at=line.at,
                actor_role=line.actor_role,
                actor_id=line.actor_id,
                action=line.action,
                changes=line.changes,
                note=line.note,
            )
            for line in service.timeline_of(session, incident)
        ],
        notifications=[
            NotificationRead(
                id=n.id,
                phase=n.phase.value,
                sent_at=n.sent_at,
                receipt_reference=n.receipt_reference,
                delay_reason=n.delay_reason,
                digest=n.digest,
            )
            for n in service.notifications_of(session, incident)
        ],
        scopes=[
            ScopeSummary(
                id=s.id,
                kind=s.kind,
                computed_at=s.computed_at,
                head_seq=s.head_seq,
                counts=s.document.get("counts", {}),
            )
            for s in service.scopes_of(session, incident)
        ],
    )
