"""The pages attacked as an intruder would: with a stolen cookie of each role, a
contained account's cookie, an ended session; from another site (open redirects, the
headers of every kind of answer); as a malicious patient writing HTML into every free
text field; and by asking the public pages which accounts exist."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from hippocrate.identity.models import Account, Role
from hippocrate.web import cookies, csrf
from tests.api.test_app import assert_security_headers
from tests.consultations.helpers import pdf_bytes, png_bytes
from tests.identity.conftest import Env
from tests.identity.helpers import TestUser, fast_password_hashing, patient_data, totp_code
from tests.web.conftest import BASE, page_client, sign_in, submit, token_of
from tests.web.test_account import registration
from tests.web.test_admin_pages import NEW as NEW_PRACTITIONER
from tests.web.test_page_access import concrete, page_routes, roles_of

XSS = '"><script>alert(1)</script><img src=x onerror=alert(2)>'

_CONSULTATION = re.compile(r"/patient/consultations/([0-9a-f-]{36})")


@pytest.fixture(autouse=True)
def _fast_passwords() -> Iterator[None]:
    with fast_password_hashing():
        yield


@contextmanager
def browser(env: Env, user: TestUser | None = None) -> Iterator[TestClient]:
    """Another browser on the same app, in English, signed in as ``user`` if given."""
    with page_client(env.app) as client:
        client.headers["Accept-Language"] = "en"
        if user is not None:
            sign_in(client, user)
        yield client


def open_consultation(client: TestClient, files: Any = None, **changes: str) -> str:
    data = {
        "specialty": "general-practice",
        "subject": "Plaques rouges sur le bras",
        "description": "Depuis cinq jours, des plaques qui grattent le soir.",
        "q_symptoms_duration": "4_to_7_days",
        "q_current_treatments": "aucun",
        "q_allergies": "aucune",
        "q_pregnancy": "not_applicable",
        **changes,
    }
    answer = submit(client, "/patient/consultations/new", data, files=files)
    assert answer.status_code == 303, answer.text[:800]
    found = _CONSULTATION.match(answer.headers["location"])
    assert found is not None
    return found.group(1)


def take(doctor: TestClient) -> str:
    answer = submit(doctor, "/practitioner/queue/take", {}, form="/practitioner")
    assert answer.status_code == 303, answer.text[:800]
    return answer.headers["location"].split("/")[3].split("?")[0]


def assert_no_raw_markup(text: str) -> None:
    assert "<script>alert(1)" not in text
    assert "<img src=x onerror" not in text
    assert "onerror=" not in text.replace("onerror=alert(2)&gt;", "")


# -- a malicious patient's HTML, on every page that shows it ---------------------------------


def test_html_written_by_a_patient_is_escaped_on_every_page_that_shows_it(web: Env) -> None:
    villain = web.user(
        patient=patient_data(
            given_names=f"Eve {XSS}", family_name=f"Mallory {XSS}", birth_date=date(1990, 1, 2)
        )
    )
    with browser(web, villain) as patient:
        consultation_id = open_consultation(
            patient,
            files=[("files", (f"{XSS}.pdf", pdf_bytes(), "application/pdf"))],
            subject=f"Subject {XSS}",
            description=f"Description {XSS}",
            q_current_treatments=f"Treatment {XSS}",
            q_allergies=f"Allergy {XSS}",
        )
        path = f"/patient/consultations/{consultation_id}"
        sent = submit(patient, f"{path}/messages", {"body": f"Body {XSS}"}, form=path)
        assert sent.status_code == 303
        for page in ("/patient", path, "/patient/account", "/patient/access"):
            answer = patient.get(page)
            assert answer.status_code == 200, page
            assert_no_raw_markup(answer.text)
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in patient.get(path).text

    with browser(web, web.user(Role.PRACTITIONER)) as doctor:
        assert_no_raw_markup(doctor.get("/practitioner").text)
        assert take(doctor) == consultation_id
        record = f"/practitioner/consultations/{consultation_id}"
        for page in (record, "/practitioner", "/practitioner/patients"):
            answer = doctor.get(page)
            assert answer.status_code == 200, page
            assert_no_raw_markup(answer.text)
        shown = doctor.get(record).text
        assert "Mallory &#34;&gt;&lt;script&gt;" in shown
        assert "Treatment &#34;&gt;&lt;script&gt;" in shown
        assert "Body &#34;&gt;&lt;script&gt;" in shown
        # A refused form shows what was typed back: escaped too.
        refused = submit(doctor, f"{record}/hand-back", {"reason": "<i"}, form=record)
        assert refused.status_code == 422
        assert "&lt;i" in refused.text
        assert_no_raw_markup(refused.text)
        closing = submit(doctor, f"{record}/close", {"report": XSS, "acts": ""}, form=record)
        assert closing.status_code == 422
        assert_no_raw_markup(closing.text)


# -- a contained account's cookie ------------------------------------------------------------


ROLES = (Role.PATIENT, Role.PRACTITIONER, Role.DPO, Role.ADMIN, Role.SUPPORT)


@pytest.mark.parametrize("role", ROLES, ids=lambda r: r.value)
def test_a_contained_accounts_cookie_opens_no_page(web: Env, role: Role) -> None:
    user = web.user(role)
    with browser(web, user) as stolen:
        guard = web.app.state.runtime.guard
        assert guard.state.contain(user.account_id, "breadth: test")
        served = [r for r in page_routes(web.app) if "GET" in r.methods]
        for route in served:
            roles = roles_of(route)
            if roles is None or role not in roles:
                continue
            answer = stolen.get(concrete(route.path))
            assert answer.status_code == 403, (route.path, answer.status_code)
            assert_security_headers(answer.headers)
        # The public pages a session reaches without a principal do not serve it either.
        setup = stolen.get("/account/second-factor")
        assert setup.status_code in (403, 409), setup.status_code
        assert "otpauth" not in setup.text
        # Its forms do nothing.
        token = stolen.cookies.get(cookies.CSRF)
        for path in ("/patient/consultations/new", "/admin/practitioners", "/dpo/incidents"):
            answer = stolen.post(path, data={csrf.FIELD: token}, headers={"Origin": BASE})
            assert answer.status_code in (403, 404), (path, answer.status_code)
        # Nor does the second factor's form, where the password is asked: refused before
        # any password is looked at, so a contained cookie cannot guess with it.
        if role is Role.PATIENT:
            asked = stolen.post(
                "/account/second-factor",
                data={csrf.FIELD: token, "code": "000000", "password": "guess-number-one"},
                headers={"Origin": BASE},
            )
            assert asked.status_code == 403, asked.status_code


# -- an ended or expired session ---------------------------------------------------------------


def test_an_ended_session_opens_no_page_again(web: Env) -> None:
    user = web.user()
    with browser(web, user) as client:
        open_consultation(client)
        stolen = client.cookies.get(cookies.SESSION)
        assert submit(client, "/sign-out", {}, form="/patient").status_code == 303
    assert stolen
    replayed = {"Cookie": f"{cookies.SESSION}={stolen}"}
    with browser(web) as thief:
        for path in ("/patient", "/patient/account", "/patient/access"):
            answer = thief.get(path, headers=replayed)
            assert answer.status_code == 303, path
            assert answer.headers["location"].startswith("/sign-in"), path
        assert thief.get("/", headers=replayed).status_code == 200  # the home page


# -- open redirects --------------------------------------------------------------------------

ELSEWHERE = (
    "//evil.example",
    "https://evil.example",
    "/\\evil.example",
    "\\\\evil.example",
    "/\t/evil.example",
    "/\n/evil.example",
    "http:evil.example",
    "javascript:alert(1)",
    " //evil.example",
    "%2F%2Fevil.example",
)


def _stays_here(answer: httpx.Response) -> None:
    assert answer.status_code == 303
    location = answer.headers["location"]
    assert location.startswith("/"), location
    assert not location.startswith(("//", "/\\")), location
    assert httpx.URL(BASE).join(location).host == "testserver", location


@pytest.mark.parametrize("target", ELSEWHERE)
def test_the_language_switch_never_sends_anyone_elsewhere(web: Env, target: str) -> None:
    answer = submit(web.client, "/language", {"to": "en", "next": target}, form="/sign-in")
    _stays_here(answer)


@pytest.mark.parametrize("target", ELSEWHERE)
def test_signing_in_never_sends_anyone_elsewhere(web: Env, target: str) -> None:
    user = web.user()
    form = f"/sign-in?{httpx.QueryParams(next=target)}"
    page = web.client.get(form)
    assert page.status_code == 200
    # The sign-in form carries no foreign target (the language switch may carry this
    # page's own address back to it, query included: that is a local path).
    carried = re.search(r'action="/sign-in".*?name="next" value="([^"]*)"', page.text, re.S)
    assert carried is not None
    assert "evil.example" not in carried.group(1)
    answer = submit(
        web.client, "/sign-in", {"email": user.email, "password": user.password, "next": target}
    )
    _stays_here(answer)


# -- which accounts exist ------------------------------------------------------------------


def _shape(answer: httpx.Response) -> tuple[int, str | None, list[str], list[str]]:
    """What a visitor can compare of two answers besides the body."""
    ignored = {"x-request-id", "content-length", "date", "set-cookie"}
    names = sorted(k for k in answer.headers if k.lower() not in ignored)
    set_cookies = sorted(c.split("=", 1)[0] for c in answer.headers.get_list("set-cookie"))
    return answer.status_code, answer.headers.get("location"), names, set_cookies


def _body(answer: httpx.Response, *secrets: str) -> str:
    text = re.sub(r'name="csrf_token" value="[^"]+"', "", answer.text)
    text = re.sub(r'"X-CSRF-Token": "[^"]+"', "", text)
    for secret in secrets:
        text = text.replace(secret, "X")
    return text


def test_the_public_forms_answer_the_same_whether_or_not_an_account_exists(web: Env) -> None:
    """A patient's address, a practitioner's and one that has no account: the same
    status, location, headers, cookies and page on sign-in, recovery and registration."""
    unknown = f"nobody-{uuid.uuid4().hex[:8]}@example.org"
    addresses = (web.user().email, web.user(Role.PRACTITIONER).email, unknown)
    answers = []
    for email in addresses:
        with browser(web) as visitor:
            answers.append(
                [
                    submit(visitor, "/sign-in", {"email": email, "password": "not-it-at-all-1"}),
                    submit(visitor, "/sign-in", {"email": email.upper(), "password": "x"}),
                    submit(visitor, "/account/forgot-password", {"email": email}),
                    submit(visitor, "/register", registration(email)),
                ]
            )
    *known, nobody = answers
    for email, theirs in zip(addresses, known, strict=False):
        for answer, other in zip(theirs, nobody, strict=True):
            assert _shape(answer) == _shape(other), answer.url
            assert _body(answer, email, email.upper()) == _body(other, unknown, unknown.upper()), (
                answer.url
            )


# -- the headers of every kind of answer -----------------------------------------------------


def test_every_kind_of_answer_carries_the_security_headers(web: Env) -> None:
    with browser(web, web.user()) as patient:
        consultation_id = open_consultation(
            patient,
            files=[
                ("files", ("bilan.pdf", pdf_bytes(), "application/pdf")),
                ("files", ("photo.png", png_bytes(), "image/png")),
            ],
        )
        path = f"/patient/consultations/{consultation_id}"
        links = set(
            re.findall(
                r'href="(/patient/consultations/[^"]+/attachments/[0-9a-f-]{36})"',
                patient.get(path).text,
            )
        )
        assert len(links) == 2
        answers = [
            patient.get(path),
            patient.get("/patient/account/export.json"),
            patient.get("/patient/account/export.fhir.json"),
            patient.get(f"/patient/consultations/{uuid.uuid4()}"),  # 404 page
            patient.get("/dpo"),  # 403 page
            submit(patient, "/language", {"to": "en", "next": "/patient"}, form=path),  # 303
        ]
        for link in links:
            answers.append(patient.get(link))
            view = patient.get(f"{link}/view")
            if view.status_code == 200:
                answers.append(view)
        downloads = 0
        for answer in answers:
            assert answer.status_code in (200, 303, 403, 404), answer.url
            assert answer.headers["x-frame-options"] == "DENY"
            assert answer.headers["cache-control"] == "no-store"
            assert answer.headers["x-content-type-options"] == "nosniff"
            if answer.headers.get("content-security-policy", "").endswith("sandbox"):
                # An attachment's own policy: nothing runs, nothing loads, no frame.
                downloads += 1
                policy = directives(answer.headers["content-security-policy"])
                assert policy["default-src"] == ["'none'"]
                assert policy["frame-ancestors"] == ["'none'"], answer.url
                assert policy["sandbox"] == []
            else:
                assert_security_headers(answer.headers)
        assert downloads == 3  # the PDF, the image, the image shown inline


def directives(policy: str) -> dict[str, list[str]]:
    return {d.split()[0]: d.split()[1:] for d in policy.split(";") if d.strip()}


# -- ids of other people's things ------------------------------------------------------------


def _error_body(answer: httpx.Response, *ids: str) -> str:
    text = _body(answer, *ids)
    return re.sub(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", "ID", text)


def test_another_patients_ids_get_the_page_of_an_id_that_names_nothing(web: Env) -> None:
    """In every page path and form: the same status and the same page for another
    patient's consultation or attachment as for an id that names nothing."""
    victim = web.user()
    with browser(web, victim) as owner:
        theirs = open_consultation(
            owner, files=[("files", ("bilan.pdf", pdf_bytes(), "application/pdf"))]
        )
        path = f"/patient/consultations/{theirs}"
        (attachment,) = set(re.findall(r"/attachments/([0-9a-f-]{36})", owner.get(path).text))
    probes: list[tuple[str, str, dict[str, Any]]] = [
        ("GET", "/patient/consultations/{c}", {}),
        ("GET", "/patient/consultations/{c}/attachments/{a}", {}),
        ("GET", "/patient/consultations/{c}/attachments/{a}/view", {}),
        ("GET", "/patient/consultations/{mine}/attachments/{a}", {}),
        ("GET", "/patient/consultations/{mine}/attachments/{a}/view", {}),
        ("POST", "/patient/consultations/{c}/messages", {"data": {"body": "Bonjour"}}),
        (
            "POST",
            "/patient/consultations/{c}/messages",
            {
                "data": {"body": "Bonjour"},
                "files": [("files", ("a.png", png_bytes(), "image/png"))],
            },
        ),
        ("POST", "/patient/consultations/{c}/cancel", {}),
        ("POST", "/patient/notices/{c}/seen", {}),
    ]
    for method, template, kwargs in probes:
        # A stranger per probe: the guard contains an account that keeps asking for
        # what it may not see (then every answer is 403), which is not what is tested.
        with browser(web, web.user()) as stranger:
            mine = open_consultation(stranger)
            token = stranger.cookies.get(cookies.CSRF)
            data = {csrf.FIELD: token, **kwargs.pop("data", {})} if method == "POST" else None
            answers = [
                stranger.request(
                    method,
                    template.format(c=c, a=a, mine=mine),
                    data=data,
                    headers={"Origin": BASE},
                    **kwargs,
                )
                for c, a in ((theirs, attachment), (str(uuid.uuid4()), str(uuid.uuid4())))
            ]
            assert answers[0].status_code == answers[1].status_code == 404, template
            assert _error_body(answers[0]) == _error_body(answers[1]), template
            assert _shape(answers[0]) == _shape(answers[1]), template
    # Nothing was sent to, or cancelled in, the other patient's consultation.
    with browser(web, victim) as owner:
        page = owner.get(path).text
        assert "Bonjour" not in page
        assert "Cancel this consultation" in page


