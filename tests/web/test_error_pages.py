"""Errors of pages are pages: the status, title and detail the API would give, in the
visitor's language, inside the layout, with the security headers, and nothing more
(no trace, no id); saturation keeps its Retry-After."""

from __future__ import annotations

import html

from fastapi import HTTPException
from fastapi.testclient import TestClient
from sqlalchemy.exc import TimeoutError as PoolTimeout

from hippocrate.guard.state import GuardUnavailable
from tests.api.test_app import assert_security_headers
from tests.identity.conftest import Env
from tests.web.conftest import BASE


def _failing(web: Env) -> None:
    def bug() -> None:
        raise RuntimeError("a secret detail of the bug: patient 1234")

    def guard_down() -> None:
        raise GuardUnavailable("no guard state")

    def busy() -> None:
        raise PoolTimeout("no connection")

    def gone() -> None:
        raise HTTPException(410)

    for path, endpoint in (
        ("/test-bug", bug),
        ("/test-guard-down", guard_down),
        ("/test-busy", busy),
        ("/test-gone", gone),
    ):
        web.app.add_api_route(path, endpoint, methods=["GET"])


def test_an_unexpected_error_is_a_page_that_says_nothing_of_it(web: Env) -> None:
    _failing(web)
    with TestClient(web.app, base_url=BASE, raise_server_exceptions=False) as client:
        answer = client.get("/test-bug")
    assert answer.status_code == 500
    assert answer.headers["content-type"].startswith("text/html")
    assert "secret detail" not in answer.text
    assert "Traceback" not in answer.text
    assert "<h1>" in answer.text
    assert_security_headers(answer.headers)


def test_saturation_and_a_missing_guard_are_503_pages_with_retry_after(web: Env) -> None:
    _failing(web)
    for path in ("/test-guard-down", "/test-busy"):
        answer = web.client.get(path)
        assert answer.status_code == 503, path
        assert answer.headers["content-type"].startswith("text/html")
        assert_security_headers(answer.headers)
    assert web.client.get("/test-busy").headers["retry-after"] == "5"


def test_an_error_page_is_in_the_visitors_language(web: Env) -> None:
    _failing(web)
    french = web.client.get("/no-such-page", headers={"Accept-Language": "fr"})
    assert french.status_code == 404
    assert french.headers["content-language"] == "fr"
    assert '<html lang="fr">' in french.text
    gone = web.client.get("/test-gone")
    assert gone.status_code == 410
    assert "Gone" in html.unescape(gone.text)


def test_a_method_a_page_does_not_take_is_a_405_page_with_allow(web: Env) -> None:
    answer = web.client.put("/sign-in")
    assert answer.status_code == 405
    assert answer.headers["content-type"].startswith("text/html")
    assert "GET" in answer.headers["allow"]
