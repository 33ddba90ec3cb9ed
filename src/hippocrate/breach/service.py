"""The incident register's operations: open, amend, assess, notify, close.

Every operation takes the actor (a DPO, a CLI operator, the guard), writes a line of
the incident's timeline and an event of the audit trail in the caller's unit of work,
and bumps the incident's version. A change names the version it was made on, so two
DPOs editing at once cannot overwrite each other unseen (409 ``StaleIncident``).

Guaranteed:

- an incident's details are always valid against ``IncidentDetails``; a change that
  would make them invalid changes nothing;
- the clock runs from ``awareness_at``, which only a stated correction moves (and the
  timeline keeps the former value);
- a notification to the authority is kept exactly as sent, with its SHA-256; a late
  one needs the reason for the delay; a complementary or withdrawal phase needs an
  initial one before it; a closed incident takes no notification and no change but its
  reopening;
- the guard's containments during one attack land in one incident: a containment
  joins the open guard incident of the last 24 hours, else opens one.

Not guaranteed: that the DPO's text is true. The timeline says who wrote it.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from pydantic import ValidationError
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from hippocrate.audit.recorder import Actor, recorder_of
from hippocrate.audit.service import PendingEvent, append
from hippocrate.breach.clock import Clock, check_delay_reason, clock_at
from hippocrate.breach.decision import Circumstances, Decision, Thresholds, decide
from hippocrate.breach.errors import (
    IncidentClosed,
    IncidentNotFound,
    InvalidAssessment,
    InvalidIncident,
    NotificationOutOfOrder,
    StaleIncident,
)
from hippocrate.breach.models import (
    Incident,
    IncidentChange,
    IncidentNotification,
    IncidentOrigin,
    IncidentScope,
    IncidentStatus,
    Phase,
)
from hippocrate.breach.schemas import (
    AssessmentIn,
    CompromisedPrincipal,
    FactorIn,
    IncidentDetails,
    PrincipalKind,
    changed_paths,
    merged,
)
from hippocrate.breach.scope import PATIENT_CATEGORIES, Scope
from hippocrate.breach.severity import Band, Factor
from hippocrate.config import Settings
from hippocrate.i18n import _n
from hippocrate.tags import Outcome, Tag

#: A containment joins the open guard incident opened this recently.
JOIN_WINDOW = timedelta(hours=24)


@dataclass(frozen=True)
class Policy:
    """The configuration the register applies: the clock and the thresholds."""

    deadline_hours: int = 72
    thresholds: Thresholds = field(default_factory=Thresholds)


def policy_of(settings: Settings) -> Policy:
    """The register's policy as the deployment configures it."""
    return Policy(
        deadline_hours=settings.breach_deadline_hours,
        thresholds=Thresholds(
            authority_from=Band(settings.breach_authority_from),
            people_from=Band(settings.breach_people_from),
        ),
    )


def get(session: Session, incident_id: uuid.UUID) -> Incident:
    incident = session.get(Incident, incident_id)
    if incident is None:
        raise IncidentNotFound()
    return incident


def details_of(incident: Incident) -> IncidentDetails:
    return IncidentDetails.model_validate(incident.details)


def open_incident(
    *,
    session: Session,
    actor: Actor,
    origin: IncidentOrigin,
    awareness_at: datetime,
    details: IncidentDetails,
    now: datetime,
) -> Incident:
    """A new incident, open, its clock running from ``awareness_at``."""
    if awareness_at > now + timedelta(minutes=5):
        raise InvalidIncident(_n("the time of awareness cannot be in the future"))
    incident_id = uuid.uuid4()
    incident = Incident(
        id=incident_id,
        reference=f"INC-{now:%Y%m%d}-{incident_id.hex[:6]}",
        origin=origin,
        opened_at=now,
        opened_by_role=actor.role,
        opened_by=actor.account_id,
        awareness_at=awareness_at,
        details=details.model_dump(mode="json"),
        assessment=None,
        version=1,
    )
    session.add(incident)
    session.flush()
    _timeline(session, incident, actor, "opened", {"origin": origin.value}, now=now)
    _record(session, actor, Tag.BREACH_INCIDENT_OPENED, incident, now)
    return incident


