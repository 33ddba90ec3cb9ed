"""HTTP routes of the audit trail: a patient's access history."""

from __future__ import annotations

from hippocrate.access.errors import Forbidden
from hippocrate.api.deps import DB, CurrentPrincipal, authenticated_router
from hippocrate.api.pagination import Page, Paging, fetch_page
from hippocrate.audit.schemas import AccessEntry
from hippocrate.audit.views import access_log_statement, describe

router = authenticated_router(tags=["audit"])


@router.get("/patients/me/access-log", response_model=Page[AccessEntry])
def my_access_log(db: DB, principal: CurrentPrincipal, paging: Paging) -> Page[AccessEntry]:
    """Who accessed my record: when, who, what kind of data, why (newest first)."""
    if principal.patient_id is None:
        raise Forbidden("only patients have an access history")
    rows, total = fetch_page(db, access_log_statement(principal.patient_id), paging)
    return Page(
        items=describe(db, rows, principal.patient_id),
        total=total,
        limit=paging.limit,
        offset=paging.offset,
    )
