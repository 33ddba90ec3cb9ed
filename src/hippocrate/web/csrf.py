"""CSRF protection of every page form, on by default, off by name only.

Every unsafe request (anything but GET, HEAD, OPTIONS) to a page route must carry the
CSRF token, in the form field ``csrf_token`` or the header ``X-CSRF-Token`` (htmx sends
it from ``hx-headers``), equal to the ``__Host-`` cookie the pages set: a cross-site
page can neither read that cookie nor, thanks to the prefix, set one of its own (the
double-submit pattern made sound by ``__Host-``; Warehouse checks a per-session token
the same way). Beside it, a request a browser marks as cross-site (``Sec-Fetch-Site``)
or whose ``Origin`` is not this platform's is refused before its body is read.

Routers of pages are built with :func:`hippocrate.web.deps.pages_router`, which adds
:func:`check_csrf` to every route; a route that must skip it is named in
:data:`EXEMPT` (none today), so the exception is written where it can be reviewed.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from typing import Final, ParamSpec, TypeVar
from urllib.parse import urlsplit

from fastapi import Request

from hippocrate.errors import HippocrateError
from hippocrate.i18n import _n
from hippocrate.web import cookies

P = ParamSpec("P")
R = TypeVar("R")

FIELD: Final = "csrf_token"
HEADER: Final = "x-csrf-token"
SAFE_METHODS: Final = frozenset({"GET", "HEAD", "OPTIONS"})

EXEMPT: Final[frozenset[str]] = frozenset()
"""Names of page routes that skip the check: each would need a reason written here."""

FILE_FORMS: set[str] = set()
"""Names of page routes whose forms carry files (:func:`reads_files`)."""

MULTIPART: Final = "multipart/form-data"


class CsrfRefused(HippocrateError):
    status = 403
    title = _n("Form expired")

    def __init__(self) -> None:
        super().__init__(
            _n("this form was not sent from this page or has expired: reload it and try again")
        )


def token_of(request: Request) -> str:
    """The CSRF token the page being built shows in its forms: the cookie's, or a new
    one that the page's answer sets (``hippocrate.web.render``)."""
    current: str | None = getattr(request.state, "csrf_token", None)
    if current is None:
        current = request.cookies.get(cookies.CSRF) or cookies.new_csrf_token()
        request.state.csrf_token = current
    return current


def renew(request: Request) -> str:
    """A new CSRF token from now on (at sign-in and sign-out, with the session)."""
    request.state.csrf_token = cookies.new_csrf_token()
    request.state.csrf_renewed = True
    return str(request.state.csrf_token)


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


def _own_origins(request: Request) -> set[str]:
    own = {_origin(str(request.base_url))}
    public_url = getattr(request.app.state.runtime.settings, "public_url", "")
    if public_url:
        own.add(_origin(public_url))
    return own


def reads_files(endpoint: Callable[P, R]) -> Callable[P, R]:
    """Mark a page route whose form carries files: its body is read by the route's own
    in-memory reader (``consultations/uploads.py``), never by Starlette's parser, which
    spools files to disk; the reader hands the form's token to :func:`confirm` before
    anything else is done. Any other page route is refused a multipart body without the
    token in the header."""
    FILE_FORMS.add(endpoint.__name__)
    return endpoint


def _route_name(request: Request) -> str | None:
    route = request.scope.get("route")
    name = getattr(route, "name", None)
    if name is None:
        endpoint = request.scope.get("endpoint")
        name = getattr(endpoint, "__name__", None)
    return name


def _media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";", 1)[0].strip().lower()


async def check_csrf(request: Request) -> None:
    """Refuse an unsafe page request without the right token (403, nothing done)."""
    if request.method in SAFE_METHODS:
        return
    name = _route_name(request)
    if name in EXEMPT:
        return
    if request.headers.get("sec-fetch-site", "same-origin") not in ("same-origin", "none"):
        raise CsrfRefused()
    origin = request.headers.get("origin")
    if origin is not None and origin.lower() not in _own_origins(request):
        raise CsrfRefused()
    sent = request.headers.get(HEADER)
    if sent is None and _media_type(request) == MULTIPART:
        # A form with files: its token is in its body, which only the route's own reader
        # may read (see reads_files). Meanwhile the browser must say where the form comes
        # from (browsers send Origin with every POST).
        if name not in FILE_FORMS or origin is None:
            raise CsrfRefused()
        request.state.csrf_deferred = True
        return
    if sent is None:
        form = await request.form()
        field = form.get(FIELD)
        sent = field if isinstance(field, str) else None
    confirm(request, sent)


def confirm(request: Request, sent: str | None) -> None:
    """Refuse ``sent`` unless it is the token of the visitor's CSRF cookie."""
    expected = request.cookies.get(cookies.CSRF)
    if not expected or not sent or not hmac.compare_digest(expected.encode(), sent.encode()):
        raise CsrfRefused()
    request.state.csrf_deferred = False
