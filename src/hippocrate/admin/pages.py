"""The administrators' pages: four-eyes approvals, practitioners, break-glass.

The same services as ``admin/api.py`` and ``patients/api.py``'s break-glass: a new
practitioner is a four-eyes request that another administrator approves (the service
refuses the requester, and the page shows that refusal); the practitioners' list is
account metadata only (``AccountMetadata``: never an email or a name); break-glass is
opened by ``grant_break_glass`` with its reason, and the administrator's grants are
read through ``readable_break_glass_grants``, their sealed reasons opened under the
guard like any read of a patient's data.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Annotated, Any, TypeVar
from zoneinfo import ZoneInfo

from fastapi import Form, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, ValidationError
from sqlalchemy import select

from hippocrate.access import policy
from hippocrate.access.models import BreakGlassGrant
from hippocrate.admin import api
from hippocrate.admin import service as approvals
from hippocrate.admin.models import FourEyesOutcome, FourEyesRequest
from hippocrate.admin.schemas import ApprovalRead, PractitionerCreateIn
from hippocrate.api.deps import DB, AppSettings, Now
from hippocrate.api.pagination import PageParams, fetch_page
from hippocrate.consultations.schemas import SPECIALTY_NAMES
from hippocrate.errors import HippocrateError, InvalidField
from hippocrate.i18n import _n
from hippocrate.identity.models import Role
from hippocrate.identity.schemas import AccountMetadata
from hippocrate.patients import service as patients
from hippocrate.patients.api import BreakGlassCreate, BreakGlassRead
from hippocrate.web import render
from hippocrate.web.deps import PagePrincipal, pages_router, require_role
from hippocrate.web.errors import on_refusal
from hippocrate.web.render import Flash

router = pages_router()
public = pages_router(public=True)
# Routes sit on the module's router itself, each with its roles: the page matrix
# (tests/web/test_page_access.py) reads them there, where an included router would hide them.
ADMIN_ONLY = [require_role(Role.ADMIN)]

M = TypeVar("M", bound=BaseModel)
PARIS = ZoneInfo("Europe/Paris")
PER_PAGE = 50
#: The administrator's latest grants shown: each reason opened is a read of that
#: patient, which the guard counts against the administrator's budget.
GRANTS_SHOWN = 10
#: How far back the approvals page shows decided (and expired) requests.
DECIDED_SHOWN = timedelta(days=7)

ACTIONS = {
    "release": _n("Release an account the guard contained"),
    "recovery": _n("Reset a staff member's credentials"),
    "create_staff": _n("Create a staff account"),
    "create_admin": _n("Create an administrator account"),
}
FLASHES = {
    "requested": _n(
        "The request is recorded: another administrator must approve it within 24 hours. "
        "The new account stays disabled until then; its setup link goes to its own address."
    ),
    "approved": _n("Approved: the request is executed."),
    "refused": _n("Refused: the request will not be executed."),
    "opened": _n("Break-glass access is open; the patient is told and reads your reason."),
}


def _validated(schema: type[M], data: dict[str, Any]) -> M:
    """``data`` as the API's own schema reads it; its first refusal as the API says it."""
    try:
        return schema.model_validate(data)
    except ValidationError as exc:
        error = exc.errors()[0]
        refusal = (error.get("ctx") or {}).get("error")
        if isinstance(refusal, HippocrateError):
            raise refusal from None
        where = ".".join(str(part) for part in error.get("loc", ()))
        raise InvalidField(
            _n("{field}: {reason}"), field=where or "form", reason=error.get("msg", "invalid")
        ) from None


def _flash(request: Request, done: str) -> Flash | None:
    message = FLASHES.get(done)
    if message is None:
        return None
    return Flash(render.translator(render.language_of(request))(message), "success")


def _shown(moment: datetime | None) -> str:
    """A moment in Paris time, as the pages print it."""
    return moment.astimezone(PARIS).strftime("%d/%m/%Y %H:%M") if moment else ""


# -- four-eyes approvals ---------------------------------------------------------------


