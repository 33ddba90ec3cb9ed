"""HTTP routes of the incident register (``/incidents``), for the DPO only.

The DPO opens and documents incidents, sets the ENISA assessment, computes scopes from
the trail, downloads the Art. 33 dossier (JSON, HTML, PDF) and records each
notification as sent. Every change names the version it was made on (409 when another
change came first). Nothing here reads a patient's data: scopes and dossiers are ids
and counts, computed from the trail and the register.
"""

from __future__ import annotations

import functools
import uuid
from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import Depends, Query, Response
from fastapi.responses import HTMLResponse, JSONResponse
from sqlalchemy import select
from sqlalchemy.orm import Session

from hippocrate.access.errors import Forbidden, NotFound
from hippocrate.access.policy import ensure_staff_role
from hippocrate.api.deps import (
    DB,
    AppSettings,
    CurrentPrincipal,
    Now,
    authenticated_router,
    get_runtime,
)
from hippocrate.api.problems import Language
from hippocrate.audit.recorder import Actor, recorder_of
from hippocrate.breach import dossier, jobs, notices, service, views
from hippocrate.breach import scope as scopes
from hippocrate.breach.errors import InvalidIncident, StaleIncident
from hippocrate.breach.models import Incident, IncidentOrigin, IncidentScope, Notice, Phase
from hippocrate.breach.schemas import (
    AssessmentSet,
    IncidentAmend,
    IncidentOpen,
    IncidentRead,
    IncidentSummary,
    NoticesLaunch,
    NotificationRead,
    NotificationSent,
    ScopeAsk,
    Versioned,
)
from hippocrate.config import KeyProviderKind, Settings
from hippocrate.i18n import _n
from hippocrate.identity.models import Role
from hippocrate.notify.delivery import after_commit
from hippocrate.runtime import Runtime
from hippocrate.tags import Tag

#: Without a stated start, a scope looks this far back before awareness.
DEFAULT_LOOKBACK = timedelta(days=30)


def require_dpo(principal: CurrentPrincipal) -> None:
    ensure_staff_role(principal, Role.DPO)


router = authenticated_router(tags=["breach"], dependencies=[Depends(require_dpo)])


def target_incident(db: DB, incident_id: uuid.UUID) -> Incident:
    return service.get(db, incident_id)


TargetIncident = Annotated[Incident, Depends(target_incident)]


def the_policy(settings: AppSettings) -> service.Policy:
    return service.policy_of(settings)


RegisterPolicy = Annotated[service.Policy, Depends(the_policy)]


def actor_of(db: Session) -> Actor:
    recorder = recorder_of(db)
    assert recorder is not None  # every request's unit of work has one
    return recorder.actor


@router.get("/incidents", response_model=list[IncidentSummary])
def list_incidents(
    db: DB,
    clock: Now,
    policy: RegisterPolicy,
    status: Annotated[Literal["open", "closed"] | None, Query()] = None,
) -> list[IncidentSummary]:
    """Every incident, newest first, with its clock."""
    statement = select(Incident).order_by(Incident.opened_at.desc())
    if status is not None:
        statement = statement.where(Incident.status == status)
    return [views.summary(db, i, now=clock, policy=policy) for i in db.scalars(statement)]


@router.post("/incidents", response_model=IncidentRead, status_code=201)
def open_incident(body: IncidentOpen, db: DB, clock: Now, policy: RegisterPolicy) -> IncidentRead:
    incident = service.open_incident(
        session=db,
        actor=actor_of(db),
        origin=IncidentOrigin.DPO,
        awareness_at=body.awareness_at or clock,
        details=body.details,
        now=clock,
    )
    return views.read(db, incident, now=clock, policy=policy)


@router.get("/incidents/{incident_id}", response_model=IncidentRead)
def read_incident(
    incident: TargetIncident, db: DB, clock: Now, policy: RegisterPolicy
) -> IncidentRead:
    return views.read(db, incident, now=clock, policy=policy)


@router.patch("/incidents/{incident_id}", response_model=IncidentRead)
def amend_incident(
    body: IncidentAmend, incident: TargetIncident, db: DB, clock: Now, policy: RegisterPolicy
) -> IncidentRead:
    service.amend(
        session=db,
        actor=actor_of(db),
        incident=incident,
        version=body.version,
        patch=body.details,
        awareness_at=body.awareness_at,
        note=body.note,
        now=clock,
    )
    return views.read(db, incident, now=clock, policy=policy)


@router.put("/incidents/{incident_id}/assessment", response_model=IncidentRead)
def assess_incident(
    body: AssessmentSet, incident: TargetIncident, db: DB, clock: Now, policy: RegisterPolicy
) -> IncidentRead:
    service.assess(
        session=db,
        actor=actor_of(db),
        incident=incident,
        version=body.version,
        assessment=body.assessment,
        now=clock,
        policy=policy,
    )
    return views.read(db, incident, now=clock, policy=policy)


