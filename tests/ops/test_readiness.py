"""Liveness and readiness tell the truth: each part a request needs, broken for real
(a database that does not answer, a key file without the version in use, a key file
from elsewhere, a Redis that is not there, a job queue that cannot open, an audit event
the chainer left behind), makes readiness 503 with Retry-After and names that part;
liveness keeps answering.

The apps here are not started (no lifespan): no chainer thread runs, as when the
chainer of a deployment stopped."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import insert

from hippocrate.app import create_app
from hippocrate.audit.models import AuditPending
from hippocrate.db.engine import SessionFactory, make_engine, unsafe_unaudited_sessions
from hippocrate.keyring.rotation import rotate_root
from hippocrate.keyring.service import KEYRING
from hippocrate.patients.service import create_patient
from hippocrate.runtime import Runtime
from hippocrate.vault import Vault
from hippocrate.vault.providers.file import FileKeyProvider
from tests.conftest import Store
from tests.identity.conftest import settings_for
from tests.identity.helpers import patient_data

PARTS = ("key_provider", "database", "records", "guard", "chainer", "job_queue")


def app_on(
    store: Store, tmp_path: Path, sessions: SessionFactory | None = None, **changes: Any
) -> FastAPI:
    settings = settings_for(tmp_path, store, **changes)
    return create_app(runtime=Runtime(settings, sessions or store.sessions))


def sessions_with(store: Store, key_file: Path) -> SessionFactory:
    """The store's database, seen through a vault on ``key_file``."""
    vault = Vault(FileKeyProvider(key_file))
    return unsafe_unaudited_sessions(store.engine, vault, KEYRING, why="another key file")


def ready(app: FastAPI) -> httpx.Response:
    response: httpx.Response = TestClient(app).get("/api/v1/health/ready")
    return response


def a_patient(store: Store) -> None:
    with store.sessions.begin() as session:
        create_patient(session=session, data=patient_data())


def assert_unavailable(response: httpx.Response, failing: str) -> dict[str, str]:
    assert response.status_code == 503, response.text
    assert response.headers["retry-after"] == "5"
    body: dict[str, str] = response.json()
    assert body["status"] == "unavailable"
    assert body["failing"] == failing, body
    return body


def test_every_part_ok_on_both_routes(store: Store, tmp_path: Path) -> None:
    a_patient(store)
    app = app_on(store, tmp_path)
    client = TestClient(app)
    for path in ("/api/v1/health/ready", "/api/v1/health"):
        response = client.get(path)
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["status"] == "ok"
        assert {part: body[part] for part in PARTS} == dict.fromkeys(PARTS, "ok")
    live = client.get("/api/v1/health/live")
    assert (live.status_code, live.json()["status"]) == (200, "ok")


def test_a_database_that_does_not_answer(store: Store, tmp_path: Path) -> None:
    nowhere = make_engine("postgresql+psycopg://postgres@127.0.0.1:1/test")
    sessions = unsafe_unaudited_sessions(
        nowhere, store.sessions.vault, KEYRING, why="a database that does not answer"
    )
    app = app_on(store, tmp_path, sessions=sessions)
    # The guard's state is in the database without Redis: it is down with it.
    body = assert_unavailable(ready(app), "database, records, guard")
    assert body["database"] == "unavailable"
    assert body["key_provider"] == "ok"
    # The process still answers: a load balancer must not restart it for this.
    assert TestClient(app).get("/api/v1/health/live").status_code == 200
    nowhere.dispose()


def test_a_key_file_lacking_the_root_version_in_use(store: Store, tmp_path: Path) -> None:
    """After a rotation, a process still given the old key file (a deployment that did
    not copy the new one): its records cannot open."""
    a_patient(store)
    key_file = store.sessions.vault.provider._path  # type: ignore[attr-defined]
    before = tmp_path / "before-rotation.key"
    shutil.copy2(key_file, before)
    rotate_root(sessions=store.sessions)
    assert ready(app_on(store, tmp_path)).status_code == 200

    stale = app_on(store, tmp_path / "stale", sessions=sessions_with(store, before))
    body = assert_unavailable(ready(stale), "key_provider, records")
    assert body["key_provider"] == "root key version 2 is not held"
    assert body["root_key_version"] == "1"


def test_a_key_file_of_another_deployment(store: Store, tmp_path: Path) -> None:
    """It holds version 1, as the deployment's does, but it is another key: the newest
    data key does not unwrap."""
    a_patient(store)
    other = FileKeyProvider.create(tmp_path / "other" / "root.key")
    other.close()
    app = app_on(store, tmp_path, sessions=sessions_with(store, other._path))
    body = assert_unavailable(ready(app), "records")
    assert body["key_provider"] == "ok"
    assert body["records"] == "the newest data key does not unwrap"


def test_a_redis_that_is_not_there(sqlite_store: Store, tmp_path: Path) -> None:
    app = app_on(sqlite_store, tmp_path, redis_url="redis://127.0.0.1:1/0")
    body = assert_unavailable(ready(app), "guard, job_queue")
    assert (body["guard"], body["job_queue"]) == ("unavailable", "unavailable")
    assert body["database"] == "ok"


def test_a_job_queue_that_cannot_open(sqlite_store: Store, tmp_path: Path) -> None:
    # Something else sits where the queue's file must be: the queue cannot open.
    (tmp_path / "var" / "jobs.sqlite3").mkdir(parents=True)
    body = assert_unavailable(ready(app_on(sqlite_store, tmp_path)), "job_queue")
    assert body["guard"] == "ok"


def pending_event(store: Store, at: datetime) -> None:
    with store.engine.begin() as connection:
        connection.execute(
            insert(AuditPending).values(
                at=at,
                actor_role="patient",
                action="patient:record:read",
                resources=[],
                categories=[],
                outcome="allowed",
            )
        )


def test_an_audit_event_the_chainer_left_behind(store: Store, tmp_path: Path) -> None:
    app = app_on(store, tmp_path, audit_chain_seconds=0.5)  # bound: 10 x 0.5 + 5 = 10 s
    now = datetime.now(UTC)
    pending_event(store, now - timedelta(seconds=1))
    assert ready(app).status_code == 200  # waiting, within the bound
    pending_event(store, now - timedelta(seconds=60))
    body = assert_unavailable(ready(app), "chainer")
    assert body["chainer"].startswith("an audit event waits for 6")
    assert "(bound: 10 s)" in body["chainer"]
