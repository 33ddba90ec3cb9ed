"""HTTP routes for administrators (``/admin``) and support (``/support``).

Administrators disable, enable and unlock accounts and end sessions. Releasing a
contained account, recovering a staff member's credentials and creating any staff
account (practitioner, support, dpo, administrator) are asked by one administrator and
executed only when a second one approves (``/admin/approvals``, see
``hippocrate.admin.service``): those routes answer 202 with the pending request, and
no answer ever carries a setup token. Support (and administrators) read account
metadata only: status, lock, verification, role, dates; never an email, a name, a NIR
or health data.
"""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request

from hippocrate.access import policy
from hippocrate.access.policy import ensure_staff_role
from hippocrate.admin import service as approvals
from hippocrate.admin.models import FourEyesRequest
from hippocrate.admin.schemas import (
    ApprovalRead,
    DisableIn,
    PractitionerCreateIn,
    RecoveryIn,
    ReleaseIn,
    SessionsEnded,
    StaffCreateIn,
)
from hippocrate.api.deps import (
    DB,
    AppSettings,
    CurrentPrincipal,
    Now,
    authenticated_router,
    get_runtime,
)
from hippocrate.api.pagination import Page, Paging, fetch_page
from hippocrate.guard.service import Guard
from hippocrate.identity import admin
from hippocrate.identity.models import Account, AccountStatus, Role
from hippocrate.identity.schemas import AccountMetadata


def require_admin(principal: CurrentPrincipal) -> None:
    ensure_staff_role(principal, Role.ADMIN)


def require_support(principal: CurrentPrincipal) -> None:
    ensure_staff_role(principal, Role.SUPPORT, Role.ADMIN)


def target_account(db: DB, account_id: uuid.UUID) -> Account:
    """The account of the path, once per request (``NotFound`` if absent or deleted)."""
    return policy.get_account(session=db, account_id=account_id)


TargetAccount = Annotated[Account, Depends(target_account)]


def the_guard(request: Request) -> Guard:
    guard = get_runtime(request).guard
    assert guard is not None
    return guard


AppGuard = Annotated[Guard, Depends(the_guard)]


def approval_reads(
    db: DB, requests: list[FourEyesRequest], *, sessions_ended: int = 0
) -> list[ApprovalRead]:
    details = approvals.creation_details(db, requests)
    return [
        approval_read(r, details.get(r.target_id), sessions_ended=sessions_ended) for r in requests
    ]


def approval_read(
    request: FourEyesRequest,
    details: tuple[Role, str | None] | None,
    *,
    sessions_ended: int = 0,
) -> ApprovalRead:
    role, specialty = details or (None, None)
    return ApprovalRead.model_validate(
        {
            "id": request.id,
            "action": request.action.value,
            "target_id": request.target_id,
            "role": role.value if role is not None else None,
            "specialty": specialty,
            "reset_password": request.reset_password,
            "reset_second_factor": request.reset_second_factor,
            "reason": request.reason,
            "requested_by": request.requested_by,
            "created_at": request.created_at,
            "expires_at": request.expires_at,
            "outcome": request.outcome.value,
            "decided_by": request.decided_by,
            "decided_at": request.decided_at,
            "sessions_ended": sessions_ended,
        }
    )


admin_routes = authenticated_router(
    prefix="/admin", tags=["admin"], dependencies=[Depends(require_admin)]
)
support_routes = authenticated_router(
    prefix="/support", tags=["support"], dependencies=[Depends(require_support)]
)


# -- staff accounts ------------------------------------------------------------------------


@admin_routes.post("/practitioners", status_code=202)
def create_practitioner(
    body: PractitionerCreateIn, *, actor: CurrentPrincipal, db: DB, clock: Now,
    settings: AppSettings,
) -> ApprovalRead:  # fmt: skip
    """Ask for a practitioner (RPPS number with its check digit, a specialty of the
    catalogue, names): the account is created disabled and the answer is the pending
    request; a second administrator's approval emails its setup link to its address."""
    request, _ = approvals.request_practitioner(
        session=db,
        settings=settings,
        actor=actor,
        email=body.email,
        identity=approvals.PractitionerIdentity(
            rpps=body.rpps,
            specialty=body.specialty,
            given_names=body.given_names,
            family_name=body.family_name,
        ),
        now=clock,
    )
    [read] = approval_reads(db, [request])
    return read


@admin_routes.post("/staff", status_code=202)
def create_staff(
    body: StaffCreateIn, *, actor: CurrentPrincipal, db: DB, clock: Now, settings: AppSettings
) -> ApprovalRead:
    """Ask for a support, dpo or administrator account, the same way: created
    disabled, the answer is the pending request, the approval emails the setup link
    to the new account's own address."""
    request, _ = approvals.request_staff(
        session=db, settings=settings, actor=actor, role=Role(body.role), email=body.email,
        now=clock,
    )  # fmt: skip
    [read] = approval_reads(db, [request])
    return read


# -- accounts ---------------------------------------------------------------------------


@admin_routes.post("/accounts/{account_id}/disable")
def disable_account(
    account_id: uuid.UUID, body: DisableIn, actor: CurrentPrincipal, db: DB, clock: Now
) -> AccountMetadata:
    """Disable an account (not one's own); its sessions end at once."""
    account = admin.disable_account(
        session=db, actor=actor, account_id=account_id, reason=body.reason, now=clock
    )
    return AccountMetadata.of(account, now=clock)