def amend(
    *,
    session: Session,
    actor: Actor,
    incident: Incident,
    version: int,
    patch: dict[str, Any],
    awareness_at: datetime | None = None,
    note: str | None = None,
    now: datetime,
) -> Incident:
    """Apply ``patch`` (a JSON merge patch of the details) made on ``version``."""
    _writable(incident, version)
    before = incident.details
    try:
        after = merged(details_of(incident), patch).model_dump(mode="json")
    except ValidationError as exc:
        where, reason = _first_error(exc)
        raise InvalidIncident(_n("{field}: {reason}"), field=where, reason=reason) from None
    changes = changed_paths(before, after)
    if awareness_at is not None and awareness_at != incident.awareness_at:
        if not (note and note.strip()):
            raise InvalidIncident(_n("moving the time of awareness needs a note saying why"))
        changes["awareness_at"] = [incident.awareness_at.isoformat(), awareness_at.isoformat()]
        incident.awareness_at = awareness_at
    if not changes:
        return incident
    incident.details = after
    _bump(session, incident)
    _timeline(session, incident, actor, "amended", changes, note=note, now=now)
    _record(session, actor, Tag.BREACH_INCIDENT_AMENDED, incident, now)
    return incident


def assess(
    *,
    session: Session,
    actor: Actor,
    incident: Incident,
    version: int,
    assessment: AssessmentIn,
    now: datetime,
    policy: Policy,
) -> Decision:
    """Set the ENISA assessment; the timeline keeps the former one whole."""
    _writable(incident, version)
    decision = decision_of(assessment, policy)  # refuses an invalid one before any write
    before = incident.assessment
    incident.assessment = assessment.model_dump(mode="json")
    _bump(session, incident)
    _timeline(
        session,
        incident,
        actor,
        "assessed",
        {"assessment": [before, incident.assessment], "decision": decision.as_dict()},
        now=now,
    )
    _record(session, actor, Tag.BREACH_INCIDENT_ASSESSED, incident, now)
    return decision


def decision_of(assessment: AssessmentIn, policy: Policy) -> Decision:
    try:
        return decide(
            assessment.to_assessment(),
            Circumstances(
                unintelligible=_factor(assessment.unintelligible),
                mitigated=_factor(assessment.mitigated) if assessment.mitigated else None,
                disproportionate=(
                    _factor(assessment.disproportionate) if assessment.disproportionate else None
                ),
            ),
            policy.thresholds,
        )
    except InvalidAssessment:
        raise
    except ValueError as exc:  # pragma: no cover - the schema refuses these first
        raise InvalidAssessment(str(exc)) from None


def current_decision(incident: Incident, policy: Policy) -> Decision | None:
    if incident.assessment is None:
        return None
    return decision_of(AssessmentIn.model_validate(incident.assessment), policy)


def notify_authority(
    *,
    session: Session,
    actor: Actor,
    incident: Incident,
    version: int,
    phase: Phase,
    sent_at: datetime,
    content: dict[str, Any],
    receipt_reference: str | None,
    delay_reason: str | None,
    now: datetime,
    policy: Policy,
) -> IncidentNotification:
    """Record a notification as sent to the authority (the dossier, exactly)."""
    _writable(incident, version)
    if sent_at > now + timedelta(minutes=5):
        raise InvalidIncident(_n("a notification cannot have been sent in the future"))
    earlier = notifications_of(session, incident)
    if phase is not Phase.INITIAL and not any(n.phase is Phase.INITIAL for n in earlier):
        raise NotificationOutOfOrder()
    if phase is Phase.INITIAL and any(n.phase is Phase.INITIAL for n in earlier):
        raise NotificationOutOfOrder(_n("an initial notification was already sent"))
    if phase is Phase.INITIAL:
        check_delay_reason(
            incident.awareness_at, sent_at, delay_reason, hours=policy.deadline_hours
        )
    canonical = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    notification = IncidentNotification(
        incident_id=incident.id,
        phase=phase,
        sent_at=sent_at,
        recorded_at=now,
        recorded_by_role=actor.role,
        recorded_by=actor.account_id,
        content=content,
        digest=hashlib.sha256(canonical.encode("utf-8")).hexdigest(),
        receipt_reference=receipt_reference,
        delay_reason=delay_reason,
    )
    session.add(notification)
    _bump(session, incident)
    _timeline(
        session,
        incident,
        actor,
        "notified",
        {"phase": phase.value, "digest": notification.digest, "receipt": receipt_reference},
        note=delay_reason,
        now=now,
    )
    _record(session, actor, Tag.BREACH_INCIDENT_NOTIFIED, incident, now)
    return notification


def close(
    *, session: Session, actor: Actor, incident: Incident, version: int, note: str, now: datetime
) -> Incident:
    _writable(incident, version)
    if not note.strip():
        raise InvalidIncident(_n("closing an incident needs a note saying why"))
    incident.status = IncidentStatus.CLOSED
    incident.closed_at = now
    _bump(session, incident)
    _timeline(session, incident, actor, "closed", {}, note=note, now=now)
    _record(session, actor, Tag.BREACH_INCIDENT_CLOSED, incident, now)
    return incident


