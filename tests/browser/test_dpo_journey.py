"""The DPO's journey in Chromium: a stolen practitioner session, contained by the
guard, shows on the alerts; the DPO opens its incident, computes its scope from the
trail, records the assessment, downloads the dossier and asks for the notices; a
second DPO approves them; once the queue has run, the page shows them sent. No page
names a patient, every page passes axe-core and the CSP refuses nothing."""

from __future__ import annotations

import re
from pathlib import Path

from playwright.sync_api import Browser, Page, expect

from hippocrate.breach import jobs
from hippocrate.identity.models import Role
from hippocrate.notify import delivery
from tests.breach.attacks import stolen_practitioner_session
from tests.browser.conftest import (
    check_accessibility,
    free_port,
    new_page,
    no_console_errors,
    served,
)
from tests.conftest import Store
from tests.guard.helpers import Api, exposed, guarded_api, staff_member
from tests.identity.helpers import TestUser, fast_password_hashing, totp_code
from tests.web.test_dpo_pages import ASSESSED, local


def _sign_in(page: Page, url: str, user: TestUser, api: Api) -> None:
    assert user.totp_secret is not None
    page.goto(f"{url}/sign-in")
    page.locator("#email").fill(user.email)
    page.locator("#password").fill(user.password)
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(r"/sign-in/code"))
    page.locator("#code").fill(totp_code(user.totp_secret, now=api.clock.now))
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(r"/dpo$"))


def _submit(page: Page, action: str) -> None:
    page.locator(f"main form[action$='{action}'] button[type=submit]").click()
    page.wait_for_load_state()


def test_the_dpo_answers_a_contained_intrusion_in_a_browser(
    store: Store, tmp_path: Path, browser: Browser
) -> None:
    port = free_port()
    with (
        fast_password_hashing(),
        guarded_api(store, tmp_path, public_url=f"http://localhost:{port}") as api,
    ):
        theft = stolen_practitioner_session(api, 25)
        with served(api.client.app, port) as url:
            first, second = new_page(browser), new_page(browser)
            _sign_in(first, url, staff_member(api, Role.DPO), api)
            check_accessibility(first)
            alert = first.locator("main a[href^='/dpo/incidents/']").first
            expect(alert).to_be_visible()
            alert.click()
            expect(first).to_have_url(re.compile(r"/dpo/incidents/[0-9a-f-]{36}$"))
            incident = first.url
            check_accessibility(first)

            first.locator("#scope-since").fill(local(theft.stolen_at))
            _submit(first, "/scope")
            first.locator("details:has(form[action$='/assessment']) > summary").click()
            for name, value in ASSESSED.items():
                field = first.locator(f"form[action$='/assessment'] [name='{name}']")
                if field.evaluate("e => e.tagName") == "SELECT":
                    field.select_option(value)
                else:
                    field.fill(value)
            _submit(first, "/assessment")
            expect(first.locator("main")).to_contain_text("consultation content: health data")
            check_accessibility(first)

            with first.expect_download() as download:
                first.locator("main a[href$='/dossier.pdf']").click()
            printed = download.value.path()
            assert printed is not None
            assert Path(printed).read_bytes()[:5] == b"%PDF-"
            first.goto(incident + "/dossier")
            check_accessibility(first)
            first.goto(incident)

            _submit(first, "/notices")
            check_accessibility(first)
            _submit(first, "/notices/approve")  # four eyes: not the one who asked
            expect(first.get_by_role("alert")).to_be_visible()
            check_accessibility(first)

            _sign_in(second, url, staff_member(api, Role.DPO), api)
            second.goto(incident)
            _submit(second, "/notices/approve")
            delivery.drain()
            jobs.run_pending(jobs.open_queue(api.client.app.state.runtime))  # type: ignore[attr-defined]
            second.reload()
            sent = second.locator("dt:has-text('Envoyés') + dd, dt:has-text('Sent') + dd")
            expect(sent).not_to_have_text("0")
            check_accessibility(second)
            assert exposed([first.content(), second.content()], theft.cases) == set()
            for page in (first, second):
                no_console_errors(page)