def test_a_practitioner_who_handed_a_consultation_back_reads_nothing_of_it(web: Env) -> None:
    with browser(web, web.user()) as patient:
        consultation_id = open_consultation(
            patient, files=[("files", ("photo.png", png_bytes(), "image/png"))]
        )
    with browser(web, web.user(Role.PRACTITIONER)) as doctor:
        assert take(doctor) == consultation_id
        record = f"/practitioner/consultations/{consultation_id}"
        links = set(
            re.findall(
                r'href="(/practitioner/consultations/[^"]+/attachments/[^"]+)"',
                doctor.get(record).text,
            )
        )
        assert links
        back = submit(doctor, f"{record}/hand-back", {"reason": "Hors de ma pratique"}, form=record)
        assert back.status_code == 303
        token = doctor.cookies.get(cookies.CSRF)
        assert doctor.get(record).status_code == 404
        for link in links:
            assert doctor.get(link).status_code == 404
            assert doctor.get(f"{link}/view").status_code == 404
        origin = {"Origin": BASE}
        for action, data in (
            ("messages", {"body": "encore moi"}),
            ("close", {"report": "x", "acts": "TCG"}),
            ("hand-back", {"reason": "Hors de ma pratique"}),
        ):
            answer = doctor.post(
                f"{record}/{action}", data={csrf.FIELD: token, **data}, headers=origin
            )
            assert answer.status_code == 404, (action, answer.status_code)
        assert consultation_id not in doctor.get("/practitioner/patients").text