def reopen(
    *, session: Session, actor: Actor, incident: Incident, version: int, note: str, now: datetime
) -> Incident:
    if incident.version != version:
        raise StaleIncident(incident.version)
    if incident.status is not IncidentStatus.CLOSED:
        raise InvalidIncident(_n("this incident is open"))
    if not note.strip():
        raise InvalidIncident(_n("reopening an incident needs a note saying why"))
    incident.status = IncidentStatus.OPEN
    incident.closed_at = None
    _bump(session, incident)
    _timeline(session, incident, actor, "reopened", {}, note=note, now=now)
    _record(session, actor, Tag.BREACH_INCIDENT_REOPENED, incident, now)
    return incident


def incident_for_containment(
    *,
    session: Session,
    actor: Actor,
    principal: uuid.UUID,
    kind: str,
    reason: str,
    now: datetime,
) -> Incident:
    """The guard contained ``principal``: add it to the open guard incident of the last
    24 hours, or open one (awareness: now). Called in the containment's own unit of work,
    so a containment never stands without its incident."""
    since = now - JOIN_WINDOW
    incident = session.scalars(
        select(Incident)
        .where(
            Incident.origin == IncidentOrigin.GUARD,
            Incident.status == IncidentStatus.OPEN,
            Incident.opened_at >= since,
        )
        .order_by(Incident.opened_at.desc())
        .limit(1)
        .with_for_update()
    ).first()
    entry = CompromisedPrincipal(kind=_kind(kind), id=principal, until=now)
    rule = reason.split(":", 1)[0]
    if incident is None:
        details = IncidentDetails.model_validate(
            {
                "general": {"title": f"Containment by the guard ({rule})"},
                "timeline": {"discovered_at": now.isoformat(), "ongoing": False},
                "nature": {
                    "confidentiality": True,
                    "origin": "unknown",
                    "means": "a principal read or sought patients' data beyond its rules",
                    "principals": [entry.model_dump(mode="json")],
                },
            }
        )
        return open_incident(
            session=session,
            actor=actor,
            origin=IncidentOrigin.GUARD,
            awareness_at=now,
            details=details,
            now=now,
        )
    known = details_of(incident).nature.principals
    if any(p.id == principal for p in known):
        return incident
    principals = [p.model_dump(mode="json") for p in (*known, entry)]
    return amend(
        session=session,
        actor=actor,
        incident=incident,
        version=incident.version,
        patch={"nature": {"principals": principals}},
        note=f"the guard contained another principal ({rule})",
        now=now,
    )


def notifications_of(session: Session, incident: Incident) -> list[IncidentNotification]:
    return list(
        session.scalars(
            select(IncidentNotification)
            .where(IncidentNotification.incident_id == incident.id)
            .order_by(IncidentNotification.sent_at, IncidentNotification.recorded_at)
        )
    )


def timeline_of(session: Session, incident: Incident) -> list[IncidentChange]:
    return list(
        session.scalars(
            select(IncidentChange)
            .where(IncidentChange.incident_id == incident.id)
            .order_by(IncidentChange.seq)
        )
    )


def clock_of(session: Session, incident: Incident, now: datetime, policy: Policy) -> Clock:
    initial = session.scalar(
        select(func.min(IncidentNotification.sent_at)).where(
            IncidentNotification.incident_id == incident.id,
            IncidentNotification.phase == Phase.INITIAL,
        )
    )
    return clock_at(incident.awareness_at, now, notified=initial, hours=policy.deadline_hours)


# -- internals ---------------------------------------------------------------------


def _writable(incident: Incident, version: int) -> None:
    if incident.version != version:
        raise StaleIncident(incident.version)
    if incident.status is IncidentStatus.CLOSED:
        raise IncidentClosed()


def _bump(session: Session, incident: Incident) -> None:
    """Move the incident to its next version, in the database: one conditional UPDATE
    (``WHERE version = <the version this change was made on>``), so of two changes made
    at once on the same version, the second finds none to move and is refused whole
    (``StaleIncident``), on SQLite and on PostgreSQL alike, whichever process made it."""
    read = incident.version
    moved = session.execute(
        update(Incident)
        .where(Incident.id == incident.id, Incident.version == read)
        .values(version=read + 1)
        .execution_options(synchronize_session=False)
    )
    if moved.rowcount != 1:  # type: ignore[attr-defined]
        current = session.scalar(select(Incident.version).where(Incident.id == incident.id))
        raise StaleIncident(int(current or read))
    set_committed_value(incident, "version", read + 1)


