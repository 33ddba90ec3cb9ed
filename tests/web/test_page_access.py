"""Every page, found by walking the app's routes (a page added tomorrow is checked
too): each is either public and listed here, or needs a principal of declared roles;
no session is sent to sign in, a role the page does not serve is refused, every form
refuses a missing or wrong CSRF token before anything else, and every answer carries
the security headers."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from typing import Any

import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

from hippocrate.app import PAGES
from hippocrate.guard.documents import png_bytes
from hippocrate.identity.models import Role
from hippocrate.web import csrf
from hippocrate.web.deps import page_principal
from tests.api.test_app import assert_security_headers
from tests.identity.conftest import Env
from tests.web.conftest import BASE, page_client, sign_in, token_of

# Pages anyone may open: each was reviewed for what it shows without a session.
PUBLIC = {
    "/",
    "/favicon.ico",
    "/static/{name}",
    "/language",
    "/sign-in",
    "/sign-in/code",  # a pending session (password given) completes its second factor
    "/sign-out",
    "/verifier",
    "/register",
    "/account/verify-email",
    "/account/forgot-password",
    "/account/reset-password",
    "/account/second-factor",  # a pending staff session sets up its second factor
    "/documents/verify",
    "/documents/verify/code",
    "/documents/verify/file",
}

STAFF_AND_PATIENTS = (Role.PATIENT, Role.PRACTITIONER, Role.DPO, Role.ADMIN, Role.SUPPORT)

UNSAFE = ("POST", "PUT", "PATCH", "DELETE")


def _dependencies(dependant: Any) -> Iterator[Any]:
    for sub in dependant.dependencies:
        yield sub.call
        yield from _dependencies(sub)


def page_routes(app: Any) -> list[APIRoute]:
    """The routes of every router of pages the app mounts (``hippocrate.app.PAGES``)."""
    del app  # the same routers for every app the factory makes
    routes = [r for router in PAGES for r in router.routes]
    # A router included in another would hide its routes (and their roles) from here.
    assert all(isinstance(r, APIRoute) for r in routes), [type(r) for r in routes]
    return [r for r in routes if isinstance(r, APIRoute)]


def needs_principal(route: APIRoute) -> bool:
    return page_principal in set(_dependencies(route.dependant))


def roles_of(route: APIRoute) -> frozenset[Role] | None:
    for call in _dependencies(route.dependant):
        found = getattr(call, "roles", None)
        if found is not None:
            return frozenset(found)
    return None


def concrete(path: str) -> str:
    """``path`` with every parameter an id that names nothing."""
    parts = []
    for part in path.split("/"):
        if part.startswith("{") and part.endswith("}"):
            parts.append("hippocrate.css" if part == "{name}" else str(uuid.uuid4()))
        else:
            parts.append(part)
    return "/".join(parts)


def test_every_page_is_public_and_listed_or_serves_declared_roles(web: Env) -> None:
    routes = page_routes(web.app)
    assert len(routes) > 10
    unclassified = [
        (sorted(r.methods), r.path)
        for r in routes
        if (r.path in PUBLIC) == needs_principal(r) or (needs_principal(r) and roles_of(r) is None)
    ]
    assert unclassified == [], "list a public page in PUBLIC, or use require_role"


def test_without_a_session_every_private_page_leads_to_sign_in(web: Env) -> None:
    for route in page_routes(web.app):
        if not needs_principal(route) or "GET" not in route.methods:
            continue
        answer = web.client.get(concrete(route.path))
        assert answer.status_code == 303, route.path
        assert answer.headers["location"].startswith("/sign-in?next="), route.path
        assert_security_headers(answer.headers)


@pytest.fixture
def signed_in(web: Env) -> Iterator[dict[Role, TestClient]]:
    """A client signed in for each role, each closed after the test (its app's
    lifespan, and the checkpoint scheduler it starts, end with it)."""
    with ExitStack() as stack:
        clients = {}
        for role in STAFF_AND_PATIENTS:
            client = stack.enter_context(page_client(web.app))
            sign_in(client, web.user(role))
            clients[role] = client
        yield clients


def test_every_page_refuses_the_roles_it_does_not_serve(
    web: Env, signed_in: dict[Role, TestClient]
) -> None:
    for route in page_routes(web.app):
        roles = roles_of(route)
        if roles is None or "GET" not in route.methods:
            continue
        path = concrete(route.path)
        for role, client in signed_in.items():
            answer = client.get(path)
            assert answer.headers["content-type"].startswith(("text/html", "application/")), path
            if role in roles:
                assert answer.status_code in (200, 303, 404), (role, path, answer.status_code)
            else:
                assert answer.status_code == 403, (role, path, answer.status_code)
            assert_security_headers(answer.headers)


def test_every_form_refuses_a_missing_or_wrong_csrf_token(
    web: Env, signed_in: dict[Role, TestClient]
) -> None:
    anonymous = web.client
    token_of(anonymous)
    unsafe = [
        (method, route.path)
        for route in page_routes(web.app)
        for method in sorted(route.methods & set(UNSAFE))
    ]
    assert unsafe
    for method, template in unsafe:
        path = concrete(template)
        for client in (anonymous, *signed_in.values()):
            for data in ({}, {csrf.FIELD: "forged-" + "x" * 36}):
                # URL-encoded, then multipart with a file, as a browser sends a form.
                for files in (None, [("files", ("a.png", png_bytes(), "image/png"))]):
                    answer = client.request(
                        method, path, data=data, files=files, headers={"Origin": BASE}
                    )
                    if client is anonymous and answer.status_code == 303:
                        # A form with files is read (its token with it) after the
                        # session: without one, it is sent to sign in, nothing done.
                        assert files is not None, (method, path)
                        assert answer.headers["location"].startswith("/sign-in")
                        continue
                    assert answer.status_code == 403, (method, path, files, answer.status_code)
                    assert answer.headers["content-type"].startswith("text/html")
                    assert_security_headers(answer.headers)


def test_a_form_with_files_says_where_it_comes_from(web: Env) -> None:
    """A multipart body is read by no parser before its route's own reader: a form with
    files must come with its Origin, and only to a route that reads files."""
    client = page_client(web.app)
    with client:
        sign_in(client, web.user())
        token = token_of(client, "/patient/consultations/new")
        form = {csrf.FIELD: token, "specialty": "general-practice", "subject": "x" * 8}
        photo = [("files", ("a.png", png_bytes(), "image/png"))]
        no_origin = client.post("/patient/consultations/new", data=form, files=photo)
        assert no_origin.status_code == 403
        not_a_file_form = client.post(
            "/account/password", data=form, files=photo, headers={"Origin": BASE}
        )
        assert not_a_file_form.status_code == 403
        assert client.get("/patient").text.count("x" * 8) == 0