# -- a session whose second factor is pending ----------------------------------------------


@pytest.mark.parametrize("role", [Role.PRACTITIONER, Role.DPO, Role.ADMIN], ids=lambda r: r.value)
def test_a_password_alone_opens_no_page(web: Env, role: Role) -> None:
    user = web.user(role)
    with browser(web) as thief:
        first = submit(thief, "/sign-in", {"email": user.email, "password": user.password})
        assert first.status_code == 303
        assert first.headers["location"].startswith(("/sign-in/code", "/account/second-factor"))
        token = thief.cookies.get(cookies.CSRF)
        for route in page_routes(web.app):
            roles = roles_of(route)
            if roles is None:
                continue
            path = concrete(route.path)
            for method in sorted(route.methods & {"GET", "POST"}):
                answer = thief.request(
                    method, path, data={csrf.FIELD: token}, headers={"Origin": BASE}
                )
                assert answer.status_code == 303, (method, path, answer.status_code)
                assert answer.headers["location"].startswith("/sign-in/code"), path


# -- a stolen patient's cookie -------------------------------------------------------------

_SECRET = re.compile(r'<code id="secret">([A-Z2-7 ]+)</code>')


def test_a_stolen_cookie_cannot_turn_on_a_second_factor_of_the_thiefs(web: Env) -> None:
    """Turning the second factor on would lock the holder out for good (their password
    then needs the thief's code, and so does a reset link) and end their sessions: the
    page asks for the password first, as turning it off does."""
    victim = web.user()
    with browser(web, victim) as thief:
        found = _SECRET.search(thief.get("/account/second-factor").text)
        assert found is not None
        secret = found.group(1).replace(" ", "")
        code = totp_code(secret, now=web.tick())
        without = submit(thief, "/account/second-factor", {"code": code}, form="/patient/account")
        assert without.status_code in (401, 422), without.status_code
        assert 'role="alert"' in without.text
        wrong = submit(
            thief,
            "/account/second-factor",
            {"code": code, "password": "not-the-password-1"},
            form="/patient/account",
        )
        assert wrong.status_code == 401
        assert 'aria-invalid="true"' in wrong.text
    with web.store.sessions() as session:
        account = session.get(Account, victim.account_id)
        assert account is not None
        assert not account.totp_enabled
    # The holder, who knows the password, turns it on.
    with browser(web, victim) as holder:
        found = _SECRET.search(holder.get("/account/second-factor").text)
        assert found is not None
        secret = found.group(1).replace(" ", "")
        enabled = submit(
            holder,
            "/account/second-factor",
            {"code": totp_code(secret, now=web.tick()), "password": victim.password},
            form="/patient/account",
        )
        assert enabled.status_code == 200, enabled.text[:500]
        assert 'class="codes"' in enabled.text


