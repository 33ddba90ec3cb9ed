"""The public pages in Chromium: they render under the CSP with nothing refused, work
from the keyboard, and pass axe-core."""

from __future__ import annotations

from playwright.sync_api import Page, expect

from tests.browser.conftest import Site, check_accessibility, no_console_errors


def test_the_public_pages_are_accessible_and_nothing_is_refused(site: Site, page: Page) -> None:
    for path in ("/", "/sign-in", "/verifier"):
        page.goto(site.at(path))
        expect(page.locator("h1")).to_be_visible()
        check_accessibility(page)
    no_console_errors(page)
    answer = page.goto(site.at("/no-such-page"))
    assert answer is not None
    assert answer.status == 404
    expect(page.locator("h1")).to_be_visible()
    check_accessibility(page)


def test_a_wrong_password_is_said_in_french_and_the_language_can_change(
    site: Site, page: Page
) -> None:
    page.goto(site.at("/sign-in"))
    page.get_by_label("Adresse e-mail").fill("personne@example.org")
    page.get_by_label("Mot de passe").fill("pas-le-bon-mot-de-passe")
    page.keyboard.press("Enter")
    expect(page.get_by_role("alert")).to_be_visible()
    check_accessibility(page)
    page.get_by_role("button", name="English").click()
    expect(page.locator("h1")).to_have_text("Sign in")
    no_console_errors(page)


def test_signing_in_works_from_the_keyboard_alone(site: Site, page: Page) -> None:
    user = site.env.user()
    page.goto(site.at("/sign-in"))
    page.keyboard.press("Tab")
    expect(page.locator(".skip")).to_be_focused()  # the first stop skips the menus
    page.keyboard.press("Enter")
    page.keyboard.press("Tab")
    expect(page.locator("#email")).to_be_focused()
    page.keyboard.type(user.email)
    page.keyboard.press("Tab")
    expect(page.locator("#password")).to_be_focused()
    page.keyboard.type(user.password)
    page.keyboard.press("Tab")
    expect(page.get_by_role("button", name="Se connecter")).to_be_focused()
    with page.expect_navigation():
        page.keyboard.press("Enter")
    expect(page).to_have_url(site.at("/patient"))
    no_console_errors(page)
