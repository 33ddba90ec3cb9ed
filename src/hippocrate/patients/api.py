"""HTTP routes of the patients domain: the patient's own record, export and deletion,
records in care, and break-glass.

The response shapes specific to these routes live here rather than in ``schemas.py``
(which another change owns for now); they are small and used nowhere else.
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from typing import Annotated, Any

from fastapi import Depends, Query, Response
from pydantic import Field
from sqlalchemy.orm import Session

from hippocrate.access import policy
from hippocrate.access.errors import Forbidden
from hippocrate.access.models import BreakGlassGrant
from hippocrate.access.principal import Principal
from hippocrate.api.client import ClientAddress
from hippocrate.api.deps import DB, AppSettings, CurrentPrincipal, Now, authenticated_router
from hippocrate.api.pagination import Page, Paging, fetch_page
from hippocrate.consultations.api import Blobs
from hippocrate.i18n import _n
from hippocrate.identity.schemas import CODE_DESCRIPTION, CodeValue, Password
from hippocrate.patients import service
from hippocrate.patients.models import Patient
from hippocrate.patients.schemas import PatientRead
from hippocrate.schemas import Output, StrictInput

router = authenticated_router(tags=["patients"])


class PatientView(PatientRead):
    """A patient record; ``nir`` is filled only when asked for and allowed."""

    nir: str | None = None


class AccountDeletion(StrictInput):
    """What deleting one's account asks again: the password, and a code if the second
    factor is on (``DELETE /patients/me``)."""

    password: Password
    code: CodeValue | None = Field(
        default=None,
        repr=False,
        description=CODE_DESCRIPTION + "; required if the account has a second factor",
    )


class BreakGlassCreate(StrictInput):
    patient_id: uuid.UUID
    reason: str = Field(min_length=20, max_length=1000, description="Why, for the patient to read")
    minutes: int = Field(ge=1, le=240, description="How long the access lasts")


class BreakGlassRead(Output):
    id: uuid.UUID
    patient_id: uuid.UUID
    reason: str
    started_at: datetime
    expires_at: datetime
    revoked_at: datetime | None
    active: bool


def own_record(db: DB, principal: CurrentPrincipal, now: Now) -> Patient:
    """The caller's own patient record, once per request (``NotFound`` for staff)."""
    return service.own_record(session=db, principal=principal, now=now)


def current_patient(
    db: DB, principal: CurrentPrincipal, now: Now, patient_id: uuid.UUID
) -> Patient:
    """The patient of the path, fetched once per request through the access policy:
    ``NotFound`` alike when absent and when the caller may not read the record."""
    return service.readable_record(session=db, principal=principal, patient_id=patient_id, now=now)


OwnRecord = Annotated[Patient, Depends(own_record)]
CurrentPatient = Annotated[Patient, Depends(current_patient)]

RevealNir = Annotated[
    bool, Query(description="Show the NIR in full (the patient, or a practitioner in care)")
]


def _view(
    db: Session, principal: Principal, patient: Patient, reveal_nir: bool, now: datetime
) -> PatientView:
    view = PatientView(**service.to_read(patient).model_dump())
    if not reveal_nir:
        return view
    if not policy.may_see_full_nir(db, principal, patient.id, now=now):
        raise Forbidden(_n("your role may not see a NIR in full"))
    return view.model_copy(update={"nir": patient.nir})


@router.get("/patients/me", response_model=PatientView)
def get_own_record(
    db: DB, principal: CurrentPrincipal, now: Now, patient: OwnRecord, reveal_nir: RevealNir = False
) -> PatientView:
    return _view(db, principal, patient, reveal_nir, now)


@router.get("/patients/me/export")
def export_own_data(db: DB, principal: CurrentPrincipal, now: Now, blobs: Blobs) -> Response:
    """Everything held about the caller, decrypted, as one JSON document to download."""
    document = service.export_own_data(session=db, blobs=blobs, principal=principal, now=now)
    return Response(
        json.dumps(document, ensure_ascii=False, indent=1),
        media_type="application/json",
        headers={"Content-Disposition": 'attachment; filename="hippocrate-export.json"'},
    )


_DELETION_REFUSALS: dict[int | str, dict[str, Any]] = {
    401: {"description": "Wrong password or code (the account stays)"},
    404: {"description": "The caller is not a patient"},
    429: {"description": "Too many failures: blocked until `locked_until`"},
}


@router.delete("/patients/me", status_code=204, responses=_DELETION_REFUSALS)
def delete_own_account(
    *,
    body: AccountDeletion,
    db: DB,
    principal: CurrentPrincipal,
    now: Now,
    blobs: Blobs,
    settings: AppSettings,
    address: ClientAddress,
) -> Response:
    """Delete the caller's account and crypto-shred their data (docs/RETENTION.md),
    once they gave their password again and, with a second factor on, a code: a
    session alone (stolen, or left open) deletes nothing. Wrong ones are counted as
    a sign-in's. Irreversible: export first. The account's address is emailed that it
    is deleted."""
    service.delete_own_account(
        session=db,
        blobs=blobs,
        principal=principal,
        password=body.password,
        code=body.code,
        address=address,
        now=now,
        settings=settings,
    )
    return Response(status_code=204)


@router.get("/patients/me/break-glass", response_model=Page[BreakGlassRead])
def list_break_glass(
    db: DB, principal: CurrentPrincipal, now: Now, paging: Paging
) -> Page[BreakGlassRead]:
    """Who opened emergency access to the caller's record, why, and for how long."""
    statement = service.break_glass_grants_statement(principal=principal, now=now)
    rows, total = fetch_page(db, statement, paging)
    return Page(
        items=[_grant(grant, now) for grant in rows],
        total=total,
        limit=paging.limit,
        offset=paging.offset,
    )


@router.get("/patients/{patient_id}", response_model=PatientView)
def get_record(
    db: DB,
    principal: CurrentPrincipal,
    now: Now,
    patient: CurrentPatient,
    reveal_nir: RevealNir = False,
) -> PatientView:
    return _view(db, principal, patient, reveal_nir, now)


@router.post("/admin/break-glass", response_model=BreakGlassRead, status_code=201)
def open_break_glass(
    db: DB, principal: CurrentPrincipal, now: Now, data: BreakGlassCreate, settings: AppSettings
) -> BreakGlassRead:
    """Open emergency access to one patient's record, with a reason; the patient is
    emailed at once and sees the grant in their access history."""
    grant = service.grant_break_glass(
        session=db,
        principal=principal,
        patient_id=data.patient_id,
        reason=data.reason,
        minutes=data.minutes,
        now=now,
        settings=settings,
    )
    return _grant(grant, now)


def _grant(grant: BreakGlassGrant, now: datetime) -> BreakGlassRead:
    return BreakGlassRead(
        id=grant.id,
        patient_id=grant.patient_id,
        reason=grant.reason or "",
        started_at=grant.started_at,
        expires_at=grant.expires_at,
        revoked_at=grant.revoked_at,
        active=grant.revoked_at is None and grant.started_at <= now < grant.expires_at,
    )
