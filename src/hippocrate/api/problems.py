"""RFC 9457 problem details: the one place errors become responses.

Every problem is answered in the language the request asks for (``Accept-Language``,
negotiated by :func:`hippocrate.i18n.negotiate`: French by default, English on request),
with ``Content-Language`` saying which and ``Vary: Accept-Language`` so that no cache
hands one language to a client that asked for the other. Titles and details are the
English messages of the code, translated by the catalogues; a message that has none is
answered in English. The per-field ``msg`` of a validation error stays as pydantic writes
it (English), except where a validator raised one of our refusals (an identifier's
normaliser, an ``InvalidField``), whose message is translated.
"""

from __future__ import annotations

import json
import logging
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from sqlalchemy.exc import OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException

from hippocrate.access.errors import NotAuthenticated, SecondFactorRequired
from hippocrate.api import security
from hippocrate.errors import HippocrateError
from hippocrate.guard.state import GuardUnavailable
from hippocrate.i18n import _n, gettext, negotiate
from hippocrate.vault import DecryptionError, UnwrapBudgetExceeded
from hippocrate.web import errors as pages

PROBLEM_JSON = "application/problem+json"

logger = logging.getLogger(__name__)


def language_of(request: Request) -> str:
    """The language to answer ``request`` in (one of ``hippocrate.i18n.SUPPORTED``)."""
    return negotiate(request.headers.get("accept-language"))


def set_language(response: Response, language: str) -> None:
    """Say the language of ``response`` and that it depends on ``Accept-Language``."""
    response.headers["Content-Language"] = language
    vary = response.headers.get("Vary")
    if vary is None:
        response.headers["Vary"] = "Accept-Language"
    elif "accept-language" not in vary.lower():
        response.headers["Vary"] = f"{vary}, Accept-Language"


def request_language(request: Request, response: Response) -> str:
    """A route's dependency: the request's language, said on the route's answer too."""
    language = language_of(request)
    set_language(response, language)
    return language


Language = Annotated[str, Depends(request_language)]
"""The language a route labels its answer in (questionnaire labels)."""


def problem(
    status: int,
    title: str,
    detail: str | None = None,
    *,
    language: str | None = None,
    **extra: Any,
) -> JSONResponse:
    """A problem document. With ``language``, ``title`` and ``detail`` are English
    messages translated into it here, and the answer says its language."""
    if language is not None:
        title = gettext(title, language)
        detail = gettext(detail, language) if detail else detail
    body: dict[str, Any] = {"type": "about:blank", "title": title, "status": status}
    if detail:
        body["detail"] = detail
    body.update(extra)
    response = JSONResponse(body, status_code=status, media_type=PROBLEM_JSON)
    if language is not None:
        set_language(response, language)
    return response


