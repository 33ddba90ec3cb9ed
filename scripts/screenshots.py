"""Screenshots of the main pages, as ``make screenshots`` makes them for the README.

A fresh demo (``hippocrate init`` and ``seed`` in a temporary data folder), served by
``hippocrate serve``; headless Chromium signs in as each role through the pages (the
password, then the TOTP code from the demo credentials file) and photographs what it
sees, in French, into docs/screenshots/. Nothing of this machine is in the pictures:
the data are synthetic.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pyotp
from playwright.sync_api import Page, sync_playwright

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "docs" / "screenshots"
BIN = Path(sys.executable).parent


def _port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _run(env: dict[str, str], *args: str) -> None:
    command = [str(BIN / "hippocrate"), *args]
    subprocess.run(command, env=env, check=True, capture_output=True)  # noqa: S603 - our own


def _sign_in(page: Page, url: str, account: dict[str, str]) -> None:
    page.context.clear_cookies()
    page.goto(f"{url}/sign-in")
    page.locator("#email").fill(account["email"])
    page.locator("#password").fill(account["password"])
    page.locator("form.stack button[type=submit]").click()
    if "/sign-in/code" in page.url:
        page.locator("#code").fill(pyotp.TOTP(account["totp_secret"]).now())
        page.locator("form.stack button[type=submit]").click()
    page.wait_for_load_state()


def _shot(page: Page, url: str, path: str, name: str) -> None:
    page.goto(url + path)
    page.wait_for_load_state()
    page.screenshot(path=str(OUT / f"{name}.png"), full_page=True)
    sys.stdout.write(f"docs/screenshots/{name}.png  {path}\n")


def _first_link(page: Page, prefix: str) -> str | None:
    """The first link of the page to ``prefix`` followed by an id."""
    for link in page.locator(f"main a[href^='{prefix}']").all():
        href = link.get_attribute("href") or ""
        if re.fullmatch(re.escape(prefix) + r"[0-9a-f-]{36}", href):
            return href
    return None


@contextmanager
def _demo() -> Iterator[tuple[str, dict[str, Any]]]:
    """A fresh demo served on a free port: its URL and its credentials."""
    with tempfile.TemporaryDirectory() as home:
        port = _port()
        url = f"http://localhost:{port}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("HIPPOCRATE_")}
        env |= {"HIPPOCRATE_DATA_DIR": f"{home}/var", "HIPPOCRATE_PUBLIC_URL": url}
        _run(env, "init")
        _run(env, "seed", "--patients", "12", "--seed", "5")
        credentials = json.loads(Path(home, "var", "demo-credentials.json").read_text())
        server = subprocess.Popen(  # noqa: S603 - our own console script
            [str(BIN / "hippocrate"), "serve", "--port", str(port)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            for _ in range(200):
                try:
                    if httpx.get(f"{url}/api/v1/health", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                time.sleep(0.1)
            yield url, credentials
        finally:
            server.terminate()
            server.wait(timeout=10)


def _photograph(page: Page, url: str, credentials: dict[str, Any]) -> None:
    _shot(page, url, "/", "home")
    _shot(page, url, "/sign-in", "sign-in")
    _shot(page, url, "/verifier", "verifier")

    patient = next(
        p
        for p in credentials["patients"]
        if not p["totp_secret"] and "in_progress" in p["consultations"]
    )
    _sign_in(page, url, patient)
    _shot(page, url, "/patient", "patient-consultations")
    found = _first_link(page, "/patient/consultations/")
    if found:
        _shot(page, url, found, "patient-consultation")
    _shot(page, url, "/patient/consultations/new", "patient-new-consultation")
    _shot(page, url, "/patient/access", "patient-access-log")

    doctor = next(p for p in credentials["practitioners"] if "in_progress" in p["consultations"])
    _sign_in(page, url, doctor)
    _shot(page, url, "/practitioner", "practitioner-queue")
    page.goto(url + "/practitioner/patients")
    found = _first_link(page, "/practitioner/consultations/")
    if found:
        _shot(page, url, found, "practitioner-consultation")

    staff = {s["role"]: s for s in credentials["staff"]}
    _sign_in(page, url, staff["dpo"])
    _shot(page, url, "/dpo", "dpo-alerts")
    _shot(page, url, "/dpo/incidents", "dpo-incidents")
    _sign_in(page, url, staff["admin"])
    _shot(page, url, "/admin", "admin-approvals")
    _shot(page, url, "/admin/practitioners", "admin-practitioners")


def main() -> None:
    chromium = os.environ.get("HIPPOCRATE_CHROMIUM") or shutil.which("chromium")
    if chromium is None:
        sys.exit("screenshots: no chromium (Debian's chromium package)")
    OUT.mkdir(parents=True, exist_ok=True)
    with _demo() as (url, credentials), sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        context = browser.new_context(locale="fr-FR", viewport={"width": 1280, "height": 800})
        _photograph(context.new_page(), url, credentials)
        browser.close()


if __name__ == "__main__":
    main()
