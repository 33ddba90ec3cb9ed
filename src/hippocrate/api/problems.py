"""RFC 9457 problem details: the one place errors become responses."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException

from hippocrate.api import security
from hippocrate.errors import HippocrateError
from hippocrate.guard.state import GuardUnavailable
from hippocrate.vault import DecryptionError, UnwrapBudgetExceeded

PROBLEM_JSON = "application/problem+json"

logger = logging.getLogger(__name__)


def problem(status: int, title: str, detail: str | None = None, **extra: Any) -> JSONResponse:
    body: dict[str, Any] = {"type": "about:blank", "title": title, "status": status}
    if detail:
        body["detail"] = detail
    body.update(extra)
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON)


def install(app: FastAPI) -> None:
    """Map every error a client can cause to a 4xx problem, saturation (no hashing slot,
    no database connection within the pool's wait, a database lock not obtained in
    time) to 503 with ``Retry-After``, and anything else to a bare 500."""

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        response = problem(
            exc.status_code, _title(exc.status_code), str(exc.detail) if exc.detail else None
        )
        response.headers.update(exc.headers or {})  # e.g. Allow on 405
        return response

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {"loc": list(e.get("loc", ())), "msg": e.get("msg", "invalid")} for e in exc.errors()
        ]
        return problem(
            422, "Invalid request", "the request does not match the schema", errors=errors
        )

    @app.exception_handler(HippocrateError)
    async def _domain(request: Request, exc: HippocrateError) -> JSONResponse:
        # Every domain's refusal says how it is answered: no list of them here.
        response = problem(exc.status, exc.title, exc.detail, **exc.extensions)
        response.headers.update(exc.headers)
        return response

    # Infrastructure below the domains, which knows nothing of the web (the vault may
    # import nothing outside itself), is answered here.
    @app.exception_handler(UnwrapBudgetExceeded)
    async def _budget(request: Request, exc: UnwrapBudgetExceeded) -> JSONResponse:
        response = problem(503, "Temporarily unavailable", "too many records read; retry later")
        response.headers["Retry-After"] = "60"
        return response

    @app.exception_handler(GuardUnavailable)
    async def _guard_down(request: Request, exc: GuardUnavailable) -> JSONResponse:
        # Fail closed: without the guard, no patient data is served.
        return problem(503, "Temporarily unavailable", "patient data cannot be served right now")

    @app.exception_handler(PoolTimeout)
    async def _pool(request: Request, exc: PoolTimeout) -> JSONResponse:
        # Every database connection stayed taken for the pool's wait: saturated, not
        # broken. The unit of work rolled back; the caller retries.
        return _busy()

    @app.exception_handler(OperationalError)
    async def _operational(request: Request, exc: OperationalError) -> JSONResponse:
        if not database_busy(exc):
            raise exc  # anything else stays a 500, logged with its traceback
        # A lock waited on past its timeout (SQLite's one writer), a deadlock or a
        # serialisation failure: the transaction rolled back whole; the caller retries.
        logger.warning("database busy, answered 503: %s", type(exc.orig).__name__)
        return _busy()

    @app.exception_handler(DecryptionError)
    async def _decryption(request: Request, exc: DecryptionError) -> JSONResponse:
        # Fail closed: say the data is unavailable, never hand back ciphertext.
        return problem(503, "Data unavailable", "this record cannot be decrypted")

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        # Runs outside the middleware stack: set the security headers here too.
        response = problem(500, "Internal Server Error", "an unexpected error occurred")
        response.headers.update(security.HEADERS)
        return response


def _busy() -> JSONResponse:
    response = problem(503, "Temporarily unavailable", "the server is busy; retry shortly")
    response.headers["Retry-After"] = "5"
    return response


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


def _title(status: int) -> str:
    from http import HTTPStatus

    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"