@router.post("/incidents/{incident_id}/scopes", status_code=201)
def compute_scope(
    body: ScopeAsk,
    incident: TargetIncident,
    runtime: Annotated[Runtime, Depends(get_runtime)],
    db: DB,
    clock: Now,
) -> dict[str, Any]:
    """Compute the incident's scope from the trail (or of a database copy), sign it and
    keep it; the answer is the signed scope, patient ids included."""
    settings, guard = runtime.settings, runtime.guard

    def is_honeytoken(patient: uuid.UUID) -> bool:
        return guard is not None and guard.is_honeytoken(db, patient)

    if body.kind == "database-copy":
        computed = scopes.of_database_copy(
            db,
            now=clock,
            is_honeytoken=is_honeytoken,
            key_location=key_location(settings),
        )
    else:
        named = service.details_of(incident).nature.principals
        principals = body.principals if body.principals is not None else [p.id for p in named]
        starts = [p.since for p in named if p.since is not None]
        since = body.since or (min(starts) if starts else incident.awareness_at - DEFAULT_LOOKBACK)
        computed = scopes.of_principals(
            db,
            principals=principals,
            since=since,
            until=body.until,
            now=clock,
            is_honeytoken=is_honeytoken,
        )
    scopes.tie(computed, settings.checkpoint_files)
    scopes.sign(computed, runtime.sessions.vault.provider)
    service.record_scope(
        session=db,
        actor=actor_of(db),
        incident=incident,
        version=body.version,
        scope=computed,
        now=clock,
    )
    return computed.as_dict()


@router.get("/incidents/{incident_id}/dossier", response_model=None)
def get_dossier(
    incident: TargetIncident,
    db: DB,
    clock: Now,
    policy: RegisterPolicy,
    format: Annotated[Literal["json", "html", "pdf"], Query()] = "json",
) -> Response:
    """The Art. 33 dossier as it would be sent now (the next phase)."""
    sent = service.notifications_of(db, incident)
    phase = Phase.COMPLEMENTARY if sent else Phase.INITIAL
    document = dossier_document(db, incident, phase=phase, now=clock, policy=policy)
    filename = f"{incident.reference}-{phase.value}"
    if format == "html":
        return HTMLResponse(dossier.html(document))
    if format == "pdf":
        return Response(
            dossier.pdf(document),
            media_type="application/pdf",
            headers={"Content-Disposition": f'attachment; filename="{filename}.pdf"'},
        )
    return JSONResponse(document)


@router.post(
    "/incidents/{incident_id}/notifications", response_model=NotificationRead, status_code=201
)
def record_notification(
    body: NotificationSent, incident: TargetIncident, db: DB, clock: Now, policy: RegisterPolicy
) -> NotificationRead:
    """Record that the dossier was sent to the authority (with its receipt reference):
    the dossier of this moment is kept exactly, with its digest."""
    phase = Phase(body.phase)
    document = dossier_document(db, incident, phase=phase, now=clock, policy=policy)
    sent = service.notify_authority(
        session=db,
        actor=actor_of(db),
        incident=incident,
        version=body.version,
        phase=phase,
        sent_at=body.sent_at,
        content=document,
        receipt_reference=body.receipt_reference,
        delay_reason=body.delay_reason,
        now=clock,
        policy=policy,
    )
    return NotificationRead(
        id=sent.id,
        phase=sent.phase.value,
        sent_at=sent.sent_at,
        receipt_reference=sent.receipt_reference,
        delay_reason=sent.delay_reason,
        digest=sent.digest,
    )


@router.post("/incidents/{incident_id}/close", response_model=IncidentRead)
def close_incident(
    body: Versioned, incident: TargetIncident, db: DB, clock: Now, policy: RegisterPolicy
) -> IncidentRead:
    service.close(
        session=db,
        actor=actor_of(db),
        incident=incident,
        version=body.version,
        note=body.note,
        now=clock,
    )
    return views.read(db, incident, now=clock, policy=policy)


@router.post("/incidents/{incident_id}/reopen", response_model=IncidentRead)
def reopen_incident(
    body: Versioned, incident: TargetIncident, db: DB, clock: Now, policy: RegisterPolicy
) -> IncidentRead:
    service.reopen(
        session=db,
        actor=actor_of(db),
        incident=incident,
        version=body.version,
        note=body.note,
        now=clock,
    )
    return views.read(db, incident, now=clock, policy=policy)


def key_location(settings: Settings) -> dict[str, Any]:
    """Where the keys are, against what a copy of the database takes with it: the
    embedded default's data folder (its SQLite file lies there), or a PostgreSQL dump,
    which holds the database alone."""
    copied: list[Path] = []
    url = settings.resolved_database_url
    if url.startswith("sqlite"):
        copied.append(settings.data_dir)
        database_file = url.split("///", 1)[-1]
        if database_file:
            copied.append(Path(database_file).parent)
    if settings.key_provider is KeyProviderKind.FILE:
        return scopes.keys_location(
            provider_kind="file", key_file=settings.resolved_key_file, copied=copied
        )
    return scopes.keys_location(provider_kind="pkcs11", key_file=None, copied=copied)


