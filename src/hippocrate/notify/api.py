"""HTTP routes of the notify domain: the caller's own emails, and checking a code."""

from __future__ import annotations

from hippocrate.api.deps import DB, CurrentPrincipal, authenticated_router
from hippocrate.api.pagination import Page, Paging
from hippocrate.notify import service
from hippocrate.notify.schemas import CodeCheck, CodeCheckResult, EmailRead

router = authenticated_router(prefix="/notifications", tags=["notifications"])


@router.get("")
def list_notifications(db: DB, principal: CurrentPrincipal, paging: Paging) -> Page[EmailRead]:
    """The emails the platform sent to the caller, newest first, with their codes."""
    rows, total = service.list_emails(
        session=db, principal=principal, limit=paging.limit, offset=paging.offset
    )
    return Page[EmailRead](
        items=[EmailRead.of(r) for r in rows], total=total, limit=paging.limit, offset=paging.offset
    )


@router.post("/verify")
def verify_notification(db: DB, principal: CurrentPrincipal, body: CodeCheck) -> CodeCheckResult:
    """Whether an email carrying ``code`` was sent to the caller. An email whose code is
    not found did not come from the platform."""
    record = service.verify_code(session=db, principal=principal, code=body.code)
    if record is None:
        return CodeCheckResult(found=False)
    return CodeCheckResult(found=True, email=EmailRead.of(record))