def _timeline(
    session: Session,
    incident: Incident,
    actor: Actor,
    action: str,
    changes: dict[str, Any],
    *,
    note: str | None = None,
    now: datetime,
) -> None:
    seq = (
        session.scalar(
            select(func.max(IncidentChange.seq)).where(IncidentChange.incident_id == incident.id)
        )
        or 0
    )
    session.add(
        IncidentChange(
            incident_id=incident.id,
            seq=seq + 1,
            at=now,
            actor_role=actor.role,
            actor_id=actor.account_id,
            action=action,
            changes=json.loads(json.dumps(changes, default=str)),
            note=note,
        )
    )
    session.flush()


def _record(session: Session, actor: Actor, tag: Tag, incident: Incident, now: datetime) -> None:
    resources = (f"incident:{incident.id}",)
    recorder = recorder_of(session)
    if recorder is not None:
        recorder.event(tag, resources=resources, actor=actor, now=now)
        return
    # The guard's containment runs in a unit of work of its own, without a recorder.
    append(
        session,
        [
            PendingEvent(
                action=tag,
                actor_role=actor.role,
                outcome=Outcome.ALLOWED,
                at=now,
                actor_account_id=actor.account_id,
                resources=resources,
                request_id=actor.request_id,
            )
        ],
    )


def _factor(given: FactorIn[bool]) -> Factor[bool]:
    return Factor(given.value, given.justification)


def _kind(kind: str) -> PrincipalKind:
    return "operator" if kind == "operator" else "account"


def _first_error(exc: ValidationError) -> tuple[str, str]:
    error = exc.errors()[0]
    where = ".".join(str(part) for part in error.get("loc", ()))
    return where, str(error.get("msg", "invalid"))


def record_scope(
    *,
    session: Session,
    actor: Actor,
    incident: Incident,
    version: int,
    scope: Scope,
    now: datetime,
) -> IncidentScope:
    """Keep ``scope`` (signed) with ``incident``, on its timeline and in the trail."""
    _writable(incident, version)
    if scope.signature is None:
        raise InvalidIncident(_n("a scope is kept signed"))
    kept = IncidentScope(
        incident_id=incident.id,
        kind=scope.kind,
        computed_at=scope.computed_at,
        computed_by_role=actor.role,
        computed_by=actor.account_id,
        head_seq=scope.head_seq,
        document=scope.as_dict(),
    )
    session.add(kept)
    # The register's numbers and categories are the latest scope's (Art. 33(3)(a)).
    counts = scope.counts()
    found = [c.value for c in PATIENT_CATEGORIES if counts.get(c.value)]
    before = incident.details
    details = details_of(incident)
    people = sorted(
        {*details.data.people_categories, *(["patients"] if counts["patients"] else [])}
    )
    after = merged(
        details,
        {
            "data": {
                "people_categories": people,
                "people_count": counts["patients"],
                "records_count": counts["records"],
                "data_categories": found,
            }
        },
    ).model_dump(mode="json")
    incident.details = after
    _bump(session, incident)
    _timeline(
        session,
        incident,
        actor,
        "scoped",
        {
            "kind": scope.kind,
            "head_seq": scope.head_seq,
            "counts": counts,
            **changed_paths(before, after),
        },
        now=now,
    )
    _record(session, actor, Tag.BREACH_SCOPE_COMPUTED, incident, now)
    return kept


def scopes_of(session: Session, incident: Incident) -> list[IncidentScope]:
    return list(
        session.scalars(
            select(IncidentScope)
            .where(IncidentScope.incident_id == incident.id)
            .order_by(IncidentScope.computed_at, IncidentScope.head_seq)
        )
    )


def latest_scope(session: Session, incident: Incident) -> IncidentScope | None:
    kept = scopes_of(session, incident)
    return kept[-1] if kept else None


def mark_notices(
    *,
    session: Session,
    actor: Actor,
    incident: Incident,
    action: str,
    changes: dict[str, Any],
    note: str | None,
    now: datetime,
) -> None:
    """A line of the notices' timeline (requested, launched: the job starts from the
    latter, ``notices.launched_scope``), and its event in the trail."""
    if incident.status is IncidentStatus.CLOSED:
        raise IncidentClosed()
    _bump(session, incident)
    _timeline(session, incident, actor, action, changes, note=note, now=now)
    tag = (
        Tag.BREACH_NOTICES_LAUNCHED
        if action == "notices-launched"
        else Tag.BREACH_NOTICES_REQUESTED
    )
    _record(session, actor, tag, incident, now)