def test_a_stolen_cookie_cannot_turn_on_a_second_factor_through_the_api(web: Env) -> None:
    victim = web.user()
    with browser(web, victim) as thief:
        token = thief.cookies.get(cookies.SESSION)
    with page_client(web.app) as api:
        bearer = {"Authorization": f"Bearer {token}"}
        begun = api.post("/api/v1/me/totp", headers=bearer)
        if begun.status_code == 200:
            secret = begun.json()["secret"]
            api.post(
                "/api/v1/me/totp/confirm",
                headers=bearer,
                json={"code": totp_code(secret, now=web.tick())},
            )
    with web.store.sessions() as session:
        account = session.get(Account, victim.account_id)
        assert account is not None
        assert not account.totp_enabled


# -- sessions past their time --------------------------------------------------------------


@pytest.mark.parametrize("role", [Role.PATIENT, Role.PRACTITIONER], ids=lambda r: r.value)
def test_a_session_past_its_idle_time_opens_no_page(web: Env, role: Role) -> None:
    user = web.user(role)
    home = "/patient" if role is Role.PATIENT else "/practitioner"
    with browser(web, user) as client:
        assert client.get(home).status_code == 200
        idle = (
            web.settings.session_idle_patient
            if role is Role.PATIENT
            else web.settings.session_idle_staff
        )
        web.later(seconds=idle + 60)
        answer = client.get(home)
        assert answer.status_code == 303
        assert answer.headers["location"].startswith("/sign-in?next=")
        token = client.cookies.get(cookies.CSRF)
        posted = client.post(
            "/practitioner/queue/take"
            if role is Role.PRACTITIONER
            else "/patient/consultations/new",
            data={csrf.FIELD: token},
            headers={"Origin": BASE},
        )
        assert posted.status_code == 303
        assert posted.headers["location"].startswith("/sign-in")


# -- the emailed links' pages, for a token that names nothing ----------------------------------


def test_the_emailed_links_pages_say_nothing_of_the_account(web: Env) -> None:
    """A used, a forged and a random token are answered alike: the links' pages do
    not tell which addresses or tokens exist."""
    with browser(web) as visitor:
        for page in ("/account/verify-email", "/account/reset-password"):
            tokens = ("x" * 43, uuid.uuid4().hex, "")
            shown = [visitor.get(f"{page}?{httpx.QueryParams(token=t)}") for t in tokens]
            assert {a.status_code for a in shown} == {200}
            posted = [
                submit(
                    visitor,
                    page,
                    {"token": t, "password": "Un mot de passe solide 42", "code": ""},
                    form=page,
                )
                for t in tokens[:2]
            ]
            assert posted[0].status_code == posted[1].status_code, page
            assert posted[0].status_code in (400, 401, 404, 410, 422), page
            assert _shape(posted[0]) == _shape(posted[1]), page
            assert _body(posted[0], tokens[0]) == _body(posted[1], tokens[1]), page


# -- what staff write, where a patient reads it ------------------------------------------------