@admin_routes.post("/accounts/{account_id}/enable")
def enable_account(
    account_id: uuid.UUID, actor: CurrentPrincipal, db: DB, clock: Now
) -> AccountMetadata:
    """Enable a disabled account again (and lift any sign-in lock)."""
    account = admin.enable_account(session=db, actor=actor, account_id=account_id)
    return AccountMetadata.of(account, now=clock)


@admin_routes.post("/accounts/{account_id}/release", status_code=202)
def release_contained_account(
    account_id: uuid.UUID,
    *,
    body: ReleaseIn,
    actor: CurrentPrincipal,
    db: DB,
    clock: Now,
    settings: AppSettings,
    guard: AppGuard,
) -> ApprovalRead:
    """Ask for the release of an account (or a CLI operator) the guard contained, with
    a reason: a second administrator approves it (``/admin/approvals``). A release
    keeps the principal's counts: it starts again where it was contained."""
    request = approvals.request_release(
        session=db,
        settings=settings,
        guard=guard,
        actor=actor,
        target_id=account_id,
        reason=body.reason,
        now=clock,
    )
    return approval_read(request, None)


@admin_routes.post("/accounts/{account_id}/unlock")
def unlock_account(
    account_id: uuid.UUID, actor: CurrentPrincipal, db: DB, clock: Now
) -> AccountMetadata:
    """Lift a sign-in lock before it runs out."""
    account = admin.unlock_account(session=db, actor=actor, account_id=account_id)
    return AccountMetadata.of(account, now=clock)


@admin_routes.post("/accounts/{account_id}/recovery", status_code=202)
def recover_staff_account(
    account_id: uuid.UUID,
    *,
    body: RecoveryIn,
    actor: CurrentPrincipal,
    db: DB,
    clock: Now,
    settings: AppSettings,
) -> ApprovalRead:
    """Ask to reset another staff member's password and/or second factor. Once a second
    administrator approves, their sessions end, and a password reset emails a setup
    link to their own address (never to an administrator)."""
    request = approvals.request_recovery(
        session=db,
        settings=settings,
        actor=actor,
        account_id=account_id,
        reset_password=body.password,
        reset_second_factor=body.second_factor,
        now=clock,
    )
    return approval_read(request, None)


# -- four-eyes approvals ----------------------------------------------------------------


@admin_routes.get("/approvals")
def list_approvals(db: DB, clock: Now, paging: Paging) -> Page[ApprovalRead]:
    """The requests waiting for a second administrator, oldest first."""
    statement = approvals.pending_statement(session=db, now=clock)
    rows, total = fetch_page(db, statement, paging)
    return Page[ApprovalRead](
        items=approval_reads(db, list(rows)),
        total=total,
        limit=paging.limit,
        offset=paging.offset,
    )


@admin_routes.post("/approvals/{request_id}/approve")
def approve_request(
    request_id: uuid.UUID,
    *,
    actor: CurrentPrincipal,
    db: DB,
    clock: Now,
    settings: AppSettings,
    guard: AppGuard,
) -> ApprovalRead:
    """Approve another administrator's request: it is executed now, once."""
    decided = approvals.approve(
        session=db, settings=settings, guard=guard, actor=actor, request_id=request_id, now=clock
    )
    [read] = approval_reads(db, [decided.request], sessions_ended=decided.sessions_ended)
    return read


@admin_routes.post("/approvals/{request_id}/refuse")
def refuse_request(
    request_id: uuid.UUID, actor: CurrentPrincipal, db: DB, clock: Now, settings: AppSettings
) -> ApprovalRead:
    """Refuse a request (or withdraw one's own): it is never executed."""
    decided = approvals.refuse(
        session=db, settings=settings, actor=actor, request_id=request_id, now=clock
    )
    [read] = approval_reads(db, [decided.request])
    return read


@admin_routes.delete("/accounts/{account_id}/sessions")
def end_account_sessions(account_id: uuid.UUID, db: DB, clock: Now) -> SessionsEnded:
    """End every session of one account."""
    return SessionsEnded(
        ended=admin.end_account_sessions(session=db, account_id=account_id, now=clock)
    )


@admin_routes.delete("/sessions")
def end_all_sessions(db: DB, clock: Now) -> SessionsEnded:
    """End every session of every account, the caller's included."""
    return SessionsEnded(ended=admin.end_everyone(session=db, now=clock))


# -- support: metadata only ------------------------------------------------------------


@support_routes.get("/accounts")
def list_accounts(
    db: DB,
    clock: Now,
    paging: Paging,
    role: Annotated[Role | None, Query(description="Only accounts of this role")] = None,
    status: Annotated[AccountStatus | None, Query(description="Only this status")] = None,
) -> Page[AccountMetadata]:
    """Account metadata, oldest first, a page at a time."""
    rows, total = fetch_page(db, policy.accounts_metadata(role=role, status=status), paging)
    return Page[AccountMetadata](
        items=[AccountMetadata.of(a, now=clock) for a in rows],
        total=total,
        limit=paging.limit,
        offset=paging.offset,
    )


@support_routes.get("/accounts/{account_id}")
def read_account(account: TargetAccount, clock: Now) -> AccountMetadata:
    """One account's metadata (the account holder can read their id in ``GET /me``)."""
    return AccountMetadata.of(account, now=clock)


router = APIRouter()
"""Both routers, for the app (each route keeps its router's role check)."""
router.include_router(admin_routes)
router.include_router(support_routes)
