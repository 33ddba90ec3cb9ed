"""The pages in a real browser: headless Chromium (the system's, driven by Playwright)
against the real app served by uvicorn on a port of its own, on a fresh database.

The browser speaks to ``http://localhost``: browsers take the ``__Host-`` (Secure)
cookies from localhost without TLS, as they would from any host over HTTPS. Every page
a journey visits is checked with axe-core (:func:`check_accessibility`).
"""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from playwright.sync_api import Browser, BrowserContext, Page, Playwright, sync_playwright

from hippocrate.app import create_app
from hippocrate.cli.demo import server_config
from hippocrate.runtime import Runtime
from tests.conftest import Store
from tests.identity.conftest import Env, settings_for

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")

IMPACTS_REFUSED = frozenset({"serious", "critical"})


def _chromium() -> str:
    found = os.environ.get("HIPPOCRATE_CHROMIUM") or shutil.which("chromium")
    if found is None:
        reason = "no chromium on this machine (Debian's chromium package)"
        if IN_CI:
            pytest.fail(f"{reason}; CI installs it (.ci/run)", pytrace=False)
        pytest.skip(reason)
    return found


# Per module, not per session: while the driver runs, its event loop is the thread's
# running loop, and a later test of the same worker that calls asyncio.run (the PDF
# signer does) would fail. A module's tests run together on one worker (--dist
# loadscope), so the loop ends with them.
@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="module")
def browser(playwright: Playwright) -> Iterator[Browser]:
    launched = playwright.chromium.launch(
        executable_path=_chromium(), args=["--no-sandbox", "--disable-dev-shm-usage"]
    )
    yield launched
    launched.close()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Site:
    """The app served on ``url``, and its test environment (accounts, outbox, clock)."""

    url: str
    env: Env

    def at(self, path: str) -> str:
        return self.url + path


@contextmanager
def served(app: Any, port: int) -> Iterator[str]:
    """``app`` served by uvicorn on ``port`` in a thread of this process; its URL."""
    server = uvicorn.Server(server_config(app, host="127.0.0.1", port=port))
    server.config.log_level = "warning"
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the app did not start")
        time.sleep(0.02)
    try:
        yield f"http://localhost:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def serving(store: Store, tmp_path: Path, **changes: Any) -> Iterator[Site]:
    port = free_port()
    settings = settings_for(tmp_path, store, public_url=f"http://localhost:{port}", **changes)
    app = create_app(runtime=Runtime(settings, store.sessions))
    from fastapi.testclient import TestClient

    with served(app, port) as url:
        yield Site(url, Env(TestClient(app), app, store, settings))


@pytest.fixture
def site(sqlite_store: Store, tmp_path: Path) -> Iterator[Site]:
    yield from serving(sqlite_store, tmp_path)


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:
    made = browser.new_context(locale="fr-FR", viewport={"width": 1200, "height": 900})
    made.set_default_timeout(10_000)
    yield made
    made.close()


def watched(opened: Page) -> Page:
    """``opened``, with what fails in it kept for :func:`no_console_errors`."""
    problems: list[str] = []

    def console(message: Any) -> None:
        # A page answered 4xx on purpose (a refused form) is logged as a failed load:
        # failed loads are judged from the responses instead, below.
        if message.type == "error" and not message.text.startswith("Failed to load resource"):
            problems.append(message.text)

    def response(answer: Any) -> None:
        if answer.request.resource_type != "document" and answer.status >= 400:
            problems.append(f"{answer.status} {answer.url}")

    opened.on("console", console)
    opened.on("response", response)
    opened.on("pageerror", lambda e: problems.append(str(e)))
    opened.problems = problems  # type: ignore[attr-defined]
    opened.set_default_timeout(10_000)
    return opened


def new_page(browser: Browser) -> Page:
    """A page of a context of its own (its own cookies: another person), in French."""
    context = browser.new_context(locale="fr-FR", viewport={"width": 1200, "height": 900})
    return watched(context.new_page())


@pytest.fixture
def page(context: BrowserContext) -> Page:
    return watched(context.new_page())


def check_accessibility(page: Page) -> None:
    """axe-core on the page as it is: no serious or critical violation."""
    from axe_playwright_python.sync_playwright import Axe

    results = Axe().run(page)
    refused = [
        (v["id"], v["impact"], [n["target"] for n in v["nodes"]][:3], v["help"])
        for v in results.response["violations"]
        if v.get("impact") in IMPACTS_REFUSED
    ]
    assert refused == [], f"{page.url}: {refused}"


def no_console_errors(page: Page) -> None:
    """Nothing the page ran failed, and the CSP refused nothing (it would say so)."""
    problems: list[str] = page.problems  # type: ignore[attr-defined]
    assert problems == [], problems