def test_a_break_glass_reason_with_html_is_escaped_for_the_admin_and_the_patient(
    web: Env,
) -> None:
    patient = web.user()
    reason = f"Urgence vitale, centre 15 {XSS}"
    administrator = web.user(Role.ADMIN)
    with browser(web, administrator) as admin:
        opened = submit(
            admin,
            "/admin/break-glass",
            {"patient_id": str(patient.patient_id), "reason": reason, "minutes": "10"},
        )
        assert opened.status_code == 303, opened.text[:500]
        listed = admin.get("/admin/break-glass")
        assert "Urgence vitale" in listed.text
        assert_no_raw_markup(listed.text)
        bad = submit(
            admin, "/admin/break-glass", {"patient_id": XSS, "reason": reason, "minutes": "10"}
        )
        assert bad.status_code in (404, 422)
        assert_no_raw_markup(bad.text)
    # The administrator reads the record under the grant (through the API).
    read = web.client.get(
        f"/api/v1/patients/{patient.patient_id}", headers=web.login(administrator)
    )
    assert read.status_code == 200, read.text
    with browser(web, patient) as own:
        history = own.get("/patient/access")
        assert history.status_code == 200
        assert "Urgence vitale, centre 15 &#34;&gt;&lt;script&gt;" in history.text
        assert_no_raw_markup(history.text)


# -- the queue: another specialty's entry, an entry that names nothing -------------------------


def test_a_queue_entry_of_another_specialty_is_answered_as_one_that_names_nothing(
    web: Env,
) -> None:
    with browser(web, web.user()) as patient:
        open_consultation(patient)
    with browser(web, web.user(Role.PRACTITIONER)) as general:
        found = re.search(
            r'action="(/practitioner/queue/([^"/]+)/take)"', general.get("/practitioner").text
        )
        assert found is not None
        entry = found.group(2)
    with browser(web, web.user(Role.PRACTITIONER, specialty="dermatology")) as other:
        forged = entry[:-2] + ("AA" if entry[-2:] != "AA" else "BB")
        answers = [
            submit(other, f"/practitioner/queue/{e}/take", {}, form="/practitioner")
            for e in (entry, forged)
        ]
        assert answers[0].status_code == answers[1].status_code, [a.status_code for a in answers]
        assert answers[0].status_code in (404, 409)
        assert _error_body(answers[0], entry) == _error_body(answers[1], forged)


def test_the_page_asked_before_the_second_factor_is_the_page_shown_after_it(web: Env) -> None:
    """``next`` goes through the code's page whole (its query included), not cut at its
    first ``&`` or taken for the code page's own parameters."""
    doctor = web.user(Role.PRACTITIONER)
    target = "/practitioner/patients?offset=0&limit=5"
    with browser(web) as client:
        first = submit(
            client, "/sign-in", {"email": doctor.email, "password": doctor.password, "next": target}
        )
        assert first.status_code == 303
        location = first.headers["location"]
        assert httpx.URL(location).params.get("next") == target, location
        assert doctor.totp_secret is not None
        code = submit(
            client,
            "/sign-in/code",
            {"code": totp_code(doctor.totp_secret), "next": target},
            form=location,
        )
        assert code.status_code == 303
        assert code.headers["location"] == target


# -- every kind of error, as a page --------------------------------------------------------


def test_every_kind_of_error_is_a_page_with_the_security_headers(web: Env) -> None:
    with browser(web, web.user()) as patient:
        token = patient.cookies.get(cookies.CSRF)
        answers = {
            404: patient.get("/no/such/page"),
            405: patient.get("/sign-out"),
            422: patient.get("/patient/consultations/not-an-id"),
            403: patient.post("/patient/consultations/new", data={"subject": "x"}),
            413: patient.post(
                "/account/password",
                content=b"x" * (20 * 1024 * 1024),
                headers={
                    "Origin": BASE,
                    "Content-Type": "application/x-www-form-urlencoded",
                    "X-CSRF-Token": token or "",
                },
            ),
        }
        for status, answer in answers.items():
            assert answer.status_code == status, (status, answer.status_code)
            assert answer.headers["content-type"].startswith("text/html"), status
            assert_security_headers(answer.headers)
            assert "Traceback" not in answer.text


def test_what_a_visitor_types_on_the_public_pages_is_shown_back_escaped(web: Env) -> None:
    with browser(web) as visitor:
        answers = [
            submit(visitor, "/sign-in", {"email": XSS, "password": "x"}),
            submit(visitor, "/verifier", {"text": f"Code {XSS}"}),
            submit(visitor, "/documents/verify/code", {"code": XSS[:40]}, form="/documents/verify"),
            submit(visitor, "/account/forgot-password", {"email": XSS}),
            visitor.get(f"/account/verify-email?{httpx.QueryParams(token=XSS)}"),
            visitor.get(f"/account/reset-password?{httpx.QueryParams(token=XSS)}"),
            visitor.get(f"/sign-in?{httpx.QueryParams(next='/' + XSS)}"),
        ]
        names = {"given_names": XSS, "family_name": XSS, "city": XSS, "line1": XSS}
        answers.append(submit(visitor, "/register", names))
        for answer in answers:
            assert answer.status_code < 500, answer.url
            assert_no_raw_markup(answer.text)


# -- files that are not what they say ------------------------------------------------------

SVG = b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>'
HTML = b"<!doctype html><script>alert(1)</script>"


@pytest.mark.parametrize(
    ("name", "content", "kind"),
    [
        ("photo.png", SVG, "image/png"),
        ("photo.svg", SVG, "image/svg+xml"),
        ("photo.jpg", HTML, "image/jpeg"),
        ("page.html", HTML, "text/html"),
        ("bilan.pdf", HTML, "application/pdf"),
    ],
)
def test_an_svg_or_html_file_disguised_as_an_image_is_refused(
    web: Env, name: str, content: bytes, kind: str
) -> None:
    with browser(web, web.user()) as patient:
        answer = submit(
            patient,
            "/patient/consultations/new",
            {
                "specialty": "general-practice",
                "subject": "Plaques rouges sur le bras",
                "description": "Depuis cinq jours, des plaques qui grattent le soir.",
            },
            files=[("files", (name, content, kind))],
        )
        assert answer.status_code == 422, answer.status_code
        assert 'role="alert"' in answer.text
        assert "/patient/consultations/" not in answer.headers.get("location", "")


