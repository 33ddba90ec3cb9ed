"""Signing in through the pages: the same answer for every wrong pair, a new session
and CSRF token at each step, the second factor, signing out; CSRF on every form."""

from __future__ import annotations

from hippocrate.identity.models import Role
from hippocrate.web import cookies, csrf
from tests.identity.conftest import Env
from tests.identity.helpers import totp_code
from tests.web.conftest import sign_in, submit, token_of


def test_the_home_page_and_sign_in_page_need_no_session(web: Env) -> None:
    home = web.client.get("/")
    assert home.status_code == 200
    assert home.headers["content-type"].startswith("text/html")
    assert 'href="/sign-in"' in home.text
    assert web.client.cookies.get(cookies.CSRF)
    set_cookie = home.headers["set-cookie"]
    assert set_cookie.startswith(cookies.CSRF)
    for attribute in ("Secure", "HttpOnly", "SameSite=strict", "Path=/"):
        assert attribute.lower() in set_cookie.lower(), set_cookie
    page = web.client.get("/sign-in")
    assert page.status_code == 200
    assert "set-cookie" not in page.headers  # the same token until sign-in


def test_a_wrong_password_and_an_unknown_account_get_the_same_page(web: Env) -> None:
    user = web.user()
    wrong = submit(web.client, "/sign-in", {"email": user.email, "password": "not-it-at-all"})
    unknown = submit(
        web.client, "/sign-in", {"email": "nobody@example.org", "password": "not-it-at-all"}
    )
    assert wrong.status_code == unknown.status_code == 401
    assert 'role="alert"' in wrong.text
    assert wrong.text.replace(user.email, "X") == unknown.text.replace("nobody@example.org", "X")
    assert not web.client.cookies.get(cookies.SESSION)


def test_a_patient_signs_in_gets_a_new_token_and_signs_out(web: Env) -> None:
    user = web.user()
    before = token_of(web.client)
    sign_in(web.client, user)
    assert web.client.cookies.get(cookies.CSRF) != before
    session = web.client.cookies.get(cookies.SESSION)
    assert session
    assert web.client.get("/").headers["location"] == "/patient"
    out = submit(web.client, "/sign-out", {}, form="/sign-in")
    assert out.status_code == 303
    assert not web.client.cookies.get(cookies.SESSION)
    # The ended session cannot be replayed.
    web.client.cookies.set(cookies.SESSION, session)
    assert web.client.get("/").status_code == 200


def test_staff_give_the_second_factor_before_anything(web: Env) -> None:
    user = web.user(Role.PRACTITIONER)
    first = submit(web.client, "/sign-in", {"email": user.email, "password": user.password})
    assert first.status_code == 303
    assert first.headers["location"].startswith("/sign-in/code")
    wrong = submit(web.client, "/sign-in/code", {"code": "000000"})
    assert wrong.status_code == 401
    assert 'aria-invalid="true"' in wrong.text
    assert user.totp_secret is not None
    right = submit(web.client, "/sign-in/code", {"code": totp_code(user.totp_secret)})
    assert right.status_code == 303


def test_a_form_without_its_csrf_token_is_refused(web: Env) -> None:
    user = web.user()
    token_of(web.client)  # the cookie is there; the field is not
    missing = web.client.post("/sign-in", data={"email": user.email, "password": user.password})
    assert missing.status_code == 403
    assert missing.headers["content-type"].startswith("text/html")
    wrong = web.client.post(
        "/sign-in", data={csrf.FIELD: "x" * 43, "email": user.email, "password": user.password}
    )
    assert wrong.status_code == 403
    cross_site = web.client.post(
        "/sign-in",
        data={csrf.FIELD: token_of(web.client), "email": user.email, "password": user.password},
        headers={"Origin": "https://evil.example"},
    )
    assert cross_site.status_code == 403
    assert not web.client.cookies.get(cookies.SESSION)


def test_a_next_address_never_leads_off_the_site(web: Env) -> None:
    user = web.user()
    for target in ("https://evil.example/", "//evil.example", "/\\evil.example"):
        answer = submit(
            web.client,
            "/sign-in",
            {"email": user.email, "password": user.password, "next": target},
        )
        assert answer.headers["location"] == "/", target


def test_every_error_of_a_page_is_a_page(web: Env) -> None:
    missing = web.client.get("/no-such-page")
    assert missing.status_code == 404
    assert missing.headers["content-type"].startswith("text/html")
    assert "<h1>" in missing.text
    api = web.client.get("/api/v1/no-such-route")
    assert api.headers["content-type"] == "application/problem+json"
