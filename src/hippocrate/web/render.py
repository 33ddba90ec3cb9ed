"""Pages from templates: one Jinja2 environment, one way to answer a page.

Templates get plain data (presenters' dataclasses and dicts, never ORM objects), so no
decryption, lazy load or guard refusal can happen while a page renders: whatever may
be refused was read, through the access policy, before :func:`page` is called.

Words in templates are English messages marked ``{{ _("...") }}``, with named values
(``{{ _("{count} files", count=n) }}``), from the same catalogues as the API's
problems (``hippocrate.i18n``; ``make catalogues`` extracts both). The language is the
visitor's choice (the language cookie, set by the switch in every page's footer), else
``Accept-Language``, else French.

Every page answer says its language, sets the CSRF cookie when the visitor had none,
and keeps the security headers of ``hippocrate.api.security`` (``no-store`` included:
pages show patient data).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from hippocrate.i18n import SUPPORTED, _n, negotiate, render
from hippocrate.web import cookies, csrf

TEMPLATES: Final = Path(__file__).resolve().parent.parent / "templates"
STATIC: Final = Path(__file__).resolve().parent / "static"


@dataclass(frozen=True)
class Viewer:
    """Who a page is shown to, as the layout needs it: plain values only."""

    role: str | None = None  # None: nobody signed in
    label: str = ""  # what the header says of them (their role's name, never an email)
    unseen_notices: int = 0


@dataclass(frozen=True)
class Link:
    href: str
    label: str
    current: bool = False


@dataclass
class Flash:
    """A line shown once at the top of a page (after a redirect, via the query)."""

    text: str
    kind: str = "info"  # info | success | error


@dataclass
class Context:
    """What every page's layout is given besides its own values."""

    language: str
    csrf_token: str
    viewer: Viewer = field(default_factory=Viewer)
    path: str = "/"
    here: str = "/"  # the path with its query: where the language switch comes back to


MENUS: Final[dict[str, tuple[tuple[str, str], ...]]] = {
    "patient": (
        ("/patient", _n("My consultations")),
        ("/patient/consultations/new", _n("New consultation")),
        ("/patient/access", _n("Who accessed my record")),
        ("/patient/account", _n("My account")),
    ),
    "practitioner": (
        ("/practitioner", _n("Queue")),
        ("/practitioner/patients", _n("My patients")),
        ("/practitioner/account", _n("My account")),
    ),
    "dpo": (
        ("/dpo", _n("Guard alerts")),
        ("/dpo/incidents", _n("Incidents")),
        ("/dpo/drill", _n("Drill")),
    ),
    "support": (("/account/password", _n("My account")),),
    "admin": (
        ("/admin", _n("Approvals")),
        ("/admin/practitioners", _n("Practitioners")),
        ("/admin/break-glass", _n("Break-glass")),
    ),
}
"""Each role's menu: (path, label); the longest matching path is the current one."""


def navigation(context: Context) -> list[Link]:
    menu = MENUS.get(context.viewer.role or "", ())
    here = max(
        (href for href, _ in menu if context.path == href or context.path.startswith(href + "/")),
        key=len,
        default=None,
    )
    return [
        Link(href=href, label=render(label, {}, context.language), current=href == here)
        for href, label in menu
    ]


def language_of(request: Request) -> str:
    chosen = request.cookies.get(cookies.LANGUAGE)
    if chosen in SUPPORTED:
        return str(chosen)
    return negotiate(request.headers.get("accept-language"))


def translator(language: str) -> Callable[..., str]:
    def _(message: str, **values: object) -> str:
        return render(message, values, language)

    return _


@functools.cache
def environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(("html",), default_for_string=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.globals["static"] = static_url
    return env


@functools.cache
def static_files() -> dict[str, str]:
    import hashlib

    return {
        path.name: hashlib.sha256(path.read_bytes()).hexdigest()[:12]
        for path in STATIC.iterdir()
        if path.is_file()
    }


def static_url(name: str) -> str:
    """``/static/<name>?v=<digest>``: a changed file gets a new URL, so it can be cached."""
    return f"/static/{name}?v={static_files()[name]}"


def page(
    request: Request,
    template: str,
    *,
    viewer: Viewer | None = None,
    status: int = 200,
    headers: Mapping[str, str] | None = None,
    **values: Any,
) -> HTMLResponse:
    """The HTML answer of ``template`` rendered with ``values`` for ``request``."""
    language = language_of(request)
    token = csrf.token_of(request)
    context = Context(
        language=language,
        csrf_token=token,
        viewer=viewer or getattr(request.state, "viewer", None) or Viewer(),
        path=request.url.path,
        here=request.url.path + (f"?{request.url.query}" if request.url.query else ""),
    )
    body = (
        environment()
        .get_template(template)
        .render(
            _=translator(language),
            page=context,
            csrf=csrf.FIELD,
            **{"refusal": None, "flash": None, "nav": navigation(context), **values},
        )
    )
    response = HTMLResponse(body, status_code=status, headers=dict(headers or {}))
    finish(request, response)
    return response


def redirect(request: Request, to: str, *, status: int = 303) -> RedirectResponse:
    """Go to the local path ``to`` (303: the browser follows with a GET)."""
    response = RedirectResponse(local_path(to), status_code=status)
    finish(request, response)
    return response


def local_path(target: str | None, default: str = "/") -> str:
    """``target`` if it is a path of this site, else ``default``: a ``next=`` taken from
    a query never sends anyone elsewhere (``//evil``, ``https://``, ``/\\evil``)."""
    if not target or not target.startswith("/") or target.startswith(("//", "/\\")):
        return default
    if any(ch in target for ch in "\r\n\t\\"):
        return default
    return target


def finish(request: Request, response: Any) -> None:
    """What every page answer carries: its language, and the CSRF cookie if new."""
    response.headers["Content-Language"] = language_of(request)
    response.headers["Vary"] = "Accept-Language, Cookie"
    token: str | None = getattr(request.state, "csrf_token", None)
    renewed = getattr(request.state, "csrf_renewed", False)
    if token is not None and (renewed or request.cookies.get(cookies.CSRF) != token):
        cookies.set_csrf(response, token)