def test_a_png_carrying_html_after_its_image_is_shown_without_it(web: Env) -> None:
    with browser(web, web.user()) as patient:
        consultation_id = open_consultation(
            patient, files=[("files", ("photo.png", png_bytes() + HTML, "image/png"))]
        )
        path = f"/patient/consultations/{consultation_id}"
        (link,) = set(
            re.findall(r'href="(/patient/[^"]+/attachments/[0-9a-f-]{36})"', patient.get(path).text)
        )
        for shown in (patient.get(link), patient.get(f"{link}/view")):
            assert shown.status_code == 200
            assert shown.headers["content-type"] == "image/png"
            assert b"<script" not in shown.content
            assert shown.headers["x-content-type-options"] == "nosniff"


# -- staff pages' ids that name nothing ----------------------------------------------------


@pytest.mark.parametrize("role", [Role.DPO, Role.ADMIN], ids=lambda r: r.value)
def test_staff_ids_that_name_nothing_are_not_found_on_every_path_and_form(
    web: Env, role: Role
) -> None:
    with browser(web, web.user(role)) as staff:
        token = staff.cookies.get(cookies.CSRF)
        for route in page_routes(web.app):
            roles = roles_of(route)
            if roles is None or role not in roles or "{" not in route.path:
                continue
            path = concrete(route.path)
            for method in sorted(route.methods & {"GET", "POST"}):
                answer = staff.request(
                    method, path, data={csrf.FIELD: token}, headers={"Origin": BASE}
                )
                assert answer.status_code == 404, (method, path, answer.status_code)
                assert answer.headers["content-type"].startswith("text/html")
                assert_security_headers(answer.headers)


# -- another site's forms ------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        {"Sec-Fetch-Site": "cross-site", "Origin": BASE},
        {"Sec-Fetch-Site": "same-site", "Origin": BASE},
        {"Origin": "https://evil.example"},
        {"Origin": "null"},
        {"Origin": "https://testserver.evil.example"},
        {"Origin": "http://testserver"},
    ],
    ids=["cross-site", "same-site", "other-origin", "null-origin", "suffix", "plain-http"],
)
def test_a_form_posted_from_another_site_is_refused_even_with_the_token(
    web: Env, headers: dict[str, str]
) -> None:
    """Login CSRF included: the token alone is not enough when the browser says the
    form comes from elsewhere."""
    user = web.user()
    with browser(web) as victim:
        token = token_of(victim)
        signed = victim.post(
            "/sign-in",
            data={csrf.FIELD: token, "email": user.email, "password": user.password},
            headers=headers,
        )
        assert signed.status_code == 403
        assert not victim.cookies.get(cookies.SESSION)
        sign_in(victim, user)
        token = victim.cookies.get(cookies.CSRF)
        for path, data in (
            ("/language", {"to": "en", "next": "/"}),
            ("/sign-out", {}),
            ("/patient/consultations/new", {"subject": "x"}),
        ):
            answer = victim.post(path, data={csrf.FIELD: token, **data}, headers=headers)
            assert answer.status_code == 403, (path, answer.status_code)
        assert victim.get("/patient").status_code == 200  # still signed in


def test_changing_the_password_ends_a_thiefs_copy_of_the_session(web: Env) -> None:
    user = web.user()
    with browser(web, user) as holder, browser(web, user) as thief:
        assert thief.get("/patient").status_code == 200
        changed = submit(
            holder,
            "/account/password",
            {"current_password": user.password, "new_password": "Une phrase neuve et longue 7"},
        )
        assert changed.status_code == 303, changed.text[:500]
        assert holder.get("/patient").status_code == 200
        answer = thief.get("/patient")
        assert answer.status_code == 303
        assert answer.headers["location"].startswith("/sign-in")


def test_incident_fields_with_html_are_escaped_on_every_dpo_page(web: Env) -> None:
    with browser(web, web.user(Role.DPO)) as dpo:
        opened = submit(dpo, "/dpo/incidents", {"title": f"Vol {XSS}", "summary": f"Résumé {XSS}"})
        assert opened.status_code == 303, opened.text[:500]
        url = opened.headers["location"].split("?")[0]
        page = dpo.get(url)
        version = re.search(r'name="version" value="(\d+)"', page.text)
        assert version is not None
        amended = submit(
            dpo,
            f"{url}/amend",
            {
                "version": version.group(1),
                "cause": f"Cause {XSS}",
                "consequences": f"Conséquences {XSS}",
                "dpo_name": f"Claire {XSS}",
                "dpo_email": "dpo@example.org",
            },
            form=url,
        )
        assert amended.status_code == 303, amended.text[:500]
        for path in ("/dpo/incidents", url, f"{url}/dossier", "/dpo"):
            answer = dpo.get(path)
            assert answer.status_code == 200, path
            assert_no_raw_markup(answer.text)
        assert "Cause &#34;&gt;&lt;script&gt;" in dpo.get(url).text
        pdf = dpo.get(f"{url}/dossier.pdf")
        assert pdf.status_code == 200
        assert pdf.headers["content-disposition"].startswith("attachment;")