@dataclass(frozen=True)
class Approval:
    id: str
    action: str
    role: str | None
    specialty: str | None
    reason: str | None
    target: str
    requested_by: str
    mine: bool
    created_at: str
    expires_at: str
    outcome: str
    resets: list[str]


def _approval(read: ApprovalRead, principal: PagePrincipal) -> Approval:
    resets = []
    if read.action == "recovery":
        if read.reset_password:
            resets.append("password")
        if read.reset_second_factor:
            resets.append("second factor")
    return Approval(
        id=str(read.id),
        action=read.action,
        role=read.role,
        specialty=read.specialty,
        reason=read.reason,
        target=str(read.target_id),
        requested_by=str(read.requested_by),
        mine=read.requested_by == principal.account_id,
        created_at=_shown(read.created_at),
        expires_at=_shown(read.expires_at),
        outcome=read.outcome,
        resets=resets,
    )


def _approvals(db: DB, clock: datetime, principal: PagePrincipal) -> dict[str, Any]:
    pending = db.scalars(approvals.pending_statement(session=db, now=clock)).all()
    # Decided lately, the expired ones among them (plaintext metadata, as the trail).
    decided = db.scalars(
        select(FourEyesRequest)
        .where(
            FourEyesRequest.outcome != FourEyesOutcome.PENDING,
            FourEyesRequest.decided_at >= clock - DECIDED_SHOWN,
        )
        .order_by(FourEyesRequest.decided_at.desc())
        .limit(PER_PAGE)
    ).all()
    return {
        "pending": [_approval(r, principal) for r in api.approval_reads(db, list(pending))],
        "decided": [_approval(r, principal) for r in api.approval_reads(db, list(decided))],
        "actions": ACTIONS,
    }


@router.get("/admin", dependencies=ADMIN_ONLY)
def approvals_page(
    request: Request, principal: PagePrincipal, db: DB, clock: Now, done: str = ""
) -> Response:
    return render.page(
        request,
        "admin/approvals.html",
        flash=_flash(request, done),
        **_approvals(db, clock, principal),
    )


@router.post("/admin/approvals/{request_id}/approve", dependencies=ADMIN_ONLY)
def approve(
    *,
    request: Request,
    request_id: uuid.UUID,
    principal: PagePrincipal,
    db: DB,
    clock: Now,
    settings: AppSettings,
) -> Response:
    on_refusal(request, "admin/approvals.html", **_approvals(db, clock, principal))
    # The requester and the account acted on are refused by the service.
    approvals.approve(
        session=db,
        settings=settings,
        guard=api.the_guard(request),
        actor=principal,
        request_id=request_id,
        now=clock,
    )
    return render.redirect(request, "/admin?done=approved")


@router.post("/admin/approvals/{request_id}/refuse", dependencies=ADMIN_ONLY)
def refuse(
    *,
    request: Request,
    request_id: uuid.UUID,
    principal: PagePrincipal,
    db: DB,
    clock: Now,
    settings: AppSettings,
) -> Response:
    on_refusal(request, "admin/approvals.html", **_approvals(db, clock, principal))
    approvals.refuse(
        session=db, settings=settings, actor=principal, request_id=request_id, now=clock
    )
    return render.redirect(request, "/admin?done=refused")


# -- practitioners ---------------------------------------------------------------------


def _practitioners(db: DB, clock: datetime, offset: int) -> dict[str, Any]:
    paging = PageParams(limit=PER_PAGE, offset=offset)
    rows, total = fetch_page(db, policy.accounts_metadata(role=Role.PRACTITIONER), paging)
    return {
        "accounts": [
            {"meta": AccountMetadata.of(a, now=clock), "created": _shown(a.created_at)}
            for a in rows
        ],
        "total": total,
        "offset": offset,
        "per_page": PER_PAGE,
        "specialties": SPECIALTY_NAMES,
    }


#: Bounded as the API's pages are (``api/pagination.py``): past the database's integers
#: an offset would be a server error instead of a refusal.
Offset = Annotated[int, Query(ge=0, le=1_000_000)]


