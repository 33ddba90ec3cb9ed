"""The account's pages: registration and its emailed link, password reset, setting up
the second factor (from a staff member's pending session to a full one), recovery
codes shown once, changing the password, and the practitioner's account page."""

from __future__ import annotations

import contextlib
import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from hippocrate.identity.models import Role
from hippocrate.web import cookies, csrf
from tests.conftest import Store
from tests.identity.conftest import Env, link_token, text_of
from tests.identity.helpers import new_password, patient_data, totp_code
from tests.web.conftest import running_pages, sign_in, submit, token_of

PASSWORD = "velvet-otter-marches-north"
_SECRET = re.compile(r'<code id="secret">([A-Z2-7 ]+)</code>')
_CODES = re.compile(r"<li>([^<]+)</li>")


def registration(email: str, **changes: Any) -> dict[str, Any]:
    """The registration form's fields for a synthetic patient at ``email``."""
    data = patient_data(email=email).model_dump(mode="json")
    address = data.pop("address")
    form = {**data, **{k: v or "" for k, v in address.items()}, "nir": data["nir"] or ""}
    form.update({"password": PASSWORD, **changes})
    return form


def link_path(message: Any) -> str:
    """The path and query of the link in an email, as a browser would open it."""
    found = re.search(r"https?://\S+token=[A-Za-z0-9_\-]+", text_of(message))
    assert found is not None, text_of(message)
    parts = urlsplit(found.group(0))
    return f"{parts.path}?{parts.query}"


# -- registration ---------------------------------------------------------------------------


def test_register_verify_from_the_emailed_link_then_sign_in(web_on: Env) -> None:
    web = web_on
    email = "lea.moreau@example.org"
    form = web.client.get("/register")
    assert form.status_code == 200
    assert 'action="/register"' in form.text
    for name in ("given_names", "birth_date", "phone", "nir", "password"):
        assert f'<label for="{name}">' in form.text

    answer = submit(web.client, "/register", registration(email))
    assert answer.status_code == 303
    assert answer.headers["location"] == "/register?sent=true"
    sent = web.client.get(answer.headers["location"])
    assert sent.status_code == 200
    assert "<h1>" in sent.text

    [message] = web.emails_to(email)
    path = link_path(message)
    assert path.startswith("/account/verify-email?token=")
    # Opening the link (a mail scanner would) verifies nothing: sign-in still fails.
    opened = web.client.get(path)
    assert opened.status_code == 200
    assert f'value="{link_token(message)}"' in opened.text
    before = submit(web.client, "/sign-in", {"email": email, "password": PASSWORD})
    assert before.status_code == 401

    verified = submit(
        web.client, "/account/verify-email", {"token": link_token(message)}, form=path
    )
    assert verified.status_code == 303
    assert verified.headers["location"] == "/sign-in?verified=true"
    done = web.client.get(verified.headers["location"])
    assert 'role="status"' in done.text
    signed = submit(web.client, "/sign-in", {"email": email, "password": PASSWORD})
    assert signed.status_code == 303
    assert signed.headers["location"] == "/"
    assert web.client.get("/patient/account").status_code == 200

    # The link is spent: a second use is a clear refusal, without the form.
    web.client.cookies.clear()
    again = submit(web.client, "/account/verify-email", {"token": link_token(message)}, form=path)
    assert again.status_code == 400
    assert 'role="alert"' in again.text
    assert 'action="/account/verify-email"' not in again.text
    assert 'href="/account/forgot-password"' in again.text


def test_registering_a_known_address_answers_the_same_page(web: Env) -> None:
    owner = web.user()
    new = submit(web.client, "/register", registration("someone.new@example.org"))
    known = submit(web.client, "/register", registration(owner.email))
    assert new.status_code == known.status_code == 303
    assert new.headers["location"] == known.headers["location"]
    assert new.text == known.text
    first = web.client.get(new.headers["location"])
    second = web.client.get(known.headers["location"])
    assert first.text == second.text
    # The owner is told by email instead (a reset link, to one of these pages).
    [message] = web.emails_to(owner.email)
    assert link_path(message).startswith("/account/reset-password?token=")


