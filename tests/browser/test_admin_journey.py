"""The administrators' four-eyes approval in Chromium: one asks for a practitioner's
account, the page says a second administrator must approve; the one who asked cannot;
another approves, and the account exists, its setup link sent to its own address only.
Then break-glass with its reason, which the patient reads in "who accessed my record".
Every page passes axe-core and the CSP refuses nothing."""

from __future__ import annotations

import re

from playwright.sync_api import Browser, Page, expect
from sqlalchemy import select

from hippocrate.identity.models import Account, Role
from tests.browser.conftest import Site, check_accessibility, new_page, no_console_errors
from tests.identity.helpers import TestUser, totp_code
from tests.web.test_admin_pages import NEW

REASON = "Patient inconscient aux urgences, le médecin régulateur demande ses antécédents."


def _sign_in(page: Page, site: Site, user: TestUser) -> None:
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


def test_two_administrators_make_a_practitioner_then_one_opens_break_glass(
    site: Site, browser: Browser
) -> None:
    first, second, patient = new_page(browser), new_page(browser), new_page(browser)
    asker, approver = site.env.user(Role.ADMIN), site.env.user(Role.ADMIN)
    person = site.env.user()

    _sign_in(first, site, asker)
    expect(first).to_have_url(re.compile(r"/admin$"))
    first.goto(site.at("/admin/practitioners"))
    check_accessibility(first)
    for name, value in NEW.items():
        field = first.locator(f"main form [name='{name}']")
        if name == "specialty":
            field.select_option(value)
        else:
            field.fill(value)
    with first.expect_navigation():
        first.locator("main form[action='/admin/practitioners'] button[type=submit]").click()
    check_accessibility(first)

    first.goto(site.at("/admin"))
    check_accessibility(first)
    expect(first.locator("main")).to_contain_text(NEW["specialty"])
    approve = first.locator("main form[action$='/approve'] button[type=submit]")
    if approve.count():  # shown to the asker too: the service refuses them
        approve.first.click()
        expect(first.get_by_role("alert")).to_be_visible()
    assert not site.env.emails_to(NEW["email"])  # nothing is sent before a second yes

    _sign_in(second, site, approver)
    check_accessibility(second)
    with second.expect_navigation():
        second.locator("main form[action$='/approve'] button[type=submit]").first.click()
    check_accessibility(second)
    with site.env.store.sessions() as session:
        made = session.scalars(select(Account).where(Account.role == Role.PRACTITIONER)).all()
    assert len(made) == 1
    assert site.env.emails_to(NEW["email"])  # the setup link, to its own address only
    assert all("token=" not in str(m) for m in site.env.emails_to(asker.email))

    second.goto(site.at("/admin/break-glass"))
    check_accessibility(second)
    second.locator("#patient_id").fill(str(person.patient_id))
    second.locator("#reason").fill(REASON)
    second.locator("#minutes").fill("30")
    with second.expect_navigation():
        second.locator("main form button[type=submit]").click()
    expect(second.locator("main")).to_contain_text(REASON)
    check_accessibility(second)

    _sign_in(patient, site, person)
    patient.goto(site.at("/patient/access"))
    expect(patient.locator("main")).to_contain_text(REASON)
    check_accessibility(patient)
    for page in (first, second, patient):
        no_console_errors(page)
