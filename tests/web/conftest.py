"""Pages driven through the real app over HTTP(S), as a browser would: the session and
CSRF cookies are ``__Host-`` (Secure), so the client speaks to ``https://testserver``."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from hippocrate.app import create_app
from hippocrate.runtime import Runtime
from hippocrate.web import cookies, csrf
from tests.conftest import Store
from tests.identity.conftest import Env, settings_for
from tests.identity.helpers import TestUser, totp_code

BASE = "https://testserver"

_TOKEN = re.compile(r'name="' + csrf.FIELD + r'" value="([^"]+)"')


def page_client(app: Any) -> TestClient:
    return TestClient(app, base_url=BASE, follow_redirects=False)


def running_pages(store: Store, tmp_path: Path, **changes: Any) -> Iterator[Env]:
    settings = settings_for(tmp_path, store, **changes)
    app = create_app(runtime=Runtime(settings, store.sessions))
    with page_client(app) as client:
        yield Env(client, app, store, settings)


@pytest.fixture
def web(sqlite_store: Store, tmp_path: Path) -> Iterator[Env]:
    """The app on SQLite, reached as a browser reaches its pages."""
    yield from running_pages(sqlite_store, tmp_path)


@pytest.fixture
def web_on(store: Store, tmp_path: Path) -> Iterator[Env]:
    """The same on SQLite, then on PostgreSQL."""
    yield from running_pages(store, tmp_path)


def token_of(client: TestClient, path: str = "/sign-in", **kwargs: Any) -> str:
    """The CSRF token of the form on ``path`` (its GET sets the cookie if new)."""
    answer = client.get(path, **kwargs)
    found = _TOKEN.search(answer.text)
    assert found is not None, answer.text[:500]
    return found.group(1)


def submit(
    client: TestClient,
    path: str,
    data: dict[str, Any],
    *,
    form: str | None = None,
    files: Any = None,
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    """POST ``data`` to ``path`` with the CSRF token of the page ``form`` (default: the
    page of ``path`` itself), as a browser submitting that page's form would."""
    token = token_of(client, form or path, headers=headers)
    # As a browser posts a form: it says where the form comes from.
    sent = {"Origin": BASE, **(headers or {})}
    return client.post(path, data={csrf.FIELD: token, **data}, files=files, headers=sent)


def sign_in(client: TestClient, user: TestUser) -> None:
    """Sign ``user`` in through the pages, second factor included."""
    answer = submit(client, "/sign-in", {"email": user.email, "password": user.password})
    assert answer.status_code == 303, answer.text[:500]
    if answer.headers["location"].startswith("/sign-in/code"):
        assert user.totp_secret is not None
        answer = submit(client, "/sign-in/code", {"code": totp_code(user.totp_secret)})
        assert answer.status_code == 303, answer.text[:500]
    assert client.cookies.get(cookies.SESSION)
