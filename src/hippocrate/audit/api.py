"""HTTP routes of the audit trail: a patient's access history."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import Depends

from hippocrate.access.policy import access_history_owner
from hippocrate.api.deps import DB, CurrentPrincipal, Now, authenticated_router
from hippocrate.api.pagination import Page, Paging
from hippocrate.audit.schemas import AccessEntry
from hippocrate.audit.views import access_history

router = authenticated_router(tags=["audit"])


def history_owner(principal: CurrentPrincipal) -> uuid.UUID:
    """The patient whose access history the caller reads: their own, once per request
    (``Forbidden`` for anyone else)."""
    return access_history_owner(principal)


HistoryOwner = Annotated[uuid.UUID, Depends(history_owner)]


@router.get("/patients/me/access-log", response_model=Page[AccessEntry])
def my_access_log(
    db: DB, principal: CurrentPrincipal, _owner: HistoryOwner, paging: Paging, clock: Now
) -> Page[AccessEntry]:
    """Who accessed my record: when, who, what kind of data, why (newest first),
    repeated accesses grouped into one entry with their count."""
    entries = access_history(db, principal, now=clock)
    return Page(
        items=entries[paging.offset : paging.offset + paging.limit],
        total=len(entries),
        limit=paging.limit,
        offset=paging.offset,
    )
