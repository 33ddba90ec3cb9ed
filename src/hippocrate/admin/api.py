"""HTTP routes for administrators (``/admin``) and support (``/support``).

Administrators create staff accounts, disable, enable and unlock accounts, end
sessions and recover staff members' credentials. Support (and administrators) read
account metadata only: status, lock, verification, role, dates; never an email, a
name, a NIR or health data.
"""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request

from hippocrate.access import policy
from hippocrate.access.errors import NotFound
from hippocrate.access.policy import ensure_staff_role
from hippocrate.admin.schemas import (
    DisableIn,
    PractitionerCreateIn,
    RecoveryIn,
    RecoveryIssued,
    ReleaseIn,
    SessionsEnded,
    StaffCreated,
    StaffCreateIn,
)
from hippocrate.api.deps import DB, CurrentPrincipal, Now, authenticated_router, get_runtime
from hippocrate.api.pagination import Page, Paging, fetch_page
from hippocrate.audit.recorder import Actor
from hippocrate.identity import admin, events, service
from hippocrate.identity.errors import AccountActionRefused
from hippocrate.identity.models import Account, AccountStatus, Role
from hippocrate.identity.schemas import AccountMetadata
from hippocrate.tags import Tag, account_created


def require_admin(principal: CurrentPrincipal) -> None:
    ensure_staff_role(principal, Role.ADMIN)


def require_support(principal: CurrentPrincipal) -> None:
    ensure_staff_role(principal, Role.SUPPORT, Role.ADMIN)


def target_account(db: DB, account_id: uuid.UUID) -> Account:
    """The account of the path, once per request (``NotFound`` if absent or deleted)."""
    return policy.get_account(session=db, account_id=account_id)


TargetAccount = Annotated[Account, Depends(target_account)]


admin_routes = authenticated_router(
    prefix="/admin", tags=["admin"], dependencies=[Depends(require_admin)]
)
support_routes = authenticated_router(
    prefix="/support", tags=["support"], dependencies=[Depends(require_support)]
)


# -- staff accounts ------------------------------------------------------------------------


@admin_routes.post("/practitioners", status_code=201)
def create_practitioner(body: PractitionerCreateIn, db: DB, clock: Now) -> StaffCreated:
    """Create a practitioner (RPPS number, specialty, names) without a password; the
    answer carries a one-time setup token to hand over."""
    account, practitioner = service.create_practitioner(
        session=db,
        email=body.email,
        rpps=body.rpps,
        specialty=body.specialty,
        given_names=body.given_names,
        family_name=body.family_name,
        now=clock,
    )
    token, expires = service.issue_setup_token(session=db, account=account, now=clock)
    events.record(db, Tag.ACCOUNT_PRACTITIONER_CREATED, account=account, now=clock)
    return StaffCreated(
        account=AccountMetadata.of(account, now=clock),
        practitioner_id=practitioner.id,
        setup_token=token,
        setup_expires_at=expires,
    )


@admin_routes.post("/staff", status_code=201)
def create_staff(body: StaffCreateIn, db: DB, clock: Now) -> StaffCreated:
    """Create a support, dpo or admin account without a password; the answer carries a
    one-time setup token to hand over."""
    account = service.create_staff_account(
        session=db, role=Role(body.role), email=body.email, now=clock
    )
    token, expires = service.issue_setup_token(session=db, account=account, now=clock)
    events.record(db, account_created(body.role), account=account, now=clock)
    return StaffCreated(
        account=AccountMetadata.of(account, now=clock),
        setup_token=token,
        setup_expires_at=expires,
    )


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


@admin_routes.post("/accounts/{account_id}/release")
def release_contained_account(
    account_id: uuid.UUID,
    *,
    body: ReleaseIn,
    actor: CurrentPrincipal,
    db: DB,
    clock: Now,
    request: Request,
) -> AccountMetadata:
    """Release an account the guard contained, with a reason (recorded)."""
    guard = get_runtime(request).guard
    assert guard is not None
    if account_id == actor.account_id:
        raise AccountActionRefused("an administrator cannot release their own account")
    try:
        guard.release(
            db,
            admin=Actor(role=actor.role.value, account_id=actor.account_id),
            account_id=account_id,
            reason=body.reason,
        )
    except LookupError:
        raise NotFound("account", account_id) from None
    return AccountMetadata.of(policy.get_account(session=db, account_id=account_id), now=clock)


@admin_routes.post("/accounts/{account_id}/unlock")
def unlock_account(
    account_id: uuid.UUID, actor: CurrentPrincipal, db: DB, clock: Now
) -> AccountMetadata:
    """Lift a sign-in lock before it runs out."""
    account = admin.unlock_account(session=db, actor=actor, account_id=account_id)
    return AccountMetadata.of(account, now=clock)


@admin_routes.post("/accounts/{account_id}/recovery")
def recover_staff_account(
    account_id: uuid.UUID, body: RecoveryIn, actor: CurrentPrincipal, db: DB, clock: Now
) -> RecoveryIssued:
    """Reset another staff member's password (a setup token replaces it) and/or second
    factor (their next sign-in can only set up a new one); their sessions end."""
    result = admin.recover_staff_account(
        session=db,
        actor=actor,
        account_id=account_id,
        reset_password=body.password,
        reset_second_factor=body.second_factor,
        now=clock,
    )
    return RecoveryIssued(
        setup_token=result.setup_token,
        setup_expires_at=result.setup_expires_at,
        sessions_ended=result.sessions_ended,
    )


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
