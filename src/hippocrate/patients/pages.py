"""The patient's own pages: their account (identity, second factor, password, export
and deletion) and who accessed their record.

The same services as ``patients/api.py``, ``audit/api.py`` and ``interop/api.py``, behind
the same scoped loaders (``service.own_record``, ``access_history_owner``): a page reads
only the signed-in patient's own record, and every read is audited as the API's is.
Deleting the account asks the password again (and a code when the second factor is on),
checked and throttled as a sign-in's by the service itself before anything is shredded,
as for ``DELETE /api/v1/patients/me``.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated

from fastapi import Depends, Form, Request
from fastapi.responses import Response

from hippocrate.access.policy import access_history_owner
from hippocrate.access.principal import Principal
from hippocrate.api.client import ClientAddress
from hippocrate.api.deps import DB, AppSettings, Now
from hippocrate.api.pagination import PageParams, Paging, fetch_page
from hippocrate.audit.views import access_history
from hippocrate.consultations.api import Blobs, content_disposition
from hippocrate.consultations.schemas import catalogue
from hippocrate.i18n import _n
from hippocrate.identity import factors, passwords
from hippocrate.identity.models import Role
from hippocrate.identity.pages import CHANGES, account_facts
from hippocrate.interop import fhir
from hippocrate.patients import service
from hippocrate.web import cookies, csrf, render
from hippocrate.web.deps import PagePrincipal, PageSession, pages_router, require_role
from hippocrate.web.errors import on_refusal
from hippocrate.web.render import Flash

router = pages_router(dependencies=[require_role(Role.PATIENT)])
public = pages_router(public=True)

BREAK_GLASS = "break-glass"
"""The purpose of an access under an emergency grant (``access.policy.purpose_of``)."""

#: Why, as the history says it (``tags.Purpose``); a purpose not named is shown as it is.
PURPOSES = {
    "self": _n("your own use"),
    "care": _n("care"),
    BREAK_GLASS: _n("emergency access (break-glass)"),
    "none": _n("no access to health data"),
    "operations": _n("platform maintenance"),
    "key-rotation": _n("platform maintenance"),
    "release": _n("platform security"),
}
#: What an access did, in words, for the events a patient's history shows most; any
#: other is shown by its name in the trail.
ACTIONS = {
    "consultation:record:read": _n("read the consultation"),
    "consultation:record:write": _n("wrote in the consultation"),
    "consultation:record:handed-back": _n("handed the consultation back to the queue"),
    "consultation:message:read": _n("read the messages"),
    "consultation:message:write": _n("wrote a message"),
    "consultation:attachment:read": _n("opened a document"),
    "consultation:attachment:write": _n("added a document"),
    "patient:record:read": _n("read the record"),
    "patient:record:write": _n("wrote in the record"),
    "patient:break-glass:read": _n("read the emergency access"),
    "patient:break-glass:write": _n("opened an emergency access"),
    "account:profile:read": _n("read the account's details"),
    "account:profile:write": _n("changed the account's details"),
    "account:session:opened": _n("signed in"),
    "account:signin:password-accepted": _n("gave the right password"),
    "account:signin:refused": _n("a sign-in was refused"),
    "account:mfa:passed": _n("gave the second factor"),
    "account:mfa:enabled": _n("turned the second factor on"),
    "account:mfa:disabled": _n("turned the second factor off"),
    "account:password:changed": _n("changed the password"),
    "account:password:reset": _n("chose a new password"),
    "account:email:verified": _n("confirmed the email address"),
    "account:notification:read": _n("read a notification"),
    "account:notification:write": _n("sent a notification"),
    "breach:notice:seen": _n("read a security notice"),
    "breach:notice:sent": _n("sent a security notice"),
}

#: The kinds of data an access touched (``tags.Category``), in words.
CATEGORIES = {
    "identity": _n("identity"),
    "contact": _n("contact details"),
    "nir": _n("social security number"),
    "health": _n("health data"),
    "attachment": _n("documents"),
    "credentials": _n("sign-in secrets"),
    "access": _n("emergency access reasons"),
    "notification": _n("message codes"),
}

#: The words of ``audit.views`` that name an actor or their role, marked for the
#: catalogues so that the history reads in the visitor's language.
WHO = (
    _n("you"),
    _n("platform operator"),
    _n("support"),
    _n("data protection officer"),
    _n("anonymous"),
    _n("a practitioner"),
    _n("administrator"),
    _n("patient"),
    _n("practitioner"),
    _n("admin"),
    _n("dpo"),
    _n("operator"),
    _n("refused"),
    _n("aborted"),
    _n("contained"),
)


def _flash(request: Request, message: str) -> Flash:
    return Flash(render.translator(render.language_of(request))(message), "success")


# -- the account ----------------------------------------------------------------------------


@router.get("/patient/account")
def account_page(
    *,
    request: Request,
    principal: PagePrincipal,
    resolved: PageSession,
    db: DB,
    clock: Now,
    changed: str = "",
) -> Response:
    """The patient's identity as ``GET /api/v1/patients/me`` gives it, their account's
    second-factor status, and the ways to change, export or delete it."""
    patient = service.to_read(service.own_record(session=db, principal=principal, now=clock))
    flash = _flash(request, CHANGES[changed]) if changed in CHANGES else None
    return render.page(
        request,
        "patients/account.html",
        patient=patient,
        facts=account_facts(resolved),
        flash=flash,
    )


@router.get("/patient/account/export.json")
def export_json(principal: PagePrincipal, db: DB, clock: Now, blobs: Blobs) -> Response:
    """``GET /api/v1/patients/me/export``: everything held about the patient, decrypted."""
    document = service.export_own_data(session=db, blobs=blobs, principal=principal, now=clock)
    return Response(
        json.dumps(document, ensure_ascii=False, indent=1),
        media_type="application/json",
        headers={"Content-Disposition": content_disposition("hippocrate-export.json")},
    )


@router.get("/patient/account/export.fhir.json")
def export_fhir(principal: PagePrincipal, db: DB, clock: Now, blobs: Blobs) -> Response:
    """``GET /api/v1/patients/me/export/fhir``: the same data as a FHIR R4 Bundle."""
    export = service.export_own_data(session=db, blobs=blobs, principal=principal, now=clock)
    return Response(
        json.dumps(fhir.bundle_of(export), ensure_ascii=False, indent=1),
        media_type=fhir.MEDIA_TYPE,
        headers={"Content-Disposition": content_disposition("hippocrate-export.fhir.json")},
    )


DELETE = "patients/delete.html"


@router.get("/patient/account/delete")
def delete_page(request: Request, resolved: PageSession) -> Response:
    return render.page(request, DELETE, needs_code=resolved.account.totp_enabled)


@router.post("/patient/account/delete")
def delete_account(
    *,
    request: Request,
    principal: PagePrincipal,
    resolved: PageSession,
    password: Annotated[str, Form(max_length=passwords.MAX_LENGTH)],
    db: DB,
    settings: AppSettings,
    clock: Now,
    blobs: Blobs,
    address: ClientAddress,
    code: Annotated[str, Form(max_length=factors.MAX_CODE_LENGTH)] = "",
) -> Response:
    """``DELETE /api/v1/patients/me``'s work (crypto-shredding), once the patient gave
    their password again and, with a second factor on, a code: a session left open on
    a shared computer does not delete an account. Then signed out, cookie ended."""
    on_refusal(request, DELETE, needs_code=resolved.account.totp_enabled)
    service.delete_own_account(
        session=db,
        blobs=blobs,
        principal=principal,
        password=password,
        code=code,
        address=address,
        now=clock,
        settings=settings,
    )
    csrf.renew(request)
    response = render.redirect(request, "/sign-in?deleted=true")
    cookies.end_session(response)
    return response


# -- who accessed my record -------------------------------------------------------------------


def history_owner(principal: PagePrincipal) -> uuid.UUID:
    """The patient whose history is read: the caller's own (``audit/api.py``)."""
    return access_history_owner(principal)