def dossier_document(
    db: Session, incident: Incident, *, phase: Phase, now: datetime, policy: service.Policy
) -> dict[str, Any]:
    """The Art. 33 dossier of ``incident`` for ``phase`` as it stands ``now``: what
    ``GET .../dossier`` answers, what a recorded notification keeps, and what the DPO's
    dossier page shows (``breach/pages.py``)."""
    latest = service.latest_scope(db, incident)
    return dossier.build(
        incident,
        clock=service.clock_of(db, incident, now, policy),
        decision=service.current_decision(incident, policy),
        scope=latest.document if latest else None,
        notifications=service.notifications_of(db, incident),
        phase=phase.value,
        now=now,
    )


@router.post("/incidents/{incident_id}/notices", status_code=202)
def request_notices(
    body: NoticesLaunch,
    incident: TargetIncident,
    runtime: Annotated[Runtime, Depends(get_runtime)],
    db: DB,
    clock: Now,
) -> dict[str, Any]:
    """Ask that every affected patient of the latest scope get their notice; another DPO
    (``POST .../notices/approve``) or an operator (``hippocrate breach approve-notices``)
    approves, and the notice job then sends them (``hippocrate breach worker``)."""
    policy = service.policy_of(runtime.settings)
    if incident.version != body.version:
        raise StaleIncident(incident.version)
    latest = service.latest_scope(db, incident)
    if latest is None:
        raise InvalidIncident(_n("compute the incident's scope first: notices go to its patients"))
    decision = service.current_decision(incident, policy)
    notices.request(
        session=db,
        actor=actor_of(db),
        incident=incident,
        scope=latest,
        required=bool(decision and decision.notify_people),
        voluntary_reason=body.voluntary_reason,
        now=clock,
    )
    return {"pending_approval": True, "patients": latest.document["counts"]["patients"]}


@router.post("/incidents/{incident_id}/notices/approve", status_code=202)
def approve_notices(
    body: Versioned,
    incident: TargetIncident,
    runtime: Annotated[Runtime, Depends(get_runtime)],
    db: DB,
    clock: Now,
) -> dict[str, Any]:
    """Approve another DPO's request of notices: the notice job prepares and sends them;
    follow with GET."""
    if incident.version != body.version:
        raise StaleIncident(incident.version)
    notices.approve(session=db, actor=actor_of(db), incident=incident, now=clock, note=body.note)
    queue = jobs.open_queue(runtime)
    # Queued once the approval is committed (a rolled-back one queues nothing); were it
    # lost, every worker's sweep prepares an approved incident that has no notices yet.
    after_commit(db, functools.partial(jobs.enqueue_prepare, queue, incident.id))
    return {"launched": True}


@router.get("/incidents/{incident_id}/notices")
def notice_progress(incident: TargetIncident, db: DB) -> dict[str, int]:
    """How far the notices are: queued, being sent, sent, letters, seen."""
    return notices.progress(db, incident.id).as_dict()


patient_router = authenticated_router(tags=["breach"])


def own_patient(principal: CurrentPrincipal) -> uuid.UUID:
    if principal.patient_id is None:
        raise Forbidden(_n("only a patient has notices"))
    return principal.patient_id


OwnPatient = Annotated[uuid.UUID, Depends(own_patient)]


@patient_router.get("/patients/me/notices")
def my_notices(
    patient: OwnPatient, db: DB, settings: AppSettings, language: Language
) -> list[dict[str, Any]]:
    """The security notices addressed to me (the banner at sign-in shows the unseen
    ones): which of my data an incident involved and which it did not, what to do."""
    shown = []
    for notice in notices.of_patient(db, patient):
        incident = service.get(db, notice.incident_id)
        scope = db.get(IncidentScope, notice.scope_id)
        assert scope is not None
        involved = notices.involved_of(scope, patient)
        if language == "en":
            text: Any = notices.english(
                incident=incident, involved=involved, dpo_email=settings.dpo_email
            )
        else:
            rendered = notices.render(
                incident=incident,
                involved=involved,
                code="",
                public_url=settings.public_url,
                dpo_email=settings.dpo_email,
            )
            text = rendered.text.split("\n" + "-" * 40)[0]
        shown.append(
            {
                "id": str(notice.id),
                "incident": incident.reference,
                "categories": sorted(c.value for c in involved),
                "status": notice.status.value,
                "seen": notice.seen_at is not None,
                "language": language,
                "text": text,
            }
        )
    return shown


@patient_router.post("/patients/me/notices/{notice_id}/seen", status_code=204)
def notice_seen(notice_id: uuid.UUID, patient: OwnPatient, db: DB, clock: Now) -> Response:
    notice = db.get(Notice, notice_id)
    if notice is None or notice.patient_id != patient:
        raise NotFound("notice", notice_id)
    if notice.seen_at is None:
        notice.seen_at = clock
        recorder = recorder_of(db)
        if recorder is not None:
            recorder.event(
                Tag.BREACH_NOTICE_SEEN, patient=patient, resources=(f"notice:{notice.id}",)
            )
    return Response(status_code=204)
