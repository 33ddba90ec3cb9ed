"""The recipient's side: list my emails with their codes, and check a code I was sent.
Through the real app and a real bearer session."""

from __future__ import annotations

import uuid
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from hippocrate.app import create_app
from hippocrate.config import Settings
from hippocrate.identity.models import Account
from hippocrate.identity.sessions import create_session
from hippocrate.notify.service import send
from hippocrate.runtime import Runtime
from tests.conftest import Store
from tests.notify.conftest import NOW, AccountFactory, settings_for

with warnings.catch_warnings():
    # Starlette asks for httpx2 under its TestClient; the warning concerns the test tool.
    warnings.filterwarnings("ignore", message=r"Using `httpx` with `starlette\.testclient`")
    from fastapi.testclient import TestClient


@dataclass
class Person:
    account_id: uuid.UUID
    token: str
    codes: list[str]  # of the emails sent to them, oldest first
    ids: list[uuid.UUID]

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


def person_with_emails(
    store: Store, settings: Settings, make_account: AccountFactory, templates: list[str]
) -> Person:
    account = make_account(f"{uuid.uuid4().hex[:8]}@example.org")
    codes, ids = [], []
    with store.sessions.begin() as session:
        me = session.get(Account, account.id)
        assert me is not None
        for minutes, template in enumerate(templates):
            record = send(
                session=session,
                settings=settings,
                account=me,
                template=template,
                now=NOW + timedelta(minutes=minutes),
            )
            assert record.verification_code is not None
            codes.append(record.verification_code)
            ids.append(record.id)
        # The session is created by the real clock: the API checks expiry against it.
        token, _ = create_session(
            session=session, settings=settings, account=me, mfa_passed=True, now=datetime.now(UTC)
        )
    return Person(account.id, token, codes, ids)


@dataclass
class World:
    client: TestClient
    camille: Person
    dominique: Person


@pytest.fixture
def world(sqlite_store: Store, tmp_path: Path, make_account: AccountFactory) -> Iterator[World]:
    settings = settings_for(tmp_path, sqlite_store)  # outbox delivery
    camille = person_with_emails(
        sqlite_store,
        settings,
        make_account,
        ["new_message", "consultation_taken", "report_ready"],
    )
    dominique = person_with_emails(sqlite_store, settings, make_account, ["new_message"])
    app = create_app(runtime=Runtime(settings, sqlite_store.sessions))
    with TestClient(app) as client:
        yield World(client, camille, dominique)


def test_i_see_my_own_emails_newest_first_with_their_codes(world: World) -> None:
    response = world.client.get("/api/v1/notifications", headers=world.camille.auth)

    assert response.status_code == 200
    page = response.json()
    assert (page["total"], page["limit"], page["offset"]) == (3, 20, 0)
    assert [item["template"] for item in page["items"]] == [
        "report_ready",
        "consultation_taken",
        "new_message",
    ]
    assert [item["verification_code"] for item in page["items"]] == world.camille.codes[::-1]
    assert [item["id"] for item in page["items"]] == [str(i) for i in world.camille.ids[::-1]]
    first = page["items"][0]
    assert set(first) == {
        "id",
        "template",
        "created_at",
        "status",
        "sent_at",
        "failed_at",
        "verification_code",
    }
    assert first["status"] == "sent"
    assert first["created_at"].startswith("2026-01-15T09:32:00")
    # Nothing of anyone else's.
    assert not set(world.dominique.codes) & {i["verification_code"] for i in page["items"]}


def test_the_list_is_paginated(world: World) -> None:
    response = world.client.get(
        "/api/v1/notifications", params={"limit": 2, "offset": 1}, headers=world.camille.auth
    )

    page = response.json()
    assert page["total"] == 3
    assert [i["verification_code"] for i in page["items"]] == world.camille.codes[::-1][1:3]


@pytest.mark.parametrize(
    "spelling",
    [
        lambda c: c,
        lambda c: c.lower(),
        lambda c: c.replace("-", ""),
        lambda c: " ".join(c.replace("-", "")),
        lambda c: f"  {c.lower().replace('-', ' - ')} ",
        lambda c: c.replace("-", "\u2013"),  # a typographic dash, pasted
    ],
)
def test_a_code_i_was_sent_is_found_however_i_type_it(world: World, spelling: object) -> None:
    assert callable(spelling)
    code = world.camille.codes[1]

    response = world.client.post(
        "/api/v1/notifications/verify", json={"code": spelling(code)}, headers=world.camille.auth
    )

    assert response.status_code == 200
    body = response.json()
    assert body["found"] is True
    assert body["email"]["id"] == str(world.camille.ids[1])
    assert body["email"]["template"] == "consultation_taken"
    assert body["email"]["created_at"].startswith("2026-01-15T09:31:00")
    assert body["email"]["status"] == "sent"


def test_a_code_sent_to_someone_else_is_not_found(world: World) -> None:
    response = world.client.post(
        "/api/v1/notifications/verify",
        json={"code": world.dominique.codes[0]},
        headers=world.camille.auth,
    )

    assert response.status_code == 200
    assert response.json() == {"found": False, "email": None}
    # ...while its recipient finds it.
    response = world.client.post(
        "/api/v1/notifications/verify",
        json={"code": world.dominique.codes[0]},
        headers=world.dominique.auth,
    )
    assert response.json()["found"] is True


@pytest.mark.parametrize("code", ["K7PX-3QHM", "AB12-CD34", "0000-0000", "x", "K7PX-3QHM-9"])
def test_a_phishing_emails_code_is_not_found(world: World, code: str) -> None:
    if code in world.camille.codes:
        pytest.skip("one chance in a trillion: this code was drawn")

    response = world.client.post(
        "/api/v1/notifications/verify", json={"code": code}, headers=world.camille.auth
    )

    assert response.status_code == 200
    assert response.json() == {"found": False, "email": None}


def test_the_check_refuses_a_body_it_does_not_know(world: World) -> None:
    for body in ({"code": ""}, {"code": "A" * 65}, {}, {"code": "K7PX-3QHM", "account_id": "x"}):
        response = world.client.post(
            "/api/v1/notifications/verify", json=body, headers=world.camille.auth
        )
        assert response.status_code == 422, body


def test_without_a_session_there_is_nothing(world: World) -> None:
    assert world.client.get("/api/v1/notifications").status_code == 401
    response = world.client.post(
        "/api/v1/notifications/verify", json={"code": world.camille.codes[0]}
    )
    assert response.status_code == 401
    response = world.client.get(
        "/api/v1/notifications", headers={"Authorization": "Bearer not-a-session"}
    )
    assert response.status_code == 401