HistoryOwner = Annotated[uuid.UUID, Depends(history_owner)]


@dataclass(frozen=True)
class GrantShown:
    """An emergency access opened on the patient's record, as the API lists it."""

    reason: str
    started_at: datetime
    expires_at: datetime
    revoked_at: datetime | None
    active: bool


@dataclass(frozen=True)
class PageLinks:
    """The ``limit``/``offset`` of the previous and next pages, if any."""

    previous: str | None
    next: str | None
    first: int
    last: int
    total: int


def _links(base: str, paging: PageParams, total: int, shown: int) -> PageLinks:
    def at(offset: int) -> str:
        return f"{base}?limit={paging.limit}&offset={offset}"

    following = paging.offset + paging.limit
    return PageLinks(
        previous=at(max(0, paging.offset - paging.limit)) if paging.offset > 0 else None,
        next=at(following) if following < total else None,
        first=paging.offset + 1 if shown else 0,
        last=paging.offset + shown,
        total=total,
    )


@router.get("/patient/access")
def access_page(
    request: Request,
    principal: PagePrincipal,
    _owner: HistoryOwner,
    db: DB,
    clock: Now,
    paging: Paging,
) -> Response:
    """``GET /api/v1/patients/me/access-log`` and ``/patients/me/break-glass``: when,
    who, what and why, newest first, paginated like the API; break-glass accesses
    marked in words, the emergency grants listed with their reasons."""
    entries = access_history(db, principal, now=clock)
    names = catalogue(render.language_of(request)).specialties
    shown = [
        entry.model_copy(update={"who": _specialty_named(entry.who, names)})
        for entry in entries[paging.offset : paging.offset + paging.limit]
    ]
    grants = _grants(db, principal, clock)
    return render.page(
        request,
        "patients/access.html",
        entries=shown,
        links=_links("/patient/access", paging, len(entries), len(shown)),
        grants=grants,
        break_glass=BREAK_GLASS,
        purposes=PURPOSES,
        actions=ACTIONS,
        categories=CATEGORIES,
    )


GRANTS_SHOWN = 100


def _specialty_named(who: str, names: dict[str, str]) -> str:
    """``Dr Name (dermatology)`` with the specialty's name in the page's language."""
    head, _, code = who.rpartition(" (")
    if head and code.endswith(")") and code[:-1] in names:
        return f"{head} ({names[code[:-1]]})"
    return who


def _grants(db: DB, principal: Principal, now: datetime) -> list[GrantShown]:
    """The newest grants on the record (``GET /patients/me/break-glass``'s first page)."""
    statement = service.break_glass_grants_statement(principal=principal, now=now)
    rows, _total = fetch_page(db, statement, PageParams(limit=GRANTS_SHOWN, offset=0))
    return [
        GrantShown(
            reason=grant.reason or "",
            started_at=grant.started_at,
            expires_at=grant.expires_at,
            revoked_at=grant.revoked_at,
            active=grant.revoked_at is None and grant.started_at <= now < grant.expires_at,
        )
        for grant in rows
    ]
