"""The two cookies of the pages: the session and the CSRF token.

Both are ``__Host-`` prefixed (the browser refuses them unless Secure, ``Path=/`` and
without ``Domain``, so no other host, a sibling subdomain included, can set or read
them), HttpOnly and ``SameSite=Strict``. Browsers take Secure cookies from
``http://localhost``, so the demo works without TLS; any other host needs HTTPS.

The session cookie carries the same opaque 256-bit token as the API's bearer token
(``identity/sessions.py``: stored as its SHA-256, idle and absolute expiry, ended at
sign-out, by a password change or an administrator); a new one is issued at every
sign-in and second factor, so a session id planted before sign-in is never promoted.
"""

from __future__ import annotations

import secrets
from typing import Final

from fastapi import Request, Response

SESSION: Final = "__Host-hippocrate-session"
CSRF: Final = "__Host-hippocrate-csrf"
LANGUAGE: Final = "__Host-hippocrate-language"

CSRF_BYTES: Final = 32


def _set(response: Response, name: str, value: str, *, max_age: int | None = None) -> None:
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path="/",
        secure=True,
        httponly=True,
        samesite="strict",
    )


def set_session(response: Response, token: str) -> None:
    """Carry ``token`` from now on; a browser session cookie (the server ends it)."""
    _set(response, SESSION, token)


def end_session(response: Response) -> None:
    response.delete_cookie(SESSION, path="/", secure=True, httponly=True, samesite="strict")


def session_token(request: Request) -> str | None:
    return request.cookies.get(SESSION) or None


def new_csrf_token() -> str:
    return secrets.token_urlsafe(CSRF_BYTES)


def set_csrf(response: Response, token: str) -> None:
    _set(response, CSRF, token)


def set_language(response: Response, language: str) -> None:
    _set(response, LANGUAGE, language, max_age=365 * 24 * 3600)
