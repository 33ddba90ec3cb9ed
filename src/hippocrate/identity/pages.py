"""The identity's pages: sign in (and its second factor), sign out.

The same services as ``identity/api.py`` (``signin.sign_in``, the limiters before the
password, a dummy hash for unknown accounts, one answer for every wrong pair), so the
page says exactly what the API says: nothing about which accounts exist. A sign-in
issues a new session token (and CSRF token) whatever the visitor held before.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Form, Request
from fastapi.responses import Response

from hippocrate.api.client import ClientAddress
from hippocrate.api.deps import DB, AppSettings, Now
from hippocrate.i18n import _n
from hippocrate.identity import signin
from hippocrate.identity.sessions import end_session, mfa_required
from hippocrate.web import cookies, csrf, render
from hippocrate.web.deps import PageSession, pages_router
from hippocrate.web.errors import on_refusal
from hippocrate.web.render import Flash

public = pages_router(public=True)
account = pages_router()

SIGNED_OUT = _n("You are signed out.")

Next = Annotated[str, Form(max_length=2000)]


@public.get("/sign-in")
def sign_in_page(request: Request, next: str = "", signed_out: bool = False) -> Response:
    flash = (
        Flash(render.translator(render.language_of(request))(SIGNED_OUT)) if signed_out else None
    )
    return render.page(
        request, "identity/signin.html", email="", next=render.local_path(next, ""), flash=flash
    )


@public.post("/sign-in")
def sign_in(
    *,
    request: Request,
    email: Annotated[str, Form(max_length=320)],
    password: Annotated[str, Form(max_length=1024)],
    db: DB,
    settings: AppSettings,
    clock: Now,
    address: ClientAddress,
    next: Next = "",
) -> Response:
    target = render.local_path(next, "/")
    on_refusal(request, "identity/signin.html", email=email, next=target)
    issued = signin.sign_in(
        session=db, settings=settings, email=email, password=password, address=address, now=clock
    )
    return _signed_in(request, issued, target)


@public.get("/sign-in/code")
def code_page(request: Request, resolved: PageSession, next: str = "") -> Response:
    if resolved.auth_session.mfa_passed or not mfa_required(resolved.account):
        return render.redirect(request, render.local_path(next, "/"))
    return render.page(request, "identity/code.html", next=render.local_path(next, ""))


@public.post("/sign-in/code")
def code(
    *,
    request: Request,
    resolved: PageSession,
    code: Annotated[str, Form(max_length=64)],
    db: DB,
    settings: AppSettings,
    clock: Now,
    address: ClientAddress,
    next: Next = "",
) -> Response:
    target = render.local_path(next, "/")
    on_refusal(request, "identity/code.html", next=target)
    issued = signin.complete_second_factor(
        session=db, settings=settings, resolved=resolved, code=code, address=address, now=clock
    )
    return _signed_in(request, issued, target)


@public.post("/sign-out")
def sign_out(request: Request, resolved: PageSession, db: DB, clock: Now) -> Response:
    end_session(session=db, session_id=resolved.auth_session.id, now=clock, reason="logout")
    csrf.renew(request)
    response = render.redirect(request, "/sign-in?signed_out=true")
    cookies.end_session(response)
    return response


def _signed_in(request: Request, issued: signin.Issued, target: str) -> Response:
    """The answer to a sign-in step: the new session's cookie, a new CSRF token, and on
    to the second factor (its setup for staff without one yet) or to ``target``."""
    csrf.renew(request)
    if issued.mfa_setup_required:
        response = render.redirect(request, "/account/second-factor")
    elif issued.mfa_required:
        query = f"?next={target}" if target != "/" else ""
        response = render.redirect(request, f"/sign-in/code{query}")
    else:
        response = render.redirect(request, target)
    cookies.set_session(response, issued.token)
    return response