def test_a_refused_field_shows_the_form_again_with_the_message_at_that_field(web: Env) -> None:
    email = "field.errors@example.org"
    for field, value in (("phone", "12"), ("password", "password123"), ("birth_date", "")):
        answer = submit(web.client, "/register", registration(email, **{field: value}))
        assert answer.status_code == 422, (field, answer.text[:300])
        assert 'role="alert"' in answer.text
        assert f'id="{field}-error"' in answer.text, field
        tag = re.search(rf'<input id="{field}"[^>]*>', answer.text)
        assert tag is not None
        assert 'aria-invalid="true"' in tag.group(0)
        assert f"{field}-error" in tag.group(0)
        # What was typed is shown back, never the password.
        assert 'value="field.errors@example.org"' in answer.text
        assert PASSWORD not in answer.text
    assert web.emails_to(email) == []


def test_an_invalid_nir_is_refused_at_its_field(web: Env) -> None:
    answer = submit(
        web.client, "/register", registration("nir.wrong@example.org", nir="123456789012345")
    )
    assert answer.status_code == 422
    tag = re.search(r'<input id="nir"[^>]*>', answer.text)
    assert tag is not None
    assert 'aria-invalid="true"' in tag.group(0)


# -- password reset ---------------------------------------------------------------------------


def test_forgot_password_answers_the_same_and_the_emailed_link_resets(web: Env) -> None:
    user = web.user()
    page = web.client.get("/account/forgot-password")
    assert page.status_code == 200
    assert '<label for="email">' in page.text
    known = submit(web.client, "/account/forgot-password", {"email": user.email})
    unknown = submit(web.client, "/account/forgot-password", {"email": "nobody@example.org"})
    assert known.status_code == unknown.status_code == 303
    assert known.headers["location"] == unknown.headers["location"]
    assert web.client.get(known.headers["location"]).status_code == 200

    [message] = web.emails_to(user.email)
    path = link_path(message)
    assert path.startswith("/account/reset-password?token=")
    form = web.client.get(path)
    assert form.status_code == 200
    assert f'value="{link_token(message)}"' in form.text
    weak = submit(
        web.client,
        "/account/reset-password",
        {"token": link_token(message), "password": "short"},
        form=path,
    )
    assert weak.status_code == 422
    assert 'id="password-error"' in weak.text
    assert f'value="{link_token(message)}"' in weak.text  # the link still works from here

    chosen = new_password()
    done = submit(
        web.client,
        "/account/reset-password",
        {"token": link_token(message), "password": chosen},
        form=path,
    )
    assert done.status_code == 303
    assert done.headers["location"] == "/sign-in?reset=true"
    assert (
        submit(web.client, "/sign-in", {"email": user.email, "password": chosen}).status_code == 303
    )


def test_a_reset_link_alone_does_not_take_over_an_account_with_a_second_factor(web: Env) -> None:
    user = web.user(totp=True)
    assert user.totp_secret is not None
    submit(web.client, "/account/forgot-password", {"email": user.email})
    [message] = web.emails_to(user.email)
    path = link_path(message)
    fields = {"token": link_token(message), "password": new_password()}
    without = submit(web.client, "/account/reset-password", fields, form=path)
    assert without.status_code == 403
    assert 'role="alert"' in without.text
    with_code = submit(
        web.client,
        "/account/reset-password",
        {**fields, "code": totp_code(user.totp_secret)},
        form=path,
    )
    assert with_code.status_code == 303


# -- the second factor -----------------------------------------------------------------------


def _secret_on(page: str) -> str:
    found = _SECRET.search(page)
    assert found is not None, page[:2000]
    return found.group(1).replace(" ", "")