@router.get("/admin/practitioners", dependencies=ADMIN_ONLY)
def practitioners_page(
    request: Request, db: DB, clock: Now, offset: Offset = 0, done: str = ""
) -> Response:
    return render.page(
        request,
        "admin/practitioners.html",
        flash=_flash(request, done),
        values=dict.fromkeys(("email", "rpps", "specialty", "given_names", "family_name"), ""),
        **_practitioners(db, clock, offset),
    )


Field = Annotated[str, Form(max_length=400)]


@router.post("/admin/practitioners", dependencies=ADMIN_ONLY)
def create_practitioner(
    *,
    request: Request,
    principal: PagePrincipal,
    db: DB,
    clock: Now,
    settings: AppSettings,
    email: Field = "",
    rpps: Field = "",
    specialty: Field = "",
    given_names: Field = "",
    family_name: Field = "",
) -> Response:
    values = {
        "email": email,
        "rpps": rpps,
        "specialty": specialty,
        "given_names": given_names,
        "family_name": family_name,
    }
    on_refusal(request, "admin/practitioners.html", values=values, **_practitioners(db, clock, 0))
    body = _validated(PractitionerCreateIn, {k: v.strip() for k, v in values.items()})
    approvals.request_practitioner(
        session=db,
        settings=settings,
        actor=principal,
        email=body.email,
        identity=approvals.PractitionerIdentity(
            rpps=body.rpps,
            specialty=body.specialty,
            given_names=body.given_names,
            family_name=body.family_name,
        ),
        now=clock,
    )
    return render.redirect(request, "/admin/practitioners?done=requested")


# -- break-glass -----------------------------------------------------------------------


def _grants(db: DB, clock: datetime, principal: PagePrincipal) -> list[dict[str, Any]]:
    statement = policy.readable_break_glass_grants(principal, now=clock).order_by(
        BreakGlassGrant.started_at.desc(), BreakGlassGrant.id
    )
    rows, _ = fetch_page(db, statement, PageParams(limit=GRANTS_SHOWN, offset=0))
    shown = []
    for grant in rows:
        # Opening the reason is a read of the patient's data: audited and guarded.
        read = BreakGlassRead(
            id=grant.id,
            patient_id=grant.patient_id,
            reason=grant.reason or "",
            started_at=grant.started_at,
            expires_at=grant.expires_at,
            revoked_at=grant.revoked_at,
            active=grant.revoked_at is None and grant.started_at <= clock < grant.expires_at,
        )
        shown.append(
            {
                "grant": read,
                "started": _shown(read.started_at),
                "expires": _shown(read.expires_at),
            }
        )
    return shown


@router.get("/admin/break-glass", dependencies=ADMIN_ONLY)
def break_glass_page(
    request: Request, principal: PagePrincipal, db: DB, clock: Now, done: str = ""
) -> Response:
    return render.page(
        request,
        "admin/break_glass.html",
        flash=_flash(request, done),
        values={"patient_id": "", "reason": "", "minutes": "30"},
        grants=_grants(db, clock, principal),
    )


@router.post("/admin/break-glass", dependencies=ADMIN_ONLY)
def open_break_glass(
    *,
    request: Request,
    principal: PagePrincipal,
    db: DB,
    clock: Now,
    settings: AppSettings,
    patient_id: Field = "",
    reason: Annotated[str, Form(max_length=2000)] = "",
    minutes: Field = "",
) -> Response:
    values = {"patient_id": patient_id, "reason": reason, "minutes": minutes}
    # Shown again without the grants: opening their reasons would count as reads.
    on_refusal(request, "admin/break_glass.html", values=values, grants=[])
    data = _validated(
        BreakGlassCreate,
        {"patient_id": patient_id.strip(), "reason": reason.strip(), "minutes": minutes.strip()},
    )
    patients.grant_break_glass(
        session=db,
        principal=principal,
        patient_id=data.patient_id,
        reason=data.reason,
        minutes=data.minutes,
        now=clock,
        settings=settings,
    )
    return render.redirect(request, "/admin/break-glass?done=opened")
