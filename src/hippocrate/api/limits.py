"""A limit on the size of every request body, enforced before anything parses it.

Guarantees:

- a request whose ``Content-Length`` exceeds its limit is answered 413 (a problem
  document) without one byte of its body being read;
- a body without a declared length (chunked) is counted as it streams in: the request
  is answered 413 as soon as the count passes the limit, so at most the limit plus one
  chunk is ever held, and the route sees the end of the body, never the rest of it;
- the limit is ``HIPPOCRATE_MAX_BODY_BYTES`` for every route and content type, except
  ``multipart/form-data`` sent to a route that takes attachments (its OpenAPI request
  body offers ``multipart/form-data``), whose limit is what its attachments may add up
  to (``attachments_per_message`` × ``attachment_max_bytes``) plus room for the text
  part and the multipart framing (the routes are read from the app's OpenAPI document,
  once, at the first request). That route's own reader then applies the finer limits
  (per file, number of files) as the body streams.

Not guaranteed: anything about the time a slow client takes to send a body within the
limit (the server in front, or uvicorn's timeouts, bound that).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from functools import cache
from typing import Any

from fastapi import FastAPI
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import compile_path
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from hippocrate.api.problems import as_page, problem, set_language
from hippocrate.config import Settings
from hippocrate.i18n import _n, gettext, negotiate, render
from hippocrate.web import errors as page_errors

UPLOAD_OVERHEAD = 1024 * 1024
"""Room, in an upload's limit, for its text part (at most 256 KiB) and the framing of
every part: more than the upload reader's own bound, so that its finer refusal
(which file, which limit) is the one a caller sees."""

MULTIPART = "multipart/form-data"


def upload_limit(settings: Settings) -> int:
    """The body limit of an upload route."""
    per_file = settings.attachment_max_bytes + 16 * 1024
    return settings.attachments_per_message * per_file + UPLOAD_OVERHEAD


def upload_routes(openapi: dict[str, Any]) -> tuple[tuple[re.Pattern[str], str], ...]:
    """The (path pattern, method) of every operation of the ``openapi`` document whose
    request body may be ``multipart/form-data``."""
    found = []
    for path, operations in (openapi.get("paths") or {}).items():
        for method, operation in operations.items():
            content = ((operation or {}).get("requestBody") or {}).get("content") or {}
            if MULTIPART in content:
                found.append((compile_path(path)[0], method.upper()))
    return tuple(found)


class BodyLimit:
    """ASGI middleware: see the module's guarantees. ``limit_for`` gives the limit of a
    request from its scope."""

    def __init__(self, app: ASGIApp, *, limit_for: Callable[[Scope], int]) -> None:
        self.app = app
        self.limit_for = limit_for

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(scope)
        declared = _declared_length(scope)
        if declared is not None and declared > limit:
            await _refuse(scope, receive, send, limit)
            return
        received = 0
        refused = False  # the 413 went out: whatever the app sends next is dropped
        started = False

        async def counted() -> Message:
            nonlocal received, refused
            if refused:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    if not started:
                        await _refuse(scope, receive, send, limit)
                        refused = True
                    # The route sees a client gone, never the bytes past the limit.
                    return {"type": "http.disconnect"}
            return message

        async def guarded(message: Message) -> None:
            nonlocal started
            if refused:
                return
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counted, guarded)
        except Exception:
            if not refused:
                raise
            # The app failed on the body it was denied; the 413 is the answer.


def _declared_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            text = value.decode("latin-1").strip()
            return int(text) if text.isdigit() else None
    return None


async def _refuse(scope: Scope, receive: Receive, send: Send, limit: int) -> None:
    # Answered before the app, hence before its handlers: the language is negotiated
    # here the same way (api/problems.py).
    language = negotiate(Headers(scope=scope).get("accept-language"))
    response: Response = problem(
        413,
        gettext(_n("Request body too large"), language),
        render(_n("the request body is larger than {limit} bytes"), {"limit": limit}, language),
    )
    set_language(response, language)
    request = Request(scope)
    if page_errors.is_page(request):
        response = as_page(request, response)  # type: ignore[arg-type]
    response.headers["Connection"] = "close"
    await response(scope, receive, send)


def install(app: FastAPI, settings: Settings, *, pages: Iterable[tuple[str, str]] = ()) -> None:
    """Limit every request body of ``app`` (routes included later count too: the upload
    routes are found at the first request). ``pages``: the (method, path template) of
    the pages whose forms carry files, which the OpenAPI document does not hold."""
    forms = tuple((compile_path(path)[0], method.upper()) for method, path in pages)

    @cache
    def uploads() -> tuple[tuple[re.Pattern[str], str], ...]:
        return upload_routes(app.openapi()) + forms

    def limit_for(scope: Scope) -> int:
        if _media_type(scope) == MULTIPART and any(
            method == scope.get("method") and pattern.match(scope.get("path", ""))
            for pattern, method in uploads()
        ):
            return upload_limit(settings)
        return settings.max_body_bytes

    app.add_middleware(BodyLimit, limit_for=limit_for)


def _media_type(scope: Scope) -> str:
    for name, value in scope.get("headers", ()):
        if name == b"content-type":
            text: str = value.decode("latin-1")
            return text.split(";", 1)[0].strip().lower()
    return ""