def test_a_staff_member_sets_up_the_second_factor_from_a_pending_session(web: Env) -> None:
    user = web.user(Role.PRACTITIONER, totp=False)
    first = submit(web.client, "/sign-in", {"email": user.email, "password": user.password})
    assert first.headers["location"] == "/account/second-factor"
    pending = web.client.cookies.get(cookies.SESSION)
    # A pending session reaches nothing else.
    assert web.client.get("/practitioner/account").headers["location"].startswith("/sign-in")

    setup = web.client.get("/account/second-factor")
    assert setup.status_code == 200
    svg = re.search(r"<svg .*?</svg>", setup.text, re.DOTALL)
    assert svg is not None
    assert "style=" not in setup.text
    assert 'role="img"' in svg.group(0)
    assert "<title>" in svg.group(0)
    secret = _secret_on(setup.text)
    assert 'action="/sign-out"' in setup.text  # a pending session can still leave

    wrong = submit(web.client, "/account/second-factor", {"code": "000000"}, form="/sign-in")
    assert wrong.status_code == 401
    assert 'aria-invalid="true"' in wrong.text
    assert _secret_on(wrong.text) == secret  # the same secret, shown again

    done = submit(
        web.client,
        "/account/second-factor",
        {"code": totp_code(secret, now=web.tick())},
        form="/sign-in",
    )
    assert done.status_code == 200
    codes = _CODES.findall(done.text)
    assert len(codes) >= 8
    assert 'href="/practitioner"' in done.text
    full = web.client.get("/practitioner/account")
    assert full.status_code == 200
    assert web.client.cookies.get(cookies.SESSION) != pending
    # The codes are shown once: nothing shows them again, and the setup is over.
    for code in codes:
        assert code not in full.text
    assert web.client.get("/account/second-factor").status_code == 409
    # The pending session ended with the setup.
    web.client.cookies.set(cookies.SESSION, pending or "")
    assert web.client.get("/account/second-factor").status_code == 303

    # A recovery code then completes a sign-in.
    web.client.cookies.clear()
    again = submit(web.client, "/sign-in", {"email": user.email, "password": user.password})
    assert again.headers["location"].startswith("/sign-in/code")
    assert submit(web.client, "/sign-in/code", {"code": codes[0]}).status_code == 303


def test_a_patient_sets_up_regenerates_codes_and_turns_the_second_factor_off(web: Env) -> None:
    user = web.user()
    sign_in(web.client, user)
    account = web.client.get("/patient/account")
    assert 'href="/account/second-factor"' in account.text
    secret = _secret_on(web.client.get("/account/second-factor").text)
    # The token from another page: the setup page's GET would start a new secret.
    enabled = submit(
        web.client,
        "/account/second-factor",
        {"code": totp_code(secret, now=web.tick()), "password": user.password},
        form="/patient/account",
    )
    assert enabled.status_code == 200
    assert 'href="/patient/account"' in enabled.text
    old_codes = _CODES.findall(enabled.text)

    account = web.client.get("/patient/account")
    assert 'href="/account/recovery-codes"' in account.text
    assert 'href="/account/second-factor/disable"' in account.text
    refused = submit(web.client, "/account/recovery-codes", {"code": "000000"})
    assert refused.status_code == 401
    assert 'role="alert"' in refused.text
    fresh = submit(
        web.client, "/account/recovery-codes", {"code": totp_code(secret, now=web.tick())}
    )
    assert fresh.status_code == 200
    new_codes = _CODES.findall(fresh.text)
    assert new_codes
    assert not set(new_codes) & set(old_codes)

    no_password = submit(
        web.client,
        "/account/second-factor/disable",
        {"password": "not-the-password", "code": totp_code(secret, now=web.tick())},
    )
    assert no_password.status_code == 401
    off = submit(
        web.client,
        "/account/second-factor/disable",
        {"password": user.password, "code": totp_code(secret, now=web.tick())},
    )
    assert off.status_code == 303
    assert off.headers["location"] == "/patient/account?changed=second-factor"
    assert 'href="/account/second-factor"' in web.client.get(off.headers["location"]).text


def test_staff_cannot_turn_the_second_factor_off(web: Env) -> None:
    user = web.user(Role.PRACTITIONER)
    sign_in(web.client, user)
    assert web.client.get("/account/second-factor/disable").status_code == 403
    assert user.totp_secret is not None
    posted = submit(
        web.client,
        "/account/second-factor/disable",
        {"password": user.password, "code": totp_code(user.totp_secret, now=web.tick())},
        form="/practitioner/account",
    )
    assert posted.status_code == 403
    # The second factor is still on (its recovery codes are offered).
    assert 'href="/account/recovery-codes"' in web.client.get("/practitioner/account").text
    page = web.client.get("/practitioner/account")
    assert "/account/second-factor/disable" not in page.text
    assert 'href="/account/recovery-codes"' in page.text


# -- the signed-in account ---------------------------------------------------------------------