@pytest.mark.parametrize(
    "name",
    [
        '../../etc/evil".pdf',
        "..\\..\\windows\\evil.pdf",
        "bilan\"; filename*=UTF-8''evil.html; x=\".pdf",
        "bilan\u202egnp.pdf",
        "ordonnance été.pdf",
    ],
)
def test_an_attachments_name_cannot_reach_out_of_its_content_disposition(
    web: Env, name: str
) -> None:
    with browser(web, web.user()) as patient:
        consultation_id = open_consultation(
            patient, files=[("files", (name, pdf_bytes(), "application/pdf"))]
        )
        path = f"/patient/consultations/{consultation_id}"
        (link,) = set(
            re.findall(r'href="(/patient/[^"]+/attachments/[0-9a-f-]{36})"', patient.get(path).text)
        )
        download = patient.get(link)
        assert download.status_code == 200
        disposition = download.headers["content-disposition"]
        found = re.fullmatch(
            r'attachment; filename="([^"\\]*)"; filename\*=UTF-8\'\'([^;"\s]+)', disposition
        )
        assert found is not None, disposition
        fallback, encoded = found.groups()
        for separator in ("/", "\\"):
            assert separator not in fallback, disposition
        for separator in ("%2F", "%5C"):
            assert separator not in encoded.upper(), disposition
        assert "%E2%80%AE" not in encoded.upper(), disposition  # no right-to-left override
        assert len(download.headers.get_list("set-cookie")) == 0


def test_switching_language_on_an_emailed_links_page_keeps_the_link(web: Env) -> None:
    """The switch goes back to the page with its query (an emailed link's token), and
    nowhere else."""
    with browser(web) as visitor:
        here = f"/account/reset-password?{httpx.QueryParams(token='abc-123')}"
        page = visitor.get(here)
        found = re.search(r'name="next" value="([^"]*)"', page.text)
        assert found is not None
        assert found.group(1).replace("&amp;", "&") == here
        switched = submit(visitor, "/language", {"to": "en", "next": found.group(1)}, form=here)
        assert switched.status_code == 303
        assert switched.headers["location"] == here


def test_a_page_number_out_of_range_is_refused_not_a_server_error(web: Env) -> None:
    with browser(web, web.user(Role.ADMIN)) as admin:
        for offset in ("-1", str(10**30), "x"):
            answer = admin.get(f"/admin/practitioners?offset={offset}")
            assert answer.status_code in (200, 422), (offset, answer.status_code)
            assert_security_headers(answer.headers)
    with browser(web, web.user()) as patient:
        for query in ("offset=-1", f"offset={10**30}", "limit=100000", "limit=0"):
            for path in ("/patient", "/patient/access"):
                answer = patient.get(f"{path}?{query}")
                assert answer.status_code == 422, (path, query, answer.status_code)


@pytest.mark.parametrize("count", ["9" * 30, "9" * 5000, "-1", "1e3", "\u00b2"])
def test_an_incidents_counts_out_of_range_are_refused_not_a_server_error(
    web: Env, count: str
) -> None:
    with browser(web, web.user(Role.DPO)) as dpo:
        opened = submit(dpo, "/dpo/incidents", {"title": "Ordinateur volé"})
        url = opened.headers["location"].split("?")[0]
        version = re.search(r'name="version" value="(\d+)"', dpo.get(url).text)
        assert version is not None
        for field in ("people_count", "records_count"):
            answer = submit(
                dpo, f"{url}/amend", {"version": version.group(1), field: count}, form=url
            )
            assert answer.status_code == 422, (field, answer.status_code)
            assert 'role="alert"' in answer.text


@pytest.mark.parametrize(
    ("action", "fields"),
    [
        ("amend", {"version": "\u00b2"}),
        ("amend", {"version": "9" * 5000}),
        ("amend", {"version": "9" * 30}),
        ("assessment", {"category": "\u00b2"}),
        ("assessment", {"category": "9" * 5000}),
        ("notices", {"version": "\u00b2"}),
        ("close", {"version": "9" * 30}),
    ],
)
def test_the_incident_forms_refuse_odd_numbers_instead_of_failing(
    web: Env, action: str, fields: dict[str, str]
) -> None:
    with browser(web, web.user(Role.DPO)) as dpo:
        opened = submit(dpo, "/dpo/incidents", {"title": "Ordinateur volé"})
        url = opened.headers["location"].split("?")[0]
        version = re.search(r'name="version" value="(\d+)"', dpo.get(url).text)
        assert version is not None
        answer = submit(dpo, f"{url}/{action}", {"version": version.group(1), **fields}, form=url)
        assert 400 <= answer.status_code < 500, answer.status_code
        assert 'role="alert"' in answer.text


@pytest.mark.parametrize("moment", ["0001-01-01T00:00", "9999-12-31T23:59", "2026-02-30T10:00"])
def test_an_awareness_time_at_the_edge_of_the_calendar_is_refused(web: Env, moment: str) -> None:
    with browser(web, web.user(Role.DPO)) as dpo:
        answer = submit(dpo, "/dpo/incidents", {"title": "Ordinateur volé", "awareness_at": moment})
        assert 400 <= answer.status_code < 500, answer.status_code
        assert 'role="alert"' in answer.text


ODD = (
    "\u00b2" * 6,
    "9" * 5000,
    "\x00",
    "Urgence vitale signalée par le centre 15,\x00 patiente inconsciente",
    "\u202e" * 3,
    "-1",
    " ",
)


