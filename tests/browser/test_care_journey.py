"""The care journey in Chromium, as people live it: a patient registers, confirms the
address from the email, signs in and opens a consultation with a photo; a practitioner
signs in with a TOTP code, finds it in the queue without its subject, takes it, answers
and closes it with a report and a prescription; the patient reads the answer and the
report and downloads the signed prescription. Every page passes axe-core and the CSP
refuses nothing."""

from __future__ import annotations

import re

import pyotp
from playwright.sync_api import Browser, Page, expect

from hippocrate.guard.documents import png_bytes
from hippocrate.identity.models import Role
from tests.browser.conftest import Site, check_accessibility, new_page, no_console_errors
from tests.identity.conftest import text_of
from tests.identity.helpers import TestUser

PASSWORD = "un-mot-de-passe-assez-long-42"
SUBJECT = "Plaque rouge sur l'avant-bras"


def _register(site: Site, page: Page, email: str) -> None:
    page.goto(site.at("/"))
    check_accessibility(page)
    page.get_by_role("link", name="Créer un compte").first.click()
    check_accessibility(page)
    for field, value in {
        "given_names": "Lucie",
        "family_name": "Marchand",
        "birth_date": "1988-06-14",
        "email": email,
        "phone": "06 12 34 56 78",
        "line1": "12 rue des Lilas",
        "postal_code": "69003",
        "city": "Lyon",
        "password": PASSWORD,
    }.items():
        page.locator(f"#{field}").fill(value)
    page.locator("#sex").select_option("F")
    page.get_by_role("button", name="Créer mon compte").click()
    expect(page.locator("h1")).to_have_text("Consultez vos e-mails")
    check_accessibility(page)


def _confirm_from_the_email(site: Site, page: Page, email: str) -> None:
    [message] = site.env.emails_to(email)
    links = re.findall(r"https?://\S+", text_of(message))
    [link] = [u for u in links if "/account/verify-email?token=" in u]
    assert link.startswith(site.url + "/")
    page.goto(link)
    check_accessibility(page)
    page.locator("main form button[type=submit]").click()
    expect(page.get_by_role("status").or_(page.locator(".flash-success"))).to_be_visible()
    check_accessibility(page)


def _sign_in(site: Site, page: Page, email: str, password: str, secret: str | None = None) -> None:
    page.goto(site.at("/sign-in"))
    page.get_by_label("Adresse e-mail").fill(email)
    page.get_by_label("Mot de passe").fill(password)
    page.get_by_role("button", name="Se connecter").click()
    if secret is not None:
        expect(page).to_have_url(re.compile(r"/sign-in/code"))
        check_accessibility(page)
        page.get_by_label("Code").fill(pyotp.TOTP(secret).now())
        page.keyboard.press("Enter")


def _open_consultation(page: Page) -> None:
    page.get_by_role("link", name="Nouvelle consultation").first.click()
    check_accessibility(page)
    page.locator("#specialty").select_option("general-practice")
    page.locator("#subject").fill(SUBJECT)
    page.locator("#description").fill("Depuis cinq jours, une plaque rouge qui gratte.")
    for select in page.locator("fieldset select").all():
        select.select_option(index=1)
    for field in page.locator("fieldset input").all():
        field.fill("aucun")
    page.locator("#files").set_input_files(
        [{"name": "bras.png", "mimeType": "image/png", "buffer": png_bytes("bras")}]
    )
    page.get_by_role("button", name="Ouvrir la consultation").click()
    expect(page.locator("h1")).to_contain_text(SUBJECT)
    check_accessibility(page)


def _practitioner_answers_and_closes(site: Site, page: Page, doctor: TestUser) -> None:
    assert doctor.totp_secret is not None
    _sign_in(site, page, doctor.email, doctor.password, doctor.totp_secret)
    expect(page).to_have_url(re.compile(r"/practitioner$"))
    check_accessibility(page)
    assert SUBJECT not in page.content()  # the queue shows waiting times only
    page.get_by_role("button", name="Prendre la consultation suivante").click()
    expect(page.locator("main")).to_contain_text(SUBJECT)
    expect(page.locator("main")).to_contain_text("Lucie")
    check_accessibility(page)
    page.locator("#body").fill("Bonjour, pouvez-vous préciser si la plaque s'étend ?")
    page.get_by_role("button", name="Envoyer").click()
    expect(page.locator("main")).to_contain_text("pouvez-vous préciser")
    page.locator("#report").fill("Eczéma de contact probable. Revoir si aggravation.")
    page.locator("#prescription").fill("Crème émolliente, deux fois par jour, 15 jours")
    page.locator("#acts").fill("TCG")
    page.get_by_role("button", name="Clôturer et signer les documents").click()
    expect(page.locator("main")).to_contain_text("Eczéma de contact probable")
    check_accessibility(page)


def test_a_patient_and_a_practitioner_through_a_whole_consultation(
    site: Site, browser: Browser
) -> None:
    email = "lucie.marchand@example.org"
    doctor = site.env.user(Role.PRACTITIONER, specialty="general-practice")
    patient, practitioner = new_page(browser), new_page(browser)

    _register(site, patient, email)
    _confirm_from_the_email(site, patient, email)
    _sign_in(site, patient, email, PASSWORD)
    expect(patient).to_have_url(re.compile(r"/patient$"))
    check_accessibility(patient)
    _open_consultation(patient)
    here = patient.url

    _practitioner_answers_and_closes(site, practitioner, doctor)

    patient.goto(here)
    expect(patient.locator("main")).to_contain_text("pouvez-vous préciser")
    expect(patient.locator("main")).to_contain_text("Eczéma de contact probable")
    check_accessibility(patient)
    links = patient.locator("main a[download]")
    assert links.count() >= 2  # the report and the prescription, signed
    with patient.expect_download() as download:
        links.last.click()
    path = download.value.path()
    assert path is not None
    with open(path, "rb") as pdf:
        assert pdf.read(5) == b"%PDF-"
    for page in (patient, practitioner):
        no_console_errors(page)
