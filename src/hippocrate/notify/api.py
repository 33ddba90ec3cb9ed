"""HTTP routes of the notify domain: the caller's own emails and checking a code they
were sent (``/notifications``, signed in), and the public check of a received message
(``/messages/check``, anyone).

``router`` holds both: the signed-in routes come from an ``authenticated_router`` (each
keeps its principal dependency once included), the public one from a ``public_router``.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from fastapi import Depends, Request

from hippocrate.api.client import ClientAddress
from hippocrate.api.deps import (
    DB,
    AppSettings,
    CurrentPrincipal,
    Now,
    authenticated_router,
    public_router,
    unit_of_its_own,
)
from hippocrate.api.pagination import Page, Paging
from hippocrate.api.problems import Language
from hippocrate.identity import throttle
from hippocrate.identity.errors import TooManyRequests
from hippocrate.notify import check, service, wording
from hippocrate.notify.schemas import (
    CodeCheck,
    CodeCheckResult,
    EmailRead,
    MessageCheck,
    MessageCheckRead,
)

mine = authenticated_router(prefix="/notifications", tags=["notifications"])
public = public_router(prefix="/messages", tags=["messages"])


@mine.get("")
def list_notifications(db: DB, principal: CurrentPrincipal, paging: Paging) -> Page[EmailRead]:
    """The emails the platform sent to the caller, newest first, with their codes."""
    rows, total = service.list_emails(
        session=db, principal=principal, limit=paging.limit, offset=paging.offset
    )
    return Page[EmailRead](
        items=[EmailRead.of(r) for r in rows], total=total, limit=paging.limit, offset=paging.offset
    )


@mine.post("/verify")
def verify_notification(db: DB, principal: CurrentPrincipal, body: CodeCheck) -> CodeCheckResult:
    """Whether an email carrying ``code`` was sent to the caller. An email whose code is
    not found did not come from the platform."""
    record = service.verify_code(session=db, principal=principal, code=body.code)
    if record is None:
        return CodeCheckResult(found=False)
    return CodeCheckResult(found=True, email=EmailRead.of(record))


# -- the public check -------------------------------------------------------------------


def admit_check(
    request: Request, settings: AppSettings, clock: Now, address: ClientAddress
) -> None:
    """Admit one check per client address and overall, like the document check."""
    budget = throttle.Budget(
        "message-check",
        settings.message_checks_per_client,
        settings.message_checks_global,
        timedelta(seconds=settings.anonymous_window_seconds),
    )
    with unit_of_its_own(request) as session:
        until = throttle.admit(session, budget=budget, address=address, now=clock)
    if until is not None:
        raise TooManyRequests("message check", until, clock)


_ANSWERS: dict[int | str, dict[str, Any]] = {
    422: {"description": "No verification code in the text, or a text too long"},
    429: {"description": "Too many checks from this address or overall (`Retry-After`)"},
}


@public.post("/check", dependencies=[Depends(admit_check)], responses=_ANSWERS)
def check_message(
    body: MessageCheck, db: DB, settings: AppSettings, language: Language
) -> MessageCheckRead:
    """Whether Hippocrate sent a message carrying the code of ``text`` (the code, or the
    whole message as received): when, and what kind of message, in generic words; never
    to whom. The answer has the same fields whether or not the code was sent."""
    answer = check.check_message(session=db, text=body.text, public_url=settings.public_url)
    return wording.read(answer, language=language, public_url=settings.public_url)


router = public_router()
router.include_router(mine)
router.include_router(public)
