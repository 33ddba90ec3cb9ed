"""HTTP routes of issued documents: anyone holding a document checks it.

Public on purpose: a pharmacist, another doctor or an insurer has no account here.
Each check is admitted like registration (per client address and overall, 429 with
``Retry-After`` past either), and the answer says only whether Hippocrate issued the
document unchanged, never what it contains nor whose it is.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Body, Depends, Request
from pydantic import Field

from hippocrate.api.client import ClientAddress
from hippocrate.api.deps import DB, AppSettings, Now, public_router, unit_of_its_own
from hippocrate.documents import service
from hippocrate.identity import throttle
from hippocrate.identity.errors import TooManyRequests
from hippocrate.schemas import Output, StrictInput

router = public_router(prefix="/documents", tags=["documents"])


def _admitted(request: Request, settings: AppSettings, clock: Now, address: ClientAddress) -> None:
    with unit_of_its_own(request) as session:
        until = throttle.admit(
            session,
            budget=throttle.budget(settings, "document-check"),
            address=address,
            now=clock,
        )
    if until is not None:
        raise TooManyRequests("document check", until, clock)


Admitted = Depends(_admitted)

_ANSWERS: dict[int | str, dict[str, Any]] = {
    429: {"description": "Too many checks from this address or overall (`Retry-After`)"},
}


class CodeIn(StrictInput):
    code: str = Field(min_length=1, max_length=40, description="The code printed on it")


class CheckRead(Output):
    """Whether Hippocrate issued the document; nothing of what it says."""

    issued: bool
    unaltered: bool | None = Field(description="With a file: signed and unchanged; else null")
    reason: str


def _read(check: service.Check) -> CheckRead:
    return CheckRead(issued=check.issued, unaltered=check.unaltered, reason=check.reason)


@router.post("/verify/code", dependencies=[Admitted], responses=_ANSWERS)
def verify_code(body: CodeIn, db: DB) -> CheckRead:
    """Whether Hippocrate issued a document with this verification code."""
    return _read(service.check_code(session=db, code=body.code))


@router.post("/verify/file", dependencies=[Admitted], responses=_ANSWERS)
def verify_file(
    db: DB,
    settings: AppSettings,
    content: Annotated[bytes, Body(media_type="application/pdf")],
) -> CheckRead:
    """Whether Hippocrate issued exactly this file (the PDF as the request body): its
    signature is this platform's, over the whole file, and the file is one it issued."""
    return _read(service.check_file(session=db, settings=settings, data=content))
