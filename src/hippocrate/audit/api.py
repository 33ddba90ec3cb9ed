"""HTTP routes of the audit trail: a patient's access history."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import Depends

from hippocrate.access.errors import Forbidden
from hippocrate.api.deps import DB, CurrentPrincipal, authenticated_router
from hippocrate.api.pagination import Page, Paging, fetch_page
from hippocrate.audit.schemas import AccessEntry
from hippocrate.audit.views import access_log_statement, describe

router = authenticated_router(tags=["audit"])


def history_owner(principal: CurrentPrincipal) -> uuid.UUID:
    """The patient whose access history the caller reads: their own, once per request."""
    if principal.patient_id is None:
        raise Forbidden("only patients have an access history")
    return principal.patient_id


HistoryOwner = Annotated[uuid.UUID, Depends(history_owner)]


@router.get("/patients/me/access-log", response_model=Page[AccessEntry])
def my_access_log(db: DB, patient_id: HistoryOwner, paging: Paging) -> Page[AccessEntry]:
    """Who accessed my record: when, who, what kind of data, why (newest first)."""
    rows, total = fetch_page(db, access_log_statement(patient_id), paging)
    return Page(
        items=describe(db, rows, patient_id),
        total=total,
        limit=paging.limit,
        offset=paging.offset,
    )