def install(app: FastAPI) -> None:
    """Map every error a client can cause to a 4xx problem, saturation (no hashing slot,
    no database connection within the pool's wait, a database lock not obtained in
    time) to 503 with ``Retry-After``, and anything else to a bare 500."""

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        # Starlette's detail is the status phrase unless a route gave one: both are
        # translated when the catalogues know them.
        response = problem(
            exc.status_code,
            _title(exc.status_code),
            str(exc.detail) if exc.detail else None,
            language=language_of(request),
        )
        response.headers.update(exc.headers or {})  # e.g. Allow on 405
        return as_page(request, response)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> Response:
        language = language_of(request)
        errors = [
            {"loc": list(e.get("loc", ())), "msg": _field_message(e, language)}
            for e in exc.errors()
        ]
        return as_page(
            request,
            problem(
                422,
                _n("Invalid request"),
                _n("the request does not match the schema"),
                language=language,
                errors=errors,
            ),
        )

    @app.exception_handler(HippocrateError)
    async def _domain(request: Request, exc: HippocrateError) -> Response:
        # Every domain's refusal says how it is answered: no list of them here.
        if pages.is_page(request) and isinstance(exc, NotAuthenticated | SecondFactorRequired):
            return pages.sign_in_first(request, second_factor=isinstance(exc, SecondFactorRequired))
        language = language_of(request)
        response = problem(
            exc.status, exc.title_in(language), exc.detail_in(language), **exc.extensions
        )
        response.headers.update(exc.headers)
        set_language(response, language)
        return as_page(request, response)

    # Infrastructure below the domains, which knows nothing of the web (the vault may
    # import nothing outside itself), is answered here.
    @app.exception_handler(UnwrapBudgetExceeded)
    async def _budget(request: Request, exc: UnwrapBudgetExceeded) -> Response:
        response = problem(
            503,
            _n("Temporarily unavailable"),
            _n("too many records read; retry later"),
            language=language_of(request),
        )
        response.headers["Retry-After"] = "60"
        return as_page(request, response)

    @app.exception_handler(GuardUnavailable)
    async def _guard_down(request: Request, exc: GuardUnavailable) -> Response:
        # Fail closed: without the guard, no patient data is served.
        return as_page(
            request,
            problem(
                503,
                _n("Temporarily unavailable"),
                _n("patient data cannot be served right now"),
                language=language_of(request),
            ),
        )

    @app.exception_handler(PoolTimeout)
    async def _pool(request: Request, exc: PoolTimeout) -> Response:
        # Every database connection stayed taken for the pool's wait: saturated, not
        # broken. The unit of work rolled back; the caller retries.
        return _busy(request)

    @app.exception_handler(OperationalError)
    async def _operational(request: Request, exc: OperationalError) -> Response:
        if not database_busy(exc):
            raise exc  # anything else stays a 500, logged with its traceback
        # A lock waited on past its timeout (SQLite's one writer), a deadlock or a
        # serialisation failure: the transaction rolled back whole; the caller retries.
        logger.warning("database busy, answered 503: %s", type(exc.orig).__name__)
        return _busy(request)

    @app.exception_handler(DecryptionError)
    async def _decryption(request: Request, exc: DecryptionError) -> Response:
        # Fail closed: say the data is unavailable, never hand back ciphertext.
        return as_page(
            request,
            problem(
                503,
                _n("Data unavailable"),
                _n("this record cannot be decrypted"),
                language=language_of(request),
            ),
        )

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        # Runs outside the middleware stack: set the security headers here too.
        response = problem(
            500,
            _n("Internal Server Error"),
            _n("an unexpected error occurred"),
            language=language_of(request),
        )
        answer = as_page(request, response)
        answer.headers.update(security.HEADERS)
        return answer


def _field_message(error: Any, language: str) -> str:
    """A field's ``msg``: pydantic's own (English), except for a refusal of ours raised by
    a validator (an identifier's normaliser), whose marked message is translated."""
    refusal = (error.get("ctx") or {}).get("error")
    if isinstance(refusal, HippocrateError):
        return refusal.detail_in(language)
    return str(error.get("msg", "invalid"))


def _busy(request: Request) -> Response:
    response = problem(
        503,
        _n("Temporarily unavailable"),
        _n("the server is busy; retry shortly"),
        language=language_of(request),
    )
    response.headers["Retry-After"] = "5"
    return as_page(request, response)


def as_page(request: Request, response: JSONResponse) -> Response:
    """``response``, a problem, as the HTML page of the same status, title and detail
    when ``request`` is a page's (``hippocrate.web.errors``); as it is for the API."""
    if not pages.is_page(request):
        return response
    body = json.loads(bytes(response.body))
    headers = {k: v for k, v in response.headers.items() if k.lower() not in _BODY_HEADERS}
    return pages.error_page(
        request, response.status_code, str(body["title"]), body.get("detail"), headers
    )


_BODY_HEADERS = frozenset({"content-type", "content-length"})


_BUSY_SQLSTATES = frozenset({"40001", "40P01", "55P03"})
"""PostgreSQL: serialisation failure, deadlock detected, lock not available."""


def database_busy(exc: OperationalError) -> bool:
    """Whether ``exc`` says the database was too busy (a lock not obtained in time, a
    deadlock, a serialisation failure), as opposed to broken or misused."""
    sqlstate = getattr(exc.orig, "sqlstate", None)
    if sqlstate is not None:
        return sqlstate in _BUSY_SQLSTATES
    message = str(exc.orig).lower()
    return "database is locked" in message or "database table is locked" in message


# The status phrases Starlette answers with (routing, methods, bodies, limits), marked
# for the catalogues and kept whatever phrases the Python version has (3.13 renamed 413
# and 422); another status keeps its English phrase.
_PHRASES = {
    400: _n("Bad Request"),
    401: _n("Unauthorized"),
    403: _n("Forbidden"),
    404: _n("Not Found"),
    405: _n("Method Not Allowed"),
    406: _n("Not Acceptable"),
    409: _n("Conflict"),
    413: _n("Request Entity Too Large"),
    415: _n("Unsupported Media Type"),
    422: _n("Unprocessable Entity"),
    429: _n("Too Many Requests"),
    500: _n("Internal Server Error"),
    503: _n("Service Unavailable"),
}


def _title(status: int) -> str:
    from http import HTTPStatus

    if status in _PHRASES:
        return _PHRASES[status]
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return _n("Error")
