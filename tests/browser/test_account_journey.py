"""The account's pages in Chromium, as a patient and a staff member go through them:
rendered under the CSP with nothing refused, usable from labels alone, and passing
axe-core (no serious or critical violation) at every step."""

from __future__ import annotations

import re

import pyotp
from playwright.sync_api import Page, expect

from hippocrate.identity.models import Role
from tests.browser.conftest import Site, check_accessibility, no_console_errors
from tests.identity.conftest import link_token
from tests.identity.helpers import patient_data

PASSWORD = "velvet-otter-marches-north"


def _secret(page: Page) -> str:
    return page.locator("#secret").inner_text().replace(" ", "")


def test_a_patient_registers_verifies_sets_up_a_second_factor_and_reads_their_pages(
    site: Site, page: Page
) -> None:
    data = patient_data(email="camille.browser@example.org")
    page.goto(site.at("/register"))
    check_accessibility(page)
    page.get_by_label("Prénoms").fill(data.given_names)
    page.get_by_label("Nom de famille").fill(data.family_name)
    page.get_by_label("Date de naissance").fill(data.birth_date.isoformat())
    page.get_by_label("Sexe").select_option(data.sex)
    page.get_by_label("Adresse e-mail").fill(data.email)
    page.get_by_label("Numéro de téléphone").fill("0612")  # refused at its field
    page.get_by_label("Adresse", exact=True).fill(data.address.line1)
    page.get_by_label("Code postal").fill(data.address.postal_code)
    page.get_by_label("Ville").fill(data.address.city)
    page.get_by_label("Mot de passe").fill(PASSWORD)
    page.get_by_role("button", name="Créer mon compte").click()
    expect(page.get_by_role("alert")).to_be_visible()
    expect(page.locator("#phone")).to_have_attribute("aria-invalid", "true")
    check_accessibility(page)
    page.get_by_label("Numéro de téléphone").fill(data.phone)
    page.get_by_label("Mot de passe").fill(PASSWORD)
    page.get_by_role("button", name="Créer mon compte").click()
    expect(page).to_have_url(re.compile(r"/register\?sent=true$"))
    check_accessibility(page)

    [message] = site.env.emails_to(data.email)
    page.goto(site.at(f"/account/verify-email?token={link_token(message)}"))
    check_accessibility(page)
    page.get_by_role("button").filter(has_text=re.compile("adresse", re.I)).first.click()
    expect(page).to_have_url(re.compile(r"/sign-in\?verified=true$"))
    expect(page.get_by_role("status")).to_be_visible()
    check_accessibility(page)
    page.get_by_label("Adresse e-mail").fill(data.email)
    page.get_by_label("Mot de passe").fill(PASSWORD)
    page.get_by_role("button", name="Se connecter").click()
    expect(page).to_have_url(re.compile(r"/patient$"))

    page.goto(site.at("/patient/account"))
    check_accessibility(page)
    page.get_by_role("link", name=re.compile("second facteur", re.I)).first.click()
    expect(page.locator(".qr svg")).to_be_visible()
    check_accessibility(page)
    page.get_by_label("Code").fill(pyotp.TOTP(_secret(page)).now())
    page.get_by_label("Mot de passe").fill(PASSWORD)  # a stolen session alone cannot
    page.get_by_role("button").filter(has_text=re.compile("second facteur", re.I)).click()
    expect(page.locator("ul.codes li").first).to_be_visible()
    check_accessibility(page)

    for path in ("/patient/access", "/account/password", "/account/recovery-codes",
                 "/account/second-factor/disable", "/patient/account/delete"):  # fmt: skip
        page.goto(site.at(path))
        expect(page.locator("h1")).to_be_visible()
        check_accessibility(page)
    page.goto(site.at("/account/password"))
    page.get_by_label("Mot de passe actuel").fill("not-the-password")
    page.get_by_label("Nouveau mot de passe").fill("another-long-passphrase-1")
    page.get_by_role("button").filter(has_text=re.compile("mot de passe", re.I)).click()
    expect(page.get_by_role("alert")).to_be_visible()
    check_accessibility(page)
    no_console_errors(page)


def test_a_staff_member_sets_up_the_second_factor_at_first_sign_in(site: Site, page: Page) -> None:
    user = site.env.user(Role.PRACTITIONER, totp=False)
    page.goto(site.at("/sign-in"))
    page.get_by_label("Adresse e-mail").fill(user.email)
    page.get_by_label("Mot de passe").fill(user.password)
    page.get_by_role("button", name="Se connecter").click()
    expect(page).to_have_url(re.compile("/account/second-factor$"))
    check_accessibility(page)
    page.get_by_label("Code").fill("000000")
    page.get_by_role("button").filter(has_text=re.compile("second facteur", re.I)).click()
    expect(page.get_by_role("alert")).to_be_visible()
    check_accessibility(page)
    page.get_by_label("Code").fill(pyotp.TOTP(_secret(page)).now())
    page.get_by_role("button").filter(has_text=re.compile("second facteur", re.I)).click()
    expect(page.locator("ul.codes li").first).to_be_visible()
    page.get_by_role("link", name=re.compile(".")).last.click()
    page.goto(site.at("/practitioner/account"))
    expect(page.locator("h1")).to_be_visible()
    check_accessibility(page)
    no_console_errors(page)