def test_odd_values_in_every_form_are_refused_not_a_server_error(web_on: Env) -> None:
    web = web_on
    patient_user = web.user()
    with browser(web, patient_user) as patient:
        consultation_id = open_consultation(patient)
        record = f"/patient/consultations/{consultation_id}"
        for value in ODD:
            for path, data in (
                ("/patient/consultations/new", {"specialty": value, "subject": value}),
                (
                    "/patient/consultations/new",
                    {"specialty": "general-practice", "subject": "Une gêne", "q_pregnancy": value},
                ),
                (f"{record}/messages", {"body": value}),
                ("/account/password", {"current_password": value, "new_password": value}),
                ("/account/second-factor", {"code": value, "password": value}),
                ("/patient/account/delete", {"password": value, "code": value}),
                ("/language", {"to": value, "next": value}),
            ):
                answer = submit(patient, path, data, form="/patient")
                assert answer.status_code < 500, (path, value[:8], answer.status_code)
    with browser(web, web.user(Role.PRACTITIONER)) as doctor:
        record = f"/practitioner/consultations/{take(doctor)}"
        for value in ODD:
            for path, data in (
                (f"{record}/close", {"report": "Compte rendu", "acts": value}),
                (f"{record}/close", {"report": value, "acts": "TCG", "prescription": value}),
                (f"{record}/hand-back", {"reason": value}),
                (f"{record}/messages", {"body": value}),
            ):
                answer = submit(doctor, path, data, form=record)
                assert answer.status_code < 500, (path, value[:8], answer.status_code)
    with browser(web, web.user(Role.ADMIN)) as admin:
        for value in ODD:
            for path, data in (
                (
                    "/admin/break-glass",
                    {"patient_id": str(patient_user.patient_id), "reason": value, "minutes": value},
                ),
                ("/admin/break-glass", {"patient_id": value, "reason": "x" * 30, "minutes": "10"}),
                ("/admin/practitioners", {"email": value, "rpps": value, "specialty": value}),
                ("/admin/practitioners", {**NEW_PRACTITIONER, "given_names": value}),
                ("/admin/practitioners", {**NEW_PRACTITIONER, "family_name": value}),
            ):
                answer = submit(admin, path, data, form="/admin")
                assert answer.status_code < 500, (path, value[:8], answer.status_code)
    with browser(web) as visitor:
        for value in ODD:
            for path, data in (
                ("/sign-in", {"email": value, "password": value, "next": value}),
                ("/account/forgot-password", {"email": value}),
                ("/account/verify-email", {"token": value}),
                ("/account/reset-password", {"token": value, "password": value, "code": value}),
                ("/documents/verify/code", {"code": value[:40]}),
                ("/verifier", {"text": value}),
            ):
                answer = submit(visitor, path, data, form="/sign-in")
                assert answer.status_code < 500, (path, value[:8], answer.status_code)


def test_odd_values_in_the_dpos_forms_are_refused_not_a_server_error(web_on: Env) -> None:
    web = web_on
    deep = '{"a":' * 50_000 + "1" + "}" * 50_000
    with browser(web, web.user(Role.DPO)) as dpo:
        opened = submit(dpo, "/dpo/incidents", {"title": "Ordinateur volé"})
        url = opened.headers["location"].split("?")[0]
        for action, data in (
            ("amend", {"patch": "[" * 100_000}),
            ("amend", {"patch": deep}),
            ("amend", {"patch": '{"general": ' * 500 + "1" + "}" * 500}),
            ("amend", {"patch": '{"data": {"people_count": 1e999}}'}),
            ("amend", {"patch": '{"general": {"title": "\\u0000"}}'}),
            ("amend", {"awareness_at": "0001-01-01T00:00"}),
            ("scope", {"since": "0001-01-01T00:00", "until": "9999-12-31T23:59"}),
            ("scope", {"kind": "\u00b2", "since": "x"}),
            ("notifications", {"phase": "\u00b2", "sent_at": "0001-01-01T00:00"}),
            ("notifications", {"phase": "initial", "sent_at": "9999-12-31T23:59"}),
            ("close", {"note": "\x00"}),
            ("amend", {"cause": "Session volée\x00 d'un praticien"}),
            ("reopen", {"note": "9" * 5000}),
            ("notices", {"voluntary_reason": "\u202e" * 3}),
        ):
            page = dpo.get(url)
            version = re.search(r'name="version" value="(\d+)"', page.text)
            assert version is not None
            answer = submit(dpo, f"{url}/{action}", {"version": version.group(1), **data}, form=url)
            assert answer.status_code < 500, (action, answer.status_code)


@pytest.mark.parametrize(
    "changes",
    [
        {"birth_date": "0001-01-01"},
        {"birth_date": "9999-12-31"},
        {"birth_date": "\u00b2\u00b2\u00b2\u00b2-01-01"},
        {"sex": "\u00b2"},
        {"nir": "\u00b2" * 15},
        {"nir": "9" * 320},
        {"country": "\x00\x00"},
        {"given_names": "Camille\x00 Eve", "city": "Lyon\x00"},
        {"postal_code": "\u202e" * 5},
        {"phone": "9" * 320},
        {"email": "a@" + "b" * 300 + ".fr"},
    ],
)
def test_odd_values_at_registration_are_refused_not_a_server_error(
    web_on: Env, changes: dict[str, str]
) -> None:
    web = web_on
    with browser(web) as visitor:
        form = {**registration("odd.values@example.org"), **changes}
        answer = submit(visitor, "/register", form)
        assert answer.status_code in (303, 422), answer.status_code


@pytest.mark.parametrize("role", [*ROLES, None], ids=lambda r: r.value if r else "anonymous")
def test_odd_query_values_on_every_page_are_refused_not_a_server_error(
    web: Env, role: Role | None
) -> None:
    names = ("done", "next", "offset", "limit", "specialty", "changed", "seen", "token", "sent")
    with browser(web, web.user(role) if role else None) as client:
        for route in page_routes(web.app):
            if "GET" not in route.methods:
                continue
            roles = roles_of(route)
            if roles is not None and (role is None or role not in roles):
                continue
            for value in ("\u00b2", "9" * 5000, "\x00", "true"):
                query = httpx.QueryParams(dict.fromkeys(names, value))
                answer = client.get(f"{concrete(route.path)}?{query}")
                assert answer.status_code < 500, (route.path, value[:8], answer.status_code)


def test_the_apis_incident_note_with_a_nul_is_refused(web_on: Env) -> None:
    headers = web_on.login(web_on.user(Role.DPO))
    opened = web_on.client.post(
        "/api/v1/incidents", headers=headers, json={"details": {"general": {"title": "Vol"}}}
    )
    assert opened.status_code == 201, opened.text
    incident = opened.json()
    closed = web_on.client.post(
        f"/api/v1/incidents/{incident['id']}/close",
        headers=headers,
        json={"version": incident["version"], "note": "clos\x00"},
    )
    assert closed.status_code == 422, closed.status_code
