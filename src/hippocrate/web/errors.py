"""Errors of pages as pages: every 4xx and 5xx of a path outside ``/api/`` is an HTML
page in the visitor's language, with the same status, title and detail the API's
problem would carry (``hippocrate.api.problems`` decides both; this module only says
how a page shows it). A page that needs a session sends the visitor to sign in
instead, and one whose second factor is pending to the code's page. An error page
says nothing a problem would not: no account, no id, no trace.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from fastapi import Request
from fastapi.responses import Response
from starlette.datastructures import URL

from hippocrate.web import render


@dataclass(frozen=True)
class Refusal:
    """A refusal as a form shows it, above its fields."""

    title: str
    detail: str | None


def on_refusal(request: Request, template: str, **values: Any) -> None:
    """If what this page asks is refused (a 4xx), answer ``template`` again with
    ``values`` and the refusal, instead of the error page.

    A page route never catches a refusal itself: the refusal goes on to the unit of
    work, which commits or rolls back, and records it, exactly as for the API (a
    wrong password's counter is kept, a half-done change is not); only then is the form
    shown again. ``values`` are what the form shows back: never a password or a code."""
    request.state.refusal_page = (template, values)


def is_page(request: Request) -> bool:
    """Whether ``request`` is answered as a page (everything outside ``/api/``)."""
    return not request.url.path.startswith("/api/")


def sign_in_first(request: Request, *, second_factor: bool) -> Response:
    """To the sign-in page (or the second factor's), back here afterwards for a GET."""
    target = "/sign-in/code" if second_factor else "/sign-in"
    if request.method == "GET" and request.url.path not in ("/sign-in", "/sign-in/code"):
        here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        target = str(URL(target).include_query_params(next=here))
    return render.redirect(request, target)


def error_page(
    request: Request,
    status: int,
    title: str,
    detail: str | None,
    headers: Mapping[str, str] | None = None,
) -> Response:
    """The page of an error already translated into the visitor's language."""
    kept = {k: v for k, v in (headers or {}).items() if k.lower() in ("retry-after", "allow")}
    form = getattr(request.state, "refusal_page", None)
    try:
        if form is not None and status < 500:
            template, values = form
            return render.page(
                request,
                template,
                status=status,
                headers=kept,
                refusal=Refusal(title=title, detail=detail),
                **values,
            )
        return render.page(
            request, "web/error.html", status=status, headers=kept, title=title, detail=detail
        )
    except Exception:  # noqa: BLE001 - the error page must never fail in its turn
        return Response(
            f"{status} {title}", status_code=status, media_type="text/plain", headers=kept
        )