def test_changing_the_password_needs_the_current_one(web: Env) -> None:
    user = web.user()
    sign_in(web.client, user)
    chosen = new_password()
    wrong = submit(
        web.client,
        "/account/password",
        {"current_password": "not-the-password", "new_password": chosen},
    )
    assert wrong.status_code == 401
    tag = re.search(r'<input id="current_password"[^>]*>', wrong.text)
    assert tag is not None
    assert 'aria-invalid="true"' in tag.group(0)
    weak = submit(
        web.client, "/account/password", {"current_password": user.password, "new_password": "x"}
    )
    assert weak.status_code == 422
    assert 'id="new_password-error"' in weak.text
    done = submit(
        web.client,
        "/account/password",
        {"current_password": user.password, "new_password": chosen},
    )
    assert done.status_code == 303
    assert done.headers["location"] == "/patient/account?changed=password"
    assert 'role="status"' in web.client.get(done.headers["location"]).text
    web.client.cookies.clear()
    assert (
        submit(web.client, "/sign-in", {"email": user.email, "password": chosen}).status_code == 303
    )


def test_the_practitioner_account_page_is_theirs_only(web: Env) -> None:
    practitioner = web.user(Role.PRACTITIONER)
    assert web.client.get("/practitioner/account").headers["location"].startswith("/sign-in")
    sign_in(web.client, practitioner)
    page = web.client.get("/practitioner/account")
    assert page.status_code == 200
    assert page.text.count("<h1>") == 1
    assert 'aria-current="page"' in page.text
    web.client.cookies.clear()
    sign_in(web.client, web.user())
    assert web.client.get("/practitioner/account").status_code == 403
    web.client.cookies.clear()
    sign_in(web.client, web.user(Role.DPO))
    assert web.client.get("/practitioner/account").status_code == 403


ACCOUNT_FORMS = (
    "/account/password",
    "/account/recovery-codes",
    "/account/second-factor",
    "/account/second-factor/disable",
)
PUBLIC_FORMS = (
    "/register",
    "/account/verify-email",
    "/account/forgot-password",
    "/account/reset-password",
)


def test_every_account_form_refuses_a_missing_csrf_token(web: Env) -> None:
    for path in PUBLIC_FORMS:
        token_of(web.client)
        answer = web.client.post(path, data={"email": "x@example.org", "token": "t" * 43})
        assert answer.status_code == 403, path
        wrong = web.client.post(path, data={csrf.FIELD: "x" * 43, "email": "x@example.org"})
        assert wrong.status_code == 403, path
    assert web.emails_to("x@example.org") == []
    user = web.user(totp=True)
    sign_in(web.client, user)
    for path in ACCOUNT_FORMS:
        answer = web.client.post(
            path, data={"current_password": user.password, "new_password": new_password()}
        )
        assert answer.status_code == 403, path
    # Nothing was changed: the password still opens the account.
    web.client.cookies.clear()
    assert web.login(user)


def test_the_account_pages_need_a_session(web: Env) -> None:
    for path in (*ACCOUNT_FORMS, "/patient/account", "/practitioner/account"):
        answer = web.client.get(path)
        assert answer.status_code == 303, path
        assert answer.headers["location"].startswith("/sign-in?next="), path


def test_the_admission_throttle_shows_the_form_with_its_refusal(
    sqlite_store: Store, tmp_path: Path
) -> None:
    with contextlib.closing(
        running_pages(sqlite_store, tmp_path, registrations_per_client=1, resets_per_client=1)
    ) as pages:
        web = next(pages)
        first = submit(web.client, "/register", registration("first@example.org"))
        assert first.status_code == 303
        second = submit(web.client, "/register", registration("second@example.org"))
        assert second.status_code == 429
        assert second.headers["retry-after"]
        assert 'role="alert"' in second.text
        assert 'action="/register"' in second.text
        assert web.emails_to("second@example.org") == []

        assert (
            submit(web.client, "/account/forgot-password", {"email": "a@example.org"}).status_code
            == 303
        )
        again = submit(web.client, "/account/forgot-password", {"email": "a@example.org"})
        assert again.status_code == 429
        assert 'action="/account/forgot-password"' in again.text
        kept = submit(
            web.client,
            "/account/reset-password",
            {"token": "t" * 43, "password": new_password()},
            form="/account/reset-password?token=" + "t" * 43,
        )
        assert kept.status_code == 429
        assert 'value="' + "t" * 43 + '"' in kept.text  # the link's token stays in the form
