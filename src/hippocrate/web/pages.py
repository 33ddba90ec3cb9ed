"""The kit's own pages: the home page, the vendored static files, the language switch."""

from __future__ import annotations

from typing import Annotated

from fastapi import Form, HTTPException, Request
from fastapi.responses import FileResponse, Response

from hippocrate.access.errors import AccessError
from hippocrate.api.deps import DB, AppSettings, Now
from hippocrate.i18n import SUPPORTED
from hippocrate.identity.sessions import mfa_required, resolve
from hippocrate.web import cookies, render
from hippocrate.web.deps import home_of, pages_router

router = pages_router(public=True)

_TYPES = {
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".svg": "image/svg+xml",
}


@router.get("/")
def home(request: Request, db: DB, settings: AppSettings, clock: Now) -> Response:
    """Signed in: one's own space; otherwise the home page."""
    token = cookies.session_token(request)
    if token is not None:
        try:
            resolved = resolve(session=db, settings=settings, token=token, now=clock)
        except AccessError:  # an ended or unknown session is simply no session
            resolved = None
        if resolved is not None and (
            resolved.auth_session.mfa_passed or not mfa_required(resolved.account)
        ):
            return render.redirect(request, home_of(resolved.account.role))
    return render.page(request, "web/home.html")


@router.get("/favicon.ico")
def favicon() -> Response:
    """Browsers ask for it whatever the page says: the icon, not a 404."""
    return static("favicon.svg")


@router.get("/static/{name}")
def static(name: str) -> Response:
    """A vendored file by its name; nothing outside the folder, nothing not listed."""
    path = render.STATIC / name
    if name not in render.static_files() or path.suffix not in _TYPES:
        raise HTTPException(404)
    return FileResponse(
        path,
        media_type=_TYPES[path.suffix],
        headers={"Cache-Control": "public, max-age=31536000, immutable"},
    )


@router.post("/language")
def choose_language(
    request: Request,
    to: Annotated[str, Form(max_length=8)],
    next: Annotated[str, Form(max_length=2000)] = "/",
) -> Response:
    """Remember the visitor's language and go back where they were."""
    response = render.redirect(request, next)
    if to in SUPPORTED:
        cookies.set_language(response, to)
    return response
