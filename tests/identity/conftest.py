"""The app on a migrated store for identity tests, with a clock the test can move, the
outbox it can read, and fast password hashing (except where a test asks otherwise)."""

from __future__ import annotations

import re
import warnings
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI

from hippocrate.api.deps import now as now_dependency
from hippocrate.app import create_app
from hippocrate.config import KeyProviderKind, Settings
from hippocrate.identity.models import Role
from hippocrate.runtime import Runtime
from tests.conftest import Store
from tests.identity.helpers import TestUser, fast_password_hashing, login_as, make_user

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message=r"Using `httpx` with `starlette\.testclient`")
    from fastapi.testclient import TestClient

PROBLEM_JSON = "application/problem+json"


@pytest.fixture(autouse=True)
def _fast_passwords() -> Iterator[None]:
    with fast_password_hashing():
        yield


def settings_for(tmp_path: Path, store: Store, **changes: Any) -> Settings:
    """Settings naming everything, so no HIPPOCRATE_ variable of the caller leaks in."""
    values: dict[str, Any] = {
        "data_dir": tmp_path / "var",
        "database_url": store.url,
        "key_provider": KeyProviderKind.FILE,
        "key_file": None,
        "smtp_host": None,
        "redis_url": None,
    }
    values.update(changes)
    return Settings(**values)


@dataclass
class Env:
    client: TestClient
    app: FastAPI
    store: Store
    settings: Settings
    clock: datetime | None = None

    # -- the app's clock ---------------------------------------------------------------

    def set_clock(self, when: datetime) -> None:
        self.clock = when
        self.app.dependency_overrides[now_dependency] = lambda: when

    def tick(self, seconds: float = 30) -> datetime:
        """Move the app's clock ``seconds`` on from where it is (real time at first): a
        TOTP step, by default, so that a test can use a fresh code without waiting."""
        self.set_clock((self.clock or datetime.now(UTC)) + timedelta(seconds=seconds))
        assert self.clock is not None
        return self.clock

    def later(self, **delta: float) -> datetime:
        """Move the app's clock to real time plus ``delta``; returns that time."""
        when = datetime.now(UTC) + timedelta(**delta)
        self.set_clock(when)
        return when

    def real_clock(self) -> None:
        self.clock = None
        self.app.dependency_overrides.pop(now_dependency, None)

    # -- accounts ---------------------------------------------------------------------

    def user(self, role: Role = Role.PATIENT, **kwargs: Any) -> TestUser:
        return make_user(self.store.sessions, role, **kwargs)

    def login(self, user: TestUser, **kwargs: Any) -> dict[str, str]:
        return login_as(self.client, user, **kwargs)

    def post_login(self, email: str, password: str) -> Any:
        return self.client.post("/api/v1/auth/login", json={"email": email, "password": password})

    # -- the outbox -------------------------------------------------------------------

    def emails_to(self, address: str) -> list[EmailMessage]:
        """Messages delivered to ``address``, oldest first."""
        outbox = self.settings.outbox_dir
        if not outbox.exists():
            return []
        found = []
        for path in sorted(outbox.glob("*.eml"), key=lambda p: p.stat().st_mtime_ns):
            message = message_from_bytes(path.read_bytes(), policy=policy.default)
            assert isinstance(message, EmailMessage)
            if message["To"] == address:
                found.append(message)
        return found


def text_of(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("plain",))
    assert part is not None
    content: str = part.get_content()  # type: ignore[attr-defined]
    return content


def link_token(message: EmailMessage) -> str:
    """The token of the link in ``message``."""
    match = re.search(r"[?#]token=([A-Za-z0-9_\-]+)", text_of(message))
    assert match is not None, text_of(message)
    return match.group(1)


@contextmanager
def running(store: Store, tmp_path: Path, **changes: Any) -> Iterator[Env]:
    settings = settings_for(tmp_path, store, **changes)
    app = create_app(runtime=Runtime(settings, store.sessions))
    with TestClient(app) as client:
        yield Env(client, app, store, settings)


@pytest.fixture
def env(sqlite_store: Store, tmp_path: Path) -> Iterator[Env]:
    """The app on SQLite with default settings."""
    with running(sqlite_store, tmp_path) as env:
        yield env


@pytest.fixture
def env_on(store: Store, tmp_path: Path) -> Iterator[Env]:
    """The app on SQLite, then on PostgreSQL (for tests where the store matters)."""
    with running(store, tmp_path) as env:
        yield env


@pytest.fixture
def make_env(sqlite_store: Store, tmp_path: Path) -> Iterator[Callable[..., Env]]:
    """The app on SQLite with some settings changed: ``make_env(login_lock_seconds=60)``."""
    with ExitStack() as stack:

        def make(**changes: Any) -> Env:
            return stack.enter_context(running(sqlite_store, tmp_path, **changes))

        yield make


def assert_problem(response: Any, status: int) -> dict[str, Any]:
    """An RFC 9457 problem with ``status``; returns its body."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM_JSON
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert body["title"]
    return body
