"""Page sessions are shared by every app process: a cookie issued by one worker opens
the pages of another (two apps, each with its own runtime, vault, guard and caches, on
one database, as behind a load balancer), a form's CSRF token from one is good at the
other, and signing out at one ends the session everywhere."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from hippocrate.app import create_app
from hippocrate.db.engine import unsafe_unaudited_sessions
from hippocrate.identity.models import Role
from hippocrate.keyring.service import KEYRING
from hippocrate.runtime import Runtime
from hippocrate.vault import Vault
from hippocrate.vault.providers.file import FileKeyProvider
from hippocrate.web import cookies, csrf
from tests.conftest import Store
from tests.identity.conftest import settings_for
from tests.identity.helpers import make_user
from tests.web.conftest import BASE, page_client, sign_in, token_of


@pytest.fixture
def two_workers(store: Store, tmp_path: Path) -> Iterator[tuple[TestClient, TestClient]]:
    key_file = store.sessions.vault.provider._path  # type: ignore[attr-defined]
    vault = Vault(FileKeyProvider(key_file))
    sessions = unsafe_unaudited_sessions(store.engine, vault, KEYRING, why="a second worker")
    with ExitStack() as stack:
        one = stack.enter_context(
            page_client(
                create_app(
                    runtime=Runtime(
                        settings_for(tmp_path / "one", store, key_file=key_file), store.sessions
                    )
                )
            )
        )
        two = stack.enter_context(
            page_client(
                create_app(
                    runtime=Runtime(
                        settings_for(tmp_path / "two", store, key_file=key_file), sessions
                    )
                )
            )
        )
        yield one, two


def test_a_page_session_opened_at_one_worker_is_used_and_ended_at_the_other(
    store: Store, two_workers: tuple[TestClient, TestClient]
) -> None:
    one, two = two_workers
    user = make_user(store.sessions, Role.PATIENT)
    sign_in(one, user)
    two.cookies.update(one.cookies)
    assert two.get("/patient").status_code == 200
    # The form's token comes from one worker's page, the post goes to the other.
    token = token_of(one, "/patient/account")
    out = two.post("/sign-out", data={csrf.FIELD: token}, headers={"Origin": BASE})
    assert out.status_code == 303
    assert one.get("/patient").status_code == 303  # ended everywhere: to sign in
    assert one.cookies.get(cookies.SESSION)  # the first worker's browser kept the cookie
