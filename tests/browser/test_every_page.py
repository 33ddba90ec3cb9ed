"""Every page of the app in Chromium, for the role it serves, in a world where each has
something to show (a closed consultation with files and signed documents, one waiting
in the queue, an incident, a four-eyes request): axe-core finds no serious or critical
violation on any of them, nothing the pages load fails or is refused by the CSP, and on
a phone's screen no page is wider than the screen.
The pages are found by walking the routers the app mounts (``hippocrate.app.PAGES``),
so a page added tomorrow is checked too."""

from __future__ import annotations

import re

import pytest
from fastapi.routing import APIRoute
from playwright.sync_api import Browser, Page

from hippocrate.guard.documents import png_bytes
from hippocrate.identity.models import Role
from tests.browser.conftest import Site, check_accessibility, new_page, no_console_errors
from tests.identity.helpers import TestUser, totp_code
from tests.web.conftest import page_client, sign_in, submit
from tests.web.test_admin_pages import NEW as NEW_PRACTITIONER
from tests.web.test_consultation_pages import ANSWERS
from tests.web.test_page_access import needs_principal, page_routes, roles_of

# Answers that are not pages: files, and what a page shows inline.
NOT_PAGES = re.compile(r"(\.json|\.pdf|/attachments/\{attachment_id\}(/view)?|/static/.*|\.ico)$")

FORM = {
    "specialty": "general-practice",
    "subject": "Toux persistante",
    "description": "Une toux sèche depuis trois semaines.",
}


def _world(site: Site, people: dict[Role, TestUser]) -> dict[str, str]:
    """Something for every page to show; the ids the pages' paths name."""
    app = site.env.app
    with page_client(app) as patient, page_client(app) as doctor:
        sign_in(patient, people[Role.PATIENT])
        answers = ANSWERS
        photo = [("files", ("gorge.png", png_bytes("gorge"), "image/png"))]
        opened = submit(patient, "/patient/consultations/new", FORM | answers, files=photo)
        assert opened.status_code == 303, opened.text[:500]
        consultation = opened.headers["location"].rsplit("/", 1)[1].split("?")[0]
        sign_in(doctor, people[Role.PRACTITIONER])
        taken = submit(doctor, "/practitioner/queue/take", {}, form="/practitioner")
        assert taken.status_code == 303, taken.text[:500]
        base = f"/practitioner/consultations/{consultation}"
        closed = submit(
            doctor,
            f"{base}/close",
            {"report": "Toux post-virale.", "prescription": "Sirop, 5 jours", "acts": "TCG"},
            form=base,
        )
        assert closed.status_code == 303, closed.text[:500]
        waiting = submit(patient, "/patient/consultations/new", FORM | answers)
        assert waiting.status_code == 303
        shown = patient.get(f"/patient/consultations/{consultation}").text
        attachment = re.findall(r"/attachments/([0-9a-f-]{36})", shown)[0]
    with page_client(app) as dpo, page_client(app) as admin:
        sign_in(dpo, people[Role.DPO])
        incident = submit(
            dpo, "/dpo/incidents", {"title": "Essai", "summary": "Un incident d'essai."}
        )
        assert incident.status_code == 303, incident.text[:500]
        sign_in(admin, people[Role.ADMIN])
        assert submit(admin, "/admin/practitioners", NEW_PRACTITIONER).status_code == 303
    return {
        "consultation_id": consultation,
        "attachment_id": attachment,
        "incident_id": incident.headers["location"].rsplit("/", 1)[1].split("?")[0],
    }


def _sign_in(page: Page, site: Site, user: TestUser) -> None:
    page.context.clear_cookies()
    page.goto(site.at("/sign-in"))
    page.locator("#email").fill(user.email)
    page.locator("#password").fill(user.password)
    with page.expect_navigation():
        page.keyboard.press("Enter")
    if "/sign-in/code" in page.url:
        assert user.totp_secret is not None
        page.locator("#code").fill(totp_code(user.totp_secret))
        with page.expect_navigation():
            page.keyboard.press("Enter")


def _path(route: APIRoute, ids: dict[str, str]) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: ids[m.group(1)], route.path)


def _visit(page: Page, url: str, seen: list[str]) -> None:
    answer = page.goto(url)
    assert answer is not None
    assert answer.status < 500, url
    if "text/html" in (answer.headers.get("content-type") or ""):
        check_accessibility(page)
        seen.append(url)


@pytest.mark.slow
def test_every_page_passes_axe_core_for_the_role_it_serves(site: Site, browser: Browser) -> None:
    people = {
        role: site.env.user(
            role, **({"specialty": "general-practice"} if role is Role.PRACTITIONER else {})
        )
        for role in (Role.PATIENT, Role.PRACTITIONER, Role.DPO, Role.ADMIN, Role.SUPPORT)
    }
    ids = _world(site, people)
    routes = [
        r for r in page_routes(site.env.app) if "GET" in r.methods and not NOT_PAGES.search(r.path)
    ]
    page = new_page(browser)
    seen: list[str] = []
    for route in routes:
        if not needs_principal(route):
            _visit(page, site.at(_path(route, ids)), seen)
    for role, user in people.items():
        mine = [r for r in routes if role in (roles_of(r) or ())]
        if not mine:
            continue
        _sign_in(page, site, user)
        for route in mine:
            _visit(page, site.at(_path(route, ids)), seen)
    no_console_errors(page)
    assert len(seen) >= 30, seen

    # On a phone's screen, no page is wider than the screen.
    phone = browser.new_context(locale="fr-FR", viewport={"width": 375, "height": 740}).new_page()
    wider = []
    for role, user in people.items():
        _sign_in(phone, site, user)
        for route in routes:
            if role in (roles_of(route) or ()):
                phone.goto(site.at(_path(route, ids)))
                width, screen = phone.evaluate(
                    "[document.documentElement.scrollWidth, window.innerWidth]"
                )
                if width > screen:
                    wider.append((route.path, width))
    assert wider == []
